package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
)

// execute carries out the decision's actions in order. A failed action is
// logged and the rest of the list is skipped: the next loop decides again
// from what is then true.
func (a *Agent) execute(ctx context.Context, out decision.Output, view dcs.View, local decision.Local) {
	defer func() { a.acting = nil }()
	for _, act := range out.Actions {
		a.startAction(view, act)
		if err := a.do(ctx, act, view, local, out.Reason); err != nil {
			a.log.Error("action failed", "action", act.Kind, "target", act.Target, "err", err)
			return
		}
	}
}

func (a *Agent) do(ctx context.Context, act decision.Action, view dcs.View, local decision.Local, reason string) error {
	dbCtx, cancel := context.WithTimeout(ctx, max(a.o.DBTimeout, 30*time.Second))
	defer cancel()
	switch act.Kind {
	case decision.RenewLeader:
		// The lease keeper renews on its own goroutine; the main loop only
		// adds what a leader publishes each loop.
		return a.leaderHousekeeping(ctx, view, local)
	case decision.AcquireLeader:
		if a.lease.holding() {
			return nil
		}
		if err := a.acquireLeader(ctx); err != nil {
			return fmt.Errorf("acquire leader key: %w", err)
		}
		a.log.Info("leader key acquired", "reason", reason)
		return nil
	case decision.ReleaseLeader:
		if local.Role() != decision.RolePrimary || !local.Writable {
			// A standby is to replace this server; it must not come back
			// as a primary if the key is still free a moment from now.
			a.mu.Lock()
			a.gaveUpAt = a.clock.Now()
			a.mu.Unlock()
		}
		a.lease.release(ctx)
		a.log.Info("leader key released", "reason", reason)
		return nil
	case decision.Failover:
		a.runFailover(ctx, view, reason)
		return nil
	case decision.CompletePromotion:
		if a.legacy() {
			return nil // the legacy script promoted once and never looked back
		}
		a.completePromotion(ctx, view)
		return nil
	case decision.Demote:
		return a.demote(ctx, reason)
	case decision.StartStandby:
		if act.Target != "" {
			up, err := a.upstream(view, act.Target)
			if err != nil {
				return err
			}
			return a.o.Server.Follow(dbCtx, up)
		}
		return a.o.Server.Start(dbCtx)
	case decision.RestartPrimary, decision.StartPrimary:
		return a.o.Server.Start(dbCtx)
	case decision.Follow:
		up, err := a.upstream(view, act.Target)
		if err != nil {
			return err
		}
		if err := a.o.Server.Follow(dbCtx, up); err != nil {
			return err
		}
		a.log.Info("following the leader", "leader", act.Target, "upstream", fmt.Sprintf("%s:%d", up.Host, up.Port))
		return nil
	case decision.PublishWritable:
		return a.publishWritable(ctx, view, local)
	case decision.WithdrawWritable:
		if a.legacy() && a.lease.holding() {
			// The seed's script never took the VIP back from a leader
			// that could not write.
			return nil
		}
		a.routesDown(ctx, reason)
		if view.Primary != nil && view.Primary.Node == a.o.Node {
			wctx, cancel := context.WithTimeout(ctx, a.o.DCSTimeout)
			defer cancel()
			return a.o.Store.WithdrawPrimary(wctx, a.o.Node)
		}
		return nil
	case decision.ClearRequest:
		if r := view.Request; r != nil {
			// Done, refused or expired: the reason says which.
			by := r.Actor.OrUnknown()
			a.log.Info("operator's request cleared", "request", r.Kind, "to", r.To, "reason", reason,
				"requested_by", by.By, "requested_from", by.From)
		}
		a.clearRequest(ctx, view)
		return nil
	case decision.Switchover:
		a.runSwitchover(ctx, view, act.Target, reason)
		return nil
	case decision.Rejoin:
		return a.runRejoin(ctx, view, act.Target, reason)
	case decision.Reinit:
		return a.runReinit(ctx, view, act.Target, reason)
	case decision.Bootstrap:
		return a.runBootstrap(ctx, view, reason)
	case decision.Clone:
		return a.runClone(ctx, view, act.Target, reason)
	case decision.SetSyncKey:
		wctx, cancel := context.WithTimeout(ctx, a.o.DCSTimeout)
		defer cancel()
		if err := a.o.Store.SetSync(wctx, act.Names); err != nil {
			return err
		}
		a.log.Info("synchronous standby set recorded", "standbys", act.Names)
		return nil
	case decision.SetSyncStandbys:
		if len(act.Names) == 0 {
			if err := a.o.Server.SetAsync(dbCtx); err != nil {
				return err
			}
			if local.Role() == decision.RolePrimary {
				a.log.Warn("replication is now asynchronous: no synchronous standby", "reason", reason)
			} else {
				a.log.Info("synchronous_standby_names cleared, ready for a promotion", "reason", reason)
			}
			return nil
		}
		if err := a.o.Server.SetSynchronous(dbCtx, act.Names...); err != nil {
			return err
		}
		a.log.Info("synchronous standbys set", "standbys", act.Names)
		return nil
	}
	return fmt.Errorf("unknown action %q", act.Kind)
}

// upstream is how this node's server reaches the leader's.
func (a *Agent) upstream(view dcs.View, leader string) (database.Upstream, error) {
	m, ok := view.Members[leader]
	if !ok || m.Host == "" {
		return database.Upstream{}, fmt.Errorf("leader %s has not published its address yet", leader)
	}
	return database.Upstream{Host: m.Host, Port: m.Port, User: a.o.ReplicationUser, PassFile: a.o.ReplicationPassFile, SlotName: a.o.Node}, nil
}

// leaderHousekeeping records the leader's WAL position (it bounds how far
// behind a future candidate may be) and keeps a replication slot for every
// member, so a standby that follows this primary finds its slot.
func (a *Agent) leaderHousekeeping(ctx context.Context, view dcs.View, local decision.Local) error {
	if local.Role() != decision.RolePrimary || !a.lease.holding() {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, a.o.DCSTimeout)
	defer cancel()
	if err := a.o.Store.SetStatus(wctx, dcs.Status{Leader: a.o.Node, WAL: local.WAL.String(), Timeline: local.Timeline, At: a.clock.Now()}); err != nil {
		return fmt.Errorf("record leader position: %w", err)
	}
	a.ensureSlots(ctx, view)
	a.keepEtcdLeaderAway(ctx)
	return nil
}

// etcdLeaderCheckEvery spaces the leader's etcd leadership checks: a
// transfer is rare (after an etcd election lands on this node), and each
// check costs two etcd requests.
const etcdLeaderCheckEvery = 5 * time.Second

// keepEtcdLeaderAway hands etcd's raft leadership to another member when
// this node's embedded member holds it, so that a crash of this node costs
// no etcd election on top of the lease expiry.
func (a *Agent) keepEtcdLeaderAway(ctx context.Context) {
	if a.o.EmbeddedEtcd == "" || a.legacy() {
		return
	}
	a.mu.Lock()
	due := a.clock.Now().Sub(a.etcdLeaderCheckedAt) >= etcdLeaderCheckEvery
	if due {
		a.etcdLeaderCheckedAt = a.clock.Now()
	}
	a.mu.Unlock()
	if !due {
		return
	}
	mctx, cancel := context.WithTimeout(ctx, a.o.DCSTimeout)
	defer cancel()
	to, err := a.o.Store.MoveEtcdLeaderFrom(mctx, a.o.EmbeddedEtcd)
	switch {
	case err != nil:
		a.log.Warn("keep etcd leadership off the primary's node", "err", err)
	case to != "":
		a.log.Info("etcd leadership handed over, so that a crash of this node costs no etcd election", "to", to)
	}
}

func (a *Agent) ensureSlots(ctx context.Context, view dcs.View) {
	for name := range view.Members {
		a.mu.Lock()
		made := a.slotsMade[name]
		a.mu.Unlock()
		if name == a.o.Node || made {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, a.o.DBTimeout)
		err := a.o.Server.EnsureSlot(sctx, name)
		cancel()
		if err != nil {
			a.log.Warn("replication slot", "member", name, "err", err)
			continue
		}
		a.mu.Lock()
		a.slotsMade[name] = true
		a.mu.Unlock()
	}
}

// publishWritable records this node as the writable primary in the DCS and
// only then brings the routes up: a router never points at a node that has
// not proved it can write.
func (a *Agent) publishWritable(ctx context.Context, view dcs.View, local decision.Local) error {
	if !local.Writable {
		return nil
	}
	if view.Primary == nil || view.Primary.Node != a.o.Node {
		wctx, cancel := context.WithTimeout(ctx, a.o.DCSTimeout)
		defer cancel()
		err := a.o.Store.PublishPrimary(wctx, dcs.Primary{Node: a.o.Node, Host: a.o.Host, Port: a.o.Port, Timeline: local.Timeline, Since: a.clock.Now(), CommitLSN: local.WAL.String()})
		if err != nil {
			return err
		}
		a.log.Info("published as writable primary", "timeline", local.Timeline)
	}
	return a.routesUpIfLeader(ctx)
}

func (a *Agent) routesUpIfLeader(ctx context.Context) error {
	if !a.lease.holding() {
		return nil
	}
	return a.forceRoutesUp(ctx)
}

// forceRoutesUp brings every route up unless it already is.
func (a *Agent) forceRoutesUp(ctx context.Context) error {
	a.mu.Lock()
	up := a.routesUp
	a.mu.Unlock()
	if up {
		return nil
	}
	for _, r := range a.o.Routers {
		if err := r.Up(ctx); err != nil {
			return fmt.Errorf("route %s up: %w", r.Name(), err)
		}
		a.log.Info("route up", "router", r.Name())
	}
	a.mu.Lock()
	a.routesUp = true
	a.mu.Unlock()
	return nil
}

// routesDown takes every route away; it is called before anything that may
// end this node's primary role.
func (a *Agent) routesDown(ctx context.Context, reason string) {
	a.mu.Lock()
	wasUp := a.routesUp
	a.routesUp = false
	// The health endpoint (/primary) is a route too, and it answers from
	// the status: without this it would say "writable" until the end of a
	// loop that is, say, stopping this server for a switchover.
	a.status.Writable = false
	a.mu.Unlock()
	for _, r := range a.o.Routers {
		if err := r.Down(ctx); err != nil {
			a.log.Error("route down", "router", r.Name(), "err", err)
		} else if wasUp {
			a.log.Warn("route down", "router", r.Name(), "reason", reason)
		}
	}
}

// demote takes the routes away and ends the server within the demotion
// budget of the lease arithmetic: an immediate shutdown, then SIGKILL of a
// server that does not stop (hung on a dead disk, or SIGSTOPped).
func (a *Agent) demote(ctx context.Context, reason string) error {
	a.routesDown(ctx, reason)
	ctx, cancel := context.WithTimeout(ctx, max(a.o.Decision.DemotionBudget(), time.Second)+time.Second)
	defer cancel()
	if err := a.o.Server.Halt(ctx, a.o.Decision.StopGrace()); err != nil {
		return fmt.Errorf("demote: %w", err)
	}
	a.log.Warn("demoted: database stopped", "reason", reason)
	return nil
}

// leaseLost is the lease keeper's verdict: the key is gone (notLeader) or
// could not be renewed for DemoteAfter. Without the DCS there is nothing to
// ask: demote now. When the DCS answered that the lease expired (this agent
// was paused longer than the TTL, say) and nobody took the key, the key is
// taken back first, atomically, so that no standby can promote while this
// agent checks whether its primary may keep the role.
func (a *Agent) leaseLost(reason string, notLeader bool) {
	ctx, cancel := context.WithTimeout(context.Background(), a.o.Decision.LeaseTTL)
	defer cancel()
	if notLeader {
		if err := a.acquireLeader(ctx); err != nil {
			reason += "; the key cannot be taken back: " + err.Error()
		} else if keep, why := a.mayKeepKey(ctx); keep {
			a.log.Warn("leader key taken back after the lease lapsed: nobody replaced this primary", "lapse", reason, "reason", why)
			return
		} else {
			reason += "; " + why
			defer a.lease.release(ctx)
		}
	}
	a.log.Error("demoting: "+reason, "node", a.o.Node)
	if err := a.demote(ctx, reason); err != nil {
		a.log.Error("emergency demote", "err", err)
	}
}

// mayKeepKey asks the decision core, with what is true now, whether this
// node would take a free key: the same rule as for any primary found
// running without a leader (newest history, running and answering).
func (a *Agent) mayKeepKey(ctx context.Context) (bool, string) {
	view, err := a.snapshot(ctx)
	if err != nil {
		return false, "DCS: " + err.Error()
	}
	local, _ := a.observeLocal(ctx, view)
	trusted, trustedLostAt := a.checkTrusted(ctx)
	a.mu.Lock()
	gaveUpAt := a.gaveUpAt
	a.mu.Unlock()
	cluster := clusterInput(view, true)
	cluster.Leader = "" // as it was before this agent took the key back
	out := a.o.Decide(decision.Input{Now: a.clock.Now(), Config: a.o.Decision, Self: local,
		TrustedReachable: trusted.Reachable, TrustedUnreachableSince: trustedLostAt, Cluster: cluster, GaveUpAt: gaveUpAt})
	if len(out.Actions) == 1 && out.Actions[0].Kind == decision.AcquireLeader {
		return true, out.Reason
	}
	return false, out.Reason
}
