package cli

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/internal/chaos"
)

func newChaosCmd() *cobra.Command {
	var (
		o       chaos.Options
		faults  string
		seed    int64
		jsonOut bool
	)
	cmd := &cobra.Command{
		Use:   "chaos --duration D --seed S --out DIR [--faults LIST] [--sync-mode off|on|strict] [--dcs embedded|external] [--json]",
		Short: "Run a seeded fault campaign on a real 3-node cluster and check what the client saw (needs root)",
		Long: `Build 3 PostgreSQL hosts and a client host in network namespaces, with
vigil agents (embedded etcd, HTTP API, a VIP) as their own processes; with
--dcs external the agents use a separate 3-member etcd (vigil witness
processes with mutual TLS on three more hosts) instead. The
client writes rows with unique ids through the VIP and directly to the node
whose agent answers /primary with 200, recording every attempt and the
server that acknowledged it. Meanwhile a schedule drawn from --seed injects
faults, one at a time: each is healed after its hold, and the cluster gets a
settle period to return to one writable primary with every standby
streaming. The same seed gives the same schedule.

Fault types (--faults, comma separated; all of them by default):
  ` + strings.Join(chaos.Catalogue(), ", ") + `
With disk-full, each server's WAL directory is moved to a small filesystem of
its own (a tmpfs) before the agents start.

At the end everything is healed and removed, and the history in --out is
judged: split brain, lost acknowledged writes, read-only errors on routes that
must lead to a primary, faults not recovered from, panics and leaks are
violations (exit 1). The reports are written to --out (report.json,
report.html); --json prints report.json's object on standard output.
Interrupted (Ctrl-C), it heals every fault and removes everything it created.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("seed") {
				seed = time.Now().UnixNano() % 1_000_000
			}
			o.Seed = seed
			var err error
			if o.Faults, err = chaos.ParseFaults(faults); err != nil {
				return usageError(err)
			}
			bin, err := os.Executable()
			if err != nil {
				return err
			}
			o.Binary = bin
			o.Logger = logger(cmd)
			o.Command = chaosCommand(o)
			if !jsonOut {
				o.Progress = cmd.ErrOrStderr()
			}
			if _, err := chaos.Validate(o); err != nil {
				return usageError(err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "chaos campaign: %s\n", o.Command)
			res, runErr := chaos.Run(cmd.Context(), o)
			var ie *chaos.InputError
			if errors.As(runErr, &ie) {
				return usageError(runErr)
			}
			if cmd.Context().Err() != nil {
				return runErr
			}
			if _, err := os.Stat(res.Dir); err != nil {
				return runErr
			}
			return errors.Join(runErr, judgeCampaign(cmd, res.Dir, jsonOut))
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.Duration, "duration", 10*time.Minute, "campaign length: one fault of each type first, then more while time lasts")
	f.Int64Var(&seed, "seed", 0, "seed of the fault schedule (default: drawn from the clock and printed)")
	f.StringVar(&faults, "faults", "all", "fault types to inject, comma separated")
	f.StringVar(&o.SyncMode, "sync-mode", "off", "synchronous_mode of the agents: off, on or strict")
	f.StringVar(&o.DCS, "dcs", "embedded", "etcd: the agents' embedded members, or external (a separate 3-member etcd with mutual TLS)")
	f.StringVar(&o.Out, "out", "", "directory for the history, the agents' logs and the reports (required; must not hold a campaign)")
	f.DurationVar(&o.RecoveryBound, "recovery-bound", chaos.DefaultRecoveryBound, "how long the cluster gets to recover after each heal")
	f.BoolVar(&jsonOut, "json", false, "print the report as one JSON object on standard output")
	_ = cmd.MarkFlagRequired("out")
	cmd.AddCommand(newChaosCheckCmd())
	return cmd
}

// chaosCommand is the command line that reproduces o.
func chaosCommand(o chaos.Options) string {
	return "vigil chaos --duration " + o.Duration.String() + " --seed " + strconv.FormatInt(o.Seed, 10) +
		" --faults " + strings.Join(o.Faults, ",") + " --sync-mode " + orDefault(o.SyncMode, "off") +
		" --dcs " + orDefault(o.DCS, "embedded") + " --out " + o.Out
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// judgeCampaign runs the history checker on a campaign directory, as
// `vigil chaos check DIR` does: it prints the report, writes report.json
// and report.html, and fails (exit 1) on violations.
func judgeCampaign(cmd *cobra.Command, dir string, jsonOut bool) error {
	c := newChaosCheckCmd()
	c.SetOut(cmd.OutOrStdout())
	c.SetErr(cmd.ErrOrStderr())
	c.SetContext(cmd.Context())
	if err := c.Flags().Set("json", strconv.FormatBool(jsonOut)); err != nil {
		return err
	}
	return c.RunE(c, []string{dir})
}
