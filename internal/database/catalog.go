package database

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Catalog is the set of names a server's SQL interface uses for WAL
// positions. PostgreSQL 10 renamed "xlog" to "wal" and "location" to "lsn"
// (pg_current_xlog_location became pg_current_wal_lsn, pg_stat_replication's
// sent_location became sent_lsn, ...). KingbaseES V8R3, built on 9.6, has
// the old names with its sys_ prefix; V8R6 the new ones. Vigil asks the
// server which it has rather than trusting its version number, which a fork
// may number its own way.
type Catalog struct {
	// XLogNames is true on a server with the pre-10 names.
	XLogNames bool
	// VersionNum is server_version_num: what a name cannot tell (the WAL
	// receiver's sender_host appeared in 11).
	VersionNum int
	// PromoteFunction is true when the server has pg_promote (12 or later;
	// sys_promote in KingbaseES V8R6, none in V8R3).
	PromoteFunction bool
}

// versionWALReceiverSender is the first version whose pg_stat_wal_receiver
// says which host it streams from.
const versionWALReceiverSender = 110000

// qCatalog asks which functions the server has, by name: to_regproc (9.4 or
// later) answers NULL instead of failing.
const qCatalog = `select to_regproc('{{pg_current_wal_lsn}}') is null, current_setting('server_version_num')::int,
	to_regproc('{{pg_promote}}') is not null`

// XLogName returns the pre-10 name of a function or view column whose name
// changed in PostgreSQL 10, and false for any other name.
func XLogName(name string) (string, bool) {
	switch name {
	case "pg_current_wal_lsn":
		return "pg_current_xlog_location", true
	case "pg_last_wal_receive_lsn":
		return "pg_last_xlog_receive_location", true
	case "pg_last_wal_replay_lsn":
		return "pg_last_xlog_replay_location", true
	case "pg_is_wal_replay_paused":
		return "pg_is_xlog_replay_paused", true
	case "pg_wal_replay_pause":
		return "pg_xlog_replay_pause", true
	case "pg_wal_replay_resume":
		return "pg_xlog_replay_resume", true
	case "pg_walfile_name":
		return "pg_xlogfile_name", true
	case "pg_wal_lsn_diff":
		return "pg_xlog_location_diff", true
	case "sent_lsn", "write_lsn", "flush_lsn", "replay_lsn":
		return strings.TrimSuffix(name, "_lsn") + "_location", true
	}
	return "", false
}

// catalog asks the server on c which names it has, the first time only.
func (s *Server) catalog(ctx context.Context, c *pgx.Conn) (Catalog, error) {
	if seen := s.catalogSeen.Load(); seen != nil {
		return *seen, nil
	}
	var cat Catalog
	if err := c.QueryRow(ctx, s.sql(qCatalog)).Scan(&cat.XLogNames, &cat.VersionNum, &cat.PromoteFunction); err != nil {
		return cat, fmt.Errorf("read the server's catalog names: %w", err)
	}
	s.catalogSeen.Store(&cat)
	return cat, nil
}

// sqlFor renames a statement for the server's catalog and then its flavor.
// Statements mark the view columns that changed as {{sent_lsn}} and so on,
// so that only what is marked is renamed.
func (s *Server) sqlFor(cat Catalog, stmt string) string {
	return s.Flavor.SQLRenamed(stmt, func(name string) string {
		switch {
		case cat.XLogNames && name == "replay_lag": // pg_stat_replication's lag columns came in 10
			return "null::interval"
		case cat.VersionNum < versionWALReceiverSender && name == "sender_host":
			return "null::text"
		case cat.VersionNum < versionWALReceiverSender && name == "sender_port":
			return "null::int"
		case cat.XLogNames:
			if old, ok := XLogName(name); ok {
				return old
			}
		}
		return name
	})
}
