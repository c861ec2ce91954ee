package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
	"github.com/vigil-ha/vigil/internal/failover"
	"github.com/vigil-ha/vigil/internal/timeline"
)

// gatePollInterval is how often the readiness gate retries its write.
const gatePollInterval = 50 * time.Millisecond

var errAborted = errors.New("failover aborted")

// plan is the agent's failover plan (Options.Plan, else failover.Agent),
// without the routes step when there are no routes.
func (a *Agent) plan() failover.Plan {
	p := a.o.Plan
	if p.IsZero() {
		p = failover.Agent()
	}
	if len(a.o.Routers) == 0 && !p.RoutesBeforeCommit() {
		p = p.WithoutRoutes()
	}
	return p
}

// legacy reports the seed's order (the benchmark baseline): routes before
// a committed write. Such a leader neither resumes a promotion nor takes
// its routes back for not being writable, as the script never did.
func (a *Agent) legacy() bool { return a.o.Plan.RoutesBeforeCommit() }

// runFailover is the failover procedure of the node that won the decision.
func (a *Agent) runFailover(ctx context.Context, view dcs.View, reason string) {
	old := view.Status.Leader
	rec := a.newRecord(ctx, "failover", old)
	a.log.Warn("starting failover", "replacing", old, "reason", reason)

	ok := a.runPlan(ctx, rec, view, a.plan())
	record := rec.Finish(ok, reason)
	a.attribute(&record) // audit: who asked, if anyone
	if len(record.Steps) > 2 {
		// Only a failover that got the key is history; losing the race is routine.
		a.saveHistory(ctx, record)
	}
	a.log.Info("failover finished", "ok", ok, "timeline", "\n"+timeline.Format(record))
}

// runPlan runs plan with the agent's steps. A failed fence or promotion
// gives the key back so that another candidate can try; a failed gate
// keeps it: this is the primary, just not ready, and the main loop keeps
// probing and publishes once a write commits. Until then no route points
// here.
func (a *Agent) runPlan(ctx context.Context, rec *timeline.Recorder, view dcs.View, plan failover.Plan) bool {
	res := failover.Run(ctx, plan, rec, a.steps(rec, view))
	switch res.Failed {
	case "":
		return true
	case failover.StepFence:
		a.abandonLeadership(ctx, "fence failed")
	case failover.StepPromote:
		if !a.legacy() {
			// Still a standby: give the key back.
			a.abandonLeadership(ctx, "promotion failed")
		}
	}
	return false
}

// steps are the agent's implementations of the plans' steps.
func (a *Agent) steps(rec *timeline.Recorder, view dcs.View) failover.Steps {
	var commit database.ProbeResult
	// syncReady: the synchronous setting the gate's write needs was made
	// before the promotion.
	var syncReady bool
	return failover.Steps{
		failover.StepIsolationGuard: a.isolationGuard,
		failover.StepAcquireLeader: func(ctx context.Context) (string, error) {
			if err := a.acquireLeader(ctx); errors.Is(err, errKeyTaken) {
				return "", fmt.Errorf("%w: another candidate took the leader key first", errAborted)
			} else if err != nil {
				return "", err
			}
			a.leaderProgress(false, nil, "failover in progress: holds the leader key, not yet proved writable")
			return fmt.Sprintf("leader key taken under a %s lease", a.o.Decision.LeaseTTL), nil
		},
		failover.StepFence: func(ctx context.Context) (string, error) { return a.fence(ctx, view) },
		failover.StepSynchronous: func(ctx context.Context) (string, error) {
			ev, err := a.prepareSynchronous(ctx, view)
			syncReady = err == nil
			return ev, err
		},
		failover.StepPromote:     a.promote,
		failover.StepRoutesProbe: a.probeRoutes,
		failover.StepReadinessGate: func(ctx context.Context) (string, error) {
			var err error
			commit, err = a.readinessGate(ctx, rec, view, syncReady)
			if err != nil {
				return "", err
			}
			return commit.String(), nil
		},
		failover.StepCheckpoint: func(ctx context.Context) (string, error) {
			return failover.Checkpoint(ctx, a.o.Server, a.o.PromoteTimeout)
		},
		failover.StepPublish: func(ctx context.Context) (string, error) {
			ev, err := a.publish(ctx, commit)
			if err == nil {
				a.leaderProgress(true, &commit, "failover done: writable primary published")
			}
			return ev, err
		},
		failover.StepRoutesUp:       failover.Do(a.routesUpIfLeader, "routes up: "+a.routeNames()),
		failover.StepStandbysFollow: func(ctx context.Context) (string, error) { return a.standbysFollow(ctx, view) },

		failover.DoForceRoutesUp:   failover.Do(a.forceRoutesUp, "legacy order: routes up before the promotion"),
		failover.DoRequestPromote:  failover.Do(func(ctx context.Context) error { return a.o.Control.RequestPromote(ctx) }, "promote requested (not waited for)"),
		failover.StepLivenessCheck: failover.Do(func(ctx context.Context) error { return a.o.Server.CheckAlive(ctx) }, "select 33333 answered: declared ready"),
	}
}

// isolationGuard checks again, just before the point of no return, what
// the decision saw: the DCS answers, nobody holds the key, a trusted
// address answers.
func (a *Agent) isolationGuard(ctx context.Context) (string, error) {
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
// still in recovery (a previous attempt was interrupted): the plan from
// the synchronous setting on.
func (a *Agent) completePromotion(ctx context.Context, view dcs.View) {
	rec := a.newRecord(ctx, "promotion", "")
	ok := a.runPlan(ctx, rec, view, a.plan().From(failover.StepSynchronous))
	record := rec.Finish(ok, "leader still in recovery")
	a.saveHistory(ctx, record)
	a.log.Info("promotion finished", "ok", ok, "timeline", "\n"+timeline.Format(record))
}

// promote promotes the server and waits until it has left recovery.
func (a *Agent) promote(ctx context.Context) (string, error) {
	srv := a.o.Server
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
	return failover.PromotedEvidence(before, after), nil
}

// publish publishes "writable primary": the signal routers wait for.
func (a *Agent) publish(ctx context.Context, commit database.ProbeResult) (string, error) {
	obs, err := a.o.Server.Observe(ctx)
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
}

func (a *Agent) routeNames() string {
	names := make([]string, len(a.o.Routers))
	for i, r := range a.o.Routers {
		names[i] = r.Name()
	}
	return strings.Join(names, ", ")
}

// standbysFollow: the other standbys follow the leader key on their own
// loops; they need their slots here first.
func (a *Agent) standbysFollow(ctx context.Context, view dcs.View) (string, error) {
	a.ensureSlots(ctx, view)
	others := a.others(view)
	if len(others) == 0 {
		return "no other members", nil
	}
	return "replication slots ready for " + strings.Join(others, ", ") + "; they follow the new leader on their next loop", nil
}

// others are the members other than this node, sorted.
func (a *Agent) others(view dcs.View) []string {
	var others []string
	for name := range view.Members {
		if name != a.o.Node {
			others = append(others, name)
		}
	}
	sort.Strings(others)
	return others
}

// readinessGate repeats a real write until one commits (failover.Gate).
// In strict mode not even the gate's own write may be acknowledged before
// a standby has it (syncReady: prepareSynchronous made sure of that, else
// the gate does); in "on" mode a commit that waits for a synchronous
// standby that is not there yet goes asynchronous rather than block.
func (a *Agent) readinessGate(ctx context.Context, rec *timeline.Recorder, view dcs.View, syncReady bool) (database.ProbeResult, error) {
	if a.o.Decision.SyncMode == decision.SyncStrict && !syncReady {
		// Any member that follows will do.
		if others := a.others(view); len(others) > 0 {
			sctx, scancel := context.WithTimeout(ctx, a.o.DBTimeout)
			err := a.o.Server.SetSynchronous(sctx, others...)
			scancel()
			if err != nil {
				return database.ProbeResult{}, fmt.Errorf("strict synchronous mode: %w", err)
			}
		}
	}
	g := failover.Gate{
		Server:       a.o.Server,
		Clock:        a.clock,
		Timeout:      a.o.ReadinessTimeout,
		ProbeTimeout: a.o.DBTimeout,
		Poll:         gatePollInterval,
		Probed: func(r database.ProbeResult) {
			a.leaderProgress(false, &r, "failover in progress: readiness gate, waiting for a write to commit")
		},
		Report: func(p failover.Progress) bool {
			if !p.Refusing() {
				return false
			}
			a.log.Warn("readiness gate: writes still refused", "class", p.Last.Class, "replay_backlog_bytes", p.Last.ReplayBacklogBytes, "attempts", p.Attempts)
			return true
		},
	}
	if a.o.Decision.SyncMode == decision.SyncOn {
		g.ToAsync = func(ctx context.Context, why string) bool {
			_ = rec.Run(failover.StepSyncToAsync, func() (string, error) {
				sctx, scancel := context.WithTimeout(ctx, a.o.DBTimeout)
				defer scancel()
				if err := a.o.Server.SetAsync(sctx); err != nil {
					return "", err
				}
				return why + ": synchronous_standby_names cleared", nil
			})
			return true
		}
	}
	p, err := g.Wait(ctx)
	if err != nil {
		return p.Last, err
	}
	if p.Refused > 0 {
		a.log.Info("readiness gate passed", "attempts", p.Attempts, "refused", p.Refused)
	}
	return p.Last, nil
}

// prepareSynchronous makes, before the promotion, the synchronous setting
// the new primary's first commits need, so that no round trip to the
// promoted server is left for after the gate. In "on" (and "off") mode
// that is none: no standby streams from this node yet, so a commit that
// waited for one would hang; the main loop re-adds standbys as they catch
// up. A standby's agent keeps that setting ready (decision: a standby
// clears synchronous_standby_names), so this is usually a check. In
// "strict" mode commits wait for any other member, from the first one on.
func (a *Agent) prepareSynchronous(ctx context.Context, view dcs.View) (string, error) {
	sctx, cancel := context.WithTimeout(ctx, a.o.DBTimeout)
	defer cancel()
	// The loop run that started this procedure has just read the setting;
	// nothing but this agent changes it since.
	current, seen := a.observed.SyncStandbys, "as read by this loop run"
	if !a.observed.Reachable {
		obs, err := a.o.Server.Observe(sctx)
		if err != nil {
			return "", err
		}
		current, seen = database.ParseSyncStandbyNames(obs.SynchronousStandbyNames), "as read now"
	}
	if a.o.Decision.SyncMode == decision.SyncStrict {
		others := a.others(view)
		if len(others) == 0 {
			return "strict: no other member to wait for", nil
		}
		list := strings.Join(others, ", ")
		if slices.Equal(slices.Sorted(slices.Values(current)), others) {
			return "strict: commits wait for any of " + list + " (set already, " + seen + ")", nil
		}
		if err := a.o.Server.SetSynchronous(sctx, others...); err != nil {
			return "", fmt.Errorf("strict synchronous mode: %w", err)
		}
		return "strict: commits wait for any of " + list, nil
	}
	if len(current) == 0 {
		return "asynchronous, made ready while a standby (" + seen + "): the first commits wait for no standby", nil
	}
	if err := a.o.Server.SetAsync(sctx); err != nil {
		return "", err
	}
	return fmt.Sprintf("synchronous_standby_names %q cleared before the promotion (%s): no standby streams from this node yet", strings.Join(current, ", "), seen), nil
}

// probeRoutes checks, while the server promotes, that no other host holds
// a route's address (a VIP's duplicate-address probe), so that the routes
// come up after the gate without waiting for that check.
func (a *Agent) probeRoutes(ctx context.Context) (string, error) {
	var evidence []string
	for _, r := range a.o.Routers {
		p, ok := r.(Prober)
		if !ok {
			continue
		}
		ev, err := p.Probe(ctx)
		if err != nil {
			return strings.Join(evidence, "; "), fmt.Errorf("probe %s: %w", r.Name(), err)
		}
		evidence = append(evidence, r.Name()+": "+ev)
	}
	if len(evidence) == 0 {
		return "no route needs a probe", nil
	}
	return strings.Join(evidence, "; "), nil
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
