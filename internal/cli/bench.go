package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/internal/bench"
	"github.com/vigil-ha/vigil/internal/bench/dcsbench"
	"github.com/vigil-ha/vigil/internal/bench/patroni"
	"github.com/vigil-ha/vigil/internal/bench/stability"
)

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure Vigil (benchmarks are separate from tests: they measure and report)",
	}
	cmd.AddCommand(newBenchFailoverCmd(), newBenchAnalyzeCmd(), newBenchDCSCmd())
	cmd.AddCommand(newBenchStabilityCmd())
	return cmd
}

func newBenchFailoverCmd() *cobra.Command {
	var (
		runs    int
		lagMB   int
		rate    int
		bgTPS   int
		ttl     time.Duration
		loop    time.Duration
		out     string
		jsonOut bool
		compare string
		psets   []string
	)
	cmd := &cobra.Command{
		Use:   "failover --runs N",
		Short: "Fail over a real cluster many times and report outage, read-only errors and lost writes (needs root)",
		Long: `Run the demo's failover N times for each scenario: primary node crash and
primary database crash (agent alive), planned switchover (vigil ctl
switchover), each with and without replay lag on the standbys, plus the seed's legacy order (VIP moved before promotion,
"select 33333" as readiness) as a baseline in the same run. Runs are
interleaved so that the machine's load affects every scenario alike.

Per scenario it reports min/median/p95/max of the write outage (crash to the
first write committed through the VIP), detection, promotion and readiness
gate times (for a switchover the outage is the gap in committed writes it
caused), and the read-only errors and acknowledged writes lost. It
writes report.json and failover.svg (writes over time around the crash)
to --out.

--compare patroni runs Debian's Patroni (installed if missing) beside
Vigil's node crash on the same lab, with the same client, load and fault,
once per --patroni-settings per round, and reports the ratio of the
median write outages.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bin, err := os.Executable()
			if err != nil {
				return err
			}
			if (ttl == 0) != (loop == 0) {
				return usageError(fmt.Errorf("--lease-ttl and --loop-interval go together"))
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			if err := os.Chmod(out, 0o755); err != nil {
				return err
			}
			o := bench.Options{
				Runs: runs, Scenarios: bench.DefaultScenarios(lagMB), Dir: out, Binary: bin, Rate: rate, BackgroundTPS: bgTPS, Progress: cmd.ErrOrStderr(),
				LeaseTTL: ttl, LoopInterval: loop,
			}
			if err := compareWith(&o, compare, psets); err != nil {
				return usageError(err)
			}
			rep, err := bench.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			data, err := json.MarshalIndent(rep, "", "  ")
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(out, "report.json"), data, 0o644); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(out, "failover.svg"), []byte(bench.SVG(rep)), 0o644); err != nil {
				return err
			}
			if jsonOut {
				_, err = cmd.OutOrStdout().Write(append(data, '\n'))
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), bench.Table(rep))
			fmt.Fprintf(cmd.OutOrStdout(), "\nreport: %s\nchart:  %s\n", filepath.Join(out, "report.json"), filepath.Join(out, "failover.svg"))
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&runs, "runs", 5, "runs per scenario")
	f.IntVar(&lagMB, "lag-mb", 128, "WAL (MB) written while the standbys' replay is paused, in the +lag scenarios")
	f.IntVar(&rate, "rate", 50, "client writes per second through the VIP")
	f.IntVar(&bgTPS, "background-tps", 100, "pgbench transactions per second through the VIP as background load (0: none)")
	f.DurationVar(&ttl, "lease-ttl", 0, "override timing.lease_ttl (with --loop-interval) to measure other settings; default: the configuration default")
	f.DurationVar(&loop, "loop-interval", 0, "override timing.loop_interval (with --lease-ttl)")
	f.StringVar(&out, "out", "/var/tmp/vigil-bench", "directory for the labs, report.json and failover.svg")
	f.BoolVar(&jsonOut, "json", false, "print the report as JSON")
	f.StringVar(&compare, "compare", "", "also run another system on the same lab, client and fault, and report the ratio: patroni (Debian's package, installed if missing); Vigil then runs its node-crash scenario only")
	f.StringSliceVar(&psets, "patroni-settings", []string{"default", "tight"}, "Patroni timings with --compare patroni: default (ttl 30, loop_wait 10, retry_timeout 10), tight (ttl 10, loop_wait 1, retry_timeout 4)")
	return cmd
}

func newBenchStabilityCmd() *cobra.Command {
	var (
		duration time.Duration
		settings string
		out      string
		cpuLoad  int
		loss     int
		delay    string
		jsonOut  bool
	)
	cmd := &cobra.Command{
		Use:   "stability --duration D --settings 3s,2s,1s",
		Short: "Stress a healthy cluster and count its leader changes, per lease_ttl (needs root)",
		Long: `For each lease_ttl of --settings, build a healthy 3-node cluster in network
namespaces (agents with embedded etcd, a client writing through the VIP)
and put it under stress for --duration: stress-ng saturating every core
(--cpu-load) with an fsync after every write on the filesystem of etcd's
data, --loss percent of the packets dropped at random on every node's link
(nftables), and every TCP connection between the hosts sent through a
proxy that delays it by a random --delay. Then count the leader changes
(a different node taking the leader key, from etcd's history of the key:
none is missed), which should be 0; the key losses (the key deleted, also
when the same node takes it again), and of those the ones an agent
released by itself (from its log), the others being expired leases; the
client's failed writes and its longest write.

loop_interval and dcs_timeout follow lease_ttl in the proportions of the
defaults (3s, 500ms, 800ms). lease_ttl must be a whole number of seconds
(etcd grants leases in seconds). It writes stability.json and the agents'
logs (agents/lease-<TTL>/) to --out.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bin, err := os.Executable()
			if err != nil {
				return err
			}
			if os.Geteuid() != 0 {
				return usageError(fmt.Errorf("vigil bench stability needs root: network namespaces, nftables, the VIP"))
			}
			ss, err := stability.ParseSettings(settings)
			if err != nil {
				return usageError(err)
			}
			lo, hi, err := stability.ParseDelayRange(delay)
			if err != nil {
				return usageError(err)
			}
			if loss < 0 || loss > 100 || cpuLoad < 0 || cpuLoad > 100 {
				return usageError(fmt.Errorf("--loss and --cpu-load are percentages (0-100)"))
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			rep, runErr := stability.Run(cmd.Context(), stability.Options{
				Binary: bin, Settings: ss, Duration: duration, Progress: cmd.ErrOrStderr(), LogsDir: filepath.Join(out, "agents"),
				Stress: stability.Stress{CPULoad: cpuLoad, LossPercent: loss, DelayMin: lo, DelayMax: hi},
			})
			data, err := json.MarshalIndent(rep, "", "  ")
			if err != nil {
				return err
			}
			path := filepath.Join(out, "stability.json")
			if err := os.WriteFile(path, data, 0o644); err != nil {
				return err
			}
			if jsonOut {
				_, err = cmd.OutOrStdout().Write(append(data, '\n'))
			} else {
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s\nreport: %s\n", stability.Table(rep), path)
			}
			return errors.Join(runErr, err)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&duration, "duration", 30*time.Minute, "how long each setting runs under stress")
	f.StringVar(&settings, "settings", "3s,2s,1s", "the lease_ttl values to run, comma-separated (whole seconds)")
	f.StringVar(&out, "out", "/var/tmp/vigil-bench-stability", "directory for stability.json and the agents' logs")
	f.IntVar(&cpuLoad, "cpu-load", stability.DefaultCPULoad, "load of each stress-ng CPU worker (one per core), percent")
	f.IntVar(&loss, "loss", stability.DefaultLossPercent, "percent of packets dropped at random on every node's link")
	f.StringVar(&delay, "delay", stability.DefaultDelayMin.String()+"-"+stability.DefaultDelayMax.String(), "delay range MIN-MAX of every TCP connection between the lab's hosts")
	f.BoolVar(&jsonOut, "json", false, "print the report as JSON")
	return cmd
}

// compareWith adds the system named by --compare to o.
func compareWith(o *bench.Options, system string, settings []string) error {
	switch system {
	case "":
		return nil
	case "patroni":
	default:
		return fmt.Errorf("--compare %q: the system to compare with is patroni", system)
	}
	o.Scenarios = bench.CompareScenarios()
	for _, name := range settings {
		s, err := patroni.LookupSettings(name)
		if err != nil {
			return fmt.Errorf("--patroni-settings: %w", err)
		}
		o.Patroni = append(o.Patroni, s)
	}
	return nil
}

func newBenchDCSCmd() *cobra.Command {
	var (
		o       dcsbench.Options
		jsonOut bool
	)
	cmd := &cobra.Command{
		Use:   "dcs --clusters N",
		Short: "Run N clusters of agents with modelled databases against one real 3-member etcd, crash primaries, report the load",
		Long: `Run N clusters of real agents (the real decision core and DCS code) whose
databases are modelled in memory, against a real etcd of --etcd-members
members (vigil witness processes on loopback, so that etcd's CPU is apart
from the agents'). Every cluster has its own name and keys, as clusters
sharing one etcd do. Once every cluster has a writable primary, the window
of --duration starts; --crashes primaries, each in another cluster, die with
their host (database and agent at once) during its first three quarters,
and come back as standbys after their cluster failed over.

It reports etcd's requests per second and client traffic, overall and per
cluster (from the members' own metrics), the size of each cluster's keys,
the agents' CPU per cluster, the failover times (crash to another member's
writable-primary record in etcd), and every cluster that did not end with
exactly one primary named by its leader key. A run larger than the machine
can hold is refused before it starts. It writes report.json and summary.txt
to --out.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bin, err := os.Executable()
			if err != nil {
				return err
			}
			o.Binary, o.Progress = bin, cmd.ErrOrStderr()
			if !cmd.Flags().Changed("crashes") {
				o.Crashes = min(o.Crashes, o.Clusters)
			}
			if err := dcsbench.EstimateFor(o.Clusters, max(o.Members, 1), max(o.EtcdMembers, 1)).Check(); err != nil {
				return usageError(err)
			}
			if err := os.MkdirAll(o.Dir, 0o755); err != nil {
				return err
			}
			rep, err := dcsbench.Run(cmd.Context(), o)
			if errors.Is(err, dcsbench.ErrBadOptions) {
				return usageError(err)
			}
			if err != nil {
				return err
			}
			data, err := json.MarshalIndent(rep, "", "  ")
			if err != nil {
				return err
			}
			summary := dcsbench.Summary(rep)
			if err := os.WriteFile(filepath.Join(o.Dir, "report.json"), data, 0o644); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(o.Dir, "summary.txt"), []byte(summary), 0o644); err != nil {
				return err
			}
			if jsonOut {
				_, err = cmd.OutOrStdout().Write(append(data, '\n'))
			} else {
				fmt.Fprint(cmd.OutOrStdout(), summary)
				fmt.Fprintf(cmd.OutOrStdout(), "\nreport: %s\n", filepath.Join(o.Dir, "report.json"))
			}
			if err == nil && (len(rep.Wrong) > 0 || rep.FailoversMissing > 0 || len(rep.TwoPrimaries) > 0) {
				err = fmt.Errorf("%d cluster(s) in a wrong state, %d failover(s) not completed", len(rep.Wrong), rep.FailoversMissing)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Clusters, "clusters", 20, "clusters sharing the etcd")
	f.IntVar(&o.Members, "members", 3, "agents (database nodes) per cluster")
	f.IntVar(&o.EtcdMembers, "etcd-members", 3, "members of the etcd cluster")
	f.DurationVar(&o.Duration, "duration", time.Minute, "measured window, crashes included")
	f.IntVar(&o.Crashes, "crashes", 10, "primaries crashed during the window, each in another cluster (at most --clusters)")
	f.DurationVar(&o.Settle, "settle", time.Minute, "longest wait after the window for the last failovers and rejoins")
	f.Uint64Var(&o.Seed, "seed", 1, "chooses which clusters crash")
	f.StringVar(&o.Dir, "out", "/var/tmp/vigil-bench-dcs", "directory for etcd's data and logs, the agents' log, report.json and summary.txt")
	f.BoolVar(&jsonOut, "json", false, "print the report as JSON")
	return cmd
}
