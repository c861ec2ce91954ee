package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/internal/control"
	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/timeline"
)

func newCtlRestartCmd(o *ctlOptions) *cobra.Command {
	var pending, cancelPlan bool
	var scheduled string
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "restart [NODE...] [--pending] [--scheduled TIME]",
		Short: "Rolling restart: standbys one at a time, then the primary by a switchover",
		Long: `Restart the members' servers one at a time: the standbys first, each back
to streaming before the next, then the primary, whose turn is a switchover
in which it restarts as a standby. No acknowledged write is lost; the
switchover's write outage is printed.

The plan lives in the DCS and the agents carry it out: the leader's agent
advances it, each standby's agent restarts its own server on its turn. A
--scheduled restart therefore happens even once this command is gone.
--pending restarts only the members with a parameter pending restart
(vigil ctl edit-config).`,
		RunE: o.withStore(func(cmd *cobra.Command, args []string, s *dcs.Store) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			w := cmd.OutOrStdout()
			if cancelPlan {
				p, err := o.controller(s).CancelRestart(ctx, s)
				if err != nil {
					return controlError(err)
				}
				fmt.Fprintf(w, "rolling restart %s cancelled; restarted: %s\n", p.ID, strings.Join(p.Done, ", "))
				return nil
			}
			var at time.Time
			if scheduled != "" {
				t, err := time.Parse(time.RFC3339, scheduled)
				if err != nil {
					return usageError(fmt.Errorf("--scheduled %q: use RFC 3339, e.g. 2026-11-25T03:00:00Z", scheduled))
				}
				at = t
			}
			p, err := o.controller(s).Restart(ctx, s, args, pending, at)
			if err != nil {
				return controlError(err)
			}
			fmt.Fprintf(w, "rolling restart %s requested: %s\n", p.ID, strings.Join(p.Order, ", then "))
			if !at.IsZero() {
				fmt.Fprintf(w, "scheduled for %s: the agents carry it out; follow it with vigil ctl history\n", at.Format(time.RFC3339))
				return nil
			}
			return waitRestart(cmd, o, s, p, wait)
		}),
	}
	cmd.Flags().BoolVar(&pending, "pending", false, "only the members with a parameter pending restart")
	cmd.Flags().StringVar(&scheduled, "scheduled", "", "when to start (RFC 3339); the command returns at once and the agents carry it out")
	cmd.Flags().BoolVar(&cancelPlan, "cancel", false, "cancel the rolling restart in progress (the turn under way finishes)")
	cmd.Flags().DurationVar(&wait, "wait", 10*time.Minute, "how long to wait for the whole restart")
	return cmd
}

// waitRestart follows plan p until the agents finish it, printing each
// turn, then prints its records and the switchover's write outage.
func waitRestart(cmd *cobra.Command, o *ctlOptions, s *dcs.Store, p dcs.RestartPlan, wait time.Duration) error {
	w := cmd.OutOrStdout()
	deadline := time.Now().Add(wait)
	var last string
	for {
		v, err := o.snapshot(cmd.Context(), s)
		if err == nil {
			if v.Restart == nil || v.Restart.ID != p.ID {
				break
			}
			progress := fmt.Sprintf("done: %s; now: %s %s", orDash(strings.Join(v.Restart.Done, ", ")), orDash(v.Restart.Current), v.Restart.Phase)
			if progress != last {
				fmt.Fprintln(cmd.ErrOrStderr(), progress)
				last = progress
			}
		}
		if time.Now().After(deadline) {
			return &exitError{code: ExitFailure, err: fmt.Errorf("rolling restart %s not finished within %s (it goes on; vigil ctl restart --cancel stops it)", p.ID, wait)}
		}
		select {
		case <-cmd.Context().Done():
			return cmd.Context().Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	recs, err := o.records(cmd.Context(), s, 0)
	if err != nil {
		return err
	}
	finished := slices.ContainsFunc(recs, func(r timeline.Record) bool { return control.RestartFinished(r, p.ID) })
	if err := reportHandover(cmd, o, s, dcs.Request{Created: p.Created}); err != nil {
		return err
	}
	if !finished {
		return &exitError{code: ExitFailure, err: fmt.Errorf("rolling restart %s ended before every member restarted (cancelled?): see vigil ctl history", p.ID)}
	}
	fmt.Fprintf(w, "rolling restart %s done: %s\n", p.ID, strings.Join(p.Order, ", "))
	return nil
}
