package agent

import (
	"context"
	"time"

	"github.com/vigil-ha/vigil/internal/control"
	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
	"github.com/vigil-ha/vigil/internal/pgctl"
)

// restartStore is the store of an agent that takes part in rolling
// restarts (a *dcs.Store).
type restartStore interface {
	ReplaceRestart(ctx context.Context, p *dcs.RestartPlan, revision int64, recordAt time.Time, record any) error
}

// rollingRestart plays this agent's part in a rolling restart (`vigil ctl
// restart`): the leader advances the plan (control.NextRestartStep) and
// asks for the switchover of its own turn; a standby whose turn it is
// restarts its own server.
func (a *Agent) rollingRestart(ctx context.Context, v dcs.View, l decision.Local) {
	p := v.Restart
	store, ok := a.o.Store.(restartStore)
	if p == nil || !ok {
		return
	}
	if a.lease.holding() && l.Writable && v.Leader == a.o.Node {
		a.advanceRestart(ctx, store, v, l)
		return
	}
	a.mu.Lock()
	done := a.restarted == p.ID
	a.mu.Unlock()
	if p.Current != a.o.Node || p.Phase != dcs.RestartPhaseRestart || done || l.Role() != decision.RoleStandby {
		return
	}
	by := p.Actor.OrUnknown()
	a.log.Info("rolling restart: this member's turn, restarting its server", "plan", p.ID, "requested_by", by.By, "requested_from", by.From)
	rctx, cancel := context.WithTimeout(ctx, a.o.PromoteTimeout)
	defer cancel()
	if err := a.o.Server.Stop(rctx, pgctl.Fast); err != nil {
		a.log.Error("rolling restart: stop (retried next loop)", "plan", p.ID, "err", err)
		return
	}
	if err := a.o.Server.Start(rctx); err != nil {
		// The rules for a stopped standby start it again.
		a.log.Error("rolling restart: start", "plan", p.ID, "err", err)
	}
	a.mu.Lock()
	a.restarted = p.ID
	a.settings.pendingReadAt = time.Time{}
	a.mu.Unlock()
	a.log.Info("rolling restart: server restarted", "plan", p.ID)
}

// advanceRestart is the leader's step of the plan.
func (a *Agent) advanceRestart(ctx context.Context, store restartStore, v dcs.View, l decision.Local) {
	p := *v.Restart
	now := a.clock.Now()
	step := control.NextRestartStep(v, l.StreamingStandbys, now)
	if step.Kind == control.RestartWait {
		a.mu.Lock()
		changed := a.restartWaiting != step.Reason
		a.restartWaiting = step.Reason
		a.mu.Unlock()
		if changed {
			a.log.Info("rolling restart: waiting", "plan", p.ID, "reason", step.Reason)
		}
		return
	}
	if step.Kind == control.RestartSwitchover && v.Request != nil {
		return // another operation first
	}
	ctx, cancel := context.WithTimeout(ctx, a.o.DCSTimeout)
	defer cancel()
	rec := control.RestartRecord(a.o.Cluster, p, step.Node, now, "rolling restart "+step.Kind+": "+step.Reason)
	if err := store.ReplaceRestart(ctx, control.Advanced(p, step, now), v.RestartRevision, now, rec); err != nil {
		a.log.Warn("rolling restart: advance the plan (retried next loop)", "plan", p.ID, "step", step.Kind, "err", err)
		return
	}
	a.log.Info("rolling restart", "plan", p.ID, "step", step.Kind, "node", step.Node, "reason", step.Reason)
	if step.Kind == control.RestartSwitchover {
		r := dcs.Request{Kind: decision.RequestSwitchover, From: a.o.Node, Created: now, Actor: p.Actor}
		if err := a.o.Store.SetRequest(ctx, r); err != nil {
			a.log.Warn("rolling restart: request the switchover (asked again later)", "plan", p.ID, "err", err)
		}
	}
}
