// Package dcsbench measures what many clusters cost one etcd: N clusters
// of real agents (package agent, the real decision core, the real
// dcs.Store) whose databases are modelled (model.go), against a real
// 3-member etcd run as separate processes. It injects primary crashes
// (kill -9 of a host: database and agent gone at once) across the fleet
// and reports etcd's requests and bytes per cluster, the agents' CPU, the
// failover times, and every cluster that ended without exactly one primary
// that the DCS names. It measures; the tests assert.
package dcsbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"time"

	"github.com/vigil-ha/vigil/internal/bench"
	"github.com/vigil-ha/vigil/internal/config"
	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
)

// Options configure a run.
type Options struct {
	Clusters int
	// Members per cluster (3 when 0).
	Members int
	// Duration is the measured window, crashes included (60 s when 0).
	Duration time.Duration
	// Crashes is how many primaries are crashed, each in a different
	// cluster, spread over the first three quarters of the window.
	Crashes int
	// EtcdMembers is the size of the etcd cluster (3 when 0).
	EtcdMembers int
	// Dir receives the etcd members' data and logs and the agents' log.
	Dir string
	// Binary is the vigil executable that runs the etcd members
	// (`vigil witness`).
	Binary string
	// Settle bounds the wait, after the window, for the last failovers and
	// rejoins to finish (60 s when 0).
	Settle time.Duration
	Seed   uint64
	// Progress receives one line per phase and per crash (nil: none).
	Progress io.Writer
}

func (o *Options) defaults() error {
	if o.Members == 0 {
		o.Members = 3
	}
	if o.EtcdMembers == 0 {
		o.EtcdMembers = 3
	}
	if o.Duration == 0 {
		o.Duration = 60 * time.Second
	}
	if o.Settle == 0 {
		o.Settle = 60 * time.Second
	}
	var bad error
	switch {
	case o.Clusters < 1:
		bad = fmt.Errorf("--clusters %d: at least one cluster", o.Clusters)
	case o.Members < 2:
		bad = fmt.Errorf("--members %d: a failover needs at least two members", o.Members)
	case o.Crashes < 0 || o.Crashes > o.Clusters:
		bad = fmt.Errorf("--crashes %d: between 0 and --clusters (%d), each crash hits another cluster", o.Crashes, o.Clusters)
	case o.Duration < 10*time.Second:
		bad = fmt.Errorf("--duration %s: at least 10s, a failover alone takes a lease TTL", o.Duration)
	case o.Binary == "" || o.Dir == "":
		bad = errors.New("the vigil binary and a directory are required")
	}
	if bad != nil {
		return fmt.Errorf("%w: %w", ErrBadOptions, bad)
	}
	return nil
}

// ErrBadOptions: the options make no run.
var ErrBadOptions = errors.New("dcs benchmark")

// Report is one run.
type Report struct {
	Started   time.Time `json:"started"`
	Host      string    `json:"host"`
	Cores     int       `json:"cores"`
	Clusters  int       `json:"clusters"`
	Members   int       `json:"members"`
	DurationS float64   `json:"duration_s"`
	LeaseTTL  string    `json:"lease_ttl"`
	Loop      string    `json:"loop_interval"`
	Estimate  Estimate  `json:"estimate"`
	// LoadAverage is the machine's 1-minute load average when the window
	// began and when it ended: other work on the machine slows the agents
	// and etcd alike.
	LoadAverage [2]float64 `json:"load_average_1m"`

	Etcd   EtcdLoad   `json:"etcd"`
	Agents AgentsLoad `json:"agents"`
	// KeyBytesPerCluster is the size of each cluster's keys (names and
	// values) at the end.
	KeyBytesPerCluster bench.Stats `json:"key_bytes_per_cluster"`
	KeysPerCluster     bench.Stats `json:"keys_per_cluster"`

	Failovers          []Failover  `json:"failovers"`
	FailoverS          bench.Stats `json:"failover_s"`
	LeaderKeyS         bench.Stats `json:"leader_key_s"`
	FailoversMissing   int         `json:"failovers_not_completed"`
	CrashesNotInjected []string    `json:"crashes_not_injected,omitempty"`

	// Unplanned lists every change of a writable primary that no crash
	// explains: a leader that lost its lease under load.
	Unplanned []string `json:"unplanned_primary_changes"`

	// Wrong lists the clusters that did not end with exactly one primary
	// that the DCS names; TwoPrimaries every moment the model saw two.
	Wrong        []ClusterState `json:"wrong_clusters"`
	TwoPrimaries []string       `json:"two_primaries,omitempty"`
}

// EtcdLoad is what the fleet cost etcd over the window, from the members'
// own metrics and processes.
type EtcdLoad struct {
	Members              int                `json:"members"`
	RequestsPerS         float64            `json:"requests_per_s"`
	RequestsPerSCluster  float64            `json:"requests_per_s_per_cluster"`
	ByMethodPerS         map[string]float64 `json:"requests_per_s_by_method"`
	ClientBytesPerS      float64            `json:"client_bytes_per_s"`
	ClientBytesPerSClust float64            `json:"client_bytes_per_s_per_cluster"`
	PeerBytesPerS        float64            `json:"peer_bytes_per_s"`
	DBSizeBytes          float64            `json:"db_size_bytes"`
	// RevisionsPerS is the writes etcd stored; DBGrowthBytesPerS how
	// fast the backend in use grew. Nothing compacts the history a
	// vigil etcd keeps, so at this rate the backend reaches its space
	// quota (QuotaBytes) after HoursToQuota, and etcd then refuses writes.
	RevisionsPerS float64 `json:"revisions_per_s"`
	// FsyncsPerS is the members' WAL fsyncs together, FsyncMeanMS their
	// mean duration.
	FsyncsPerS        float64 `json:"wal_fsyncs_per_s"`
	FsyncMeanMS       float64 `json:"wal_fsync_mean_ms"`
	DBGrowthBytesPerS float64 `json:"db_growth_bytes_per_s"`
	QuotaBytes        float64 `json:"quota_bytes"`
	HoursToQuota      float64 `json:"hours_to_quota"`
	CPUCores          float64 `json:"cpu_cores"`
}

// AgentsLoad is what the agents' process cost over the window.
type AgentsLoad struct {
	Agents             int     `json:"agents"`
	CPUCores           float64 `json:"cpu_cores"`
	CPUCoresPerCluster float64 `json:"cpu_cores_per_cluster"`
	Goroutines         int     `json:"goroutines"`
	HeapBytesPerAgent  float64 `json:"heap_bytes_per_agent"`
	FDsPerAgent        float64 `json:"fds_per_agent"`
}

// Failover is one injected crash.
type Failover struct {
	Cluster    string    `json:"cluster"`
	Crashed    string    `json:"crashed"`
	At         time.Time `json:"at"`
	NewPrimary string    `json:"new_primary,omitempty"`
	// S is the time from the crash to the new primary's writable-primary
	// record in the DCS (0 when it never came); LeaderS to another node's
	// leader key (the old lease expired, a standby saw it at its next loop
	// and took the key).
	S       float64 `json:"s"`
	LeaderS float64 `json:"leader_key_s"`
	OK      bool    `json:"ok"`
}

// ClusterState is how a cluster ended.
type ClusterState struct {
	Cluster   string   `json:"cluster"`
	Leader    string   `json:"leader"`
	Primary   string   `json:"primary_record"`
	Primaries []string `json:"database_primaries"`
	Problem   string   `json:"problem,omitempty"`
}

// Run runs the benchmark.
func Run(ctx context.Context, o Options) (Report, error) {
	if err := o.defaults(); err != nil {
		return Report{}, err
	}
	est := EstimateFor(o.Clusters, o.Members, o.EtcdMembers)
	if err := est.Check(); err != nil {
		return Report{}, err
	}
	cfg := config.Defaults()
	host, _ := os.Hostname()
	rep := Report{Started: time.Now(), Host: host, Cores: runtime.NumCPU(), Clusters: o.Clusters, Members: o.Members,
		DurationS: o.Duration.Seconds(), LeaseTTL: cfg.Timing.LeaseTTL.String(), Loop: cfg.Timing.LoopInterval.String(), Estimate: est}
	progress := func(format string, args ...any) {
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, format+"\n", args...)
		}
	}

	progress("estimate: %d agents, %d goroutines, about %.2f of %d cores, %d MiB", est.Agents, est.Goroutines, est.CPUCores, est.Cores, est.MemoryBytes>>20)
	progress("starting a %d-member etcd (vigil witness processes on loopback)", o.EtcdMembers)
	etcd, err := startEtcd(ctx, o.Binary, o.Dir, o.EtcdMembers)
	if err != nil {
		return rep, err
	}
	defer func() {
		etcd.stop()
		for _, m := range etcd.members {
			os.RemoveAll(filepath.Join(o.Dir, "etcd-"+m.name))
		}
	}()
	// The metrics must be readable before the agents start, not only
	// after the window.
	if _, err := etcd.sample(ctx); err != nil {
		return rep, err
	}

	logFile, err := os.Create(filepath.Join(o.Dir, "agents.log"))
	if err != nil {
		return rep, fmt.Errorf("agents' log: %w", err)
	}
	defer logFile.Close()
	f := &fleet{o: o, endpoints: etcd.endpoints(), dcsTimeout: cfg.Timing.DCSTimeout,
		logger: slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelInfo})),
		dcfg:   decisionConfig(cfg)}
	observer, err := dcs.Open(dcs.Options{Endpoints: f.endpoints, Cluster: "dcsbench-observer", LeaseTTL: cfg.Timing.LeaseTTL})
	if err != nil {
		return rep, err
	}
	defer observer.Close()
	f.observer = observer.Client()

	runCtx, stopFleet := context.WithCancel(ctx)
	defer func() {
		stopFleet()
		f.wg.Wait()
		f.stopAgents()
	}()
	progress("starting %d clusters of %d agents", o.Clusters, o.Members)
	if err := f.start(runCtx); err != nil {
		return rep, err
	}
	if err := f.waitAllPrimaries(ctx, 60*time.Second+time.Duration(o.Clusters)*100*time.Millisecond); err != nil {
		return rep, err
	}

	progress("every cluster has a writable primary; measuring for %s with %d crashes", o.Duration, o.Crashes)
	before, err := etcd.sample(ctx)
	if err != nil {
		return rep, err
	}
	rep.LoadAverage[0] = loadAverage()
	rep.CrashesNotInjected = f.crashDuring(runCtx, o.Duration, progress)
	after, err := etcd.sample(ctx)
	if err != nil {
		return rep, err
	}
	rep.LoadAverage[1] = loadAverage()
	rep.Agents = f.agentsLoad()
	window := after.at.Sub(before.at).Seconds()
	rep.Etcd = etcdLoad(before, after, window, o)
	if len(after.requests) == 0 {
		return rep, errNoMetrics
	}
	rep.Agents.CPUCores = (after.agentsCPUSeconds - before.agentsCPUSeconds) / window
	rep.Agents.CPUCoresPerCluster = rep.Agents.CPUCores / float64(o.Clusters)

	progress("window over; waiting up to %s for the last failovers and rejoins", o.Settle)
	f.settle(ctx, o.Settle)
	states, keyBytes, keys, err := f.finalStates(ctx)
	if err != nil {
		return rep, err
	}
	rep.KeyBytesPerCluster, rep.KeysPerCluster = bench.Summarize(keyBytes), bench.Summarize(keys)
	var times, leaderTimes []float64
	for _, c := range f.clusters {
		c.mu.Lock()
		if c.crash != nil {
			rep.Failovers = append(rep.Failovers, c.crash.f)
			if c.crash.f.OK {
				times, leaderTimes = append(times, c.crash.f.S), append(leaderTimes, c.crash.f.LeaderS)
			} else {
				rep.FailoversMissing++
			}
		}
		rep.Unplanned = append(rep.Unplanned, c.unplanned...)
		c.mu.Unlock()
		rep.TwoPrimaries = append(rep.TwoPrimaries, c.db.violations()...)
	}
	sort.Slice(rep.Failovers, func(i, j int) bool { return rep.Failovers[i].At.Before(rep.Failovers[j].At) })
	if len(times) > 0 { // JSON has no NaN
		rep.FailoverS, rep.LeaderKeyS = bench.Summarize(times), bench.Summarize(leaderTimes)
	}
	for _, st := range states {
		if st.Problem != "" {
			rep.Wrong = append(rep.Wrong, st)
		}
	}
	return rep, nil
}

// decisionConfig is the agents' configuration: the defaults of a
// configuration file, with automatic rejoin so that a crashed host comes
// back as a standby by itself.
func decisionConfig(cfg config.Config) decision.Config {
	return decision.Config{LeaseTTL: cfg.Timing.LeaseTTL, LoopInterval: cfg.Timing.LoopInterval, DCSTimeout: cfg.Timing.DCSTimeout,
		MaximumLagOnFailover: cfg.Failover.MaximumLagOnFailover, SyncMode: decision.SyncMode(cfg.Failover.SynchronousMode),
		PrimaryCrash: decision.CrashPolicy(cfg.Failover.PrimaryCrash), RestartTimeout: cfg.Failover.RestartTimeout,
		AutoRejoin: true}
}

func etcdLoad(before, after etcdSample, window float64, o Options) EtcdLoad {
	l := EtcdLoad{Members: o.EtcdMembers, ByMethodPerS: map[string]float64{}, DBSizeBytes: after.dbSize}
	for method, n := range after.requests {
		if d := (n - before.requests[method]) / window; d > 0 {
			l.ByMethodPerS[method] = d
			l.RequestsPerS += d
		}
	}
	l.RequestsPerSCluster = l.RequestsPerS / float64(o.Clusters)
	l.ClientBytesPerS = (after.clientRecv + after.clientSent - before.clientRecv - before.clientSent) / window
	l.ClientBytesPerSClust = l.ClientBytesPerS / float64(o.Clusters)
	l.PeerBytesPerS = (after.peerSent - before.peerSent) / window
	l.RevisionsPerS = (after.revision - before.revision) / window
	if n := after.fsyncs - before.fsyncs; n > 0 {
		l.FsyncsPerS, l.FsyncMeanMS = n/window, (after.fsyncSeconds-before.fsyncSeconds)/n*1000
	}
	l.DBGrowthBytesPerS = (after.dbInUse - before.dbInUse) / window
	l.QuotaBytes = after.quota
	if l.DBGrowthBytesPerS > 0 {
		l.HoursToQuota = (after.quota - after.dbInUse) / l.DBGrowthBytesPerS / 3600
	}
	l.CPUCores = (after.cpuSeconds - before.cpuSeconds) / window
	return l
}
