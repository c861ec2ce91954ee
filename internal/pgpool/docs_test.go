package pgpool_test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/internal/cli"
	"github.com/vigil-ha/vigil/internal/config"
	"github.com/vigil-ha/vigil/internal/pgpool"
)

const (
	guide   = "../../docs/migration-from-failover_stream.md"
	excerpt = "../../examples/pgpool.conf.excerpt"
)

// TestGuideConfigurationIsValid: the configuration file the migration guide
// shows loads and validates as written.
func TestGuideConfigurationIsValid(t *testing.T) {
	data, err := os.ReadFile(guide)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)## `/etc/vigil/pgpool.yaml`.*?```yaml\n(.*?)```").FindSubmatch(data)
	if m == nil {
		t.Fatal("the guide has no pgpool.yaml block")
	}
	cfg, err := config.ParsePgpool(m[1])
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		t.Fatalf("the guide's configuration: %v", err)
	}
	if cfg.Database.Port != 54321 || cfg.Fence.IfUnreachable != "abort" || len(cfg.Nodes) != 2 {
		t.Errorf("the guide's configuration reads as %+v", cfg)
	}
}

// words splits a shell command line the way sh does for the simple forms
// the excerpt uses: blanks, double quotes, and --flag="value".
func words(line string) []string {
	var out []string
	var cur strings.Builder
	in, quoted := false, false
	for _, r := range line {
		switch {
		case r == '"':
			quoted, in = !quoted, true
		case r == ' ' && !quoted:
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}

// TestExcerptCommandsParse runs the commands of examples/pgpool.conf.excerpt
// through vigil's command line as Pgpool-II would, with the placeholders
// substituted, including an empty %H: they must be accepted (exit 2 would be
// a usage error); the call then stops at the guard or at the unreachable
// new primary, before doing anything.
func TestExcerptCommandsParse(t *testing.T) {
	data, err := os.ReadFile(excerpt)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, f := range []string{"key", "known_hosts"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(dir, "pgpool.yaml")
	if err := os.WriteFile(conf, []byte(`database: {bin_dir: /usr/lib/postgresql/15/bin}
trusted_ips: ["192.0.2.1"]
ssh: {user: root, key_file: `+dir+`/key, known_hosts_file: `+dir+`/known_hosts}
timing: {trusted_ip_timeout: 200ms, db_timeout: 1s}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	// A key that is not there is a usage error: nothing is done.
	var out, errOut bytes.Buffer
	missing := strings.Replace(conf, "pgpool.yaml", "missing.yaml", 1)
	cfgText, _ := os.ReadFile(conf)
	if err := os.WriteFile(missing, bytes.Replace(cfgText, []byte(dir+"/key"), []byte(dir+"/nokey"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := cli.Main([]string{"failover-command", "--config", missing, "--failed-node-id=0", "--old-primary-id=0"}, &out, &errOut); code != pgpool.ExitUsage || !strings.Contains(errOut.String(), "ssh.key_file") {
		t.Errorf("missing key: exit %d: %s", code, errOut.String())
	}
	values := map[string]string{"%d": "0", "%h": "127.0.0.1", "%p": "1", "%D": "/data dir", "%m": "1", "%H": "127.0.0.1", "%M": "0", "%P": "0",
		"%r": "1", "%R": "/data dir", "%N": "127.0.0.1", "%S": "1"}
	lines := regexp.MustCompile(`(?m)^#?(failover_command|follow_primary_command) = '([^']*)'`).FindAllStringSubmatch(string(data), -1)
	if len(lines) != 3 {
		t.Fatalf("found %d commands in the excerpt, want 3", len(lines))
	}
	for _, l := range lines {
		for _, emptyH := range []bool{false, true} {
			cmd := l[2]
			for k, v := range values {
				if k == "%H" && emptyH {
					v = ""
				}
				cmd = strings.ReplaceAll(cmd, k, v)
			}
			argv := words(cmd)
			if argv[0] != "/usr/local/bin/vigil" || argv[3] != "/etc/vigil/pgpool.yaml" {
				t.Fatalf("%s: %q", l[1], argv)
			}
			argv[3] = conf
			var out, errOut bytes.Buffer
			args := append([]string{argv[1], "--log-level", "error"}, argv[2:]...)
			code := cli.Main(args, &out, &errOut)
			want := []int{pgpool.ExitIsolated, pgpool.ExitNoCandidate}
			if l[1] == "follow_primary_command" {
				// The standby at 127.0.0.1:1 does not answer: left detached;
				// with no new primary the call is refused.
				want = []int{pgpool.ExitOK, pgpool.ExitNoCandidate}
			}
			if code != want[0] && code != want[1] {
				t.Errorf("%s (empty %%H %v): exit %d, want %v\nargv %q\n%s%s", l[1], emptyH, code, want, argv, out.String(), errOut.String())
			}
		}
	}
}
