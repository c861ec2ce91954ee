package database

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
)

// versionRoleGrants is the first major version where the agent can run
// without superuser: GRANT ALTER SYSTEM ON PARAMETER and pg_checkpoint
// arrived in PostgreSQL 15. Before it, ALTER SYSTEM and CHECKPOINT need a
// superuser.
const versionRoleGrants = 15

// DefaultAgentRole is the role name `vigil setup-role` uses by default.
const DefaultAgentRole = "vigil"

// validRoleName keeps role names to lower-case unquoted identifiers: the
// same name then works in SQL, in pg_hba.conf and in the agent's
// configuration without quoting rules, and cannot break out of the literals
// the SQL below embeds it in. PostgreSQL reserves the pg_ prefix.
var validRoleName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

func checkRoleName(role string) error {
	if !validRoleName.MatchString(role) || strings.HasPrefix(role, "pg_") {
		return fmt.Errorf("role name %q: use at most 63 lower-case letters, digits and underscores, not starting with a digit or pg_", role)
	}
	return nil
}

// RoleGrant is one statement of the least-privilege setup, with the adapter
// calls that need it: the SQL printed for a DBA says why each grant is there.
type RoleGrant struct {
	// SQL is the statement, without a trailing semicolon.
	SQL string
	// Why names the adapter calls and statements that fail without it.
	Why string
	// Ops are the adapter operations (the Op constants) the server refuses
	// without it: a MissingGrantError names this statement for them.
	Ops []string
}

// RoleSQL returns the statements that create (or bring up to date) a
// non-superuser role holding exactly what the agent's adapter calls need on
// PostgreSQL major version (15, or a server_version_num such as 150004 or 90624).
// They are to be run by a superuser on the primary, in the database the
// agent connects to (function grants and the vigil schema are per database;
// the role and the parameter grants are cluster-wide); standbys get them
// through replication. Running them again is harmless. Before 15 there is
// no way to grant ALTER SYSTEM or CHECKPOINT, and the agent needs a
// superuser: an error says so.
//
// Not covered, deliberately: pg_rewind and pg_basebackup during a rejoin
// connect with their own accounts (rejoin.rewind.user, the replication
// user), and the CHECKPOINT a rejoin may run on the new primary uses the
// rewind account.
func RoleSQL(version int, role string) ([]RoleGrant, error) {
	major := version
	if version >= 1000 { // server_version_num: 90624, 150004

		major = version / 10000
	}
	if major < versionRoleGrants {
		return nil, fmt.Errorf("PostgreSQL %d: a non-superuser agent needs PostgreSQL 15 or later (GRANT ALTER SYSTEM ON PARAMETER and pg_checkpoint); run the agent as a superuser on this server", major)
	}
	if err := checkRoleName(role); err != nil {
		return nil, err
	}
	lit := quoteLiteral(role)
	table, err := heartbeatTable()
	if err != nil {
		return nil, err
	}
	return []RoleGrant{
		{
			SQL: fmt.Sprintf("DO $vigil$ BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = %s) THEN CREATE ROLE %s; END IF; END $vigil$", lit, role),
			Why: "the agent's own role; set its password with \\password " + role + " in psql, never on a command line",
		},
		{
			SQL: fmt.Sprintf("ALTER ROLE %s WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS REPLICATION", role),
			Why: "REPLICATION: pg_create_physical_replication_slot (EnsureSlot, a slot per standby on a new primary) requires it; pg_hba.conf need not allow this role replication connections, which keeps it from streaming WAL",
			Ops: []string{OpEnsureSlot},
		},
		{
			SQL: "GRANT pg_monitor TO " + role,
			Why: "Observe: primary_conninfo is readable only with pg_read_all_settings, and pg_stat_replication and pg_stat_wal_receiver show their state and positions only with pg_read_all_stats; pg_monitor holds both",
			Ops: []string{OpObserve},
		},
		{
			SQL: "GRANT pg_checkpoint TO " + role,
			Why: "Checkpoint: CHECKPOINT after a promotion or switchover",
			Ops: []string{OpCheckpoint},
		},
		{
			SQL: "GRANT EXECUTE ON FUNCTION pg_catalog.pg_promote(boolean, integer) TO " + role,
			Why: "Promote: pg_promote; without it promotion fails (the pg_ctl fallback is only for a server that refuses connections)",
			Ops: []string{OpPromote},
		},
		{
			SQL: "GRANT EXECUTE ON FUNCTION pg_catalog.pg_reload_conf() TO " + role,
			Why: "SetSynchronous, SetAsync and Follow: pg_reload_conf after ALTER SYSTEM",
			Ops: []string{OpReloadConf},
		},
		{
			SQL: "GRANT ALTER SYSTEM ON PARAMETER synchronous_standby_names, primary_conninfo, primary_slot_name TO " + role,
			Why: "SetSynchronous and SetAsync: ALTER SYSTEM SET synchronous_standby_names; Follow: ALTER SYSTEM SET primary_conninfo and primary_slot_name on a running standby",
			Ops: []string{OpAlterSystem(synchronousStandbyNames), OpAlterSystem("primary_conninfo"), OpAlterSystem("primary_slot_name")},
		},
		{
			SQL: "CREATE SCHEMA IF NOT EXISTS vigil AUTHORIZATION " + role,
			Why: "ProbeWrite: the write probe's heartbeat table lives in schema vigil",
			Ops: []string{OpProbeWrite},
		},
		{
			SQL: "ALTER SCHEMA vigil OWNER TO " + role,
			Why: "ProbeWrite: a schema made by an agent that ran as superuser changes hands",
			Ops: []string{OpProbeWrite},
		},
		{
			SQL: table,
			Why: "ProbeWrite: made here because creating it on first use would need CREATE on the database",
			Ops: []string{OpProbeWrite},
		},
		{
			SQL: "ALTER TABLE vigil.heartbeat OWNER TO " + role,
			Why: "ProbeWrite: the probe inserts and updates one row per node",
			Ops: []string{OpProbeWrite},
		},
	}, nil
}

// heartbeatTable is the CREATE TABLE of the probe's own schema statement, so
// that the setup and the probe cannot disagree on the table.
func heartbeatTable() (string, error) {
	for stmt := range strings.SplitSeq(heartbeatSchema, ";") {
		if stmt = strings.TrimSpace(stmt); strings.HasPrefix(stmt, "CREATE TABLE") {
			return stmt, nil
		}
	}
	return "", fmt.Errorf("no CREATE TABLE in the probe's heartbeat schema %q", heartbeatSchema)
}

// RoleNotGranted returns grants often given to HA agents that Vigil's
// adapter does not need, each with the reason, so that the printed SQL says
// why they are absent.
func RoleNotGranted() []string {
	return []string{
		"pg_signal_backend: no adapter call signals another session's backend",
		"ALTER SYSTEM ON PARAMETER synchronous_commit: the agent reads it, never sets it",
	}
}

// SCRAMVerifier computes what PostgreSQL stores for a scram-sha-256
// password (RFC 5802's StoredKey and ServerKey, PostgreSQL's format), so
// that the plain password never reaches the server or its logs.
func SCRAMVerifier(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("salt: %w", err)
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, scramIterations, sha256.Size)
	if err != nil {
		return "", fmt.Errorf("derive the SCRAM key: %w", err)
	}
	mac := func(msg string) []byte {
		m := hmac.New(sha256.New, salted)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	storedKey := sha256.Sum256(mac("Client Key"))
	enc := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", scramIterations, enc(salt), enc(storedKey[:]), enc(mac("Server Key"))), nil
}

// scramIterations is PostgreSQL's default scram_iterations.
const scramIterations = 4096

// RolePasswordSQL returns the ALTER ROLE that sets role's password as a
// scram-sha-256 verifier (RFC 5802, 7677) computed here, as psql's
// \password does: the password itself never reaches the server, so no
// statement log, statistics view or error message can show it. The
// password is used as given (no SASLprep): keep it to ASCII.
func RolePasswordSQL(role, password string) (string, error) {
	if err := checkRoleName(role); err != nil {
		return "", err
	}
	if password == "" {
		return "", fmt.Errorf("password for role %s: empty", role)
	}
	verifier, err := SCRAMVerifier(password)
	if err != nil {
		return "", fmt.Errorf("password for role %s: %w", role, err)
	}
	return fmt.Sprintf("ALTER ROLE %s PASSWORD %s", role, quoteLiteral(verifier)), nil
}
