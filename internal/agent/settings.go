package agent

import (
	"context"
	"slices"
	"time"

	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
	"github.com/vigil-ha/vigil/internal/pgparam"
)

// ParameterServer is what the agent needs to apply the cluster-wide
// PostgreSQL parameters to its server (a *database.Server).
type ParameterServer interface {
	ParameterSpecs(ctx context.Context) (version string, specs []pgparam.Spec, err error)
	ApplyParameters(ctx context.Context, set map[string]string, reset []string) error
	PendingRestart(ctx context.Context) ([]string, error)
}

// catalogPublisher is the store of an agent that publishes its leader's
// parameter catalog (a *dcs.Store).
type catalogPublisher interface {
	PublishCatalog(ctx context.Context, c dcs.Catalog) error
}

// settingsState is what the agent knows of the cluster-wide settings on
// its server; guarded by Agent.mu.
type settingsState struct {
	// applied is the revision of the settings key last applied.
	applied int64
	// pending are the parameters waiting for a restart, read at
	// pendingReadAt.
	pending       []string
	pendingReadAt time.Time
	// catalogPublished: this agent, as leader, published its catalog.
	catalogPublished bool
	// timingWarned is the settings revision whose timing was reported as
	// differing from the agent's own.
	timingWarned int64
}

// syncSettings brings the server's parameters to the cluster's settings
// when they changed, reads its pending restarts, and, on the leader,
// publishes the parameter catalog edits are checked against.
func (a *Agent) syncSettings(ctx context.Context, v dcs.View, l decision.Local) {
	ps := a.o.Parameters
	if ps == nil || !l.Reachable {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, a.o.DBTimeout)
	defer cancel()
	a.mu.Lock()
	st := a.settings
	a.mu.Unlock()
	a.noticeTimingChange(v)
	if v.SettingsRevision != st.applied {
		if err := ps.ApplyParameters(ctx, v.Settings.Parameters, v.Settings.Removed); err != nil {
			a.log.Warn("apply cluster-wide parameters (retried next loop)", "revision", v.SettingsRevision, "err", err)
		} else {
			by := v.Settings.ChangedBy.OrUnknown()
			a.log.Info("cluster-wide parameters applied", "revision", v.SettingsRevision, "parameters", len(v.Settings.Parameters),
				"reset", v.Settings.Removed, "changed_by", by.By, "changed_at", v.Settings.ChangedAt)
			st.applied = v.SettingsRevision
			st.pendingReadAt = time.Time{}
		}
	}
	// pending_restart changes only at a reload or a restart: read it again
	// after an apply, and otherwise now and then (an operator's reload, a
	// restart).
	if now := a.clock.Now(); now.Sub(st.pendingReadAt) >= a.o.Decision.LeaseTTL {
		if pending, err := ps.PendingRestart(ctx); err != nil {
			a.log.Debug("read pending restarts", "err", err)
		} else {
			if !slices.Equal(pending, st.pending) {
				a.log.Info("parameters pending restart", "parameters", pending)
			}
			st.pending, st.pendingReadAt = pending, now
		}
	}
	if !st.catalogPublished && a.lease.holding() {
		st.catalogPublished = a.publishCatalog(ctx, ps)
	}
	a.mu.Lock()
	st.timingWarned = a.settings.timingWarned
	a.settings = st
	a.mu.Unlock()
}

func (a *Agent) publishCatalog(ctx context.Context, ps ParameterServer) bool {
	pub, ok := a.o.Store.(catalogPublisher)
	if !ok {
		return true
	}
	version, specs, err := ps.ParameterSpecs(ctx)
	if err == nil {
		err = pub.PublishCatalog(ctx, dcs.Catalog{Node: a.o.Node, Version: version, Parameters: specs})
	}
	if err != nil {
		a.log.Warn("publish the parameter catalog (retried next loop)", "err", err)
		return false
	}
	a.log.Info("parameter catalog published", "server_version", version, "parameters", len(specs))
	return true
}

// noticeTimingChange reports, once per change, cluster-wide timing that
// differs from what this agent runs with: the agent reads it at start, as
// a node's file, so that the lease arithmetic never changes under a lease
// it holds.
func (a *Agent) noticeTimingChange(v dcs.View) {
	t, d := v.Settings.Timing, a.o.Decision
	if !t.IsSet() || t == (dcs.SharedTiming{LeaseTTL: d.LeaseTTL, LoopInterval: d.LoopInterval, DCSTimeout: d.DCSTimeout,
		MaximumLagOnFailover: d.MaximumLagOnFailover, SynchronousMode: string(d.SyncMode), PrimaryCrash: string(d.PrimaryCrash)}) {
		return
	}
	a.mu.Lock()
	warned := a.settings.timingWarned == v.SettingsRevision
	a.settings.timingWarned = v.SettingsRevision
	a.mu.Unlock()
	if !warned {
		a.log.Warn("cluster-wide timing differs from this agent's: it takes effect when the agent restarts",
			"lease_ttl", t.LeaseTTL, "loop_interval", t.LoopInterval, "dcs_timeout", t.DCSTimeout,
			"maximum_lag_on_failover", t.MaximumLagOnFailover, "synchronous_mode", t.SynchronousMode, "primary_crash", t.PrimaryCrash)
	}
}
