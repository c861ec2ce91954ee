package config

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// sharedSections is the part both kinds of file have, each as a YAML flow
// mapping (or list): written once, it becomes a node's file and a Pgpool
// command's file, where the SSH section sits at failover.fence_ssh and ssh.
type sharedSections struct {
	database, vip, trustedIPs, timing, ssh string
}

func (s sharedSections) nodeFile() string {
	return "cluster: main\n" +
		"node: {name: node1, host: 198.18.0.11}\n" +
		"dcs: {endpoints: ['http://198.18.0.21:2379']}\n" +
		"database: " + s.database + "\n" +
		"vip: " + s.vip + "\n" +
		"trusted_ips: " + s.trustedIPs + "\n" +
		"timing: " + s.timing + "\n" +
		"failover: {fence_ssh: " + s.ssh + "}\n"
}

func (s sharedSections) pgpoolFile() string {
	return "database: " + s.database + "\n" +
		"vip: " + s.vip + "\n" +
		"trusted_ips: " + s.trustedIPs + "\n" +
		"timing: " + s.timing + "\n" +
		"ssh: " + s.ssh + "\n"
}

// sharedProblems keeps the problems of the shared sections, with the SSH
// section's path spelt as the node's file spells it.
func sharedProblems(ps Problems) []string {
	var out []string
	for _, p := range ps {
		field, message := p.Field, p.Message
		if rest, ok := strings.CutPrefix(field, "ssh."); ok {
			field = "failover.fence_ssh." + rest
			message = strings.ReplaceAll(message, "with ssh.", "with failover.fence_ssh.")
		}
		switch {
		case strings.HasPrefix(field, "database."), strings.HasPrefix(field, "vip."), strings.HasPrefix(field, "trusted_ips"),
			strings.HasPrefix(field, "failover.fence_ssh."),
			slices.Contains([]string{"timing.db_timeout", "timing.promote_timeout", "timing.readiness_timeout"}, field):
			if field == "vip.label" || field == "failover.fence_ssh.user" || field == "failover.fence_ssh.timeout" {
				continue // the Pgpool file's own keys
			}
			out = append(out, field+": "+message)
		}
	}
	return out
}

// TestSharedSectionsLoadIdentically: the sections both files have are read,
// completed and checked the same way in both: the same values and the
// same problems, word for word.
func TestSharedSectionsLoadIdentically(t *testing.T) {
	const ssh = "{user: root, key_file: /etc/vigil/id_ed25519, known_hosts_file: /etc/vigil/known_hosts}"
	tests := []struct {
		name     string
		sections sharedSections
		want     []string
	}{
		{"defaults", sharedSections{
			database: "{bin_dir: /usr/lib/postgresql/15/bin, data_dir: /var/lib/postgresql/15/main}",
			vip:      "{}", trustedIPs: "[198.18.0.1]", timing: "{}", ssh: ssh,
		}, nil},
		{"flavor defaults", sharedSections{
			database: "{flavor: kingbase, bin_dir: /opt/kingbase/bin, data_dir: /opt/kingbase/data}",
			vip:      "{address: 198.18.0.100/24, interface: eth0}", trustedIPs: "[198.18.0.1]", timing: "{}", ssh: ssh,
		}, nil},
		{"every shared key set", sharedSections{
			database: "{flavor: postgres, bin_dir: /usr/lib/postgresql/15/bin, data_dir: /srv/pg, port: 5433, os_user: postgres, " +
				"superuser: {user: vigil, database: vigil, password_env: VIGIL_PASSWORD}, " +
				"replication: {user: repl, password_file: /etc/vigil/repl.password}, connect_timeout: 5s}",
			vip:        "{address: 198.18.0.100/24, interface: eth0, gratuitous_arp_count: 0}",
			trustedIPs: "[198.18.0.1, '198.18.0.2:53']",
			timing:     "{db_timeout: 3s, promote_timeout: 90s, readiness_timeout: 2m}",
			ssh:        "{user: postgres, key_file: /etc/vigil/id_ed25519, known_hosts_file: /etc/vigil/known_hosts, port: 2222}",
		}, nil},
		{"the same mistakes", sharedSections{
			database: "{flavor: oracle, bin_dir: bin, data_dir: /srv/pg, port: 0, connect_timeout: 1500ms, " +
				"superuser: {user: '', password_env: 'not a name'}, replication: {user: repl, password_file: repl.password}}",
			vip:        "{address: 198.18.0.100, gratuitous_arp_count: -1}",
			trustedIPs: "[gateway.example.net, 127.0.0.1]",
			timing:     "{db_timeout: 5s, readiness_timeout: 5s}",
			ssh:        "{user: root, key_file: id_ed25519, port: 70000}",
		}, []string{
			`database.flavor: unknown flavor "oracle": use one of kingbase, postgres`,
			"database.bin_dir: must be an absolute path",
			"database.port: 0 is out of range: use 1 to 65535",
			"database.superuser.user: required: the role Vigil runs its SQL as",
			"database.superuser.database: required: the database Vigil connects to",
			"database.superuser.password_env: must be the name of an environment variable (letters, digits and _), not the password itself",
			"database.replication.password_file: must be an absolute path",
			"database.connect_timeout: must be a whole number of seconds: the server's client library counts it in seconds",
			"vip.gratuitous_arp_count: must be 0 (send none) or more",
			"vip.address: must be an address with its prefix length, e.g. 198.18.0.100/24",
			"vip.interface: required with vip.address: the network interface to add the address to (e.g. eth0)",
			"trusted_ips[0]: must be an IP address or IP:port: a host name would need DNS, which may be what failed",
			"trusted_ips[1]: 127.0.0.1 always answers, so it cannot tell a node it is cut off: use an address outside this host",
			"timing.readiness_timeout: must be longer than timing.db_timeout (5s): the readiness gate needs time for at least one write probe",
			"failover.fence_ssh.key_file: required with failover.fence_ssh.user, as an absolute path (host keys are always verified)",
			"failover.fence_ssh.known_hosts_file: required with failover.fence_ssh.user, as an absolute path (host keys are always verified)",
			"failover.fence_ssh.port: 70000 is out of range: use 1 to 65535",
		}},
		{"durations that are not positive", sharedSections{
			database: "{bin_dir: /usr/lib/postgresql/15/bin, data_dir: /srv/pg, connect_timeout: 0s}",
			vip:      "{}", trustedIPs: "[198.18.0.1]", timing: "{promote_timeout: 0s}", ssh: ssh,
		}, []string{
			"database.connect_timeout: must be positive (the default is 2s)",
			"timing.promote_timeout: must be positive (the default is 1m0s)",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.sections.nodeFile()))
			if err != nil {
				t.Fatalf("node file:\n%s\n%v", tt.sections.nodeFile(), err)
			}
			p, err := ParsePgpool([]byte(tt.sections.pgpoolFile()))
			if err != nil {
				t.Fatalf("Pgpool file:\n%s\n%v", tt.sections.pgpoolFile(), err)
			}
			if !reflect.DeepEqual(c.Database.Database, p.Database) {
				t.Errorf("database:\nnode   %+v\npgpool %+v", c.Database.Database, p.Database)
			}
			if c.VIP != p.VIP.VIP {
				t.Errorf("vip: node %+v, pgpool %+v", c.VIP, p.VIP.VIP)
			}
			if !slices.Equal(c.TrustedIPs, p.TrustedIPs) {
				t.Errorf("trusted_ips: node %q, pgpool %q", c.TrustedIPs, p.TrustedIPs)
			}
			if c.Failover.FenceSSH != p.SSH.SSH {
				t.Errorf("ssh: node %+v, pgpool %+v", c.Failover.FenceSSH, p.SSH.SSH)
			}
			// The defaults of the timeouts differ by design (the Pgpool
			// command's readiness must fit in its total); what a file
			// sets is read the same.
			for _, k := range []struct {
				field      string
				node, pool time.Duration
			}{
				{"timing.db_timeout", c.Timing.DBTimeout, p.Timing.DBTimeout},
				{"timing.promote_timeout", c.Timing.PromoteTimeout, p.Timing.PromoteTimeout},
				{"timing.readiness_timeout", c.Timing.ReadinessTimeout, p.Timing.ReadinessTimeout},
			} {
				if c.set(k.field) != p.src.set(k.field) {
					t.Errorf("%s: set in one file only", k.field)
				}
				if c.set(k.field) && k.node != k.pool {
					t.Errorf("%s: node %s, pgpool %s", k.field, k.node, k.pool)
				}
			}
			var pgpoolProblems Problems
			if err := p.Validate(); err != nil {
				pgpoolProblems = err.(Problems)
			}
			// Each file checks its sections in its own order.
			nodeGot, pgpoolGot := sharedProblems(c.settingProblems()), sharedProblems(pgpoolProblems)
			want := slices.Clone(tt.want)
			slices.Sort(nodeGot)
			slices.Sort(pgpoolGot)
			slices.Sort(want)
			if !slices.Equal(nodeGot, want) {
				t.Errorf("node file's problems:\n  %s\nwant:\n  %s", strings.Join(nodeGot, "\n  "), strings.Join(want, "\n  "))
			}
			if !slices.Equal(pgpoolGot, want) {
				t.Errorf("Pgpool file's problems:\n  %s\nwant:\n  %s", strings.Join(pgpoolGot, "\n  "), strings.Join(want, "\n  "))
			}
		})
	}
}

// TestPgpoolOldNamesWarn: a Pgpool file written before the timing keys took
// a node's names still loads, with the same values, and each old name draws
// a warning naming the new key at its line; problems with the value point
// at that line under the new name.
func TestPgpoolOldNamesWarn(t *testing.T) {
	const base = "database: {bin_dir: /usr/lib/postgresql/15/bin}\n" +
		"trusted_ips: [198.18.0.1]\n" +
		"ssh: {user: root, key_file: /etc/vigil/id_ed25519, known_hosts_file: /etc/vigil/known_hosts}\n"
	tests := []struct {
		name     string
		timing   string
		want     PgpoolTiming
		warnings []string
		problems []string
	}{
		{"every old name", "timing:\n  total: 6m\n  trusted_ip: 2s\n  db: 3s\n  command: 40s\n  promote: 70s\n  readiness: 5m\n",
			PgpoolTiming{TotalTimeout: 6 * time.Minute, TrustedIPTimeout: 2 * time.Second, CommandTimeout: 40 * time.Second,
				StepTimeouts: StepTimeouts{DBTimeout: 3 * time.Second, PromoteTimeout: 70 * time.Second, ReadinessTimeout: 5 * time.Minute}},
			[]string{
				"line 5: timing.total: old name of timing.total_timeout: rename it; the old name is read in this release only",
				"line 6: timing.trusted_ip: old name of timing.trusted_ip_timeout: rename it; the old name is read in this release only",
				"line 7: timing.db: old name of timing.db_timeout: rename it; the old name is read in this release only",
				"line 8: timing.command: old name of timing.command_timeout: rename it; the old name is read in this release only",
				"line 9: timing.promote: old name of timing.promote_timeout: rename it; the old name is read in this release only",
				"line 10: timing.readiness: old name of timing.readiness_timeout: rename it; the old name is read in this release only",
			}, nil},
		{"old and new names mixed", "timing:\n  total_timeout: 6m\n  readiness: 5m\n",
			PgpoolTiming{TotalTimeout: 6 * time.Minute, TrustedIPTimeout: time.Second, CommandTimeout: 30 * time.Second,
				StepTimeouts: StepTimeouts{DBTimeout: 2 * time.Second, PromoteTimeout: 60 * time.Second, ReadinessTimeout: 5 * time.Minute}},
			[]string{"line 6: timing.readiness: old name of timing.readiness_timeout: rename it; the old name is read in this release only"}, nil},
		{"a problem points at the old name's line", "timing:\n  readiness: 1s\n",
			PgpoolTiming{TotalTimeout: 5 * time.Minute, TrustedIPTimeout: time.Second, CommandTimeout: 30 * time.Second,
				StepTimeouts: StepTimeouts{DBTimeout: 2 * time.Second, PromoteTimeout: 60 * time.Second, ReadinessTimeout: time.Second}},
			[]string{"line 5: timing.readiness: old name of timing.readiness_timeout: rename it; the old name is read in this release only"},
			[]string{"line 5: timing.readiness_timeout: must be longer than timing.db_timeout (2s): the readiness gate needs time for at least one write probe"}},
		{"new names: no warning", "timing: {total_timeout: 6m, readiness_timeout: 5m}\n",
			PgpoolTiming{TotalTimeout: 6 * time.Minute, TrustedIPTimeout: time.Second, CommandTimeout: 30 * time.Second,
				StepTimeouts: StepTimeouts{DBTimeout: 2 * time.Second, PromoteTimeout: 60 * time.Second, ReadinessTimeout: 5 * time.Minute}},
			nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePgpool([]byte(base + tt.timing))
			if err != nil {
				t.Fatal(err)
			}
			if p.Timing != tt.want {
				t.Errorf("timing %+v\nwant   %+v", p.Timing, tt.want)
			}
			equalLines(t, p.Warnings().strings(), tt.warnings)
			equalLines(t, problemLines(t, p.Validate()), tt.problems)
		})
	}
	// The old name and the new one together: one setting written twice.
	_, err := ParsePgpool([]byte(base + "timing:\n  readiness: 5m\n  readiness_timeout: 4m\n"))
	equalLines(t, problemLines(t, err), []string{"line 6: timing.readiness_timeout: set twice (first on line 5, as readiness)"})
	// A node's file never had the old names: they are unknown there, with
	// the name to use.
	_, err = Parse([]byte("timing:\n  readiness: 5m\n"))
	equalLines(t, problemLines(t, err), []string{`line 2: timing.readiness: unknown key (did you mean "readiness_timeout"?)`})
}

// TestUnknownKeysNameFileAndKey: in either kind of file an unknown key
// stops the load with the file, the line and the key's full path.
func TestUnknownKeysNameFileAndKey(t *testing.T) {
	tests := []struct {
		name, yaml, want string
		pgpool           bool
	}{
		{"node: misspelt shared key", "database:\n  bin_dirr: /usr/bin\n", `:2: database.bin_dirr: unknown key (did you mean "bin_dir"?)`, false},
		{"pgpool: misspelt shared key", "database:\n  bin_dirr: /usr/bin\n", `:2: database.bin_dirr: unknown key (did you mean "bin_dir"?)`, true},
		{"node: a Pgpool key", "vip:\n  label: eth0:2\n", ":2: vip.label: unknown key", false},
		{"pgpool: a node's key", "database:\n  connect_host: /tmp\n", ":2: database.connect_host: unknown key", true},
		{"pgpool: misspelt timing key", "timing:\n  readines_timeout: 1m\n", `:2: timing.readines_timeout: unknown key (did you mean "readiness_timeout"?)`, true},
		{"pgpool: misspelt section", "cluster: r3ha\nfense: {}\n", `:2: fense: unknown key (did you mean "fence"?)`, true},
		{"pgpool: unknown section", "cluster: r3ha\ndcs: {}\n", ":2: dcs: unknown key", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "vigil.yaml", tt.yaml, 0o600)
			var err error
			if tt.pgpool {
				_, err = LoadPgpool(path)
			} else {
				_, err = Load(path)
			}
			equalLines(t, problemLines(t, err), []string{path + tt.want})
		})
	}
}

// TestGuideUsesTheCurrentNames: the Pgpool file the migration guide shows
// draws no warning, so nobody copies an old name from it.
func TestGuideUsesTheCurrentNames(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "migration-from-failover_stream.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)## `/etc/vigil/pgpool.yaml`.*?```yaml\n(.*?)```").FindSubmatch(data)
	if m == nil {
		t.Fatal("the guide has no pgpool.yaml block")
	}
	p, err := ParsePgpool(m[1])
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range p.src.deprecated {
		t.Errorf("the guide uses an old name: %s", w)
	}
	if p.Timing.ReadinessTimeout != 4*time.Minute || p.Timing.TotalTimeout != 5*time.Minute {
		t.Errorf("the guide's timing reads as %+v", p.Timing)
	}
}
