package database_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/lab"
	"github.com/vigil-ha/vigil/internal/lab/labtest"
)

func TestRoleSQL(t *testing.T) {
	tests := []struct {
		name    string
		version int
		role    string
		wantErr string
		want    []string // statements that must be present, in this order
	}{
		{"15, default role", 15, "vigil", "", []string{
			"CREATE ROLE vigil;",
			"ALTER ROLE vigil WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS REPLICATION",
			"GRANT pg_monitor TO vigil",
			"GRANT pg_checkpoint TO vigil",
			"GRANT EXECUTE ON FUNCTION pg_catalog.pg_promote(boolean, integer) TO vigil",
			"GRANT EXECUTE ON FUNCTION pg_catalog.pg_reload_conf() TO vigil",
			"GRANT ALTER SYSTEM ON PARAMETER synchronous_standby_names, primary_conninfo, primary_slot_name TO vigil",
			"CREATE SCHEMA IF NOT EXISTS vigil AUTHORIZATION vigil",
			"ALTER SCHEMA vigil OWNER TO vigil",
			"CREATE TABLE IF NOT EXISTS vigil.heartbeat (",
			"ALTER TABLE vigil.heartbeat OWNER TO vigil",
		}},
		{"16 by server_version_num, other role", 160002, "ha_agent", "", []string{
			"rolname = 'ha_agent'", "GRANT pg_checkpoint TO ha_agent", "ALTER TABLE vigil.heartbeat OWNER TO ha_agent",
		}},
		{"14 needs a superuser", 14, "vigil", "needs PostgreSQL 15 or later", nil},
		{"14 by server_version_num", 140010, "vigil", "PostgreSQL 14:", nil},
		{"9.6 (KingbaseES V8R3's base)", 90624, "vigil", "run the agent as a superuser", nil},
		{"empty role", 15, "", `role name ""`, nil},
		{"upper case", 15, "Vigil", `role name "Vigil"`, nil},
		{"injection", 15, "vigil; DROP TABLE x", "role name", nil},
		{"reserved prefix", 15, "pg_vigil", "pg_", nil},
		{"too long", 15, strings.Repeat("v", 64), "at most 63", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			grants, err := database.RoleSQL(tt.version, tt.role)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var all strings.Builder
			for _, g := range grants {
				if g.Why == "" || strings.HasSuffix(g.SQL, ";") {
					t.Errorf("%q: want a reason and no trailing semicolon", g.SQL)
				}
				all.WriteString(g.SQL + "\n")
			}
			rest := all.String()
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("%q missing or out of order in\n%s", w, all.String())
				}
				rest = rest[i+len(w):]
			}
			if strings.Contains(strings.ToUpper(all.String()), "SUPERUSER ") && !strings.Contains(all.String(), "NOSUPERUSER") {
				t.Error("the role must not be a superuser")
			}
		})
	}
}

// TestLeastPrivilegeRoleRunsEveryAgentCall runs each adapter call the agent
// makes as the role RoleSQL sets up, on a real primary and standby, and then
// takes each grant away to show which call needs it.
func TestLeastPrivilegeRoleRunsEveryAgentCall(t *testing.T) {
	l := labtest.New(t, lab.Options{Nodes: 2})
	ctx := labtest.Context(t, 3*time.Minute)
	primary := labtest.Server(t, l, "node1")
	standby := labtest.Server(t, l, "node2")
	grants, err := database.RoleSQL(15, "vigil")
	if err != nil {
		t.Fatal(err)
	}
	setup := func() {
		for _, g := range grants {
			labtest.Exec(t, ctx, primary, g.SQL)
		}
	}
	setup()
	setup() // a second run changes nothing and fails nothing
	const password = "role-test-password"
	// A verifier, not the password, as `vigil setup-role` users are told to.
	setPassword, err := database.RolePasswordSQL("vigil", password)
	if err != nil {
		t.Fatal(err)
	}
	labtest.Exec(t, ctx, primary, setPassword)
	asRole := func(s *database.Server) *database.Server {
		return variant(s, func(c *database.ConnConfig) { c.User, c.Password = "vigil", password })
	}
	p, s := asRole(primary), asRole(standby)
	if got := labtest.QueryString(t, ctx, p, "select rolsuper::text from pg_roles where rolname = current_user"); got != "false" {
		t.Fatalf("the role is a superuser: %s", got)
	}
	labtest.WaitFor(t, ctx, "the role to reach the standby", func() bool {
		_, err := s.Observe(ctx)
		return err == nil
	})
	replUser, _, err := l.Replication()
	if err != nil {
		t.Fatal(err)
	}
	up := database.Upstream{Host: primary.Conn.Host, Port: primary.Conn.Port, User: replUser, PassFile: l.PassFile(), SlotName: "node2"}

	// Every call, with everything granted.
	calls := map[string]func(ctx context.Context) error{
		"Observe primary": func(ctx context.Context) error {
			o, err := p.Observe(ctx)
			if err == nil && (len(o.Standbys) != 1 || o.Standbys[0].FlushLSN == 0) {
				err = fmt.Errorf("standbys %+v: want node2 with its positions", o.Standbys)
			}
			return err
		},
		"Observe standby": func(ctx context.Context) error {
			o, err := s.Observe(ctx)
			if err == nil && (o.UpstreamPort != primary.Conn.Port || o.WALReceiver == nil) {
				err = fmt.Errorf("upstream port %d, receiver %+v: want primary_conninfo and the WAL receiver read", o.UpstreamPort, o.WALReceiver)
			}
			return err
		},
		"ProbeWrite":     func(ctx context.Context) error { return p.ProbeWrite(ctx).Err },
		"SetSynchronous": func(ctx context.Context) error { return p.SetSynchronous(ctx, "node2") },
		"SetAsync":       func(ctx context.Context) error { return p.SetAsync(ctx) },
		"Checkpoint":     func(ctx context.Context) error { return p.Checkpoint(ctx) },
		"EnsureSlot":     func(ctx context.Context) error { return p.EnsureSlot(ctx, "node2") },
		"Follow":         func(ctx context.Context) error { return s.Follow(ctx, up) },
		// A slot that does not exist yet: EnsureSlot calls nothing for one that does.
		"EnsureSlot spare": func(ctx context.Context) error { return p.EnsureSlot(ctx, "spare") },
	}
	order := []string{"Observe primary", "Observe standby", "ProbeWrite", "SetSynchronous", "SetAsync", "Checkpoint", "EnsureSlot", "Follow"}
	for _, name := range order {
		if err := calls[name](ctx); err != nil {
			t.Errorf("%s as the role: %v", name, err)
		}
	}

	// Each grant taken away: the calls that need it fail, naming what is
	// missing: the server's words, and the setup statement (grant) that
	// gives it back.
	paramGrant := "GRANT ALTER SYSTEM ON PARAMETER synchronous_standby_names, primary_conninfo, primary_slot_name TO vigil"
	revokes := []struct {
		revoke, regrant string
		call            string
		want            string
		grant           string // "" when the server's refusal is no insufficient_privilege
	}{
		{"REVOKE pg_monitor FROM vigil", "GRANT pg_monitor TO vigil", "Observe standby", "primary_conninfo", "GRANT pg_monitor TO vigil"},
		// pg_stat_replication hides a standby's state from others: NULL.
		{"REVOKE pg_monitor FROM vigil", "GRANT pg_monitor TO vigil", "Observe primary", "cannot scan NULL", ""},
		{"REVOKE pg_checkpoint FROM vigil", "GRANT pg_checkpoint TO vigil", "Checkpoint", "pg_checkpoint", "GRANT pg_checkpoint TO vigil"},
		{"REVOKE EXECUTE ON FUNCTION pg_reload_conf() FROM vigil", "GRANT EXECUTE ON FUNCTION pg_reload_conf() TO vigil", "SetAsync", "pg_reload_conf", "GRANT EXECUTE ON FUNCTION pg_catalog.pg_reload_conf() TO vigil"},
		{"REVOKE ALTER SYSTEM ON PARAMETER synchronous_standby_names FROM vigil", "GRANT ALTER SYSTEM ON PARAMETER synchronous_standby_names TO vigil", "SetSynchronous", "synchronous_standby_names", paramGrant},
		{"REVOKE ALTER SYSTEM ON PARAMETER primary_conninfo FROM vigil", "GRANT ALTER SYSTEM ON PARAMETER primary_conninfo TO vigil", "Follow", "primary_conninfo", paramGrant},
		{"ALTER ROLE vigil NOREPLICATION", "ALTER ROLE vigil REPLICATION", "EnsureSlot spare", "replication", "ALTER ROLE vigil WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS REPLICATION"},
		{"ALTER TABLE vigil.heartbeat OWNER TO " + primary.Conn.User, "ALTER TABLE vigil.heartbeat OWNER TO vigil", "ProbeWrite", "permission denied for table heartbeat", "ALTER TABLE vigil.heartbeat OWNER TO vigil"},
		// Why RoleSQL makes the table: the probe's CREATE SCHEMA IF NOT
		// EXISTS needs CREATE on the database even when the schema exists.
		{"DROP TABLE vigil.heartbeat", grants[len(grants)-2].SQL + "; " + grants[len(grants)-1].SQL, "ProbeWrite", "permission denied for database", "CREATE TABLE IF NOT EXISTS vigil.heartbeat"},
	}
	for _, r := range revokes {
		labtest.Exec(t, ctx, primary, r.revoke)
		// Calls on the standby see the revoke once it is replayed there.
		var err error
		deadline := time.Now().Add(15 * time.Second)
		for {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err = calls[r.call](cctx)
			cancel()
			if (err != nil && strings.Contains(err.Error(), r.want)) || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err == nil || !strings.Contains(err.Error(), r.want) {
			t.Errorf("%s, then %s: error %v, want one mentioning %q", r.revoke, r.call, err, r.want)
		} else {
			t.Logf("after %s: %s fails: %v", r.revoke, r.call, err)
		}
		if r.grant != "" && !namesGrant(err, r.grant) {
			t.Errorf("%s, then %s: error %v, want a *database.MissingGrantError naming %q", r.revoke, r.call, err, r.grant)
		}
		labtest.Exec(t, ctx, primary, r.regrant)
	}
	// Promote last: it ends the standby's recovery. Without EXECUTE on
	// pg_promote it fails and the standby stays one.
	labtest.Exec(t, ctx, primary, "REVOKE EXECUTE ON FUNCTION pg_promote(boolean, integer) FROM vigil")
	labtest.WaitFor(t, ctx, "pg_promote refused on the standby", func() bool {
		err := s.Promote(ctx, 10*time.Second)
		if err != nil && (!strings.Contains(err.Error(), "permission denied for function pg_promote") ||
			!namesGrant(err, "GRANT EXECUTE ON FUNCTION pg_catalog.pg_promote(boolean, integer) TO vigil")) {
			t.Fatalf("Promote without EXECUTE on pg_promote: %v", err)
		}
		return err != nil
	})
	if o := labtest.Observe(t, ctx, standby); !o.InRecovery {
		t.Fatal("the standby was promoted although pg_promote was refused")
	}
	labtest.Exec(t, ctx, primary, "GRANT EXECUTE ON FUNCTION pg_promote(boolean, integer) TO vigil")
	if err := s.Promote(ctx, time.Minute); err != nil {
		t.Errorf("Promote as the role: %v", err)
	}
}

// namesGrant reports whether err is a refusal the adapter tied to the
// setup statement starting with grant, and says so in its message.
func namesGrant(err error, grant string) bool {
	var mg *database.MissingGrantError
	if !errors.As(err, &mg) {
		return false
	}
	for _, g := range mg.Grants {
		if strings.HasPrefix(g, grant) {
			return strings.Contains(err.Error(), strings.Join(strings.Fields(g), " "))
		}
	}
	return false
}
