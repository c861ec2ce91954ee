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
)

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure Vigil (benchmarks are separate from tests: they measure and report)",
	}
	cmd.AddCommand(newBenchFailoverCmd(), newBenchAnalyzeCmd(), newBenchDCSCmd())
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
to --out.`,
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
			rep, err := bench.Run(cmd.Context(), bench.Options{
				Runs: runs, Scenarios: bench.DefaultScenarios(lagMB), Dir: out, Binary: bin, Rate: rate, BackgroundTPS: bgTPS, Progress: cmd.ErrOrStderr(),
				LeaseTTL: ttl, LoopInterval: loop,
			})
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
	return cmd
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
