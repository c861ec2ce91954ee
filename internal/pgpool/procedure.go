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
	"github.com/vigil-ha/vigil/internal/isolation"
	"github.com/vigil-ha/vigil/internal/timeline"
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
// rather than being cut off.
func (o Options) stopWait() time.Duration { return o.CommandTimeout - time.Second }

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
	h    *humanLog
	args Args
	rec  *timeline.Recorder
}

// Failover is failover-command: the seed's procedure with its order and
// checks fixed. It is bounded by o.Total and safe to call twice.
func Failover(ctx context.Context, o Options, args Args) Outcome {
	o = o.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, o.Total)
	defer cancel()
	f := &command{o: o, h: newHumanLog(o.Human, o.Now), args: args}
	return f.run(ctx)
}

func (f *command) run(ctx context.Context) Outcome {
	o, h, a := f.o, f.h, f.args
	old, nw := a.OldPrimary(o.Defaults), a.NewMain(o.Defaults)
	node := nw.Name
	if a.NewMainID < 0 {
		node = a.Failed(o.Defaults).Name
	}
	f.rec = timeline.New("failover", o.Cluster, node, old.Name, o.StepLog, o.Logger)
	h.banner("failover beging")
	h.line("%s", a.Stats())
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
	if plan.Case != CaseIsolated {
		h.line("----determine whether the faulty db is master or standby")
		switch plan.Case {
		case CasePrimaryDown:
			h.line("master down, let %s become new primary.....", nw.Host)
		case CaseNoCandidate:
			h.line("master down, and no standby can become the new primary")
		case CaseStandbyDown:
			h.line("determine whether the faulty db is master or standby: standby down, %s", plan.Reason)
		case CaseAlreadyDone:
			h.line("determine whether the faulty db is master or standby: nothing to do, %s", plan.Reason)
		}
	}
	var decideErr error
	if plan.Exit != ExitOK {
		decideErr = errors.New(plan.Reason)
	}
	_ = f.rec.Run(StepDecide, func() (string, error) { return decision(plan.Case, plan.Reason, decideErr) })
	if len(plan.Steps) == 0 {
		exit := plan.Exit
		if exit != ExitOK && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			exit = ExitTimeout
		}
		return f.finish(plan, exit, decideErr)
	}
	if o.DryRun {
		for _, l := range Describe(plan, o) {
			h.line("dry run: %s", l)
		}
		return f.finish(plan, ExitOK, nil)
	}
	res := failover.Run(ctx, stepsPlan(plan.Steps), f.rec, f.steps(plan))
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
		f.h.line("failover failed (exit %d): %s", exit, reason)
	}
	f.h.banner("failover end")
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
	do := func(fn failover.StepFunc) failover.Step { return failover.Step{Do: fn} }
	return failover.Steps{
		string(ActFence):   do(func(ctx context.Context) (string, error) { return f.fence(ctx, plan.Old) }),
		string(ActPromote): do(func(ctx context.Context) (string, error) { return f.promote(ctx, plan) }),
		string(ActGate):    do(func(ctx context.Context) (string, error) { return f.gate(ctx, plan.New) }),
		string(ActSync): {Records: true, Do: func(ctx context.Context) (string, error) {
			return "", f.synchronous(ctx, plan.New)
		}},
		string(ActCheckpoint): do(func(ctx context.Context) (string, error) { return f.checkpoint(ctx, plan.New) }),
		string(ActVIP):        do(func(ctx context.Context) (string, error) { return f.vipUp(ctx, plan.New) }),
	}
}

// exec runs argv on host, bounded by the command timeout.
func (f *command) exec(ctx context.Context, host string, argv []string) (Result, error) {
	cctx, cancel := context.WithTimeout(ctx, f.o.CommandTimeout)
	defer cancel()
	res, err := f.o.Runner.Run(cctx, host, argv)
	f.o.Logger.Debug("command", "host", host, "argv", argv, "exit", res.ExitCode, "err", err)
	return res, err
}

// pingTrusted probes every trusted address at once and logs one line per
// address, as the script's "ping trust ip" did (a TCP probe: an answer or a
// refusal counts, silence does not).
func (f *command) pingTrusted(ctx context.Context) (bool, string) {
	f.h.line("----ping trust ip")
	addrs := f.o.TrustedIPs
	if len(addrs) == 0 {
		f.h.line("ping trust ip: none configured, failed")
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
			f.h.line("ping trust ip %s success", addrs[i])
			if !ok {
				ok, evidence = true, r.Evidence
			}
			continue
		}
		f.h.line("ping trust ip %s failed: %s", addrs[i], r.Evidence)
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
		res, err := f.exec(ctx, t.Host, f.o.Commands.AddrShow(v.Interface))
		c.HasVIP = err == nil && res.ExitCode == 0 && HasAddress(string(res.Output), v.Prefix.Addr())
	}
	return c
}

// fence stops the old primary's database and removes the VIP from it;
// AfterFence decides whether the failover may go on.
func (f *command) fence(ctx context.Context, old Target) (string, error) {
	h, c, v := f.h, f.o.Commands, f.o.VIP
	if v != nil {
		h.timed("del old primary VIP on %s", old.Host)
	}
	out := FenceOutcome{VIPGone: v == nil}
	stop := c.CtlStop(old.DataDir, f.o.StopMode, f.o.stopWait())
	res, err := f.exec(ctx, old.Host, stop)
	if IsUnreachable(err) {
		h.line("ssh connect host:%s failed: %v", old.Host, err)
		out.Detail = err.Error()
	} else {
		out.Reached = true
		h.line("ssh connect host:%s success, will stop old primary db and del the vip", old.Host)
		h.line("stop the old primary db")
		h.exec(stop, res, err)
		if err != nil {
			out.Detail = err.Error()
		} else {
			status := c.CtlStatus(old.DataDir)
			sres, serr := f.exec(ctx, old.Host, status)
			h.exec(status, sres, serr)
			switch {
			case serr != nil:
				out.Detail = serr.Error()
			case sres.ExitCode == ctlNotRunning:
				out.Stopped = true
			case sres.ExitCode == ctlRunning:
				out.Detail = "the control binary reports the server running after the stop"
			default:
				out.Detail = fmt.Sprintf("status of %s exited %d: not proved stopped", old.DataDir, sres.ExitCode)
			}
			if v != nil {
				h.line("DEL VIP NOW AT %s ON %s", h.stamp(), v.Interface)
				gone, detail := f.vipDown(ctx, old.Host)
				h.line("Oprate del ip cmd end.")
				out.VIPGone = gone
				if !gone && out.Detail == "" {
					out.Detail = detail
				}
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

// vipDown removes the VIP from host and checks it is gone.
func (f *command) vipDown(ctx context.Context, host string) (bool, string) {
	c, v := f.o.Commands, f.o.VIP
	present := func() (bool, error) {
		show := c.AddrShow(v.Interface)
		res, err := f.exec(ctx, host, show)
		f.h.exec(show, res, err)
		if err != nil {
			return false, err
		}
		if res.ExitCode != 0 {
			return false, fmt.Errorf("%s exited %d", show[0], res.ExitCode)
		}
		return HasAddress(string(res.Output), v.Prefix.Addr()), nil
	}
	there, err := present()
	if err != nil {
		return false, "cannot list the addresses of " + v.Interface + ": " + err.Error()
	}
	if !there {
		return true, ""
	}
	del := c.AddrDel(v.Prefix, v.Interface)
	res, err := f.exec(ctx, host, del)
	f.h.exec(del, res, err)
	if there, err = present(); err != nil || there {
		return false, fmt.Sprintf("%s is still on %s of %s", v.Prefix, v.Interface, host)
	}
	return true, ""
}

// promote promotes the new primary and waits until it has left recovery.
func (f *command) promote(ctx context.Context, plan Plan) (string, error) {
	h, nw := f.h, plan.New
	srv := f.o.Connect(nw)
	octx, cancel := context.WithTimeout(ctx, f.o.DBTimeout)
	before, _ := srv.Observe(octx)
	cancel()
	h.timed("promote begin...let %s become master", nw.Host)
	switch plan.PromoteVia {
	case "":
		h.line("after execute promote, %s is out of recovery already: nothing to promote", nw.Host)
		return fmt.Sprintf("out of recovery already (timeline %d): nothing to promote", before.Timeline), nil
	case ViaSQL:
		h.line("execute promote")
		h.line("execute: %s on %s:%d", f.o.Flavor.SQL(fmt.Sprintf(sqlPromote, int(seconds64(f.o.PromoteTimeout)))), nw.Host, nw.Port)
		pctx, cancel := context.WithTimeout(ctx, f.o.PromoteTimeout+5*time.Second)
		err := srv.Promote(pctx, f.o.PromoteTimeout)
		cancel()
		h.line("server promoting")
		if err != nil {
			return "", fmt.Errorf("promote %s: %w", nw, err)
		}
	case ViaSSH:
		h.line("execute promote")
		argv := f.o.Commands.CtlPromote(nw.DataDir, f.o.PromoteTimeout)
		pctx, cancel := context.WithTimeout(ctx, f.o.PromoteTimeout+5*time.Second)
		res, err := f.o.Runner.Run(pctx, nw.Host, argv)
		cancel()
		h.exec(argv, res, err)
		h.line("server promoting")
		if err == nil && res.ExitCode != 0 {
			err = fmt.Errorf("%s exited %d: %s", argv[len(f.o.Commands.DBPrefix)], res.ExitCode, cut(string(res.Output), 300))
		}
		if err != nil {
			return "", fmt.Errorf("promote %s: %w", nw, err)
		}
	}
	octx, cancel = context.WithTimeout(ctx, f.o.DBTimeout)
	after, err := srv.Observe(octx)
	cancel()
	if err != nil {
		ev := fmt.Sprintf("promoted; not observed since (%v) (replay backlog before: %d bytes)", err, before.ReplayBacklogBytes)
		h.line("after execute promote, %s", ev)
		return ev, nil
	}
	if after.InRecovery {
		return "", fmt.Errorf("promote %s: still in recovery after the promotion returned", nw)
	}
	ev := failover.PromotedEvidence(before, after)
	h.line("after execute promote, %s", ev)
	return ev, nil
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
			f.h.timed("after execute promote, readiness gate: write not committed on %s (%s), replay backlog %d bytes, attempt %d", t.Host, refusal(p.Last.Class), p.Last.ReplayBacklogBytes, p.Attempts)
			f.o.Logger.Warn("readiness gate: no write committed yet", "node", t.Name, "class", p.Last.Class, "replay_backlog_bytes", p.Last.ReplayBacklogBytes, "attempts", p.Attempts)
			return true
		},
	}
	p, err := g.Wait(ctx)
	if err != nil {
		return "", fmt.Errorf("no write committed on %s within %s after %d attempts (%d refused as read-only), last: %s: the VIP was not moved",
			t, f.o.ReadinessTimeout, p.Attempts, p.Refused, refusal(p.Last.Class))
	}
	ev := fmt.Sprintf("%s (attempt %d, %d refused, %s after the gate opened)", p.Last.String(), p.Attempts, p.Refused, p.Elapsed.Round(time.Millisecond))
	f.h.timed("after execute promote, readiness gate passed: %s", ev)
	return ev, nil
}

func (f *command) toAsync(ctx context.Context, srv Server, why string) (string, error) {
	f.h.timed("sync to async")
	f.h.line("execute: %s", f.o.Flavor.SQL(sqlAsync))
	sctx, cancel := context.WithTimeout(ctx, f.o.DBTimeout*2)
	defer cancel()
	if err := srv.SetAsync(sctx); err != nil {
		return "", err
	}
	return why + ": synchronous_standby_names cleared", nil
}

// synchronous is step 6: commits must not wait for a standby that is gone.
func (f *command) synchronous(ctx context.Context, t Target) error {
	srv := f.o.Connect(t)
	octx, cancel := context.WithTimeout(ctx, f.o.DBTimeout)
	obs, err := srv.Observe(octx)
	cancel()
	if err != nil {
		return f.rec.Run(string(ActSync), func() (string, error) { return "", err })
	}
	toAsync, why := SyncAction(obs)
	if !toAsync {
		return f.rec.Run(string(ActSync), func() (string, error) {
			f.h.line("after execute promote, %s", why)
			return why, nil
		})
	}
	return f.rec.Run(StepSyncToAsync, func() (string, error) { return f.toAsync(ctx, srv, why) })
}

// checkpoint is step 7: a crash soon after must not replay the backlog again.
func (f *command) checkpoint(ctx context.Context, t Target) (string, error) {
	f.h.timed("make checkpoint")
	f.h.line("execute checkpoint")
	ev, err := failover.Checkpoint(ctx, f.o.Connect(t), f.o.PromoteTimeout)
	if err == nil {
		f.h.line("CHECKPOINT")
	}
	return ev, err
}

// vipUp is step 8, and only now: the VIP goes to the new primary after a
// write has committed there. It refuses an address that another host still
// answers for, and checks that a write through the VIP commits.
func (f *command) vipUp(ctx context.Context, t Target) (string, error) {
	h, c, v := f.h, f.o.Commands, f.o.VIP
	addr := v.Prefix.Addr()
	h.timed("add VIP on %s", t.Host)
	show := c.AddrShow(v.Interface)
	res, err := f.exec(ctx, t.Host, show)
	h.exec(show, res, err)
	if err != nil {
		return "", fmt.Errorf("list the addresses of %s on %s: %w", v.Interface, t.Host, err)
	}
	if res.ExitCode != 0 {
		return "", fmt.Errorf("list the addresses of %s on %s: exit %d: %s", v.Interface, t.Host, res.ExitCode, cut(string(res.Output), 300))
	}
	var ev []string
	if HasAddress(string(res.Output), addr) {
		h.line("add vip on %s: %s is on %s already", t.Host, addr, v.Interface)
		ev = append(ev, fmt.Sprintf("%s was on %s already", v.Prefix, v.Interface))
	} else {
		dad := c.DuplicateCheck(addr, v.Interface)
		res, err := f.exec(ctx, t.Host, dad)
		switch {
		case err != nil:
			return "", fmt.Errorf("duplicate address check for %s on %s: %w", addr, t.Host, err)
		case res.ExitCode == 1:
			h.line("add vip on %s: another host answers ARP for %s: not added (fence that host first)", t.Host, addr)
			return "", fmt.Errorf("another host answers ARP for %s: the VIP was not added to %s (fence that host first)", addr, t.Host)
		case res.ExitCode != 0:
			return "", fmt.Errorf("duplicate address check for %s on %s exited %d: %s", addr, t.Host, res.ExitCode, cut(string(res.Output), 300))
		}
		h.line("add vip on %s: %s is free, no other host answers for it (duplicate address detection)", t.Host, addr)
		h.line("ADD VIP NOW AT %s ON %s", h.stamp(), v.Interface)
		add := c.AddrAdd(v.Prefix, v.Interface, v.Label)
		res, err = f.exec(ctx, t.Host, add)
		h.exec(add, res, err)
		if err == nil && res.ExitCode != 0 {
			err = fmt.Errorf("exit %d: %s", res.ExitCode, cut(string(res.Output), 300))
		}
		if err != nil {
			return "", fmt.Errorf("add %s to %s on %s: %w", v.Prefix, v.Interface, t.Host, err)
		}
		h.line("Oprate add ip cmd end.")
		ev = append(ev, fmt.Sprintf("vip %s added on %s of %s", v.Prefix, v.Interface, t.Host))
	}
	if v.ARPCount > 0 {
		ann := c.Announce(addr, v.Interface, v.ARPCount)
		res, err := f.exec(ctx, t.Host, ann)
		h.exec(ann, res, err)
		if err != nil || res.ExitCode != 0 {
			// Not fatal: neighbours learn the address on their next ARP.
			f.o.Logger.Warn("gratuitous ARP not sent", "host", t.Host, "exit", res.ExitCode, "err", err)
			ev = append(ev, "gratuitous ARP not sent")
		} else {
			ev = append(ev, fmt.Sprintf("%d gratuitous ARPs", v.ARPCount))
		}
	}
	probe, err := f.throughVIP(ctx, t)
	if err != nil {
		return "", err
	}
	h.line("add vip on %s: %s answers: %s", t.Host, addr, probe)
	ev = append(ev, "through the VIP: "+probe)
	return strings.Join(ev, "; "), nil
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
