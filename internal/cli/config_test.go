package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/internal/config"
)

// nodeConfig writes a valid configuration, plus extra YAML, and returns its
// path. bin_dir holds a fake pg_ctl so the check does not need PostgreSQL.
func nodeConfig(t *testing.T, extra string) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "pg_ctl"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	text := "cluster: main\n" +
		"node:\n  name: node1\n  host: 198.18.0.11\n" +
		"database:\n  bin_dir: " + bin + "\n  data_dir: " + filepath.Join(dir, "data") + "\n" +
		"dcs:\n  endpoints: [http://198.18.0.21:2379]\n" +
		"trusted_ips: [198.18.0.1]\n" + extra
	path := filepath.Join(dir, "vigil.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigCheck(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	// The defaults' limits, printed as notes by every accepted check.
	notes := "FILE: note: failover.fence_ssh: no fence: if the primary's agent dies or freezes and its node is then cut off from the other members, its PostgreSQL keeps accepting writes from clients that still reach it while a standby is promoted; set failover.fence_ssh or failover.fence_command so that the old primary is stopped first\n" +
		"FILE: note: dcs.failsafe: off: while etcd cannot be reached (an upgrade, quorum lost) the primary demotes itself after timing.lease_ttl/2 (1.5s) and no writes are possible until etcd returns; dcs.failsafe keeps the primary while every other member confirms it will not promote\n"
	asyncNote := "FILE: note: failover.synchronous_mode: off: a failover may lose the last acknowledged commits, up to failover.maximum_lag_on_failover (1 MiB)\n"
	tests := []struct {
		name string
		// setup returns the arguments after "config check" and the path
		// the output names.
		setup      func(t *testing.T) string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"valid", func(t *testing.T) string { return nodeConfig(t, "") },
			ExitOK, "FILE: OK (cluster main, node node1, flavor postgres)\n", notes + asyncNote},
		{"valid, fenced and synchronous: one note left", func(t *testing.T) string {
			return nodeConfig(t, "failover:\n  synchronous_mode: on\n  fence_command: [/bin/true]\n")
		}, ExitOK, "FILE: OK (cluster main, node node1, flavor postgres)\n", notes[strings.Index(notes, "FILE: note: dcs.failsafe"):]},
		{"problems, with and without lines", func(t *testing.T) string {
			return nodeConfig(t, "timing:\n  loop_interval: 5s\nfailover:\n  synchronous_mode: maybe\n")
		}, ExitUsage, "",
			"FILE:12: timing.loop_interval: must be less than half of timing.lease_ttl (1.5s): a leader that cannot renew its lease must get to demote itself before the lease expires\n" +
				`FILE:14: failover.synchronous_mode: "maybe" is not a mode: use off, on or strict` + "\n" +
				"vigil: FILE: configuration rejected, see the lines above\n"},
		{"unknown key and literal password", func(t *testing.T) string {
			return nodeConfig(t, "timing:\n  loop_intervall: 1s\npassword: hunter2\n")
		}, ExitUsage, "",
			`FILE:12: timing.loop_intervall: unknown key (did you mean "loop_interval"?)` + "\n" +
				"FILE:13: password: passwords are not written in the configuration file: use password_file (a file only the agent's account can read, mode 0600) or password_env (an environment variable)\n" +
				"vigil: FILE: configuration rejected, see the lines above\n"},
		{"warning only", func(t *testing.T) string {
			return nodeConfig(t, "vip:\n  interface: lo\n")
		}, ExitOK, "FILE: OK (cluster main, node node1, flavor postgres)\n",
			"FILE:12: warning: vip.interface: is set but vip.address is empty: no VIP is managed\n" + notes + asyncNote},
		{"missing file", func(*testing.T) string { return missing },
			ExitUsage, "", "vigil: read configuration: open FILE: no such file or directory\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.setup(t)
			var stdout, stderr bytes.Buffer
			code := Main([]string{"config", "check", path}, &stdout, &stderr)
			out := strings.ReplaceAll(stdout.String(), path, "FILE")
			errOut := strings.ReplaceAll(stderr.String(), path, "FILE")
			if code != tt.wantCode || out != tt.wantStdout || errOut != tt.wantStderr {
				t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s\nwant exit %d\nstdout:\n%s\nstderr:\n%s",
					code, out, errOut, tt.wantCode, tt.wantStdout, tt.wantStderr)
			}
		})
	}
}

func TestConfigCheckNeedsOneFile(t *testing.T) {
	for _, args := range [][]string{{"config", "check"}, {"config", "check", "a.yaml", "b.yaml"}} {
		var stdout, stderr bytes.Buffer
		if code := Main(args, &stdout, &stderr); code != ExitUsage {
			t.Errorf("%v: exit %d, want %d (stderr %q)", args, code, ExitUsage, stderr.String())
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	tests := []struct {
		flavor   string
		wantCode int
		wantPort int
	}{
		{"postgres", ExitOK, 5432},
		{"kingbase", ExitOK, 54321},
		{"oracle", ExitUsage, 0},
	}
	for _, tt := range tests {
		t.Run(tt.flavor, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main([]string{"config", "defaults", "--flavor", tt.flavor}, &stdout, &stderr)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.wantCode, stderr.String())
			}
			if code != ExitOK {
				return
			}
			// What is printed is a configuration file in its own right.
			c, err := config.Parse(stdout.Bytes())
			if err != nil {
				t.Fatalf("the printed defaults do not load:\n%v\n%s", err, stdout.String())
			}
			if c.Database.Port != tt.wantPort || c.Database.Flavor != tt.flavor {
				t.Errorf("printed flavor %s, port %d; want %s, %d", c.Database.Flavor, c.Database.Port, tt.flavor, tt.wantPort)
			}
		})
	}
}

// pgpoolConfig writes a Pgpool command's configuration whose SSH files
// exist, plus extra YAML, and returns its path.
func pgpoolConfig(t *testing.T, extra string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"id_ed25519", "known_hosts"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	text := "database: {bin_dir: /usr/lib/postgresql/15/bin}\n" +
		"trusted_ips: [198.18.0.1]\n" +
		"ssh: {user: root, key_file: " + dir + "/id_ed25519, known_hosts_file: " + dir + "/known_hosts}\n" + extra
	path := filepath.Join(dir, "pgpool.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestConfigCheckPgpool: `vigil config check --pgpool` checks the Pgpool
// command's file with the same loader and output as a node's, and names the
// new key for each old one.
func TestConfigCheckPgpool(t *testing.T) {
	tests := []struct {
		name       string
		extra      string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"valid", "timing: {readiness_timeout: 3m}\n", ExitOK, "FILE: OK (Pgpool command, cluster pgpool, flavor postgres)\n", ""},
		{"old names warn", "timing:\n  db: 1s\n  readiness: 3m\n", ExitOK, "FILE: OK (Pgpool command, cluster pgpool, flavor postgres)\n",
			"FILE:5: warning: timing.db: old name of timing.db_timeout: rename it; the old name is read in this release only\n" +
				"FILE:6: warning: timing.readiness: old name of timing.readiness_timeout: rename it; the old name is read in this release only\n"},
		{"unknown key", "timing:\n  readines_timeout: 3m\n", ExitUsage, "",
			`FILE:5: timing.readines_timeout: unknown key (did you mean "readiness_timeout"?)` + "\n" +
				"vigil: FILE: configuration rejected, see the lines above\n"},
		{"a problem under an old name", "timing:\n  readiness: 1s\n", ExitUsage, "",
			"FILE:5: timing.readiness_timeout: must be longer than timing.db_timeout (2s): the readiness gate needs time for at least one write probe\n" +
				"vigil: FILE: configuration rejected, see the lines above\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := pgpoolConfig(t, tt.extra)
			var stdout, stderr bytes.Buffer
			code := Main([]string{"config", "check", "--pgpool", path}, &stdout, &stderr)
			out := strings.ReplaceAll(stdout.String(), path, "FILE")
			errOut := strings.ReplaceAll(stderr.String(), path, "FILE")
			if code != tt.wantCode || out != tt.wantStdout || errOut != tt.wantStderr {
				t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s\nwant exit %d\nstdout:\n%s\nstderr:\n%s",
					code, out, errOut, tt.wantCode, tt.wantStdout, tt.wantStderr)
			}
		})
	}
	// A node's file is not a Pgpool command's: its keys are unknown there.
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"config", "check", "--pgpool", nodeConfig(t, "")}, &stdout, &stderr); code != ExitUsage || !strings.Contains(stderr.String(), "node: unknown key") {
		t.Errorf("a node's file as --pgpool: exit %d\n%s", code, stderr.String())
	}
}
