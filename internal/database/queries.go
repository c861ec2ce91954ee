package database

// Every statement the adapter sends, written once for PostgreSQL with
// {{pg_name}} placeholders that Server.sql renames for the flavor, and
// Server.sqlFor also for the server's catalog (see Catalog): {{sent_lsn}}
// marks a column renamed in 10, {{replay_lag}} and {{sender_host}} columns
// that older servers lack. Keeping them together lets a test check every
// one of them for every flavor and catalog.
const (
	qServerState = `select {{pg_is_in_recovery}}(),
		current_setting('transaction_read_only')::bool,
		current_setting('server_version_num')::int,
		current_setting('server_version'),
		(select system_identifier from {{pg_control_system}}()),
		current_setting('synchronous_standby_names'),
		current_setting('synchronous_commit'),
		coalesce(current_setting('wal_sender_timeout', true), '')`
	qPrimaryPosition = `select {{pg_current_wal_lsn}}()::text, {{pg_walfile_name}}({{pg_current_wal_lsn}}())`
	qRecoveryState   = `select {{pg_last_wal_receive_lsn}}()::text,
		{{pg_last_wal_replay_lsn}}()::text,
		{{pg_is_wal_replay_paused}}(),
		{{pg_last_xact_replay_timestamp}}(),
		(select timeline_id from {{pg_control_checkpoint}}()),
		coalesce(current_setting('primary_conninfo', true), '')`
	qWALReceiver = `select status, coalesce(received_tli, 0), coalesce({{sender_host}}, ''),
		coalesce({{sender_port}}, 0), coalesce(slot_name, ''),
		coalesce(extract(epoch from now() - last_msg_receipt_time), -1)::float8 from {{pg_stat_wal_receiver}}`
	qStandbys = `select application_name, coalesce(client_addr::text, ''), state,
		{{sent_lsn}}::text, {{write_lsn}}::text, {{flush_lsn}}::text, {{replay_lsn}}::text,
		sync_state, sync_priority, coalesce(extract(epoch from {{replay_lag}}), 0)::float8
		from {{pg_stat_replication}} order by application_name`
	qRefusalReason = `select {{pg_is_in_recovery}}(), {{pg_last_wal_receive_lsn}}()::text, {{pg_last_wal_replay_lsn}}()::text`
	qRoleState     = `select {{pg_is_in_recovery}}(), current_setting('server_version_num')::int`
	qPromote       = `select {{pg_promote}}(true, $1)`
	qReloadConf    = `select {{pg_reload_conf}}()`
	qEnsureSlot    = `select {{pg_create_physical_replication_slot}}($1, true)
			where not exists (select 1 from {{pg_replication_slots}} where slot_name = $1)`
)

// allStatements lists every flavored statement, for tests.
func allStatements() map[string]string {
	return map[string]string{
		"qServerState":             qServerState,
		"qPrimaryPosition":         qPrimaryPosition,
		"qRecoveryState":           qRecoveryState,
		"qWALReceiver":             qWALReceiver,
		"qStandbys":                qStandbys,
		"qRefusalReason":           qRefusalReason,
		"qRoleState":               qRoleState,
		"qPromote":                 qPromote,
		"qReloadConf":              qReloadConf,
		"qEnsureSlot":              qEnsureSlot,
		"heartbeatWrite":           heartbeatWrite,
		"qCatalog":                 qCatalog,
		"qUpstreamControlTimeline": qUpstreamControlTimeline,
	}
}
