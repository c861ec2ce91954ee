package database

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/vigil-ha/vigil/internal/wal"
)

// Observation is what one look at a server shows. A server that cannot be
// reached yields Reachable=false and the zero value for everything else.
type Observation struct {
	Node       string    `json:"node"`
	ObservedAt time.Time `json:"observed_at"`
	Reachable  bool      `json:"reachable"`
	InRecovery bool      `json:"in_recovery"`
	// ReadOnly is the session's transaction_read_only: true on a standby and
	// on a primary with default_transaction_read_only.
	ReadOnly bool   `json:"read_only"`
	Timeline uint32 `json:"timeline"`

	CurrentLSN  wal.LSN `json:"current_lsn"`  // primary: where it writes
	ReceivedLSN wal.LSN `json:"received_lsn"` // standby: flushed by the WAL receiver
	ReplayedLSN wal.LSN `json:"replayed_lsn"` // standby: applied by the startup process
	// ReplayPaused is true when replay was paused (pg_wal_replay_pause).
	ReplayPaused bool `json:"replay_paused"`
	// ReplayBacklogBytes is received minus replayed: the work a promotion has
	// to finish before the server can write. The seed incident's 35 s.
	ReplayBacklogBytes uint64 `json:"replay_backlog_bytes"`
	// LastReplayedAt is the commit time of the last replayed transaction.
	LastReplayedAt time.Time `json:"last_replayed_at,omitzero"`
	// UpstreamHost and UpstreamPort are where a standby is configured to
	// stream from (primary_conninfo), whether or not it is connected.
	UpstreamHost string `json:"upstream_host,omitempty"`
	UpstreamPort int    `json:"upstream_port,omitempty"`
	// WALReceiver is empty on a primary and on a standby that is not streaming.
	WALReceiver *WALReceiver `json:"wal_receiver,omitempty"`

	SynchronousStandbyNames string `json:"synchronous_standby_names"`
	SynchronousCommit       string `json:"synchronous_commit"`
	// WALSenderTimeout is wal_sender_timeout (0: disabled; -1: unknown). An
	// idle primary's keepalives come every half of it, and they are what
	// tells a standby that its upstream is alive.
	WALSenderTimeout time.Duration `json:"wal_sender_timeout"`
	Standbys         []Standby     `json:"standbys,omitempty"`

	SystemIdentifier string `json:"system_identifier"`
	ServerVersionNum int    `json:"server_version_num"`
	ServerVersion    string `json:"server_version"`
	// XLogNames: the server names WAL functions as before PostgreSQL 10
	// (KingbaseES V8R3); see Catalog.
	XLogNames bool `json:"xlog_names,omitempty"`
	// PromoteFunction: the server can be promoted over SQL (pg_promote).
	PromoteFunction bool `json:"promote_function"`
}

// WALReceiver is a standby's connection to its upstream.
type WALReceiver struct {
	Status      string `json:"status"`
	ReceivedTLI uint32 `json:"received_tli"`
	SenderHost  string `json:"sender_host"`
	SenderPort  int    `json:"sender_port"`
	SlotName    string `json:"slot_name"`
	// LastMessageAgeSec is how long ago the upstream last sent anything
	// (data or keepalive); -1 when unknown.
	LastMessageAgeSec float64 `json:"last_message_age_s"`
}

// Standby is one connected replica as its primary (or cascading upstream) sees it.
type Standby struct {
	ApplicationName string  `json:"application_name"`
	ClientAddr      string  `json:"client_addr"`
	State           string  `json:"state"`
	SentLSN         wal.LSN `json:"sent_lsn"`
	WriteLSN        wal.LSN `json:"write_lsn"`
	FlushLSN        wal.LSN `json:"flush_lsn"`
	ReplayLSN       wal.LSN `json:"replay_lsn"`
	SyncState       string  `json:"sync_state"`
	SyncPriority    int     `json:"sync_priority"`
	ReplayLagSec    float64 `json:"replay_lag_s"`
}

// Observe looks at the server once. A connection failure is returned as a
// *ConnectError together with an Observation that says Reachable=false.
func (s *Server) Observe(ctx context.Context) (Observation, error) {
	obs := Observation{Node: s.Name, ObservedAt: time.Now()}
	err := s.withConn(ctx, func(c *pgx.Conn) error {
		obs.Reachable = true
		return s.needs(OpObserve, s.observe(ctx, c, &obs))
	})
	if err != nil {
		return obs, fmt.Errorf("observe %s: %w", s.Name, err)
	}
	return obs, nil
}

func (s *Server) observe(ctx context.Context, c *pgx.Conn, obs *Observation) error {
	cat, err := s.catalog(ctx, c)
	if err != nil {
		return err
	}
	obs.XLogNames, obs.PromoteFunction = cat.XLogNames, cat.PromoteFunction
	var sysid int64
	var senderTimeout string
	err = c.QueryRow(ctx, s.sql(qServerState)).Scan(
		&obs.InRecovery, &obs.ReadOnly, &obs.ServerVersionNum, &obs.ServerVersion,
		&sysid, &obs.SynchronousStandbyNames, &obs.SynchronousCommit, &senderTimeout)
	if err != nil {
		return fmt.Errorf("read server state: %w", err)
	}
	obs.WALSenderTimeout = parseSettingDuration(senderTimeout, time.Millisecond)
	obs.SystemIdentifier = strconv.FormatUint(uint64(sysid), 10)
	if obs.InRecovery {
		if err := s.observeStandby(ctx, c, cat, obs); err != nil {
			return err
		}
	} else if err := s.observePrimary(ctx, c, cat, obs); err != nil {
		return err
	}
	return s.observeStandbys(ctx, c, cat, obs)
}

func (s *Server) observePrimary(ctx context.Context, c *pgx.Conn, cat Catalog, obs *Observation) error {
	var lsn, walfile string
	err := c.QueryRow(ctx, s.sqlFor(cat, qPrimaryPosition)).Scan(&lsn, &walfile)
	if err != nil {
		return fmt.Errorf("read current WAL position: %w", err)
	}
	if obs.CurrentLSN, err = wal.ParseLSN(lsn); err != nil {
		return err
	}
	// The first 8 hex digits of a WAL file name are its timeline.
	if len(walfile) >= 8 {
		tli, err := strconv.ParseUint(walfile[:8], 16, 32)
		if err != nil {
			return fmt.Errorf("timeline from WAL file name %q: %w", walfile, err)
		}
		obs.Timeline = uint32(tli)
	}
	return nil
}

func (s *Server) observeStandby(ctx context.Context, c *pgx.Conn, cat Catalog, obs *Observation) error {
	var received, replayed *string
	var replayedAt *time.Time
	var checkpointTLI int64
	var conninfo string
	err := c.QueryRow(ctx, s.sqlFor(cat, qRecoveryState)).Scan(
		&received, &replayed, &obs.ReplayPaused, &replayedAt, &checkpointTLI, &conninfo)
	if err != nil {
		return fmt.Errorf("read recovery state: %w", err)
	}
	if obs.ReceivedLSN, err = parseOptionalLSN(received); err != nil {
		return err
	}
	if obs.ReplayedLSN, err = parseOptionalLSN(replayed); err != nil {
		return err
	}
	if replayedAt != nil {
		obs.LastReplayedAt = *replayedAt
	}
	obs.ReplayBacklogBytes = obs.ReceivedLSN.Sub(obs.ReplayedLSN)
	obs.Timeline = uint32(checkpointTLI)
	// The conninfo may hold a password: only host and port leave this function.
	kv := ParseConninfo(conninfo)
	obs.UpstreamHost = kv["host"]
	obs.UpstreamPort, _ = strconv.Atoi(kv["port"])

	rows, err := c.Query(ctx, s.sqlFor(cat, qWALReceiver))
	if err != nil {
		return fmt.Errorf("read WAL receiver: %w", err)
	}
	receivers, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (WALReceiver, error) {
		var w WALReceiver
		var tli int64
		err := r.Scan(&w.Status, &tli, &w.SenderHost, &w.SenderPort, &w.SlotName, &w.LastMessageAgeSec)
		w.ReceivedTLI = uint32(tli)
		return w, err
	})
	if err != nil {
		return fmt.Errorf("read WAL receiver: %w", err)
	}
	if len(receivers) > 0 {
		obs.WALReceiver = &receivers[0]
		// The control file's timeline only moves at restartpoints; the
		// receiver knows the newest timeline as soon as it streams it.
		obs.Timeline = max(obs.Timeline, receivers[0].ReceivedTLI)
	}
	return nil
}

func (s *Server) observeStandbys(ctx context.Context, c *pgx.Conn, cat Catalog, obs *Observation) error {
	rows, err := c.Query(ctx, s.sqlFor(cat, qStandbys))
	if err != nil {
		return fmt.Errorf("read connected standbys: %w", err)
	}
	standbys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Standby, error) {
		var sb Standby
		var sent, write, flush, replay *string
		if err := r.Scan(&sb.ApplicationName, &sb.ClientAddr, &sb.State, &sent, &write, &flush, &replay,
			&sb.SyncState, &sb.SyncPriority, &sb.ReplayLagSec); err != nil {
			return sb, err
		}
		var err error
		for _, p := range []struct {
			dst *wal.LSN
			src *string
		}{{&sb.SentLSN, sent}, {&sb.WriteLSN, write}, {&sb.FlushLSN, flush}, {&sb.ReplayLSN, replay}} {
			if *p.dst, err = parseOptionalLSN(p.src); err != nil {
				return sb, err
			}
		}
		return sb, nil
	})
	if err != nil {
		return fmt.Errorf("read connected standbys: %w", err)
	}
	obs.Standbys = standbys
	return nil
}

// parseSettingDuration reads a time setting as SHOW prints it ("4s",
// "1min", "500ms", "0"); a bare number is in unit. Anything else (an
// empty value from a server without the setting) is -1: unknown.
func parseSettingDuration(v string, unit time.Duration) time.Duration {
	v = strings.TrimSpace(v)
	i := strings.IndexFunc(v, func(r rune) bool { return (r < '0' || r > '9') && r != '-' })
	num, suffix := v, ""
	if i >= 0 {
		num, suffix = v[:i], v[i:]
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	units := map[string]time.Duration{"": unit, "us": time.Microsecond, "ms": time.Millisecond, "s": time.Second,
		"min": time.Minute, "h": time.Hour, "d": 24 * time.Hour}
	u, ok := units[strings.TrimSpace(suffix)]
	if !ok {
		return -1
	}
	return time.Duration(n) * u
}
