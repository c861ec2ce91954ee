package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/internal/chaos/check"
	"github.com/vigil-ha/vigil/internal/chaos/history"
)

// newChaosCheckCmd is `vigil chaos check DIR`; the chaos command registers it.
func newChaosCheckCmd() *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "check DIR",
		Short: "Judge a saved chaos campaign and write its report",
		Long: `Read the history a chaos campaign saved in DIR (run.json, writes.jsonl,
faults.jsonl, final.json) and fail it on any of: two servers acknowledging
writes at the same time; in sync mode on or strict, an acknowledged write
missing from the final primary; in sync mode off, a loss beyond
maximum_lag_on_failover (every lost write is listed either way); a read-only
error through the VIP or a /primary-checked route; a fault not recovered from
within its bound after the heal; no single writable primary with every
standby streaming at the end; an agent panic; a leaked process, namespace or
address.

The report gives, per fault type, the faults injected and recovered from,
the time to recover from the heal and from the injection
(min/median/p95/max), the longest write outage and the errors the client
saw, then each violation with the seed and the step that reproduce it. It is
printed (as one JSON object with --json) and written to DIR/report.json and
DIR/report.html (an SVG timeline: faults as bands, writes per server).

Exit status: 0 without violation, 1 with violations, 2 when DIR holds no
campaign.`,
		Example: `  vigil chaos check /var/tmp/chaos-42
  vigil chaos check --json /var/tmp/chaos-42 | jq '.violations'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			h, err := loadCampaign(dir)
			if err != nil {
				return usageError(err)
			}
			r := check.Check(h, check.Options{})
			if err := check.WriteReports(dir, h, r); err != nil {
				return err
			}
			if jsonOut {
				err = check.WriteJSON(cmd.OutOrStdout(), h, r)
			} else {
				err = check.PrintText(cmd.OutOrStdout(), h, r)
				fmt.Fprintf(cmd.OutOrStdout(), "reports: %s, %s\n", filepath.Join(dir, check.JSONFile), filepath.Join(dir, check.HTMLFile))
			}
			if err != nil {
				return err
			}
			if !r.Passed() {
				return &exitError{code: ExitFailure, err: fmt.Errorf("%d violation(s): see %s", len(r.Violations), filepath.Join(dir, check.HTMLFile))}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print the report as one JSON object (faults, violations, lost_writes, …)")
	return cmd
}

// loadCampaign reads a campaign directory, telling a missing directory and
// a directory that holds no campaign apart.
func loadCampaign(dir string) (history.History, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return history.History{}, fmt.Errorf("campaign directory: %w", err)
	}
	if !fi.IsDir() {
		return history.History{}, fmt.Errorf("%s is not a directory", dir)
	}
	h, err := history.Load(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return h, fmt.Errorf("%s holds no chaos campaign (no %s)", dir, history.RunFile)
	}
	return h, err
}
