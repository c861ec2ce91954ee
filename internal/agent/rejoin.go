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

// rejoinRetryAfter spaces out attempts after failed rejoins: the first
// retry comes soon, since the usual cause is passing (the new primary has
// not made this node's replication slot yet), then the wait doubles up to
// a minute, since each attempt may copy a whole data directory and a cause
// that persists (a missing grant, a full disk) is for an operator to fix,
// not for a loop to hammer.
func rejoinRetryAfter(failures int) time.Duration {
	if failures <= 0 {
		return 0
	}
	return min(5*time.Second<<min(failures-1, 4), time.Minute)
}

// runRejoin makes this node a standby of leader (pg_rewind, or a base
// backup when a rewind is impossible), records the steps in the history
// and clears the operator's rejoin request, whatever the outcome: a failed
// rejoin is reported, not retried every loop.
func (a *Agent) runRejoin(ctx context.Context, view dcs.View, leader, reason string) error {
	a.mu.Lock()
	wait := a.rejoinFailedAt.Add(rejoinRetryAfter(a.rejoinFailures)).Sub(a.clock.Now())
	a.mu.Unlock()
	if wait > 0 && !rejoinRequestedHere(view, a.o.Node) {
		a.log.Debug("automatic rejoin waits after a failure", "retry_in", wait.Round(time.Second))
		return nil
	}
	up, err := a.upstream(view, leader)
	if err != nil {
		return fmt.Errorf("rejoin: %w", err)
	}
	rec := a.newRecord(ctx, "rejoin", leader)
	a.log.Warn("rejoining as a standby", "leader", leader, "method", a.o.RejoinMethod, "reason", reason)
	a.routesDown(ctx, "rejoining as a standby")
	res, err := a.o.Control.Rejoin(ctx, up, rejoin.Options{
		Method:        rejoin.Method(a.o.RejoinMethod),
		RewindConn:    a.o.Control.RewindConn(),
		StreamTimeout: a.o.PromoteTimeout,
		Logger:        a.log,
	}, rec)
	summary := fmt.Sprintf("method %s: %s", res.Method, res.Evidence)
	if res.MovedDataDir != "" {
		summary += "; the old data directory is kept at " + res.MovedDataDir
	}
	record := rec.Finish(err == nil, reason+"; "+summary)
	a.attribute(&record) // audit: who asked, if anyone
	a.appendHistory(ctx, record)
	if rejoinRequestedHere(view, a.o.Node) { // an automatic rejoin leaves others' requests alone
		a.clearRequest(ctx, view)
	}
	if err != nil {
		a.mu.Lock()
		a.rejoinFailedAt = a.clock.Now()
		a.rejoinFailures++
		a.mu.Unlock()
		return err
	}
	a.mu.Lock()
	a.rejoinFailures = 0
	a.mu.Unlock()
	a.log.Info("rejoined as a standby", "leader", leader, "method", res.Method, "took", res.Took.Round(time.Millisecond), "timeline", "\n"+timeline.Format(record))
	return nil
}

func rejoinRequestedHere(view dcs.View, node string) bool {
	r := view.Request
	return r != nil && r.Kind == decision.RequestRejoin && r.To == node
}

// appendHistory stores a record that is not a failover (a rejoin, a
// reinit).
func (a *Agent) appendHistory(ctx context.Context, rec timeline.Record) {
	hctx, cancel := context.WithTimeout(ctx, a.o.DCSTimeout)
	defer cancel()
	if err := a.o.Store.AppendHistory(hctx, rec.Start, rec); err != nil {
		a.log.Warn("save "+rec.Kind+" record in the DCS", "err", err)
	}
}
