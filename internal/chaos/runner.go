package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/internal/chaos/history"
	"github.com/vigil-ha/vigil/internal/clock"
	"github.com/vigil-ha/vigil/internal/lab"
	"github.com/vigil-ha/vigil/internal/labcluster"
)

// Defaults of Options.
const (
	DefaultRecoveryBound = 60 * time.Second
	// defaultLeaseTTL is the configuration's default lease_ttl, which the
	// campaign's agents run with.
	defaultLeaseTTL = 3 * time.Second
	// maxLag is maximum_lag_on_failover in the agents' configuration.
	maxLag = 64 << 20
	// vipHost is the VIP's host number in the lab subnet.
	vipHost = 100
	// calm is how long the cluster runs undisturbed after recovering from
	// one fault before the next.
	calm = 2 * time.Second
)

// Options configure a campaign.
type Options struct {
	// Binary is the vigil executable the agents and `vigil ctl` run.
	Binary   string
	Seed     int64
	Duration time.Duration
	// Faults are the requested types; the whole catalogue when empty.
	Faults   []string
	SyncMode string // off | on | strict; off when empty
	DCS      string // embedded | external; embedded when empty
	// Out is the campaign directory: the history, the reports and copies
	// of the agents' logs. It must not hold a history yet.
	Out string
	// Command is the command line that reproduces the campaign.
	Command string
	// RecoveryBound is how long a settle period waits for recovery.
	RecoveryBound time.Duration
	// LabParent is where the lab's directory is made; /var/tmp when empty
	// (the database's OS user must reach it, and its socket paths must be
	// short).
	LabParent string
	Logger    *slog.Logger
	// Progress receives one line per stage and fault; nil for none.
	Progress io.Writer
}

// InputError is a request refused before anything was created.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// Validate checks o and draws the schedule. It creates nothing.
func Validate(o Options) (Plan, error) {
	if os.Geteuid() != 0 {
		return Plan{}, &InputError{errors.New(`vigil chaos needs root: it builds hosts as network namespaces joined by a bridge,
moves a virtual IP between them, cuts links, loads nftables rules and signals
the database and agent processes. Run it with sudo`)}
	}
	return validate(o)
}

// validate is Validate without the root check, for tests.
func validate(o Options) (Plan, error) {
	bad := func(format string, args ...any) (Plan, error) {
		return Plan{}, &InputError{fmt.Errorf(format, args...)}
	}
	switch o.SyncMode {
	case "", "off", "on", "strict":
	default:
		return bad("--sync-mode %q: use off, on or strict", o.SyncMode)
	}
	switch o.DCS {
	case "", "embedded", "external":
	default:
		return bad("--dcs %q: use embedded or external", o.DCS)
	}
	if o.Out == "" {
		return bad("--out is required: the directory that receives the campaign's history and reports")
	}
	if _, err := os.Stat(filepath.Join(o.Out, history.RunFile)); err == nil {
		return bad("--out %s already holds a campaign (%s): choose a new directory", o.Out, history.RunFile)
	}
	if o.Duration <= 0 {
		return bad("--duration %s: must be positive", o.Duration)
	}
	types := o.Faults
	if len(types) == 0 {
		types = Catalogue()
	}
	for _, t := range types {
		if _, ok := lookup(t); !ok {
			return bad("unknown fault %q; the catalogue has %v", t, Catalogue())
		}
	}
	p, err := NewPlan(o.Seed, o.Duration, types, defaultLeaseTTL)
	if err != nil {
		return p, &InputError{err}
	}
	return p, nil
}

// Result is what Run leaves for the checker.
type Result struct {
	// Dir is the campaign directory.
	Dir string
	// Plan is the schedule; Ran how many of its steps were run.
	Plan Plan
	Ran  int
	// InjectErrors lists the faults that could not be (wholly) injected:
	// never skipped silently, they fail the run.
	InjectErrors []string
	// HealErrors lists heals that failed.
	HealErrors []string
}

// campaign is one run in progress.
type campaign struct {
	o      Options
	plan   Plan
	log    *slog.Logger
	prog   io.Writer
	start  time.Time
	l      *lab.Lab
	c      *labcluster.Cluster
	client lab.Client
	nodes  []lab.Node
	pg     Login
	hc     *http.Client
	rec    *history.Recorder
	// labDir is removed by teardown; labRoot, labID and subnet stay for
	// the leak search.
	labDir, labRoot, labID, subnet string

	// etcd is the separate etcd of --dcs external (nil with embedded
	// members); etcdDir holds its certificates, data and logs.
	etcd    *externalEtcd
	etcdDir string
	// walFS are the nodes' WAL filesystems (disk-full), unmounted by
	// teardown.
	walFS []walFS

	mu     sync.Mutex
	active map[int]injected // faults in place, by step
}

// Run validates o, builds the cluster, runs the schedule and records the
// history in o.Out, then removes everything it created. Interrupted (ctx
// ends), it heals every fault and removes everything too, and returns an
// error that wraps ctx's.
func Run(ctx context.Context, o Options) (Result, error) {
	plan, err := Validate(o)
	if err != nil {
		return Result{}, err
	}
	if o.SyncMode == "" {
		o.SyncMode = "off"
	}
	if o.DCS == "" {
		o.DCS = "embedded"
	}
	if o.RecoveryBound <= 0 {
		o.RecoveryBound = DefaultRecoveryBound
	}
	if o.LabParent == "" {
		o.LabParent = "/var/tmp"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	r := &campaign{o: o, plan: plan, log: o.Logger, prog: o.Progress, start: time.Now(), active: map[int]injected{},
		hc: &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
	res := Result{Dir: o.Out, Plan: plan}
	err = r.run(ctx, &res)
	return res, err
}

func (r *campaign) say(format string, args ...any) {
	fmt.Fprintf(r.prog, "[%6.1fs] %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

func (r *campaign) run(ctx context.Context, res *Result) (err error) {
	parent, err := os.MkdirTemp(r.o.LabParent, "vigil-chaos-")
	if err != nil {
		return fmt.Errorf("create the lab directory: %w", err)
	}
	r.labDir, r.labRoot = parent, parent
	// Everything below is undone by teardown, also when ctx ends.
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Minute)
		defer cancel()
		if terr := r.teardown(cctx); terr != nil {
			err = errors.Join(err, terr)
		}
		if ctx.Err() != nil && err != nil {
			err = fmt.Errorf("interrupted; every fault healed and everything the campaign created removed: %w", err)
		}
	}()
	if err := os.Chmod(parent, 0o755); err != nil {
		return err
	}
	r.say("building 3 PostgreSQL hosts and a client host in network namespaces (%s)", parent)
	l, err := lab.Up(ctx, lab.Options{Dir: filepath.Join(parent, "lab"), Nodes: 3, Netns: true, Logger: r.log})
	if err != nil {
		return fmt.Errorf("lab up: %w", err)
	}
	r.l, r.nodes, r.labID, r.subnet = l, l.Nodes(), l.ID(), l.Subnet()
	if slices.Contains(r.plan.Types, DiskFull) {
		r.say("moving each server's WAL to a %d MiB filesystem of its own (disk-full)", walFSSize>>20)
		if err := r.moveWALToSmallFilesystems(ctx, parent); err != nil {
			return err
		}
	}
	if r.client, err = l.AddClient(ctx, "client"); err != nil {
		return err
	}
	copts := labcluster.Options{
		Binary: r.o.Binary, Cluster: "chaos", SyncMode: r.o.SyncMode, VIP: vipHost, API: true, MaxLag: maxLag,
		Edit: func(_ string, cfg map[string]any) {
			// A former primary comes back by itself: the campaign runs
			// unattended, and rejoining is part of what it tests.
			cfg["rejoin"] = map[string]any{"automatic": true}
			if r.etcd != nil {
				cfg["dcs"] = r.etcd.dcsSection()
			}
		},
	}
	if r.o.DCS == "external" {
		r.etcdDir = filepath.Join(parent, "etcd")
		if err := os.MkdirAll(r.etcdDir, 0o755); err != nil {
			return err
		}
		r.say("starting a separate %d-member etcd (mutual TLS) on hosts of its own", externalMembers)
		r.etcd, err = r.buildExternalEtcd(ctx, r.etcdDir)
		if err != nil {
			return err
		}
		copts.Endpoints = r.etcd.endpoints()
	}
	c, err := labcluster.New(l, copts)
	if err != nil {
		return fmt.Errorf("configure agents: %w", err)
	}
	r.c = c
	user, password, err := l.Superuser()
	if err != nil {
		return err
	}
	r.pg = Login{Port: r.nodes[0].Port, User: user, Password: password, Database: l.Flavor().DefaultDatabase}
	etcdKind := "embedded etcd"
	if r.etcd != nil {
		etcdKind = "etcd at " + strings.Join(r.etcd.hosts(), ", ")
	}
	r.say("starting 3 agents (%s, API, VIP %s), synchronous mode %s", etcdKind, c.VIP(), r.o.SyncMode)
	for _, n := range r.nodes {
		if err := c.StartAgent(n.Name); err != nil {
			return err
		}
	}
	at, primary, why := r.waitRecovered(ctx, 2*time.Minute)
	if at.IsZero() {
		return fmt.Errorf("the cluster did not come up: %s\n%s", why, c.Logs(30))
	}
	pn, _ := l.Node(primary)
	if err := CreateWritesTable(ctx, pn.Host, r.pg); err != nil {
		return err
	}
	r.say("%s is the writable primary, every standby streams", primary)

	nodes := make([]string, len(r.nodes))
	for i, n := range r.nodes {
		nodes[i] = n.Name
	}
	run := history.Run{Seed: r.plan.Seed, Duration: history.Duration(r.plan.Duration), Faults: r.plan.Types, SyncMode: r.o.SyncMode,
		DCS: r.o.DCS, Nodes: nodes, LeaseTTL: history.Duration(r.plan.LeaseTTL), MaxLag: maxLag, Started: time.Now(), Command: r.o.Command}
	if r.rec, err = history.NewRecorder(r.o.Out, run); err != nil {
		return err
	}
	defer func() {
		run.Ended = time.Now()
		err = errors.Join(err, r.rec.WriteRun(run), r.rec.Close())
	}()

	// The client writes from the client host for the whole campaign.
	writes := make(chan history.Write, 1024)
	var addrs []nodeAddr
	for _, n := range r.nodes {
		addrs = append(addrs, nodeAddr{name: n.Name, host: n.Host, api: c.APIURL(n.Name)})
	}
	cl := newClient(r.client.Netns, c.VIP(), addrs, r.pg, writes)
	cctx, stopClient := context.WithCancel(ctx)
	clientDone := make(chan struct{})
	go func() { defer close(clientDone); cl.run(cctx); close(writes) }()
	recDone := make(chan error, 1)
	go func() {
		var werr error
		for w := range writes {
			if err := r.rec.Write(w); err != nil && werr == nil {
				werr = fmt.Errorf("record a write: %w", err)
			}
		}
		recDone <- werr
	}()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		stopClient()
		<-clientDone
		return <-recDone
	}
	defer func() { err = errors.Join(err, stop()) }()
	r.say("client %s writes through the VIP and to the /primary node directly", r.client.Host)
	if err := clock.Sleep(ctx, calm); err != nil {
		return err
	}

	for i, s := range append(slices.Clip(r.plan.Steps), r.plan.Spare...) {
		if i >= len(r.plan.Types) && time.Since(run.Started)+cost(s.Type, r.plan.LeaseTTL) > r.plan.Duration {
			break
		}
		if err := r.step(ctx, s, res); err != nil {
			return err
		}
		res.Ran++
	}

	r.say("campaign over: healing everything and settling")
	if herr := r.healAll(ctx); herr != nil {
		res.HealErrors = append(res.HealErrors, herr.Error())
	}
	at, _, why = r.waitRecovered(ctx, r.o.RecoveryBound)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if at.IsZero() {
		r.say("the cluster did not settle within %s: %s", r.o.RecoveryBound, why)
	}
	if err := clock.Sleep(ctx, calm); err != nil {
		return err
	}
	if err := stop(); err != nil {
		return err
	}
	final := r.finalState(ctx)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := r.teardown(ctx); err != nil {
		return err
	}
	final.Leaks = r.leaks()
	if err := r.rec.Final(final); err != nil {
		return err
	}
	if len(res.InjectErrors) > 0 {
		return fmt.Errorf("%d faults could not be injected: %v", len(res.InjectErrors), res.InjectErrors)
	}
	return nil
}

// step runs one fault: inject, hold, heal, settle, record.
func (r *campaign) step(ctx context.Context, s Step, res *Result) error {
	_, before, _ := r.cluster(ctx)
	target := r.resolve(s, before)
	f := history.Fault{Step: s.N, Type: s.Type, Target: target, PrimaryBefore: before, RecoveryBound: history.Duration(r.o.RecoveryBound)}
	f.Injected = time.Now()
	in, ierr := r.inject(ctx, s, target, before)
	r.mu.Lock()
	r.active[s.N] = in
	r.mu.Unlock()
	f.Detail = in.detail
	if ierr != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		f.Detail = fmt.Sprintf("NOT INJECTED: %v", ierr)
		res.InjectErrors = append(res.InjectErrors, fmt.Sprintf("step %d %s on %s: %v", s.N, s.Type, target, ierr))
		r.log.Error("fault could not be injected", "step", s.N, "type", s.Type, "target", target, "err", ierr)
		r.say("step %d: %s on %s could NOT be injected: %v", s.N, s.Type, target, ierr)
	} else {
		r.say("step %d: %s on %s (%s)", s.N, s.Type, target, in.detail)
		if err := clock.Sleep(ctx, s.Hold); err != nil {
			return err
		}
	}
	if err := r.heal(ctx, s.N); err != nil {
		res.HealErrors = append(res.HealErrors, fmt.Sprintf("step %d %s: %v", s.N, s.Type, err))
		r.log.Error("heal failed", "step", s.N, "type", s.Type, "err", err)
	}
	f.Healed = time.Now()
	var why string
	f.Recovered, f.PrimaryAfter, why = r.waitRecovered(ctx, r.o.RecoveryBound)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if f.Recovered.IsZero() {
		r.say("step %d: NOT recovered within %s: %s", s.N, r.o.RecoveryBound, why)
	} else {
		r.say("step %d: recovered %.1fs after the heal, primary %s", s.N, f.Recovered.Sub(f.Healed).Seconds(), f.PrimaryAfter)
	}
	if err := r.rec.Fault(f); err != nil {
		return fmt.Errorf("record fault %d: %w", s.N, err)
	}
	if !f.Recovered.IsZero() { // every standby streams: no rejoin under way
		repaired, err := r.restoreWALFilesystems(ctx, f.PrimaryAfter)
		if err != nil {
			res.HealErrors = append(res.HealErrors, fmt.Sprintf("after step %d: %v", s.N, err))
			r.log.Error("WAL filesystem not restored", "step", s.N, "err", err)
		}
		if len(repaired) > 0 {
			at, _, why := r.waitRecovered(ctx, r.o.RecoveryBound)
			r.say("after step %d: a base-backup rejoin gave %v a WAL directory on the ordinary disk: moved back to its small filesystem (recovered: %t %s)",
				s.N, repaired, !at.IsZero(), why)
		}
	}
	return clock.Sleep(ctx, calm)
}

// heal undoes step n's fault if it is in place.
func (r *campaign) heal(ctx context.Context, n int) error {
	r.mu.Lock()
	in, ok := r.active[n]
	delete(r.active, n)
	r.mu.Unlock()
	if !ok || in.heal == nil {
		return nil
	}
	return in.heal(ctx)
}

// healAll undoes every fault in place.
func (r *campaign) healAll(ctx context.Context) error {
	r.mu.Lock()
	var steps []int
	for n := range r.active {
		steps = append(steps, n)
	}
	r.mu.Unlock()
	var errs []error
	for _, n := range steps {
		errs = append(errs, r.heal(ctx, n))
	}
	return errors.Join(errs...)
}
