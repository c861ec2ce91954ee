package pgpool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/failover"
	"github.com/vigil-ha/vigil/internal/flavor"
	"github.com/vigil-ha/vigil/internal/host"
	"github.com/vigil-ha/vigil/internal/isolation"
	"github.com/vigil-ha/vigil/internal/pgctl"
	"github.com/vigil-ha/vigil/internal/timeline"
	"github.com/vigil-ha/vigil/internal/vip"
)

// Server is what the procedures need of one database server;
// *database.Server is one.
type Server interface {
	Observe(ctx context.Context) (database.Observation, error)
	ProbeWrite(ctx context.Context) database.ProbeResult
	Promote(ctx context.Context, wait time.Duration) error
	SetAsync(ctx context.Context) error
	Checkpoint(ctx context.Context) error
	Follow(ctx context.Context, up database.Upstream) error
	EnsureSlot(ctx context.Context, name string) error
	WaitStreaming(ctx context.Context, host string, port int) error
}

// VIP is the database VIP the seed's script moved.
type VIP struct {
	Prefix    netip.Prefix
	Interface string
	Label     string
	// ARPCount gratuitous ARPs follow the address; 0 sends none.
	ARPCount int
}

// Options configure Failover and Follow.
type Options struct {
	Cluster  string
	Flavor   flavor.Flavor
	Defaults Defaults
	Commands Commands
	Runner   Runner
	// Connect returns the adapter for a node. The readiness check through
	// the VIP connects to a Target whose Host is the VIP.
	Connect func(t Target) Server
	// SQLUser and SQLDatabase are what Connect logs in as; dry runs show them.
	SQLUser, SQLDatabase string

	TrustedIPs     []string
	TrustedTimeout time.Duration
	// TrustedDialer replaces net.Dialer for the trusted-IP probes (tests).
	TrustedDialer interface {
		DialContext(ctx context.Context, network, address string) (net.Conn, error)
	}

	VIP                *VIP // nil: no VIP
	FenceIfUnreachable string
	StopMode           string
	PromoteMethod      string

	Total            time.Duration // the whole command
	DBTimeout        time.Duration // one SQL call
	CommandTimeout   time.Duration // one command on a node
	PromoteTimeout   time.Duration
	ReadinessTimeout time.Duration
	// GatePoll is the pause between write probes (100 ms when 0).
	GatePoll time.Duration

	// Human receives the failover_stream.sh-shaped log; StepLog the JSON
	// step lines. Either may be nil.
	Human   io.Writer
	StepLog io.Writer
	Logger  *slog.Logger
	// Now is the human log's clock (time.Now when nil).
	Now func() time.Time
	// DryRun observes and plans, prints the plan and does nothing.
	DryRun bool
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Total, 5*time.Minute)
	def(&o.DBTimeout, 2*time.Second)
	def(&o.CommandTimeout, 30*time.Second)
	def(&o.PromoteTimeout, 60*time.Second)
	def(&o.ReadinessTimeout, 4*time.Minute)
	def(&o.TrustedTimeout, time.Second)
	def(&o.GatePoll, 100*time.Millisecond)
	if o.StopMode == "" {
		o.StopMode = "immediate"
	}
	if o.FenceIfUnreachable == "" {
		o.FenceIfUnreachable = FenceAbort
	}
	if o.PromoteMethod == "" {
		o.PromoteMethod = MethodAuto
	}
	if o.Cluster == "" {
		o.Cluster = "pgpool"
	}
	return o
}

// stopWait is how long the control binary waits for the old primary to
// stop: a second less than the command may take, so that it reports
// rather than being cut off, and at least the second the control binary
// counts in (pgctl reads no wait at all as its 60 s default).
func (o Options) stopWait() time.Duration { return max(o.CommandTimeout-time.Second, time.Second) }

// Outcome is how a call ended.
type Outcome struct {
	Exit int
	// Err says why, when Exit is not ExitOK.
	Err    error
	Plan   Plan
	Record timeline.Record
}

// command is one failover-command call.
type command struct {
	o    Options
	args Args
	// rec records the call's steps; the human log observes it.
	rec *timeline.Recorder
}

// Failover is failover-command: the seed's procedure with its order and
// checks fixed. It is bounded by o.Total and safe to call twice.
func Failover(ctx context.Context, o Options, args Args) Outcome {
	o = o.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, o.Total)
	defer cancel()
	f := &command{o: o, args: args}
	return f.run(ctx)
}

func (f *command) run(ctx context.Context) Outcome {
	o, a := f.o, f.args
	old, nw := a.OldPrimary(o.Defaults), a.NewMain(o.Defaults)
	node := nw.Name
	if a.NewMainID < 0 {
		node = a.Failed(o.Defaults).Name
	}
	f.rec = timeline.New(kindFailover, o.Cluster, node, old.Name, o.StepLog, o.Logger, newHumanLog(o.Human, o.Now))
	f.rec.Note(timeline.Note{What: noteCall, Text: a.Stats()})
	o.Logger.Warn("failover-command called", "failed_node", a.FailedID, "old_primary", a.OldPrimaryID, "new_main", a.NewMainID, "new_main_host", a.NewMainHost)

	in := Input{Args: a, Defaults: o.Defaults, VIP: o.VIP != nil, PromoteMethod: o.PromoteMethod}
	// 1. The trusted-IP guard, before anything else.
	_ = f.rec.Run(StepIsolationGuard, func() (string, error) {
		in.Trusted, in.TrustedEvidence = f.pingTrusted(ctx)
		if !in.Trusted {
			return "", errors.New(in.TrustedEvidence)
		}
		return in.TrustedEvidence, nil
	})
	// 2. Look at the node to promote (read-only), then decide.
	if in.Trusted && NeedsCandidate(a) {
		in.Candidate = f.observeCandidate(ctx, nw)
	}
	plan := Decide(in)
	var decideErr error
	if plan.Exit != ExitOK {
		decideErr = errors.New(plan.Reason)
	}
	_ = f.rec.Run(StepDecide, func() (string, error) {
		f.rec.Note(timeline.Note{What: noteDecided, Value: string(plan.Case), Host: nw.Host, Text: plan.Reason})
		return decision(plan.Case, plan.Reason, decideErr)
	})
	if plan.Procedure.IsZero() {
		exit := plan.Exit
		if exit != ExitOK && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			exit = ExitTimeout
		}
		return f.finish(plan, exit, decideErr)
	}
	if o.DryRun {
		for _, l := range Describe(plan, o) {
			f.rec.Note(timeline.Note{What: noteDryRun, Text: l})
		}
		return f.finish(plan, ExitOK, nil)
	}
	res := failover.Run(ctx, plan.Procedure, f.rec, f.steps(plan))
	if !res.OK() {
		return f.finish(plan, ExitFor(Action(res.Failed), errors.Is(ctx.Err(), context.DeadlineExceeded)), res.Err)
	}
	return f.finish(plan, ExitOK, nil)
}

// decision is the decide step's evidence: the case, and the reason unless
// the error carries it already.
func decision(c Case, reason string, err error) (string, error) {
	if err != nil {
		return string(c), err
	}
	return string(c) + ": " + reason, nil
}

func (f *command) finish(plan Plan, exit int, err error) Outcome {
	reason := plan.Reason
	if exit == ExitOK && plan.Case == CasePrimaryDown {
		reason = fmt.Sprintf("%s is the writable primary", plan.New)
		if f.o.DryRun {
			reason = "dry run: nothing done"
		}
	}
	if exit != ExitOK {
		if err == nil {
			err = errors.New(reason)
		}
		reason = err.Error()
	}
	f.rec.Note(timeline.Note{What: noteExit, Exit: exit, Text: reason})
	rec := f.rec.Finish(exit == ExitOK, reason)
	level := slog.LevelInfo
	if exit != ExitOK {
		level = slog.LevelError
	}
	f.o.Logger.Log(context.Background(), level, "failover-command finished", "exit", exit, "case", plan.Case, "reason", reason, "timeline", "\n"+timeline.Format(rec))
	return Outcome{Exit: exit, Err: err, Plan: plan, Record: rec}
}

// steps are failover-command's implementations of the plan's steps.
func (f *command) steps(plan Plan) failover.Steps {
	return failover.Steps{
		string(ActFence):      func(ctx context.Context) (string, error) { return f.fence(ctx, plan.Old) },
		string(ActPromote):    func(ctx context.Context) (string, error) { return f.promote(ctx, plan) },
		string(ActGate):       func(ctx context.Context) (string, error) { return f.gate(ctx, plan.New) },
		string(ActSync):       func(ctx context.Context) (string, error) { return f.synchronous(ctx, plan.New) },
		string(ActCheckpoint): func(ctx context.Context) (string, error) { return f.checkpoint(ctx, plan.New) },
		string(ActVIP):        func(ctx context.Context) (string, error) { return f.vipUp(ctx, plan.New) },
	}
}

// note tells the human log what the running step does.
func (f *command) note(n timeline.Note) { f.rec.Note(n) }

// ran notes a command that ran.
func (f *command) ran(argv []string, res Result, err error) { f.note(commandNote(argv, res, err)) }

// on is the node at addr as a host.Host, the way the shared layers
// (pgctl's control binary, vip's address rules) run their commands there:
// each command bounded by within, and noted for the human log unless
// quiet, since failover_stream.sh echoed what it ran.
func (f *command) on(addr string, within time.Duration, quiet bool) host.Host {
	return host.Func(func(ctx context.Context, argv []string) (host.Result, error) {
		cctx, cancel := context.WithTimeout(ctx, within)
		defer cancel()
		res, err := f.o.Runner.Run(cctx, addr, argv)
		f.o.Logger.Debug("command", "host", addr, "argv", argv, "exit", res.ExitCode, "err", err)
		if !quiet {
			f.ran(argv, res, err)
		}
		return res, err
	})
}

// pingTrusted probes every trusted address at once (a TCP probe: an answer
// or a refusal counts, silence does not) and notes each answer, which the
// human log words as the script's "ping trust ip" did.
func (f *command) pingTrusted(ctx context.Context) (bool, string) {
	addrs := f.o.TrustedIPs
	if len(addrs) == 0 {
		f.note(timeline.Note{What: noteTrusted})
		return false, "no trusted IPs configured"
	}
	results := make([]isolation.Result, len(addrs))
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := isolation.Checker{Addresses: []string{a}, Timeout: f.o.TrustedTimeout}
			if f.o.TrustedDialer != nil {
				c.Dialer = f.o.TrustedDialer
			}
			results[i] = c.Check(ctx)
		}()
	}
	wg.Wait()
	ok, evidence := false, ""
	for i, r := range results {
		if r.Reachable {
			f.note(timeline.Note{What: noteTrusted, Host: addrs[i]})
			if !ok {
				ok, evidence = true, r.Evidence
			}
			continue
		}
		f.note(timeline.Note{What: noteTrusted, Host: addrs[i], Err: r.Evidence})
		if evidence == "" || !ok {
			evidence = r.Evidence
		}
	}
	return ok, evidence
}

// observeCandidate looks at the node to promote without changing it.
func (f *command) observeCandidate(ctx context.Context, t Target) Candidate {
	srv := f.o.Connect(t)
	var obs database.Observation
	var err error
	for attempt := range 3 {
		octx, cancel := context.WithTimeout(ctx, f.o.DBTimeout)
		obs, err = srv.Observe(octx)
		cancel()
		if err == nil || ctx.Err() != nil {
			break
		}
		f.o.Logger.Warn("new main node does not answer yet", "node", t.Name, "attempt", attempt+1, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
	if err != nil {
		return Candidate{Error: err.Error()}
	}
	c := Candidate{Reachable: true, InRecovery: obs.InRecovery, VersionNum: obs.ServerVersionNum,
		PromoteFunction: obs.PromoteFunction, Backlog: obs.ReplayBacklogBytes}
	if !obs.InRecovery {
		pctx, cancel := context.WithTimeout(ctx, f.o.DBTimeout)
		c.Writable = srv.ProbeWrite(pctx).Writable()
		cancel()
	}
	if v := f.o.VIP; v != nil {
		held, err := f.o.Commands.VIP(*v, f.on(t.Host, f.o.CommandTimeout, true)).Holds(ctx)
		c.HasVIP = err == nil && held
	}
	return c
}

// fence stops the old primary's database and removes the VIP from it;
// AfterFence decides whether the failover may go on.
func (f *command) fence(ctx context.Context, old Target) (string, error) {
	v := f.o.VIP
	if v != nil {
		f.note(timeline.Note{What: noteOn, Host: old.Host})
	}
	out := FenceOutcome{VIPGone: v == nil}
	// The first command says whether the host was reached, which the
	// script logged before the commands it ran there.
	var unreachable error
	first := true
	noted := f.on(old.Host, f.o.CommandTimeout, true)
	oldHost := host.Func(func(ctx context.Context, argv []string) (host.Result, error) {
		res, err := noted.Run(ctx, argv)
		if first {
			first = false
			if errors.Is(err, host.ErrUnreachable) {
				unreachable = err
				f.note(timeline.Note{What: noteReached, Host: old.Host, Err: err.Error()})
				return res, err
			}
			f.note(timeline.Note{What: noteReached, Host: old.Host})
		}
		f.ran(argv, res, err)
		return res, err
	})
	ctl := f.o.Commands.Ctl(old.DataDir)
	ctl.Host = oldHost
	stopped, err := ctl.StopOutcome(ctx, pgctl.StopMode(f.o.StopMode), f.o.stopWait())
	if unreachable != nil {
		out.Detail = unreachable.Error()
	} else {
		out.Reached = true
		out.Stopped, out.Detail = provedStopped(ctx, ctl, stopped, err)
		if v != nil {
			f.note(timeline.Note{What: noteVIPMove, Value: v.Interface})
			// Removal is idempotent: a second call finds the address gone.
			_, err := vip.Remove(ctx, f.o.Commands.VIP(*v, oldHost))
			f.note(timeline.Note{What: noteVIPMoved})
			out.VIPGone = err == nil
			if err != nil && out.Detail == "" {
				out.Detail = err.Error()
			}
		}
	}
	proceed, _, why := AfterFence(out, f.o.FenceIfUnreachable)
	if !proceed {
		return "", errors.New(why)
	}
	if !out.Reached {
		f.o.Logger.Warn("old primary not fenced: its host is unreachable; continuing as configured", "host", old.Host)
	}
	return why, nil
}

// provedStopped reads how the stop ended. A stop that the control binary
// reports done is still checked with its status command, whose exit 3 is
// the proof the fence rests on (and which the script's log showed); a
// stop that failed was checked by StopOutcome already.
func provedStopped(ctx context.Context, ctl pgctl.Ctl, stopped pgctl.Stopped, err error) (bool, string) {
	switch {
	case err != nil:
		return false, err.Error()
	case stopped.Already:
		return true, ""
	}
	running, _, err := ctl.Status(ctx)
	switch {
	case err != nil:
		return false, fmt.Sprintf("not proved stopped: %v", err)
	case running:
		return false, "the control binary reports the server running after the stop"
	}
	return true, ""
}

// promote promotes the new primary and waits until it has left recovery.
func (f *command) promote(ctx context.Context, plan Plan) (string, error) {
	nw := plan.New
	srv := f.o.Connect(nw)
	octx, cancel := context.WithTimeout(ctx, f.o.DBTimeout)
	before, _ := srv.Observe(octx)
	cancel()
	f.note(timeline.Note{What: noteOn, Host: nw.Host})
	switch plan.PromoteVia {
	case "":
		return fmt.Sprintf("out of recovery already (timeline %d): nothing to promote", before.Timeline), nil
	case ViaSQL:
		// Noted before it is sent: a promotion that hangs still shows in
		// the log as asked for.
		f.note(timeline.Note{What: notePromote})
		f.note(timeline.Note{What: noteSQL, Host: fmt.Sprintf("%s:%d", nw.Host, nw.Port),
			Text: f.o.Flavor.SQL(fmt.Sprintf(sqlPromote, int(seconds64(f.o.PromoteTimeout))))})
		pctx, cancel := context.WithTimeout(ctx, f.o.PromoteTimeout+5*time.Second)
		err := srv.Promote(pctx, f.o.PromoteTimeout)
		cancel()
		if err != nil {
			return "", fmt.Errorf("promote %s: %w", nw, err)
		}
	case ViaSSH:
		f.note(timeline.Note{What: notePromote})
		ctl := f.o.Commands.Ctl(nw.DataDir)
		ctl.Host = f.on(nw.Host, f.o.PromoteTimeout+5*time.Second, false)
		if err := ctl.Promote(ctx, f.o.PromoteTimeout); err != nil {
			return "", fmt.Errorf("promote %s: %w", nw, err)
		}
	}
	octx, cancel = context.WithTimeout(ctx, f.o.DBTimeout)
	after, err := srv.Observe(octx)
	cancel()
	if err != nil {
		return fmt.Sprintf("promoted; not observed since (%v) (replay backlog before: %d bytes)", err, before.ReplayBacklogBytes), nil
	}
	if after.InRecovery {
		return "", fmt.Errorf("promote %s: still in recovery after the promotion returned", nw)
	}
	return failover.PromotedEvidence(before, after), nil
}

func seconds64(d time.Duration) int64 { return max(int64(d.Round(time.Second)/time.Second), 1) }

// refusal names a refused probe without the words "failed" and "error",
// which the analyzer reads as a failed step.
func refusal(c database.ProbeClass) string {
	switch c {
	case database.ProbeInRecovery:
		return "still in recovery"
	case database.ProbeReadOnly:
		return "read-only"
	case database.ProbeConnectionFailure:
		return "no session"
	case database.ProbeTimeout:
		return "timed out"
	case database.ProbeSyncWait:
		return "waiting for a synchronous standby"
	}
	return "refused"
}

// gate is the readiness gate (failover.Gate): a real write must commit
// before anything routes clients to the new primary. While the promoted
// server still replays its backlog it refuses writes (the seed's 35 s);
// the gate waits that out, logging the backlog, up to the readiness
// timeout. A commit that waits for a synchronous standby that is gone (the
// old primary, in a two-node cluster) is the seed's "sync to async"; a
// commit that hangs may wait for one too (the first probe's CREATE TABLE
// is not cancelled early, so it times out rather than reports the wait).
func (f *command) gate(ctx context.Context, t Target) (string, error) {
	srv := f.o.Connect(t)
	g := failover.Gate{
		Server:       srv,
		Timeout:      f.o.ReadinessTimeout,
		ProbeTimeout: f.o.DBTimeout,
		Poll:         f.o.GatePoll,
		ToAsync: func(ctx context.Context, why string) bool {
			_ = f.rec.Run(StepSyncToAsync, func() (string, error) { return f.toAsync(ctx, srv, why) })
			return false
		},
		SyncStuck: SyncAction,
		Report: func(p failover.Progress) bool {
			f.note(timeline.Note{What: noteWaiting, Host: t.Host,
				Text: fmt.Sprintf("write not committed on %s (%s), replay backlog %d bytes, attempt %d", t.Host, refusal(p.Last.Class), p.Last.ReplayBacklogBytes, p.Attempts)})
			f.o.Logger.Warn("readiness gate: no write committed yet", "node", t.Name, "class", p.Last.Class, "replay_backlog_bytes", p.Last.ReplayBacklogBytes, "attempts", p.Attempts)
			return true
		},
	}
	p, err := g.Wait(ctx)
	if err != nil {
		return "", fmt.Errorf("no write committed on %s within %s after %d attempts (%d refused as read-only), last: %s: the VIP was not moved",
			t, f.o.ReadinessTimeout, p.Attempts, p.Refused, refusal(p.Last.Class))
	}
	return fmt.Sprintf("%s (attempt %d, %d refused, %s after the gate opened)", p.Last.String(), p.Attempts, p.Refused, p.Elapsed.Round(time.Millisecond)), nil
}

func (f *command) toAsync(ctx context.Context, srv Server, why string) (string, error) {
	f.note(timeline.Note{What: noteSQL, Text: f.o.Flavor.SQL(sqlAsync)})
	sctx, cancel := context.WithTimeout(ctx, f.o.DBTimeout*2)
	defer cancel()
	if err := srv.SetAsync(sctx); err != nil {
		return "", err
	}
	return why + ": synchronous_standby_names cleared", nil
}

// synchronous is step 6: commits must not wait for a standby that is gone.
// Clearing the synchronous standbys is the seed's sync_to_async, recorded
// as a step of its own inside this one.
func (f *command) synchronous(ctx context.Context, t Target) (string, error) {
	srv := f.o.Connect(t)
	octx, cancel := context.WithTimeout(ctx, f.o.DBTimeout)
	obs, err := srv.Observe(octx)
	cancel()
	if err != nil {
		return "", err
	}
	toAsync, why := SyncAction(obs)
	if !toAsync {
		return why, nil
	}
	var ev string
	err = f.rec.Run(StepSyncToAsync, func() (string, error) {
		var err error
		ev, err = f.toAsync(ctx, srv, why)
		return ev, err
	})
	return ev, err
}

// checkpoint is step 7: a crash soon after must not replay the backlog again.
func (f *command) checkpoint(ctx context.Context, t Target) (string, error) {
	return failover.Checkpoint(ctx, f.o.Connect(t), f.o.PromoteTimeout)
}

// vipUp is step 8, and only now: the VIP goes to the new primary after a
// write has committed there. vip.Add refuses an address that another host
// still answers for; then a write through the VIP must commit.
func (f *command) vipUp(ctx context.Context, t Target) (string, error) {
	v := f.o.VIP
	addr := v.Prefix.Addr()
	f.note(timeline.Note{What: noteOn, Host: t.Host})
	r := f.o.Commands.VIP(*v, f.on(t.Host, f.o.CommandTimeout, false))
	added, err := vip.Add(ctx, movingVIP{Remote: r, f: f, node: t.Host, quiet: f.on(t.Host, f.o.CommandTimeout, true)})
	var ev []string
	switch {
	case errors.Is(err, vip.ErrDuplicate):
		f.vipState(t.Host, "another host answers ARP for %s: not added (fence that host first)", addr)
		return "", fmt.Errorf("another host answers ARP for %s: the VIP was not added to %s (fence that host first)", addr, t.Host)
	case err != nil:
		return "", fmt.Errorf("add %s to %s on %s: %w", v.Prefix, v.Interface, t.Host, err)
	case !added:
		f.vipState(t.Host, "%s is on %s already", addr, v.Interface)
		ev = append(ev, fmt.Sprintf("%s was on %s already", v.Prefix, v.Interface))
	default:
		ev = append(ev, fmt.Sprintf("vip %s added on %s of %s", v.Prefix, v.Interface, t.Host))
	}
	if v.ARPCount > 0 {
		if err := r.Announce(ctx, v.ARPCount); err != nil {
			// Not fatal: neighbours learn the address on their next ARP.
			f.o.Logger.Warn("gratuitous ARP not sent", "host", t.Host, "err", err)
			ev = append(ev, "gratuitous ARP not sent")
		} else {
			ev = append(ev, fmt.Sprintf("%d gratuitous ARPs", v.ARPCount))
		}
	}
	probe, err := f.throughVIP(ctx, t)
	if err != nil {
		return "", err
	}
	f.vipState(t.Host, "%s answers: %s", addr, probe)
	ev = append(ev, "through the VIP: "+probe)
	return strings.Join(ev, "; "), nil
}

// vipState notes what the routes step found on the node at addr.
func (f *command) vipState(addr, format string, args ...any) {
	f.note(timeline.Note{What: noteVIPState, Host: addr, Text: fmt.Sprintf(format, args...)})
}

// movingVIP is the new primary's transport as vip.Add uses it, noting
// the move for the human log: vip.Add assigns only once no other host
// answers, which is when the script said "ADD VIP NOW AT".
type movingVIP struct {
	vip.Remote
	f *command
	// node is the new primary's address.
	node string
	// quiet runs the duplicate check unechoed: the script never ran one,
	// the notes word its answer, and vigil analyze reads every arping
	// line of this log as a gratuitous ARP.
	quiet host.Host
}

// Answerer runs the duplicate address check on the quiet host.
func (m movingVIP) Answerer(ctx context.Context) (string, error) {
	r := m.Remote
	r.Host = m.quiet
	return r.Answerer(ctx)
}

// Assign notes the free address and the move around the address's add.
func (m movingVIP) Assign(ctx context.Context) error {
	m.f.vipState(m.node, "%s is free, no other host answers for it (duplicate address detection)", m.Address.Addr())
	m.f.note(timeline.Note{What: noteVIPMove, Value: m.Interface})
	if err := m.Remote.Assign(ctx); err != nil {
		return err
	}
	m.f.note(timeline.Note{What: noteVIPMoved})
	return nil
}

// throughVIP commits a write through the VIP: the address answers and
// leads to a writable primary.
func (f *command) throughVIP(ctx context.Context, t Target) (string, error) {
	via := t
	via.Host = f.o.VIP.Prefix.Addr().String()
	srv := f.o.Connect(via)
	vctx, cancel := context.WithTimeout(ctx, f.o.CommandTimeout)
	defer cancel()
	for {
		pctx, pcancel := context.WithTimeout(vctx, f.o.DBTimeout)
		r := srv.ProbeWrite(pctx)
		pcancel()
		if r.Writable() {
			return r.String(), nil
		}
		select {
		case <-vctx.Done():
			return "", fmt.Errorf("no write committed through the VIP %s:%d within %s (%s)", via.Host, via.Port, f.o.CommandTimeout, refusal(r.Class))
		case <-time.After(f.o.GatePoll):
		}
	}
}
