// Package demo runs the seed incident for real and shows what Vigil does
// about it: a 3-node cluster in network namespaces with a VIP, an
// application writing through the VIP, standbys behind on replay (the
// seed's "heavy load"), and a crash of the primary. It measures what the
// application saw. `vigil demo` runs it once; `vigil bench failover` runs
// it many times, with the seed's legacy order as a baseline.
package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/failover"
	"github.com/vigil-ha/vigil/internal/lab"
	"github.com/vigil-ha/vigil/internal/labcluster"
	"github.com/vigil-ha/vigil/internal/timeline"
	"github.com/vigil-ha/vigil/internal/workload"
)

// Scenarios.
const (
	NodeCrash = "node-crash" // SIGKILL of the primary's postmaster and agent together
	DBCrash   = "db-crash"   // SIGKILL of the postmaster only; the agent lives
	// Switchover is a planned handover with `vigil ctl switchover`: the
	// "crash" time is when the operator asked.
	Switchover = "switchover"
)

// clientTimeout bounds each client write, connection included. It is also
// the resolution of the measured outage: a client retries at most this
// long after the service address starts answering.
const clientTimeout = 300 * time.Millisecond

// vipHost is the VIP's host number in the lab subnet.
const vipHost = 100

// Options configure one run.
type Options struct {
	Dir      string
	Binary   string // the vigil executable for agents and the client
	Scenario string
	SyncMode string
	// LagMB of WAL is written while the standbys' replay is paused.
	LagMB int
	Rate  int
	// BackgroundTPS runs pgbench through the VIP at that many
	// transactions per second alongside the client (0: none).
	BackgroundTPS int
	Legacy        bool
	Keep          bool
	// LeaseTTL and LoopInterval override the configuration defaults.
	LeaseTTL, LoopInterval time.Duration
	// Progress receives one line per stage; nil for none.
	Progress io.Writer
}

// Result is what one run showed.
type Result struct {
	Scenario  string `json:"scenario"`
	SyncMode  string `json:"sync_mode"`
	Legacy    bool   `json:"legacy_order"`
	OldLeader string `json:"old_primary"`
	// NewPrimary is the node that took over; VIPHolder the one holding the VIP.
	NewPrimary string    `json:"new_primary"`
	VIP        string    `json:"vip"`
	VIPHolder  string    `json:"vip_holder"`
	CrashAt    time.Time `json:"crash_at"`
	// ReplayBacklogBytes is the worst standby backlog at the crash.
	ReplayBacklogBytes uint64 `json:"replay_backlog_bytes"`
	// WriteOutageS: crash to the first write committed through the VIP.
	WriteOutageS float64 `json:"write_outage_s"`
	// DetectS: crash to the start of the failover procedure.
	DetectS float64 `json:"detect_s"`
	// PromoteS and GateS: duration of those steps.
	PromoteS         float64 `json:"promote_s"`
	GateS            float64 `json:"readiness_gate_s"`
	Writes           int     `json:"writes"`
	ReadOnlyErrors   int     `json:"read_only_errors"`
	ConnectionErrors int     `json:"connection_errors"`
	OtherErrors      int     `json:"other_errors"`
	AckedWrites      int     `json:"acked_writes"`
	AckedWritesLost  int     `json:"acked_writes_lost"`
	// Steps are the failover's steps as the agents recorded them.
	Steps []timeline.Step `json:"steps"`
	// OldPrimaryState is what the old primary is at the end ("streaming
	// standby of node2", "stopped", ...).
	OldPrimaryState string `json:"old_primary_state,omitempty"`
	// OperatorOutput is what `vigil ctl switchover` printed (switchover only).
	OperatorOutput string `json:"operator_output,omitempty"`
	// Writes over time, for charts: one entry per write, seconds since
	// the crash and its outcome.
	Series []Point `json:"series,omitempty"`
	LabDir string  `json:"lab_dir"`
	// ClientNetns is the client host's network namespace, and Connect the
	// command (argv) that opens psql through the VIP from it (for --keep).
	ClientNetns string   `json:"client_netns,omitempty"`
	Connect     []string `json:"connect,omitempty"`
}

// Point is one write on the time axis.
type Point struct {
	T       float64          `json:"t"`
	Outcome workload.Outcome `json:"outcome"`
}

// Run performs one demo run. Without root it explains what it needs.
func Run(ctx context.Context, o Options) (res Result, err error) {
	if os.Geteuid() != 0 {
		return res, errors.New(`vigil demo needs root: it builds three hosts as network namespaces joined by a bridge
(ip netns, veth), moves a virtual IP between them (CAP_NET_ADMIN, CAP_NET_RAW),
and runs PostgreSQL as the unprivileged postgres account. Run it with sudo.
It creates everything under --dir and in namespaces named vigil-<id>-*, and
removes all of it at the end (unless --keep)`)
	}
	if o.Scenario == "" {
		o.Scenario = NodeCrash
	}
	if o.SyncMode == "" {
		o.SyncMode = "on"
	}
	if o.Rate <= 0 {
		o.Rate = 50
	}
	p := progress{w: o.Progress, start: time.Now()}
	res = Result{Scenario: o.Scenario, SyncMode: o.SyncMode, Legacy: o.Legacy, LabDir: o.Dir}

	p.say("three empty hosts in network namespaces (%s): the agents build the PostgreSQL cluster", o.Dir)
	l, err := lab.Up(ctx, lab.Options{Dir: o.Dir, Nodes: 3, Netns: true, Empty: true, Force: true})
	if err != nil {
		return res, err
	}
	res.LabDir = l.Dir()
	c, err := labcluster.New(l, labcluster.Options{
		Binary: o.Binary, Cluster: "demo", SyncMode: o.SyncMode, VIP: vipHost, Legacy: o.Legacy,
		LeaseTTL: o.LeaseTTL, LoopInterval: o.LoopInterval,
	})
	if err != nil {
		l.Down(context.WithoutCancel(ctx))
		return res, err
	}
	defer func() {
		if o.Keep && err == nil {
			return
		}
		c.StopAll()
		if derr := l.Down(context.WithoutCancel(ctx)); derr != nil && err == nil {
			err = derr
		}
	}()
	res.VIP = c.VIP()
	r := runner{o: o, l: l, c: c, p: &p}
	return r.run(ctx, res)
}

type runner struct {
	o Options
	l *lab.Lab
	c *labcluster.Cluster
	p *progress
}

func (r *runner) server(name string) *database.Server {
	n, _ := r.l.Node(name)
	user, password, _ := r.l.Superuser()
	return &database.Server{Name: name, Flavor: r.l.Flavor(), Ctl: r.l.Ctl(n), StartOptions: r.l.StartOptions(n),
		Conn: database.ConnConfig{Host: n.Host, Port: n.Port, User: user, Password: password, Database: r.l.Flavor().DefaultDatabase, ConnectTimeout: 2 * time.Second}}
}

func (r *runner) writable(ctx context.Context) func(string) bool {
	return func(n string) bool {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		return r.server(n).ProbeWrite(pctx).Writable()
	}
}

func (r *runner) run(ctx context.Context, res Result) (Result, error) {
	p, l, c := r.p, r.l, r.c
	client, err := l.AddClient(ctx, "client")
	if err != nil {
		return res, err
	}
	res.ClientNetns = client.Netns
	p.say("starting three agents with embedded etcd; VIP %s", res.VIP)
	for _, n := range l.Nodes() {
		if err := c.StartAgent(n.Name); err != nil {
			return res, err
		}
	}
	store, err := c.Store()
	if err != nil {
		return res, err
	}
	defer store.Close()
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	primary, err := labcluster.WaitWritablePrimary(wctx, store, r.writable(ctx))
	cancel()
	if err != nil {
		return res, fmt.Errorf("%w\n%s", err, c.Logs(30))
	}
	res.OldLeader = primary
	if err := r.waitVIP(ctx, primary); err != nil {
		return res, err
	}
	p.say("%s created the cluster, is the writable primary and holds the VIP", primary)
	if err := r.waitStandbys(ctx, primary); err != nil {
		return res, fmt.Errorf("%w\n%s", err, c.Logs(30))
	}
	p.say("the two other hosts cloned %s and stream from it", primary)
	if r.o.SyncMode != "off" {
		if err := r.waitSync(ctx, primary); err != nil {
			return res, err
		}
	}

	user, _, err := l.Superuser()
	if err != nil {
		return res, err
	}
	wopts := workload.Options{Host: res.VIP, Port: r.nodePort(primary), User: user, Database: l.Flavor().DefaultDatabase, Timeout: time.Second}
	_, wopts.Password, _ = l.Superuser()
	res.Connect = []string{"ip", "netns", "exec", client.Netns, "env", "PGPASSFILE=" + l.SuperuserPassFile(),
		"psql", "-h", res.VIP, "-p", strconv.Itoa(wopts.Port), "-U", user, wopts.Database}
	if err := workload.Prepare(ctx, wopts); err != nil {
		return res, fmt.Errorf("prepare the workload table through the VIP: %w", err)
	}
	if r.o.BackgroundTPS > 0 {
		p.say("background load: pgbench through the VIP at %d transactions/s", r.o.BackgroundTPS)
		stopBackground, err := StartPGBench(ctx, l, client, r.o.BackgroundTPS, wopts)
		if err != nil {
			return res, err
		}
		defer stopBackground()
	}
	p.say("client %s writes through the VIP, %d writes/s", client.Host, r.o.Rate)
	wl, err := StartClient(l, client, r.o.Binary, r.o.Rate, wopts)
	if err != nil {
		return res, err
	}
	defer wl.Stop()
	time.Sleep(2 * time.Second)

	if r.o.LagMB > 0 {
		p.say("injecting replay lag: replay paused on the standbys, %d MB written on %s", r.o.LagMB, primary)
		if err := r.injectLag(ctx, primary); err != nil {
			return res, err
		}
	}
	res.ReplayBacklogBytes = r.maxBacklog(ctx, primary)

	p.say("crashing %s (%s), replay backlog %d MB", primary, r.o.Scenario, res.ReplayBacklogBytes>>20)
	res.CrashAt = time.Now()
	if err := r.crash(ctx, primary, &res); err != nil {
		return res, err
	}
	wctx, cancel = context.WithTimeout(ctx, 3*time.Minute)
	newPrimary, err := labcluster.WaitWritablePrimary(wctx, store, r.writable(ctx), primary)
	cancel()
	if err != nil {
		return res, fmt.Errorf("%w\n%s", err, c.Logs(40))
	}
	res.NewPrimary = newPrimary
	p.say("%s is the new writable primary", newPrimary)
	if err := r.waitVIP(ctx, newPrimary); err != nil && !r.o.Legacy {
		return res, err
	}
	time.Sleep(3 * time.Second) // writes after the failover, through the new primary

	wres, err := wl.Stop()
	if err != nil {
		return res, err
	}
	if err := Measure(ctx, l, &res, wres, wopts, newPrimary); err != nil {
		return res, err
	}
	if r.o.Scenario == Switchover {
		// No crash instant: writes go on until the old primary takes its
		// routes down, so the outage is the gap they leave.
		res.WriteOutageS = wres.OutageAfter(res.CrashAt).Seconds()
	}
	res.VIPHolder = r.vipHolder()
	if r.o.Scenario == Switchover {
		// The old primary becomes a standby of the new one within a few
		// loops of the handover.
		deadline := time.Now().Add(30 * time.Second)
		for res.OldPrimaryState = r.nodeState(ctx, primary); !strings.HasPrefix(res.OldPrimaryState, "streaming standby") && time.Now().Before(deadline); {
			time.Sleep(200 * time.Millisecond)
			res.OldPrimaryState = r.nodeState(ctx, primary)
		}
	}
	r.fillSteps(ctx, store, &res)
	p.say("done")
	return res, nil
}

func (r *runner) nodePort(name string) int {
	n, _ := r.l.Node(name)
	return n.Port
}

// waitVIP waits until node holds the VIP and nobody else does.
func (r *runner) waitVIP(ctx context.Context, node string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if r.vipHolder() == node {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("the VIP is on %q, want %s", r.vipHolder(), node)
}

// vipHolder names the live nodes holding the VIP.
func (r *runner) vipHolder() string { return r.c.VIPHolder() }

// waitStandbys waits until both other nodes, which cloned the primary,
// stream from it.
func (r *runner) waitStandbys(ctx context.Context, primary string) error {
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		obs, err := r.server(primary).Observe(ctx)
		streaming := 0
		for _, sb := range obs.Standbys {
			// Not the WAL stream of a clone still copying (its
			// application_name is not a node's).
			if _, err := r.l.Node(sb.ApplicationName); err == nil && sb.State == "streaming" {
				streaming++
			}
		}
		if err == nil && streaming == 2 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return errors.New("the standbys did not clone the primary and stream within 3 minutes")
}

// waitSync waits until the primary's standbys are synchronous.
func (r *runner) waitSync(ctx context.Context, primary string) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		obs, err := r.server(primary).Observe(ctx)
		if err == nil && len(obs.Standbys) == 2 && obs.Standbys[0].SyncState != "async" && obs.Standbys[1].SyncState != "async" {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("the standbys did not become synchronous within 60 s")
}

func (r *runner) injectLag(ctx context.Context, primary string) error {
	for _, n := range r.l.Nodes() {
		if n.Name != primary {
			if err := r.l.PauseReplay(ctx, n); err != nil {
				return err
			}
		}
	}
	pn, _ := r.l.Node(primary)
	if err := r.l.GenerateWAL(ctx, pn, r.o.LagMB); err != nil {
		return err
	}
	// Let the standbys receive it all: the backlog is replay, not transfer.
	end, err := r.server(primary).Observe(ctx)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, n := range r.l.Nodes() {
		if n.Name == primary {
			continue
		}
		for {
			o, err := r.server(n.Name).Observe(ctx)
			if err == nil && o.ReceivedLSN >= end.CurrentLSN {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s did not receive the generated WAL", n.Name)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

func (r *runner) maxBacklog(ctx context.Context, primary string) uint64 {
	var worst uint64
	for _, n := range r.l.Nodes() {
		if n.Name == primary {
			continue
		}
		if o, err := r.server(n.Name).Observe(ctx); err == nil {
			worst = max(worst, o.ReplayBacklogBytes)
		}
	}
	return worst
}

func (r *runner) crash(ctx context.Context, primary string, res *Result) error {
	switch r.o.Scenario {
	case DBCrash:
		n, _ := r.l.Node(primary)
		return r.l.Kill(ctx, n)
	case Switchover:
		// The operator's command, as a DBA would type it: it returns once
		// the new primary is writable and prints the steps and the outage.
		cmd := exec.CommandContext(ctx, r.o.Binary, "ctl", "--config", r.c.ConfigPath(primary), "switchover", "--wait", "2m")
		out, err := cmd.CombinedOutput()
		res.OperatorOutput = string(out)
		if err != nil {
			return fmt.Errorf("vigil ctl switchover: %w\n%s", err, out)
		}
		return nil
	default:
		return r.c.CrashNode(ctx, primary)
	}
}

// nodeState describes what a node's server is now, from its own SQL.
func (r *runner) nodeState(ctx context.Context, name string) string {
	obs, err := r.server(name).Observe(ctx)
	switch {
	case err != nil:
		return "not answering: " + err.Error()
	case !obs.InRecovery:
		return "primary"
	case obs.WALReceiver != nil && obs.WALReceiver.Status == "streaming":
		for _, n := range r.l.Nodes() {
			if n.Host == obs.UpstreamHost && n.Port == obs.UpstreamPort {
				return "streaming standby of " + n.Name
			}
		}
		return fmt.Sprintf("streaming standby of %s:%d", obs.UpstreamHost, obs.UpstreamPort)
	default:
		return "standby, not streaming"
	}
}

// fillSteps reads the failover record from the DCS history; for a
// switchover, the old leader's handover record comes first.
func (r *runner) fillSteps(ctx context.Context, store *dcs.Store, res *Result) {
	hist, err := store.History(ctx)
	if err != nil {
		return
	}
	var recs []timeline.Record
	for _, raw := range hist {
		var rec timeline.Record
		if json.Unmarshal(raw, &rec) != nil || rec.Start.Before(res.CrashAt) {
			continue
		}
		if rec.Node == res.NewPrimary || (rec.Kind == "switchover" && rec.Node == res.OldLeader) {
			recs = append(recs, rec)
		}
	}
	for _, rec := range recs {
		if rec.Node == res.NewPrimary && res.DetectS == 0 {
			res.DetectS = rec.Start.Sub(res.CrashAt).Seconds()
		}
		for _, st := range rec.Steps {
			res.Steps = append(res.Steps, st)
			switch st.Name {
			case failover.StepPromote:
				res.PromoteS = st.Duration().Seconds()
			case failover.StepReadinessGate:
				res.GateS = st.Duration().Seconds()
			}
		}
	}
	sort.SliceStable(res.Steps, func(i, j int) bool { return res.Steps[i].Start.Before(res.Steps[j].Start) })
}

// StartPGBench initialises pgbench's tables through o.Host (the VIP) and
// runs it at tps transactions per second in the client namespace until
// the returned stop is called. It reads the password from the lab's
// pgpass file, never from arguments.
func StartPGBench(ctx context.Context, l *lab.Lab, client lab.Client, tps int, o workload.Options) (stop func(), err error) {
	pgbench := filepath.Join(l.BinDir(), "pgbench")
	base := []string{"--net=/run/netns/" + client.Netns, "--", pgbench, "-h", o.Host, "-p", fmt.Sprint(o.Port), "-U", o.User}
	env := append(os.Environ(), "PGPASSFILE="+l.SuperuserPassFile())
	initCmd := exec.CommandContext(ctx, "nsenter", append(base, "-i", "-q", "-s", "2", o.Database)...)
	initCmd.Env = env
	if out, err := initCmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pgbench -i: %w: %s", err, out)
	}
	run := exec.Command("nsenter", append(base, "-n", "-c", "2", "-j", "1", "-R", fmt.Sprint(tps), "-T", "600", o.Database)...)
	run.Env = env
	if err := run.Start(); err != nil {
		return nil, fmt.Errorf("start pgbench: %w", err)
	}
	return func() {
		_ = run.Process.Kill()
		_ = run.Wait()
	}, nil
}

// Client is the demo's client, `vigil workload` in the lab's client
// namespace: one write every 1/rate s through o.Host, each bounded by
// clientTimeout, every outcome recorded. Other benches use it so that
// they measure the same way.
type Client struct {
	cmd     *exec.Cmd
	out     bytes.Buffer
	errb    bytes.Buffer
	stopped bool
	res     workload.Result
	err     error
}

// StartClient starts the client; binary is the vigil executable.
func StartClient(l *lab.Lab, client lab.Client, binary string, rate int, o workload.Options) (*Client, error) {
	args := []string{"--net=/run/netns/" + client.Netns, "--", binary, "workload",
		"--host", o.Host, "--port", fmt.Sprint(o.Port), "--user", o.User, "--password-file", l.SuperuserPasswordFile(),
		"--database", o.Database, "--rate", fmt.Sprint(rate), "--duration", "10m", "--timeout", clientTimeout.String()}
	w := &Client{cmd: exec.Command("nsenter", args...)}
	w.cmd.Stdout, w.cmd.Stderr = &w.out, &w.errb
	if err := w.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the client: %w", err)
	}
	return w, nil
}

// Stop ends the client and reads its record (once; later calls return
// the same).
func (w *Client) Stop() (workload.Result, error) {
	if w.stopped {
		return w.res, w.err
	}
	w.stopped = true
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	if err := w.cmd.Wait(); err != nil {
		w.err = fmt.Errorf("client: %w: %s", err, w.errb.String())
		return w.res, w.err
	}
	if err := json.Unmarshal(w.out.Bytes(), &w.res); err != nil {
		w.err = fmt.Errorf("client output: %w", err)
	}
	return w.res, w.err
}

// Measure fills res with what the client saw around res.CrashAt: writes,
// errors by kind, the write outage, the series, and the acknowledged
// writes missing on newPrimary (read there directly, not through the
// VIP).
func Measure(ctx context.Context, l *lab.Lab, res *Result, wres workload.Result, o workload.Options, newPrimary string) error {
	sum := wres.Summarize(res.CrashAt)
	res.Writes, res.ReadOnlyErrors, res.ConnectionErrors, res.OtherErrors = sum.Writes, sum.ReadOnlyErrors, sum.ConnectionErrors, sum.OtherErrors
	res.WriteOutageS = sum.WriteOutageS
	for _, w := range wres.Writes {
		res.Series = append(res.Series, Point{T: w.At.Sub(res.CrashAt).Seconds(), Outcome: w.Outcome})
	}
	acked := wres.Acked()
	res.AckedWrites = len(acked)
	direct := o
	n, _ := l.Node(newPrimary)
	direct.Host = n.Host
	lost, err := workload.Lost(ctx, direct, acked)
	if err != nil {
		return err
	}
	res.AckedWritesLost = len(lost)
	return nil
}

type progress struct {
	w     io.Writer
	start time.Time
}

func (p *progress) say(format string, args ...any) {
	if p.w == nil {
		return
	}
	fmt.Fprintf(p.w, "[%6.1fs] %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}

// Format renders a result for a terminal.
func Format(res Result) string {
	var b strings.Builder
	order := "Vigil order (VIP only after a committed write)"
	if res.Legacy {
		order = "LEGACY order (failover_stream.sh: VIP first, select 33333 as readiness)"
	}
	fmt.Fprintf(&b, "\nFailover of %s -> %s  [%s, synchronous mode %s, %s]\n", res.OldLeader, res.NewPrimary, res.Scenario, res.SyncMode, order)
	fmt.Fprintf(&b, "replay backlog on the standbys at the crash: %d MB\n\n", res.ReplayBacklogBytes>>20)
	event := "crash"
	if res.Scenario == Switchover {
		event = "switchover requested"
	}
	fmt.Fprintf(&b, "timeline (ms after the %s):\n", event)
	fmt.Fprintf(&b, "  %7d  %s\n", 0, event)
	for _, s := range res.Steps {
		mark := "ok"
		if !s.OK {
			mark = "FAILED"
		}
		fmt.Fprintf(&b, "  %7d  %-24s %6dms %-6s %s\n", s.Start.Sub(res.CrashAt).Milliseconds(), s.Name, s.End.Sub(s.Start).Milliseconds(), mark, s.Evidence)
	}
	fmt.Fprintf(&b, "\nwhat the application saw through the VIP %s:\n", res.VIP)
	fmt.Fprintf(&b, "  write outage              %.2f s (%s to the first committed write)\n", res.WriteOutageS, event)
	fmt.Fprintf(&b, "  read-only errors          %d\n", res.ReadOnlyErrors)
	fmt.Fprintf(&b, "  connection errors         %d (no server behind the VIP: clients retry)\n", res.ConnectionErrors)
	fmt.Fprintf(&b, "  other errors              %d\n", res.OtherErrors)
	fmt.Fprintf(&b, "  acknowledged writes       %d, lost %d\n", res.AckedWrites, res.AckedWritesLost)
	fmt.Fprintf(&b, "  VIP now on                %s\n", res.VIPHolder)
	if res.OldPrimaryState != "" {
		fmt.Fprintf(&b, "  old primary %-13s %s\n", res.OldLeader, res.OldPrimaryState)
	}
	return b.String()
}
