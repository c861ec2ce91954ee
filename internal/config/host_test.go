package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/certs"
)

// TestValidateHost covers the checks that look at this host. Unreadable
// files are a missing path or a directory rather than a permission denial,
// which root (as CI runs) never gets.
func TestValidateHost(t *testing.T) {
	tests := []struct {
		name string
		// change returns the problems expected after it, which may name
		// the temporary paths it created.
		change func(t *testing.T, c *Config) []string
	}{
		{"bin dir missing", func(t *testing.T, c *Config) []string {
			c.Database.BinDir = filepath.Join(t.TempDir(), "nowhere")
			return []string{"database.bin_dir: " + c.Database.BinDir + " does not exist: point it at the directory holding pg_ctl"}
		}},
		{"bin dir is a file", func(t *testing.T, c *Config) []string {
			c.Database.BinDir = writeFile(t, "bin", "", 0o755)
			return []string{"database.bin_dir: " + c.Database.BinDir + " is not a directory: point it at the directory holding pg_ctl"}
		}},
		{"bin dir without control binary", func(t *testing.T, c *Config) []string {
			c.Database.BinDir = fakeBinDir(t, "psql")
			return []string{"database.bin_dir: " + c.Database.BinDir + " has no pg_ctl: point it at the PostgreSQL binaries, or set database.flavor"}
		}},
		{"kingbase flavor with PostgreSQL binaries", func(t *testing.T, c *Config) []string {
			c.Database.Flavor = "kingbase"
			return []string{"database.bin_dir: " + c.Database.BinDir + " has no sys_ctl: point it at the KingbaseES binaries, or set database.flavor"}
		}},
		{"kingbase binaries", func(t *testing.T, c *Config) []string {
			c.Database.Flavor = "kingbase"
			c.Database.BinDir = fakeBinDir(t, "sys_ctl")
			return nil
		}},
		{"control binary not executable", func(t *testing.T, c *Config) []string {
			c.Database.BinDir = filepath.Dir(writeFile(t, "pg_ctl", "", 0o644))
			return []string{"database.bin_dir: " + filepath.Join(c.Database.BinDir, "pg_ctl") + " is not an executable file"}
		}},
		{"control binary is a directory", func(t *testing.T, c *Config) []string {
			c.Database.BinDir = t.TempDir()
			if err := os.Mkdir(filepath.Join(c.Database.BinDir, "pg_ctl"), 0o755); err != nil {
				t.Fatal(err)
			}
			return []string{"database.bin_dir: " + filepath.Join(c.Database.BinDir, "pg_ctl") + " is not an executable file"}
		}},
		{"data dir is a file", func(t *testing.T, c *Config) []string {
			c.Database.DataDir = writeFile(t, "data", "", 0o600)
			return []string{"database.data_dir: " + c.Database.DataDir + " exists and is not a directory"}
		}},
		{"data dir not created yet", func(t *testing.T, c *Config) []string {
			c.Database.DataDir = filepath.Join(t.TempDir(), "main")
			return nil
		}},
		{"unknown OS account", func(t *testing.T, c *Config) []string {
			c.Database.OSUser = "no-such-vigil-user"
			return []string{`database.os_user: no account named "no-such-vigil-user" on this host`}
		}},
		{"existing OS account", func(t *testing.T, c *Config) []string {
			c.Database.OSUser = "root"
			return nil
		}},
		{"password file missing", func(t *testing.T, c *Config) []string {
			c.Database.Superuser.PasswordFile = filepath.Join(t.TempDir(), "superuser.password")
			return []string{"database.superuser.password_file: " + c.Database.Superuser.PasswordFile + " does not exist"}
		}},
		{"password file is a directory", func(t *testing.T, c *Config) []string {
			c.Database.Replication.PasswordFile = t.TempDir()
			return []string{"database.replication.password_file: " + c.Database.Replication.PasswordFile + " is a directory, not a file"}
		}},
		{"password file empty", func(t *testing.T, c *Config) []string {
			c.Database.Replication.PasswordFile = writeFile(t, "replication.password", "\n", 0o600)
			return []string{"database.replication.password_file: password file " + c.Database.Replication.PasswordFile + " is empty"}
		}},
		{"password file readable", func(t *testing.T, c *Config) []string {
			c.Database.Replication.PasswordFile = writeFile(t, "replication.password", "s3cr3t\n", 0o600)
			return nil
		}},
		{"rewind password file missing", func(t *testing.T, c *Config) []string {
			c.Rejoin.Rewind.User = "postgres"
			c.Rejoin.Rewind.PasswordFile = filepath.Join(t.TempDir(), "rewind.password")
			return []string{"rejoin.rewind.password_file: " + c.Rejoin.Rewind.PasswordFile + " does not exist"}
		}},
		{"etcd password file missing", func(t *testing.T, c *Config) []string {
			c.DCS.Username = "vigil"
			c.DCS.PasswordFile = filepath.Join(t.TempDir(), "etcd.password")
			return []string{"dcs.password_file: " + c.DCS.PasswordFile + " does not exist"}
		}},
		{"CA file missing", func(t *testing.T, c *Config) []string {
			c.DCS.TLS.CAFile = filepath.Join(t.TempDir(), "ca.pem")
			return []string{"dcs.tls.ca_file: " + c.DCS.TLS.CAFile + " does not exist"}
		}},
		{"client key is a directory", func(t *testing.T, c *Config) []string {
			c.DCS.TLS.CertFile = writeFile(t, "client.pem", "", 0o600)
			c.DCS.TLS.KeyFile = t.TempDir()
			return []string{"dcs.tls.key_file: " + c.DCS.TLS.KeyFile + " is a directory, not a file"}
		}},
		{"embedded data dir is a file", func(t *testing.T, c *Config) []string {
			validEmbedded(c)
			c.DCS.Embedded.DataDir = writeFile(t, "etcd", "", 0o600)
			return []string{"dcs.embedded.data_dir: " + c.DCS.Embedded.DataDir + " exists and is not a directory"}
		}},
		{"VIP interface missing", func(t *testing.T, c *Config) []string {
			c.VIP = VIP{Address: "198.18.0.100/24", Interface: "nosuchif0"}
			return []string{`vip.interface: no network interface named "nosuchif0" on this host`}
		}},
		{"API token file missing", func(t *testing.T, c *Config) []string {
			c.API.Listen, c.API.TokenFile = "127.0.0.1:8008", "/nonexistent/api.token"
			return []string{"api.token_file: /nonexistent/api.token does not exist"}
		}},
		{"API token too short", func(t *testing.T, c *Config) []string {
			c.API.Listen, c.API.TokenFile = "127.0.0.1:8008", writeFile(t, "api.token", "secret\n", 0o600)
			return []string{"api.token_file: API token in " + c.API.TokenFile + " is shorter than 16 characters: too easy to guess"}
		}},
		{"API client CA file holds no certificate", func(t *testing.T, c *Config) []string {
			c.API.Listen, c.API.CertFile, c.API.KeyFile = "127.0.0.1:8008", writeFile(t, "api.crt", "x", 0o644), writeFile(t, "api.key", "x", 0o600)
			c.API.TokenFile = writeFile(t, "api.token", "0123456789abcdef\n", 0o600)
			c.API.ClientCAFile = writeFile(t, "ca.crt", "not a certificate\n", 0o644)
			return []string{"api.client_ca_file: certificate file " + c.API.ClientCAFile + " holds no PEM certificate: point it at the cluster's ca.crt (`vigil certs init` makes one)"}
		}},
		{"callback not executable", func(t *testing.T, c *Config) []string {
			c.Callbacks.OnRoleChange = []string{writeFile(t, "notify.sh", "#!/bin/sh\n", 0o644)}
			return []string{"callbacks.on_role_change: " + c.Callbacks.OnRoleChange[0] + " is not an executable file"}
		}},
		{"callback executable", func(t *testing.T, c *Config) []string {
			c.Callbacks.OnRoleChange = []string{writeFile(t, "notify.sh", "#!/bin/sh\n", 0o755), "arg"}
			return nil
		}},
		{"VIP on loopback", func(t *testing.T, c *Config) []string {
			c.VIP = VIP{Address: "198.18.0.100/24", Interface: "lo"}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig(t)
			want := tt.change(t, c)
			if ps := c.settingProblems(); len(ps) > 0 {
				t.Fatalf("the change breaks a setting, not the host:\n%v", ps)
			}
			equalLines(t, problemLines(t, c.Validate()), want)
		})
	}
}

func TestHostWarnings(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, c *Config) []string
	}{
		{"password file mode 0600", func(t *testing.T, c *Config) []string {
			c.Database.Superuser.PasswordFile = writeFile(t, "superuser.password", "s3cr3t\n", 0o600)
			return nil
		}},
		{"password file readable by all", func(t *testing.T, c *Config) []string {
			c.Database.Superuser.PasswordFile = writeFile(t, "superuser.password", "s3cr3t\n", 0o644)
			return []string{"database.superuser.password_file: " + c.Database.Superuser.PasswordFile + " is open to other accounts (mode 0644): chmod 0600 it, as libpq demands of .pgpass"}
		}},
		{"password file readable by group", func(t *testing.T, c *Config) []string {
			c.Database.Replication.PasswordFile = writeFile(t, "replication.password", "s3cr3t\n", 0o640)
			return []string{"database.replication.password_file: " + c.Database.Replication.PasswordFile + " is open to other accounts (mode 0640): chmod 0600 it, as libpq demands of .pgpass"}
		}},
		{"password variable set", func(t *testing.T, c *Config) []string {
			t.Setenv("VIGIL_TEST_REPLICATION_PASSWORD", "s3cr3t")
			c.Database.Replication.PasswordEnv = "VIGIL_TEST_REPLICATION_PASSWORD"
			return nil
		}},
		{"API on loopback with a private token", func(t *testing.T, c *Config) []string {
			c.API.Listen, c.API.TokenFile = "127.0.0.1:8008", writeFile(t, "api.token", "0123456789abcdef\n", 0o600)
			return nil
		}},
		{"API token readable by all", func(t *testing.T, c *Config) []string {
			c.API.Listen, c.API.TokenFile = "127.0.0.1:8008", writeFile(t, "api.token", "0123456789abcdef\n", 0o644)
			return []string{"api.token_file: " + c.API.TokenFile + " is open to other accounts (mode 0644): chmod 0600 it; whoever reads it can request failovers"}
		}},
		{"API in clear text without a token", func(t *testing.T, c *Config) []string {
			c.API.Listen = ":8008"
			return []string{
				"api.token_file: is empty: POST /switchover, /failover, /pause and /resume are refused (403) until a token is configured",
				"api.cert_file: is empty: the API and its bearer token travel in clear text on :8008; set api.cert_file and api.key_file",
			}
		}},
		{"password variable not set here", func(t *testing.T, c *Config) []string {
			c.DCS.Username = "vigil"
			c.DCS.PasswordEnv = "VIGIL_TEST_UNSET_ETCD_PASSWORD"
			return []string{"dcs.password_env: environment variable VIGIL_TEST_UNSET_ETCD_PASSWORD is not set here: make sure the environment Vigil runs in sets it"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig(t)
			want := tt.change(t, c)
			if err := c.Validate(); err != nil {
				t.Fatalf("the change makes the configuration invalid:\n%v", err)
			}
			equalLines(t, c.Warnings().strings(), want)
		})
	}
}

// TestValidateEmbeddedTLSFiles: `vigil config check` refuses the embedded
// member's TLS files that a handshake would fail on, naming the file and
// the fix, before the agent starts.
func TestValidateEmbeddedTLSFiles(t *testing.T) {
	tests := []struct {
		name string
		// change breaks the files of a valid TLS section and returns the
		// field the problem is on and substrings its message must hold.
		change func(t *testing.T, tl *TLS) (field string, want []string)
	}{
		{"valid", func(t *testing.T, tl *TLS) (string, []string) { return "", nil }},
		{"key readable by others", func(t *testing.T, tl *TLS) (string, []string) {
			if err := os.Chmod(tl.KeyFile, 0o644); err != nil {
				t.Fatal(err)
			}
			return "dcs.embedded.tls", []string{"key file " + tl.KeyFile, "mode 0644", "chmod 600 " + tl.KeyFile}
		}},
		{"key of another certificate", func(t *testing.T, tl *TLS) (string, []string) {
			other := issueNodeTLS(t, "node1", "198.18.0.11")
			tl.KeyFile = other.KeyFile
			return "dcs.embedded.tls", []string{"key file " + other.KeyFile + " does not match certificate " + tl.CertFile, "--force"}
		}},
		{"expired certificate", func(t *testing.T, tl *TLS) (string, []string) {
			dir := filepath.Dir(tl.CAFile)
			past := certs.Options{Now: time.Now().Add(-30 * 24 * time.Hour), Force: true}
			if _, err := certs.InitCA(dir, "main", past); err != nil {
				t.Fatal(err)
			}
			past.Validity = 24 * time.Hour
			if _, err := certs.IssueNode(dir, "node1", []string{"198.18.0.11"}, past); err != nil {
				t.Fatal(err)
			}
			return "dcs.embedded.tls", []string{"certificate in " + tl.CertFile, "expired on", "issue a new one"}
		}},
		{"certificate from another CA", func(t *testing.T, tl *TLS) (string, []string) {
			tl.CAFile = issueNodeTLS(t, "node1", "198.18.0.11").CAFile
			return "dcs.embedded.tls", []string{"certificate " + tl.CertFile, "is not signed by the CA in " + tl.CAFile}
		}},
		{"CA file without a certificate", func(t *testing.T, tl *TLS) (string, []string) {
			tl.CAFile = writeFile(t, "ca.crt", "not a certificate\n", 0o644)
			return "dcs.embedded.tls", []string{"certificate file " + tl.CAFile + " holds no PEM certificate", "ca.crt"}
		}},
		{"certificate for another host", func(t *testing.T, tl *TLS) (string, []string) {
			if _, err := certs.IssueNode(filepath.Dir(tl.CAFile), "node1", []string{"198.18.0.99"}, certs.Options{Force: true}); err != nil {
				t.Fatal(err)
			}
			return "dcs.embedded.tls.cert_file", []string{"certificate " + tl.CertFile + " is not valid for host \"198.18.0.11\"", "--host 198.18.0.11"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig(t)
			withEmbeddedTLS(c)
			c.DCS.Embedded.DataDir = filepath.Join(t.TempDir(), "etcd")
			c.DCS.Embedded.TLS = issueNodeTLS(t, "node1", "198.18.0.11")
			field, want := tt.change(t, &c.DCS.Embedded.TLS)
			got := problemLines(t, c.Validate())
			if want == nil {
				equalLines(t, got, nil)
				return
			}
			if len(got) != 1 || !strings.HasPrefix(got[0], field+": ") || !containsAll(got[0], want...) {
				t.Errorf("problems:\n  %s\nwant one on %s holding %q", strings.Join(got, "\n  "), field, want)
			}
		})
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
