package flavor

import (
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	tests := []struct {
		name        string
		control     string
		client      string
		conf, auto  string
		prefix      string
		port        int
		logDir      string
		pidFile     string
		baseBackup  string
		rewind      string
		controlData string
		hba, ident  string
		product     string
		wantErrText string
	}{
		{name: "postgres", control: "pg_ctl", client: "psql", conf: "postgresql.conf", auto: "postgresql.auto.conf",
			prefix: "pg_", port: 5432, logDir: "log", pidFile: "postmaster.pid", baseBackup: "pg_basebackup", product: "PostgreSQL",
			rewind: "pg_rewind", controlData: "pg_controldata", hba: "pg_hba.conf", ident: "pg_ident.conf"},
		{name: "kingbase", control: "sys_ctl", client: "ksql", conf: "kingbase.conf", auto: "kingbase.auto.conf",
			prefix: "sys_", port: 54321, logDir: "sys_log", pidFile: "kingbase.pid", baseBackup: "sys_basebackup", product: "KingbaseES",
			rewind: "sys_rewind", controlData: "sys_controldata", hba: "sys_hba.conf", ident: "sys_ident.conf"},
		{name: "oracle", wantErrText: `unknown flavor "oracle": use one of kingbase, postgres`},
		{name: "", wantErrText: `unknown flavor "": use one of kingbase, postgres`},
		{name: "Postgres", wantErrText: `unknown flavor "Postgres": use one of kingbase, postgres`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Lookup(tt.name)
			if tt.wantErrText != "" {
				if err == nil || err.Error() != tt.wantErrText {
					t.Fatalf("Lookup(%q) error = %v, want %q", tt.name, err, tt.wantErrText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := []any{f.ControlBinary, f.ClientBinary, f.ConfigFile, f.AutoConfigFile, f.SQLPrefix, f.DefaultPort, f.LogDir, f.PIDFile, f.BaseBackupBinary, f.Product,
				f.RewindBinary, f.ControlDataBin, f.HBAFile, f.IdentFile}
			want := []any{tt.control, tt.client, tt.conf, tt.auto, tt.prefix, tt.port, tt.logDir, tt.pidFile, tt.baseBackup, tt.product,
				tt.rewind, tt.controlData, tt.hba, tt.ident}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("field %d = %v, want %v", i, got[i], want[i])
				}
			}
		})
	}
}

// Every row of the table must be complete: an empty name would silently
// produce a command like "/usr/bin/" or SQL like "is_in_recovery()".
func TestEveryFlavorIsComplete(t *testing.T) {
	for _, name := range Names() {
		f := MustLookup(Name(name))
		fields := map[string]string{
			"Product": f.Product, "ControlBinary": f.ControlBinary, "ServerBinary": f.ServerBinary,
			"ClientBinary": f.ClientBinary, "InitDBBinary": f.InitDBBinary, "BaseBackupBinary": f.BaseBackupBinary,
			"RewindBinary": f.RewindBinary, "ControlDataBin": f.ControlDataBin, "ConfigFile": f.ConfigFile,
			"AutoConfigFile": f.AutoConfigFile, "HBAFile": f.HBAFile, "IdentFile": f.IdentFile, "PIDFile": f.PIDFile,
			"StandbySignal": f.StandbySignal, "LogDir": f.LogDir, "SQLPrefix": f.SQLPrefix,
			"DefaultSuperuser": f.DefaultSuperuser, "DefaultDatabase": f.DefaultDatabase,
		}
		for field, v := range fields {
			if v == "" {
				t.Errorf("%s: %s is empty", name, field)
			}
		}
		if f.DefaultPort <= 0 || f.DefaultPort > 65535 {
			t.Errorf("%s: DefaultPort %d", name, f.DefaultPort)
		}
	}
}

func TestIdentAndSQL(t *testing.T) {
	pg, kb := MustLookup(Postgres), MustLookup(Kingbase)
	idents := []struct{ in, pg, kb string }{
		{"pg_is_in_recovery", "pg_is_in_recovery", "sys_is_in_recovery"},
		{"pg_promote", "pg_promote", "sys_promote"},
		{"pg_reload_conf", "pg_reload_conf", "sys_reload_conf"},
		{"pg_last_wal_receive_lsn", "pg_last_wal_receive_lsn", "sys_last_wal_receive_lsn"},
		{"pg_last_wal_replay_lsn", "pg_last_wal_replay_lsn", "sys_last_wal_replay_lsn"},
		{"pg_current_wal_lsn", "pg_current_wal_lsn", "sys_current_wal_lsn"},
		{"pg_stat_replication", "pg_stat_replication", "sys_stat_replication"},
		{"current_setting", "current_setting", "current_setting"},
	}
	for _, tt := range idents {
		if got := pg.Ident(tt.in); got != tt.pg {
			t.Errorf("postgres Ident(%q) = %q, want %q", tt.in, got, tt.pg)
		}
		if got := kb.Ident(tt.in); got != tt.kb {
			t.Errorf("kingbase Ident(%q) = %q, want %q", tt.in, got, tt.kb)
		}
	}

	stmts := []struct{ in, pg, kb string }{
		{"select {{pg_is_in_recovery}}(), {{pg_current_wal_lsn}}()",
			"select pg_is_in_recovery(), pg_current_wal_lsn()",
			"select sys_is_in_recovery(), sys_current_wal_lsn()"},
		// Only placeholders are renamed, never a literal that happens to start with pg_.
		{"select 'pg_x' from {{pg_stat_replication}} where application_name = 'pg_app'",
			"select 'pg_x' from pg_stat_replication where application_name = 'pg_app'",
			"select 'pg_x' from sys_stat_replication where application_name = 'pg_app'"},
		{"select 1", "select 1", "select 1"},
		{"select {{unterminated", "select {{unterminated", "select {{unterminated"},
	}
	for _, tt := range stmts {
		if got := pg.SQL(tt.in); got != tt.pg {
			t.Errorf("postgres SQL(%q) = %q, want %q", tt.in, got, tt.pg)
		}
		if got := kb.SQL(tt.in); got != tt.kb {
			t.Errorf("kingbase SQL(%q) = %q, want %q", tt.in, got, tt.kb)
		}
		if strings.Contains(kb.SQL(tt.in), "{{pg_") && !strings.Contains(tt.in, "unterminated") {
			t.Errorf("placeholder left in %q", kb.SQL(tt.in))
		}
	}
}
