package agent

import (
	"context"
	"errors"
	"os"
	"time"

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

	running, _, err := a.o.Control.Status(ctx)
	if err != nil {
		a.log.Warn("server status", "err", err)
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
				l.Upstream = memberAt(view, obs.UpstreamHost, obs.UpstreamPort)
				// Streaming proves the upstream alive only while it keeps
				// talking: a receiver cut off by a partition still says
				// "streaming" until wal_receiver_timeout.
				if w := obs.WALReceiver; w != nil && w.Status == "streaming" && w.LastMessageAgeSec >= 0 {
					l.Streaming = time.Duration(w.LastMessageAgeSec*float64(time.Second)) < a.o.Decision.LeaseTTL
				}
			} else {
				l.WAL = obs.CurrentLSN
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
	a.mu.Unlock()
	return l, probe
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
	return dcs.Member{
		Member: decision.Member{
			Name: l.Name, Role: l.Role(), Reachable: l.Reachable, InRecovery: l.InRecovery,
			Writable: l.Writable && a.lease.holding(), Timeline: l.Timeline, WAL: l.WAL,
			Priority: l.Priority, Isolated: isolated, SystemID: l.SystemID, Upstream: l.Upstream,
		},
		Host: a.o.Host, Port: a.o.Port, APIURL: a.o.APIURL, UpdatedAt: a.clock.Now(),
		ConfigDigest: a.o.ConfigDigest, Version: a.o.Version,
	}
}

func (a *Agent) publishMember(ctx context.Context, l decision.Local, isolated bool) {
	ctx, cancel := context.WithTimeout(ctx, a.o.DCSTimeout)
	defer cancel()
	if err := a.o.Store.PublishMember(ctx, a.memberRecord(l, isolated)); err != nil {
		a.log.Warn("publish member state", "err", err)
	}
}

// checkSenderTimeout warns, once per agent run, when the primary's
// keepalives are too rare for the standbys' "my upstream is alive" guard:
// with no WAL flowing, a standby hears from its upstream every
// wal_sender_timeout/2, and counts it alive only within a lease TTL. With
// PostgreSQL's default (60 s) an idle cluster fails over when the
// primary's agent freezes past its lease.
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
		a.log.Warn("wal_sender_timeout is too long for the lease: standbys of an idle primary whose agent froze cannot tell it is alive; set it below 2 x lease_ttl",
			"wal_sender_timeout", t, "below", limit)
	}
}
