package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
	"github.com/vigil-ha/vigil/internal/wal"
)

// observeLocal looks at this node's server: process, SQL state, and for a
// primary a real write.
func (a *Agent) observeLocal(ctx context.Context, view dcs.View) (decision.Local, *database.ProbeResult) {
	ctx, cancel := context.WithTimeout(ctx, a.o.DBTimeout)
	defer cancel()
	srv := a.o.Server
	l := decision.Local{Name: a.o.Node, Priority: a.o.Priority}
	if a.noData() {
		// Nothing to observe: the node is to be built.
		l.NoData = true
		a.mu.Lock()
		if a.downSince.IsZero() {
			a.downSince = a.clock.Now()
		}
		l.DownSince = a.downSince
		a.notStreamingSince, a.notStreamingFrom = time.Time{}, ""
		a.mu.Unlock()
		return l, nil
	}

	running, pid, err := a.o.Control.Status(ctx)
	if err != nil {
		a.log.Warn("server status", "err", err)
	}
	if running && !a.watchPostmaster(pid) {
		running = false // a zombie: see wakeups.exited
	}
	l.Running = running
	l.StandbyConfigured = a.o.Control.StandbyConfigured()

	var probe *database.ProbeResult
	if running {
		obs, oerr := srv.Observe(ctx)
		l.Reachable = obs.Reachable && oerr == nil
		if l.Reachable {
			l.InRecovery = obs.InRecovery
			l.Timeline = obs.Timeline
			l.SystemID = obs.SystemIdentifier
			l.SyncStandbys = database.ParseSyncStandbyNames(obs.SynchronousStandbyNames)
			for _, sb := range obs.Standbys {
				if sb.State == "streaming" {
					l.StreamingStandbys = append(l.StreamingStandbys, sb.ApplicationName)
				}
			}
			if obs.InRecovery {
				l.WAL = max(obs.ReceivedLSN, obs.ReplayedLSN)
				l.Replayed = obs.ReplayedLSN
				l.Upstream = memberAt(view, obs.UpstreamHost, obs.UpstreamPort)
				// Streaming proves the upstream alive only while it keeps
				// talking: a receiver cut off by a partition still says
				// "streaming" until wal_receiver_timeout. This server's
				// wal_sender_timeout stands for its upstream's: a cluster
				// shares its settings.
				if w := obs.WALReceiver; w != nil && w.Status == "streaming" && w.LastMessageAgeSec >= 0 {
					limit := a.o.Decision.UpstreamSilentAfter(obs.WALSenderTimeout)
					l.Streaming = limit == 0 || time.Duration(w.LastMessageAgeSec*float64(time.Second)) < limit
				}
				if view.Leader == "" && !l.Streaming && obs.UpstreamHost != "" {
					l.UpstreamIsPrimary = a.upstreamIsPrimary(ctx, obs.UpstreamHost, obs.UpstreamPort)
				}
			} else {
				l.WAL, l.Replayed = obs.CurrentLSN, obs.CurrentLSN
				a.checkSenderTimeout(obs.WALSenderTimeout)
				p := srv.ProbeWrite(ctx)
				probe = &p
				l.Writable = p.Writable()
				l.ProbeSyncWait = p.Class == database.ProbeSyncWait
				if !p.Writable() {
					a.log.Warn("write probe failed on the primary", "class", p.Class, "err", p.Error)
				}
			}
		} else if oerr != nil {
			a.log.Debug("observe", "err", oerr)
		}
	}
	if !running {
		// A stopped server still knows its history: the control file.
		if cd, err := a.o.Control.ControlData(ctx); err == nil {
			l.Timeline = cd.Timeline
			l.SystemID = cd.SystemID
			if lsn, err := wal.ParseLSN(cd.CheckpointLSN); err == nil {
				l.WAL = lsn
			}
		} else {
			a.log.Warn("read control file of the stopped server", "err", err)
		}
	}

	a.mu.Lock()
	if l.Running && l.Reachable {
		a.downSince = time.Time{}
	} else if a.downSince.IsZero() {
		a.downSince = a.clock.Now()
	}
	l.DownSince = a.downSince
	// The clock restarts when the standby is pointed at another upstream:
	// it gets its retries against the new one.
	switch {
	case l.Role() != decision.RoleStandby || l.Streaming:
		a.notStreamingSince, a.notStreamingFrom = time.Time{}, ""
	case a.notStreamingSince.IsZero() || a.notStreamingFrom != l.Upstream:
		a.notStreamingSince, a.notStreamingFrom = a.clock.Now(), l.Upstream
	}
	l.NotStreamingSince = a.notStreamingSince
	a.mu.Unlock()
	return l, probe
}

// noData reports whether this node's data directory holds no cluster
// (only an agent with a Builder asks).
func (a *Agent) noData() bool {
	if a.o.Builder == nil {
		return false
	}
	none, err := a.o.Builder.NoData()
	if err != nil {
		a.log.Warn("look at the data directory", "err", err)
		return false
	}
	return none
}

// upstreamIsPrimary asks the upstream directly, within what is left of the
// observation's database timeout (ctx): no answer counts as "not a
// primary" (a hung server is ended by its own agent, a dead one answers
// nothing).
func (a *Agent) upstreamIsPrimary(ctx context.Context, host string, port int) bool {
	primary, err := a.o.Server.PeerIsPrimary(ctx, host, port)
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "28"): // invalid authorization
		// The upstream answered but refused the agent's role: the check
		// is off, silence alone decides. Say so once, loudly.
		a.mu.Lock()
		warned := a.peerLoginWarned
		a.peerLoginWarned = true
		a.mu.Unlock()
		if !warned {
			a.log.Warn("cannot ask the upstream whether it still runs as a primary: its server refuses this agent's role; allow the role from the cluster's hosts in pg_hba.conf, or a frozen primary's agent may cost a second primary",
				"upstream", fmt.Sprintf("%s:%d", host, port), "err", err)
		}
	case err != nil:
		a.log.Debug("upstream check", "err", err)
	}
	return primary
}

// memberAt names the member whose database listens at host:port.
func memberAt(v dcs.View, host string, port int) string {
	for name, m := range v.Members {
		if m.Host == host && m.Port == port {
			return name
		}
	}
	return ""
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, os.ErrNotExist)
}

// memberRecord is what this agent publishes about its node.
func (a *Agent) memberRecord(l decision.Local, isolated bool) dcs.Member {
	a.mu.Lock()
	pending, applied, restarted := a.settings.pending, a.settings.applied, a.restarted
	a.mu.Unlock()
	return dcs.Member{
		Member: decision.Member{
			Name: l.Name, Role: l.Role(), Reachable: l.Reachable, InRecovery: l.InRecovery,
			Writable: l.Writable && a.lease.holding(), Timeline: l.Timeline, WAL: l.WAL, Replayed: l.Replayed,
			Priority: l.Priority, Isolated: isolated, SystemID: l.SystemID, Upstream: l.Upstream,
		},
		Host: a.o.Host, Port: a.o.Port, APIURL: a.o.APIURL, UpdatedAt: a.clock.Now(),
		ConfigDigest: a.o.ConfigDigest, Version: a.o.Version, Phase: a.buildPhase(l), Clone: a.cloneProgressNow(),
		PendingRestart: pending, SettingsApplied: applied, Restarted: restarted,
	}
}

// buildPhase is the member's phase: the build under way, or "empty" for a
// node waiting to be built.
func (a *Agent) buildPhase(l decision.Local) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.phase == "" && l.NoData {
		return "empty"
	}
	return a.phase
}

func (a *Agent) cloneProgressNow() *dcs.CloneProgress {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cloneProgress == nil {
		return nil
	}
	p := *a.cloneProgress
	return &p
}

func (a *Agent) publishMember(ctx context.Context, l decision.Local, isolated bool) {
	ctx, cancel := context.WithTimeout(ctx, a.o.DCSTimeout)
	defer cancel()
	if err := a.o.Store.PublishMember(ctx, a.memberRecord(l, isolated)); err != nil {
		a.log.Warn("publish member state", "err", err)
	}
}

// checkSenderTimeout warns, once per agent run, when the primary's
// keepalives are so rare that they slow failover down: with no WAL
// flowing, a standby hears from its upstream every wal_sender_timeout/2,
// so it waits that long plus a lease TTL of silence before it counts an
// unreachable primary gone (decision.Config.UpstreamSilentAfter). With
// PostgreSQL's default (60 s), a primary cut off from its standbys is
// replaced only after about half a minute.
func (a *Agent) checkSenderTimeout(t time.Duration) {
	limit := 2 * a.o.Decision.LeaseTTL
	if t < 0 || t > 0 && t < limit { // unknown, or short enough
		return
	}
	a.mu.Lock()
	warned := a.senderTimeoutWarned
	a.senderTimeoutWarned = true
	a.mu.Unlock()
	if !warned {
		a.log.Warn("wal_sender_timeout is long for the lease: a standby waits wal_sender_timeout/2 + lease_ttl of silence before it replaces an unreachable primary; set it below 2 x lease_ttl",
			"wal_sender_timeout", t, "below", limit, "failover_waits", a.o.Decision.UpstreamSilentAfter(t))
	}
}
