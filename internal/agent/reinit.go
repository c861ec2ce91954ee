package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
	"github.com/vigil-ha/vigil/internal/rejoin"
	"github.com/vigil-ha/vigil/internal/timeline"
)

// reinitRecordKind is the Kind of the history record of a reinit.
const reinitRecordKind = "reinit"

// runReinit rebuilds this node's server from leader by a base backup (the
// operator's `vigil ctl reinit`), records the steps in the history as a
// reinit and clears the request, whatever the outcome: a failed reinit is
// reported, not retried, since each attempt copies a whole data directory
// and moves the previous one aside.
func (a *Agent) runReinit(ctx context.Context, view dcs.View, leader, reason string) error {
	up, err := a.upstream(view, leader)
	if err != nil {
		return fmt.Errorf("reinit: %w", err)
	}
	// No "from": the record's From names a node replaced, and a reinit
	// replaces none (its steps name the upstream copied).
	rec := a.newRecord(ctx, reinitRecordKind, "")
	a.log.Warn("rebuilding the server from the leader (reinit)", "leader", leader, "reason", reason)
	a.routesDown(ctx, "reinit: rebuilding the server")
	res, err := a.o.Control.Reinit(ctx, up, rejoin.Options{
		StreamTimeout: a.o.PromoteTimeout,
		Logger:        a.log,
	}, rec)
	summary := res.Evidence
	if err != nil && res.MovedDataDir != "" {
		// The new directory did not come to stream; the old one is still
		// where the operator needs to find it.
		summary = "the old data directory is kept at " + res.MovedDataDir
	}
	record := rec.Finish(err == nil, joinReason(reason, summary))
	a.attribute(&record) // audit: who asked
	a.appendHistory(ctx, record)
	if reinitRequestedHere(view, a.o.Node) {
		a.clearRequest(ctx, view)
	}
	if err != nil {
		return err
	}
	a.log.Info("rebuilt as a standby (reinit)", "leader", leader, "old_data_dir", res.MovedDataDir,
		"took", res.Took.Round(time.Millisecond), "timeline", "\n"+timeline.Format(record))
	return nil
}

func joinReason(reason, summary string) string {
	if summary == "" {
		return reason
	}
	return reason + "; " + summary
}

func reinitRequestedHere(view dcs.View, node string) bool {
	r := view.Request
	return r != nil && r.Kind == decision.RequestReinit && r.To == node
}
