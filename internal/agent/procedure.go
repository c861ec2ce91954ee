package agent

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
	"github.com/vigil-ha/vigil/internal/timeline"
)

// Step names, in the order the failover runs them. They are the seed's
// steps with the order and the checks fixed: the routes come last, after
// a real write has committed.
const (
	StepIsolationGuard = "isolation_guard"
	StepAcquireLeader  = "acquire_leader"
	StepFence          = "fence_old_primary"
	StepPromote        = "promote"
	StepReadinessGate  = "readiness_gate"
	StepSyncToAsync    = "sync_to_async"
	StepSynchronous    = "synchronous_replication"
	StepCheckpoint     = "checkpoint"
	StepPublish        = "publish_writable"
	StepRoutesUp       = "routes_up"
	StepStandbysFollow = "standbys_follow"
)

// gatePollInterval is how often the readiness gate retries its write.
const gatePollInterval = 50 * time.Millisecond

var errAborted = errors.New("failover aborted")

// runFailover is the failover procedure of the node that won the decision.
func (a *Agent) runFailover(ctx context.Context, view dcs.View, reason string) {
	old := view.Status.Leader
	rec := timeline.New("failover", a.o.Cluster, a.o.Node, old, a.o.StepLog, a.log)
	a.log.Warn("starting failover", "replacing", old, "reason", reason)

	ok := a.failoverSteps(ctx, rec, view)
	record := rec.Finish(ok, reason)
	if len(record.Steps) > 2 {
		// Only a failover that got the key is history; losing the race is routine.
		a.saveHistory(ctx, record)
	}
	a.log.Info("failover finished", "ok", ok, "timeline", "\n"+timeline.Format(record))
}

func (a *Agent) failoverSteps(ctx context.Context, rec *timeline.Recorder, view dcs.View) bool {
	// 1. Isolation guard: the decision saw both; they are checked again
	// now, just before the point of no return.
	err := rec.Run(StepIsolationGuard, func() (string, error) {
		sctx, cancel := context.WithTimeout(ctx, a.o.DCSTimeout)
		defer cancel()
		v, err := a.o.Store.Snapshot(sctx)
		if err != nil {
			return "", fmt.Errorf("DCS unreachable: %w", err)
		}
		if v.Leader != "" {
			return "", fmt.Errorf("%w: %s took the leader key", errAborted, v.Leader)
		}
		trusted := a.o.Trusted.Check(ctx)
		if !trusted.Reachable {
			return "", fmt.Errorf("%w: %s", errAborted, trusted.Evidence)
		}
		return fmt.Sprintf("DCS reachable (revision %d), %s", v.Revision, trusted.Evidence), nil
	})
	if err != nil {
		return false
	}

	// 2. Take the leader key atomically: only one candidate proceeds.
	err = rec.Run(StepAcquireLeader, func() (string, error) {
		if err := a.acquireLeader(ctx); errors.Is(err, errKeyTaken) {
			return "", fmt.Errorf("%w: another candidate took the leader key first", errAborted)
		} else if err != nil {
			return "", err
		}
		return fmt.Sprintf("leader key taken under a %s lease", a.o.Decision.LeaseTTL), nil
	})
	if err != nil {
		return false
	}
	a.leaderProgress(false, nil, "failover in progress: holds the leader key, not yet proved writable")

	// 3. Fence the old primary.
	err = rec.Run(StepFence, func() (string, error) { return a.fence(ctx, view) })
	if err != nil {
		a.abandonLeadership(ctx, "fence failed")
		return false
	}
	return a.promoteSteps(ctx, rec, view)
}

// fence makes sure the old primary cannot accept writes. Its own agent
// stops it once it cannot renew its lease (see package decision); the key
// being free proves that lease expired or was released. An optional fencer
// also stops it from here, for the case of an agent that died while its
// database lives.
func (a *Agent) fence(ctx context.Context, view dcs.View) (string, error) {
	old := view.Status.Leader
	evidence := "old leader's lease is gone: its agent demotes itself before the lease can expire (lease arithmetic)"
	if old == "" || old == a.o.Node {
		evidence = "no previous leader recorded"
	}
	if r := view.Request; r != nil && r.Kind == decision.RequestSwitchover && r.HandedOver && r.From == old {
		// The old primary stopped cleanly and follows this node already:
		// fencing it would only stop a healthy standby.
		return fmt.Sprintf("%s handed over cleanly (switchover): no fence needed", old), nil
	}
	if a.o.Fencer == nil || old == "" || old == a.o.Node {
		return evidence, nil
	}
	m, ok := view.Members[old]
	if !ok {
		m = dcs.Member{Member: decision.Member{Name: old}}
	}
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	fenced, err := a.o.Fencer.Fence(fctx, m)
	if err != nil {
		return evidence, fmt.Errorf("fence %s: %w", old, err)
	}
	return evidence + "; " + fenced, nil
}

// completePromotion resumes the procedure for a leader whose server is
// still in recovery (a previous attempt was interrupted).
func (a *Agent) completePromotion(ctx context.Context, view dcs.View) {
	rec := timeline.New("promotion", a.o.Cluster, a.o.Node, "", a.o.StepLog, a.log)
	ok := a.promoteSteps(ctx, rec, view)
	record := rec.Finish(ok, "leader still in recovery")
	a.saveHistory(ctx, record)
	a.log.Info("promotion finished", "ok", ok, "timeline", "\n"+timeline.Format(record))
}

// promoteSteps are steps 4 to 9: promote, readiness gate, synchronous
// replication, checkpoint, publish, routes, standbys.
func (a *Agent) promoteSteps(ctx context.Context, rec *timeline.Recorder, view dcs.View) bool {
	if a.o.LegacyOrder {
		return a.legacyPromoteSteps(ctx, rec)
	}
	srv := a.o.Server

	// 4. Promote and wait for the server to leave recovery.
	err := rec.Run(StepPromote, func() (string, error) {
		pctx, cancel := context.WithTimeout(ctx, a.o.PromoteTimeout+5*time.Second)
		defer cancel()
		before, _ := srv.Observe(pctx)
		if err := srv.Promote(pctx, a.o.PromoteTimeout); err != nil {
			return "", err
		}
		after, err := srv.Observe(pctx)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("left recovery: timeline %d -> %d, WAL %s (replay backlog before: %d bytes)",
			before.Timeline, after.Timeline, after.CurrentLSN, before.ReplayBacklogBytes), nil
	})
	if err != nil {
		// Still a standby: give the key back so that another candidate can try.
		a.abandonLeadership(ctx, "promotion failed")
		return false
	}

	// 5. Readiness gate: only a committed write counts.
	var commit database.ProbeResult
	err = rec.Run(StepReadinessGate, func() (string, error) {
		var err error
		commit, err = a.readinessGate(ctx, rec, view)
		if err != nil {
			return "", err
		}
		return commit.String(), nil
	})
	if err != nil {
		// Keep the key: this is the primary, just not ready. The main loop
		// keeps probing and publishes once a write commits; until then no
		// route points here.
		return false
	}

	// 6. Synchronous replication that matches the standbys that are left.
	_ = rec.Run(StepSynchronous, func() (string, error) { return a.fixSynchronous(ctx) })

	// 7. Checkpoint, so that a crash now does not replay the whole backlog.
	_ = rec.Run(StepCheckpoint, func() (string, error) {
		cctx, cancel := context.WithTimeout(ctx, a.o.PromoteTimeout)
		defer cancel()
		if err := srv.Checkpoint(cctx); err != nil {
			return "", err
		}
		return "CHECKPOINT done", nil
	})

	// 8. Publish "writable primary": the signal routers wait for.
	err = rec.Run(StepPublish, func() (string, error) {
		obs, err := srv.Observe(ctx)
		if err != nil {
			return "", err
		}
		pctx, cancel := context.WithTimeout(ctx, a.o.DCSTimeout)
		defer cancel()
		if err := a.o.Store.PublishPrimary(pctx, dcs.Primary{Node: a.o.Node, Host: a.o.Host, Port: a.o.Port,
			Timeline: obs.Timeline, Since: a.clock.Now(), CommitLSN: commit.CommitLSN.String()}); err != nil {
			return "", err
		}
		if err := a.o.Store.SetStatus(pctx, dcs.Status{Leader: a.o.Node, WAL: obs.CurrentLSN.String(), Timeline: obs.Timeline, At: a.clock.Now()}); err != nil {
			return "", err
		}
		return fmt.Sprintf("writable primary on timeline %d published", obs.Timeline), nil
	})
	if err != nil {
		return false
	}
	a.leaderProgress(true, &commit, "failover done: writable primary published")
	if len(a.o.Routers) > 0 {
		err = rec.Run(StepRoutesUp, func() (string, error) {
			if err := a.routesUpIfLeader(ctx); err != nil {
				return "", err
			}
			names := make([]string, len(a.o.Routers))
			for i, r := range a.o.Routers {
				names[i] = r.Name()
			}
			return "routes up: " + strings.Join(names, ", "), nil
		})
		if err != nil {
			return false
		}
	}

	// 9. The other standbys follow the leader key on their own loops; they
	// need their slots here first.
	_ = rec.Run(StepStandbysFollow, func() (string, error) {
		a.ensureSlots(ctx, view)
		var others []string
		for name := range view.Members {
			if name != a.o.Node {
				others = append(others, name)
			}
		}
		sort.Strings(others)
		if len(others) == 0 {
			return "no other members", nil
		}
		return "replication slots ready for " + strings.Join(others, ", ") + "; they follow the new leader on their next loop", nil
	})
	return true
}

// readinessGate repeats a real write until one commits. While the promoted
// server still replays its backlog it refuses writes (the seed incident's
// read-only window); the gate waits that out, reporting the backlog.
func (a *Agent) readinessGate(ctx context.Context, rec *timeline.Recorder, view dcs.View) (database.ProbeResult, error) {
	gctx, cancel := context.WithTimeout(ctx, a.o.ReadinessTimeout)
	defer cancel()
	deadline := a.clock.Now().Add(a.o.ReadinessTimeout)
	if a.o.Decision.SyncMode == decision.SyncStrict {
		// Strict: not even the gate's own write may be acknowledged before a
		// standby has it. Any member that follows will do.
		var others []string
		for name := range view.Members {
			if name != a.o.Node {
				others = append(others, name)
			}
		}
		sort.Strings(others)
		if len(others) > 0 {
			sctx, scancel := context.WithTimeout(gctx, a.o.DBTimeout)
			err := a.o.Server.SetSynchronous(sctx, others...)
			scancel()
			if err != nil {
				return database.ProbeResult{}, fmt.Errorf("strict synchronous mode: %w", err)
			}
		}
	}
	var refused, attempts int
	var lastLog time.Time
	for {
		attempts++
		pctx, pcancel := context.WithTimeout(gctx, a.o.DBTimeout)
		r := a.o.Server.ProbeWrite(pctx)
		pcancel()
		a.leaderProgress(false, &r, "failover in progress: readiness gate, waiting for a write to commit")
		switch {
		case r.Writable():
			r.Error = ""
			if refused > 0 {
				a.log.Info("readiness gate passed", "attempts", attempts, "refused", refused)
			}
			return r, nil
		case r.Class == database.ProbeSyncWait && a.o.Decision.SyncMode == decision.SyncOn:
			// The commit waits for a synchronous standby that is not
			// there yet; "on" goes asynchronous rather than block.
			_ = rec.Run(StepSyncToAsync, func() (string, error) {
				sctx, scancel := context.WithTimeout(gctx, a.o.DBTimeout)
				defer scancel()
				if err := a.o.Server.SetAsync(sctx); err != nil {
					return "", err
				}
				return "commits waited for a synchronous standby that is gone: synchronous_standby_names cleared", nil
			})
		case r.Class == database.ProbeInRecovery || r.Class == database.ProbeReadOnly:
			refused++
			if a.clock.Now().Sub(lastLog) >= time.Second {
				a.log.Warn("readiness gate: writes still refused", "class", r.Class, "replay_backlog_bytes", r.ReplayBacklogBytes, "attempts", attempts)
				lastLog = a.clock.Now()
			}
		}
		// The deadline is also checked on the agent's clock: a simulation's
		// virtual time runs ahead of gctx's.
		if a.clock.Sleep(gctx, gatePollInterval) != nil || !a.clock.Now().Before(deadline) {
			return r, fmt.Errorf("no write committed within %s after %d attempts (%d refused as read-only); last: %s", a.o.ReadinessTimeout, attempts, refused, r.Error)
		}
	}
}

// fixSynchronous points synchronous replication at the standbys that can
// serve it right after a promotion: none are streaming yet, so "on" goes
// asynchronous until the main loop re-adds standbys as they catch up, and
// "strict" waits for any member.
func (a *Agent) fixSynchronous(ctx context.Context) (string, error) {
	if a.o.Decision.SyncMode == decision.SyncOff {
		return "synchronous mode off", nil
	}
	sctx, cancel := context.WithTimeout(ctx, a.o.DBTimeout)
	defer cancel()
	obs, err := a.o.Server.Observe(sctx)
	if err != nil {
		return "", err
	}
	var streaming []string
	for _, sb := range obs.Standbys {
		if sb.State == "streaming" {
			streaming = append(streaming, sb.ApplicationName)
		}
	}
	if len(streaming) > 0 {
		if err := a.o.Server.SetSynchronous(sctx, streaming...); err != nil {
			return "", err
		}
		return "synchronous standbys: " + strings.Join(streaming, ", "), nil
	}
	if a.o.Decision.SyncMode == decision.SyncOn {
		if err := a.o.Server.SetAsync(sctx); err != nil {
			return "", err
		}
		return "no healthy synchronous standby: asynchronous until one catches up", nil
	}
	return "strict: commits wait until a standby follows", nil
}

// abandonLeadership gives the key back after a failed step.
func (a *Agent) abandonLeadership(ctx context.Context, why string) {
	a.routesDown(ctx, why)
	a.lease.release(ctx)
	a.log.Error("gave the leader key back", "reason", why)
}

func (a *Agent) saveHistory(ctx context.Context, rec timeline.Record) {
	a.mu.Lock()
	a.status.Failovers++
	a.status.LastFailover = &rec
	a.mu.Unlock()
	hctx, cancel := context.WithTimeout(ctx, a.o.DCSTimeout)
	defer cancel()
	if err := a.o.Store.AppendHistory(hctx, rec.Start, rec); err != nil {
		a.log.Warn("save failover record in the DCS", "err", err)
	}
}

// legacyPromoteSteps is the seed's order, kept only as a benchmark
// baseline: the VIP moves first, the server is promoted, and "select
// 33333" passing is taken as ready, although writes may still be refused.
func (a *Agent) legacyPromoteSteps(ctx context.Context, rec *timeline.Recorder) bool {
	srv := a.o.Server
	if err := rec.Run(StepRoutesUp, func() (string, error) {
		if err := a.forceRoutesUp(ctx); err != nil {
			return "", err
		}
		return "legacy order: routes up before the promotion", nil
	}); err != nil {
		return false
	}
	if err := rec.Run(StepPromote, func() (string, error) {
		if err := a.o.Control.RequestPromote(ctx); err != nil {
			return "", err
		}
		return "promote requested (not waited for)", nil
	}); err != nil {
		return false
	}
	if err := rec.Run("liveness_check", func() (string, error) {
		if err := srv.CheckAlive(ctx); err != nil {
			return "", err
		}
		return "select 33333 answered: declared ready", nil
	}); err != nil {
		return false
	}
	_ = rec.Run(StepCheckpoint, func() (string, error) {
		if err := srv.Checkpoint(ctx); err != nil {
			return "", err
		}
		return "CHECKPOINT done", nil
	})
	return true
}

// leaderProgress updates the status the API serves while a failover runs,
// since the main loop (which normally sets it) is busy running it: health
// checks then see a leader that is not writable yet, and see it become
// writable the moment it is published rather than a loop later.
func (a *Agent) leaderProgress(writable bool, probe *database.ProbeResult, reason string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := &a.status
	st.HoldsLeader, st.Leader, st.Writable = true, a.o.Node, writable
	if writable {
		st.Role = decision.RolePrimary
	}
	if probe != nil {
		p := *probe
		st.LastProbe = &p
	}
	st.Reason = reason
	st.UpdatedAt = a.clock.Now()
}
