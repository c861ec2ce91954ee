// Package stability measures whether a healthy cluster stays put under
// stress: for each timing setting it builds a netns lab of three
// PostgreSQL hosts with agents (embedded etcd) and a client writing
// through the VIP, loads it for a while (stress-ng saturating every core
// and fsyncing beside etcd's data, random packet loss on every node's
// link, a delay on every TCP connection between hosts: package chaos's
// mechanisms) and counts the leader changes, which should be none. It
// measures; its test checks the mechanics.
package stability

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-ha/vigil/internal/chaos"
	"github.com/vigil-ha/vigil/internal/chaos/history"
	"github.com/vigil-ha/vigil/internal/clock"
	"github.com/vigil-ha/vigil/internal/config"
	"github.com/vigil-ha/vigil/internal/lab"
	"github.com/vigil-ha/vigil/internal/labcluster"
)

// Defaults of Options.
const (
	DefaultCPULoad     = 100
	DefaultLossPercent = 2
	DefaultDelayMin    = 20 * time.Millisecond
	DefaultDelayMax    = 50 * time.Millisecond
	// clusterName names the lab's cluster in etcd.
	clusterName = "stability"
	// vipHost is the VIP's host number in the lab subnet.
	vipHost = 100
	// upWithin bounds the cluster's start.
	upWithin = 2 * time.Minute
)

// Options configure a benchmark.
type Options struct {
	// Binary is the vigil executable the agents run.
	Binary   string
	Settings []Setting
	// Duration is how long each setting runs under stress.
	Duration time.Duration
	Stress   Stress
	// LabParent is where each lab's directory is made; /var/tmp when
	// empty (the database's OS user must reach it, its sockets' paths
	// must be short).
	LabParent string
	Logger    *slog.Logger
	// Progress receives a line per stage; nil for none.
	Progress io.Writer
	// LogsDir, when set, receives each setting's agent logs, in
	// lease-<TTL>/ (the lab and its own copy are removed).
	LogsDir string
	// During, when set, is called once every stressor is in place; the
	// run goes on until Duration has passed since then. Tests use it to
	// look at the run, or to cause a failover that must be counted.
	During func(ctx context.Context, live Live) error
}

// Live is a run in progress, as Options.During sees it.
type Live struct {
	Cluster *labcluster.Cluster
	// Leader holds the leader key when the stress begins.
	Leader string
	// StressNGPID is stress-ng's main process and process group.
	StressNGPID int
	// Ruled are the namespaces with rules in chaos.NFTTable: the nodes'
	// (packet loss and delay) and the client's (delay).
	Ruled []string
	// Proxies are the delaying proxies, by namespace.
	Proxies map[string]*chaos.DelayProxy
}

// Result is one setting's run.
type Result struct {
	LeaseTTL     history.Duration `json:"lease_ttl"`
	LoopInterval history.Duration `json:"loop_interval"`
	DCSTimeout   history.Duration `json:"dcs_timeout"`
	// Duration is how long the stress lasted.
	Duration history.Duration `json:"duration"`
	Stress   string           `json:"stress"`
	// LeaderChanges counts the times a different node took the leader
	// key; LeaderKeyLosses the times the key was deleted (its lease
	// expired or was released), which a change follows unless the same
	// node retook it.
	LeaderChanges   int           `json:"leader_changes"`
	LeaderKeyLosses int           `json:"leader_key_losses"`
	Leaders         []string      `json:"leaders"`
	LeaderEvents    []LeaderEvent `json:"leader_events,omitempty"`
	// LeaderKeyReleases counts, by the decision's reason, the losses that
	// were an agent giving the key up (from the agents' logs); the
	// others were expiries.
	LeaderKeyReleases map[string]int `json:"leader_key_releases,omitempty"`
	// StressStart is when every stressor was in place.
	StressStart time.Time `json:"stress_start"`
	// Writes through the VIP during the stress, the failed ones, and the
	// longest acknowledged one.
	Writes          int              `json:"writes"`
	WriteErrors     int              `json:"write_errors"`
	MaxWriteLatency history.Duration `json:"max_write_latency"`
	// Error is why the run did not complete; its counts are then partial.
	Error string `json:"error,omitempty"`
}

// Report is the whole benchmark.
type Report struct {
	Started time.Time `json:"started"`
	Host    string    `json:"host"`
	Results []Result  `json:"results"`
}

// Run runs every setting in turn. A setting that fails is reported in its
// Result and the next one runs; the error joins every failure.
func Run(ctx context.Context, o Options) (Report, error) {
	if o.Duration <= 0 {
		return Report{}, fmt.Errorf("duration %s: must be positive", o.Duration)
	}
	o.LabParent = cmp.Or(o.LabParent, "/var/tmp")
	o.Logger = cmp.Or(o.Logger, slog.New(slog.DiscardHandler))
	o.Progress = cmp.Or(o.Progress, io.Writer(io.Discard))
	host, _ := os.Hostname()
	rep := Report{Started: time.Now(), Host: host}
	var errs []error
	for _, s := range o.Settings {
		fmt.Fprintf(o.Progress, "== %s, %s under stress\n", s, o.Duration)
		res, err := runOne(ctx, o, s)
		if err != nil {
			res.Error = err.Error()
			errs = append(errs, fmt.Errorf("lease_ttl %s: %w", s.LeaseTTL, err))
			fmt.Fprintf(o.Progress, "   failed: %v\n", err)
		}
		rep.Results = append(rep.Results, res)
		if ctx.Err() != nil {
			break
		}
	}
	return rep, errors.Join(errs...)
}

// run is one setting in progress.
type run struct {
	o     Options
	start time.Time
}

func (r *run) say(format string, args ...any) {
	fmt.Fprintf(r.o.Progress, "[%6.1fs] %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

// runOne builds the cluster for s, stresses it for o.Duration and removes
// everything it created, also when ctx ends.
func runOne(ctx context.Context, o Options, s Setting) (res Result, err error) {
	r := &run{o: o, start: time.Now()}
	res = Result{LeaseTTL: history.Duration(s.LeaseTTL), LoopInterval: history.Duration(s.LoopInterval),
		DCSTimeout: history.Duration(s.DCSTimeout), Stress: o.Stress.String()}
	parent, err := os.MkdirTemp(o.LabParent, "vigil-stability-")
	if err != nil {
		return res, fmt.Errorf("create the lab directory: %w", err)
	}
	var (
		l  *lab.Lab
		c  *labcluster.Cluster
		st *stressors
	)
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Minute)
		defer cancel()
		errs := []error{err, st.remove(cctx)}
		if c != nil {
			c.StopAll()
			if o.LogsDir != "" {
				errs = append(errs, keepLogs(c.Dir, filepath.Join(o.LogsDir, "lease-"+s.LeaseTTL.String())))
			}
		}
		if l != nil {
			if derr := l.Down(cctx); derr != nil {
				errs = append(errs, fmt.Errorf("lab down: %w", derr))
			}
		}
		if rerr := os.RemoveAll(parent); rerr != nil {
			errs = append(errs, rerr)
		}
		err = errors.Join(errs...)
	}()
	if err := os.Chmod(parent, 0o755); err != nil {
		return res, err
	}
	r.say("building 3 PostgreSQL hosts and a client host in network namespaces (%s)", parent)
	if l, err = lab.Up(ctx, lab.Options{Dir: filepath.Join(parent, "lab"), Nodes: 3, Netns: true, Logger: o.Logger}); err != nil {
		return res, fmt.Errorf("lab up: %w", err)
	}
	client, err := l.AddClient(ctx, "client")
	if err != nil {
		return res, err
	}
	c, err = labcluster.New(l, labcluster.Options{
		Binary: o.Binary, Cluster: clusterName, VIP: vipHost, LeaseTTL: s.LeaseTTL, LoopInterval: s.LoopInterval,
		Edit: func(_ string, cfg map[string]any) {
			cfg["timing"].(map[string]any)["dcs_timeout"] = s.DCSTimeout.String()
		},
	})
	if err != nil {
		return res, fmt.Errorf("configure agents: %w", err)
	}
	// The agents read exactly these files: they must hold the setting.
	for _, n := range l.Nodes() {
		cfg, err := config.Load(c.ConfigPath(n.Name))
		if err == nil {
			err = cfg.Validate()
		}
		if err != nil {
			return res, fmt.Errorf("configuration of %s: %w", n.Name, err)
		}
		if t := cfg.Timing; t.LeaseTTL != s.LeaseTTL || t.LoopInterval != s.LoopInterval || t.DCSTimeout != s.DCSTimeout {
			return res, fmt.Errorf("configuration of %s has lease_ttl %s, loop_interval %s, dcs_timeout %s, not %s", n.Name, t.LeaseTTL, t.LoopInterval, t.DCSTimeout, s)
		}
	}
	r.say("starting 3 agents (embedded etcd, VIP %s)", c.VIP())
	for _, n := range l.Nodes() {
		if err := c.StartAgent(n.Name); err != nil {
			return res, err
		}
	}
	user, password, err := l.Superuser()
	if err != nil {
		return res, err
	}
	login := chaos.Login{Port: l.Nodes()[0].Port, User: user, Password: password, Database: l.Flavor().DefaultDatabase}
	store, err := c.Store()
	if err != nil {
		return res, err
	}
	defer store.Close()
	// Creating the client's table is the probe: it fails on a standby.
	writable := func(name string) bool {
		n, err := l.Node(name)
		if err != nil {
			return false
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return chaos.CreateWritesTable(pctx, n.Host, login) == nil
	}
	wctx, cancel := context.WithTimeout(ctx, upWithin)
	primary, err := labcluster.WaitWritablePrimary(wctx, store, writable)
	cancel()
	if err != nil {
		return res, fmt.Errorf("the cluster did not come up: %w\n%s", err, c.Logs(20))
	}
	etcdData := filepath.Join(c.Dir, "etcd-"+primary)
	if same, err := sameFilesystem(c.Dir, etcdData); err != nil || !same {
		return res, fmt.Errorf("the fsync writer's directory %s is not on the filesystem of etcd's data %s (%v)", c.Dir, etcdData, err)
	}
	lw, err := watchLeader(ctx, store.Client(), leaderKey(clusterName))
	if err != nil {
		return res, err
	}
	r.say("%s is the writable primary; counting the revisions of %s", primary, leaderKey(clusterName))

	writes := make(chan history.Write, 1024)
	cctx, stopClient := context.WithCancel(ctx)
	clientDone := make(chan struct{})
	go func() {
		defer close(clientDone)
		chaos.WriteThroughVIP(cctx, client.Netns, c.VIP(), login, writes)
		close(writes)
	}()
	tally := make(chan Result, 1)
	go func() { tally <- countWrites(writes) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			stopClient()
			<-clientDone
			w := <-tally
			res.Writes, res.WriteErrors, res.MaxWriteLatency = w.Writes, w.WriteErrors, w.MaxWriteLatency
		}
	}
	defer stop()

	stressStart := time.Now()
	st, err = apply(ctx, o.Stress, l, client, c.VIP(), c.Dir, o.Duration+time.Minute, o.Logger)
	if err != nil {
		return res, fmt.Errorf("apply the stress: %w", err)
	}
	res.StressStart = time.Now()
	r.say("stress in place for %s: %s", o.Duration, o.Stress)
	if o.During != nil {
		live := Live{Cluster: c, Leader: primary, StressNGPID: st.stressNGPID(), Ruled: slices.Clone(st.ruled), Proxies: st.proxies}
		if err := o.During(ctx, live); err != nil {
			return res, err
		}
	}
	if err := clock.Sleep(ctx, time.Until(stressStart.Add(o.Duration))); err != nil {
		return res, err
	}
	res.Duration = history.Duration(time.Since(stressStart))
	if err := st.remove(ctx); err != nil {
		return res, fmt.Errorf("remove the stress: %w", err)
	}
	stop()
	count, err := lw.finish(ctx, 30*time.Second)
	res.LeaderChanges, res.LeaderKeyLosses, res.Leaders, res.LeaderEvents = count.Changes, count.Losses, count.Holders, count.Events
	if err != nil {
		return res, err
	}
	if res.LeaderKeyReleases, err = releases(c.Dir, res.StressStart, res.StressStart.Add(time.Duration(res.Duration))); err != nil {
		return res, err
	}
	r.say("stress removed: %d leader changes (leaders %s), %d leader key losses (%d released: %v), %d writes, %d failed, longest %s",
		res.LeaderChanges, strings.Join(res.Leaders, " → "), res.LeaderKeyLosses, res.released(), res.LeaderKeyReleases,
		res.Writes, res.WriteErrors, time.Duration(res.MaxWriteLatency).Round(time.Millisecond))
	return res, nil
}

// released is how many leader key losses were releases.
func (r Result) released() int {
	n := 0
	for _, c := range r.LeaderKeyReleases {
		n += c
	}
	return n
}

// keepLogs copies the agents' logs and step logs from dir to dst.
func keepLogs(dir, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("keep the agents' logs: %w", err)
	}
	for _, pattern := range []string{"*.log", "*.jsonl"} {
		logs, _ := filepath.Glob(filepath.Join(dir, pattern))
		for _, path := range logs {
			data, err := os.ReadFile(path)
			if err == nil {
				err = os.WriteFile(filepath.Join(dst, filepath.Base(path)), data, 0o644)
			}
			if err != nil {
				return fmt.Errorf("keep the agents' logs: %w", err)
			}
		}
	}
	return nil
}

// countWrites tallies the client's attempts until writes is closed.
func countWrites(writes <-chan history.Write) Result {
	var res Result
	for w := range writes {
		res.Writes++
		if w.Outcome != history.OK {
			res.WriteErrors++
			continue
		}
		res.MaxWriteLatency = max(res.MaxWriteLatency, history.Duration(w.End.Sub(w.Start)))
	}
	return res
}

// Table renders the report, one line per setting.
func Table(rep Report) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "lease_ttl\tloop_interval\tdcs_timeout\tduration\tleader changes\tkey losses\t(released)\twrites\twrite errors\tmax write latency\t")
	for _, r := range rep.Results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t", time.Duration(r.LeaseTTL), time.Duration(r.LoopInterval), time.Duration(r.DCSTimeout),
			time.Duration(r.Duration).Round(time.Second), r.LeaderChanges, r.LeaderKeyLosses, r.released(), r.Writes, r.WriteErrors,
			time.Duration(r.MaxWriteLatency).Round(time.Millisecond))
		if r.Error != "" {
			fmt.Fprintf(tw, "FAILED: %s", firstLine(r.Error))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	return b.String()
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
