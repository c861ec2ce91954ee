package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/internal/bench"
	"github.com/vigil-ha/vigil/internal/bench/patroni"
)

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure Vigil (benchmarks are separate from tests: they measure and report)",
	}
	cmd.AddCommand(newBenchFailoverCmd(), newBenchAnalyzeCmd())
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
