package database

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// adapterOps are the operations the adapter passes to needs.
var adapterOps = []string{
	OpObserve, OpProbeWrite, OpPromote, OpCheckpoint, OpEnsureSlot, OpReloadConf,
	OpAlterSystem(synchronousStandbyNames), OpAlterSystem("primary_conninfo"), OpAlterSystem("primary_slot_name"),
}

func TestGrantsForMapsEveryOperationToItsSetupStatement(t *testing.T) {
	tests := []struct {
		op   string
		want []string // the statements, in setup order
	}{
		{OpObserve, []string{"GRANT pg_monitor TO ha"}},
		{OpCheckpoint, []string{"GRANT pg_checkpoint TO ha"}},
		{OpPromote, []string{"GRANT EXECUTE ON FUNCTION pg_catalog.pg_promote(boolean, integer) TO ha"}},
		{OpReloadConf, []string{"GRANT EXECUTE ON FUNCTION pg_catalog.pg_reload_conf() TO ha"}},
		{OpEnsureSlot, []string{"ALTER ROLE ha WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS REPLICATION"}},
		{OpAlterSystem("synchronous_standby_names"), []string{"GRANT ALTER SYSTEM ON PARAMETER synchronous_standby_names, primary_conninfo, primary_slot_name TO ha"}},
		{OpAlterSystem("primary_conninfo"), []string{"GRANT ALTER SYSTEM ON PARAMETER synchronous_standby_names, primary_conninfo, primary_slot_name TO ha"}},
		{OpAlterSystem("primary_slot_name"), []string{"GRANT ALTER SYSTEM ON PARAMETER synchronous_standby_names, primary_conninfo, primary_slot_name TO ha"}},
		{OpProbeWrite, []string{
			"CREATE SCHEMA IF NOT EXISTS vigil AUTHORIZATION ha", "ALTER SCHEMA vigil OWNER TO ha",
			"CREATE TABLE IF NOT EXISTS vigil.heartbeat (", "ALTER TABLE vigil.heartbeat OWNER TO ha",
		}},
		// The agent never sets it (RoleNotGranted): nothing to name.
		{OpAlterSystem("synchronous_commit"), nil},
		{"Unknown", nil},
	}
	for _, tt := range tests {
		t.Run(tt.op, func(t *testing.T) {
			got := GrantsFor(tt.op, "ha")
			if len(got) != len(tt.want) {
				t.Fatalf("GrantsFor(%q) = %q, want %d statements %q", tt.op, got, len(tt.want), tt.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("GrantsFor(%q)[%d] = %q, want %q", tt.op, i, got[i], tt.want[i])
				}
			}
		})
	}
	if got := GrantsFor(OpCheckpoint, "Not A Valid Name"); got != nil {
		t.Errorf("a role RoleSQL refuses: %q, want none (no statement could be run as printed)", got)
	}
}

// Every grant of the setup is there for an operation of the adapter, and
// every operation the adapter names has a grant: a statement added to one
// list without the other fails here.
func TestEveryGrantHasAnOperationAndEveryOperationAGrant(t *testing.T) {
	grants, err := RoleSQL(15, "vigil")
	if err != nil {
		t.Fatal(err)
	}
	covered := map[string]bool{}
	for i, g := range grants {
		if i == 0 {
			// CREATE ROLE: without it there is no session to refuse.
			if len(g.Ops) != 0 {
				t.Errorf("%q names operations %q", g.SQL, g.Ops)
			}
			continue
		}
		if len(g.Ops) == 0 {
			t.Errorf("%q names no adapter operation that needs it", g.SQL)
		}
		for _, op := range g.Ops {
			if !slices.Contains(adapterOps, op) {
				t.Errorf("%q names %q, which the adapter never reports", g.SQL, op)
			}
			covered[op] = true
		}
	}
	for _, op := range adapterOps {
		if !covered[op] {
			t.Errorf("operation %q has no grant", op)
		}
	}
}

func TestNeedsNamesTheMissingGrant(t *testing.T) {
	s := &Server{Name: "node2", Conn: ConnConfig{User: "vigil"}}
	denied := &pgconn.PgError{Severity: "ERROR", Code: "42501", Message: "must be superuser or have privileges of pg_checkpoint to do CHECKPOINT"}

	err := s.needs(OpCheckpoint, fmt.Errorf("exec: %w", denied))
	var mg *MissingGrantError
	if !errors.As(err, &mg) {
		t.Fatalf("needs(42501) = %v, want a *MissingGrantError", err)
	}
	if mg.Op != OpCheckpoint || mg.Role != "vigil" || mg.Node != "node2" || !slices.Equal(mg.Grants, []string{"GRANT pg_checkpoint TO vigil"}) {
		t.Errorf("MissingGrantError = %+v", mg)
	}
	for _, want := range []string{"Checkpoint on node2", "role vigil", "`GRANT pg_checkpoint TO vigil`", "setup-role", denied.Message} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || sqlState(err) != "42501" {
		t.Errorf("the server's error is no longer reachable in %v", err)
	}
	if again := s.needs(OpCheckpoint, fmt.Errorf("outer: %w", err)); strings.Count(again.Error(), "lacks a privilege") != 1 {
		t.Errorf("wrapped twice: %v", again)
	}

	// Other errors, and none, pass unchanged.
	other := &pgconn.PgError{Code: "25006", Message: "cannot execute INSERT in a read-only transaction"}
	if err := s.needs(OpProbeWrite, other); err != other {
		t.Errorf("needs(25006) = %v, want it unchanged", err)
	}
	if err := s.needs(OpProbeWrite, nil); err != nil {
		t.Errorf("needs(nil) = %v", err)
	}

	// A role made by hand under a name RoleSQL refuses: still told where to look.
	s.Conn.User = "HA Agent"
	err = s.needs(OpPromote, denied)
	if !errors.As(err, &mg) || len(mg.Grants) != 0 || !strings.Contains(err.Error(), "vigil setup-role --print") {
		t.Errorf("needs for a hand-made role = %v", err)
	}
}

func TestRolePasswordSQLSendsAVerifierNotThePassword(t *testing.T) {
	const pw = "correct-horse-battery-staple"
	stmt, err := RolePasswordSQL("vigil", pw)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stmt, "ALTER ROLE vigil PASSWORD 'SCRAM-SHA-256$4096:") || strings.Contains(stmt, pw) {
		t.Errorf("RolePasswordSQL = %q", stmt)
	}
	again, _ := RolePasswordSQL("vigil", pw)
	if again == stmt {
		t.Error("two verifiers of one password share their salt")
	}
	for _, bad := range []struct{ role, pw string }{{"vigil; DROP ROLE x", pw}, {"vigil", ""}} {
		if _, err := RolePasswordSQL(bad.role, bad.pw); err == nil {
			t.Errorf("RolePasswordSQL(%q, %q) accepted", bad.role, bad.pw)
		}
	}
}

func TestSCRAMVerifierFormat(t *testing.T) {
	a, err := SCRAMVerifier("secret")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := SCRAMVerifier("secret")
	// SCRAM-SHA-256$4096:<24 chars of salt>$<44 chars>:<44 chars>
	if len(a) != len("SCRAM-SHA-256$4096:")+24+1+44+1+44 || a[:19] != "SCRAM-SHA-256$4096:" {
		t.Errorf("verifier %q is not in PostgreSQL's format", a)
	}
	if a == b {
		t.Error("two verifiers of one password are equal: the salt is not random")
	}
}
