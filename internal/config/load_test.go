package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestParseRejects covers every class of input Load refuses before looking
// at the values: the exact text matters, since it is what an operator reads.
func TestParseRejects(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		// Broken YAML.
		{"unclosed flow list", "cluster: main\nnode:\n  name: [node1\n",
			[]string{"line 2: invalid YAML: did not find expected ',' or ']'"}},
		{"tab indentation", "cluster: main\nnode:\n\tname: node1\n",
			[]string{"line 3: invalid YAML: found character that cannot start any token (a tab in the indentation: YAML indents with spaces)"}},
		{"list item in a mapping", "cluster: main\n- node1\n",
			[]string{"line 1: invalid YAML: did not find expected key"}},
		{"unknown anchor", "cluster: *name\n",
			[]string{"invalid YAML: unknown anchor 'name' referenced"}},
		{"empty file", "", []string{"the file is empty: see examples/vigil.yaml for every key"}},
		{"only comments", "# nothing yet\n", []string{"the file is empty: see examples/vigil.yaml for every key"}},
		{"two documents", "cluster: a\n---\ncluster: b\n",
			[]string{"line 2: a second YAML document (after ---): keep one node's configuration per file"}},
		{"root is a list", "- cluster\n",
			[]string{"line 1: the file must be a mapping of keys (cluster:, node:, database:, ...), see examples/vigil.yaml"}},

		// Wrong types.
		{"duration in words", "timing:\n  lease_ttl: ten\n",
			[]string{`line 2: timing.lease_ttl: "ten" is not a duration: write a number with a unit, e.g. 10s, 500ms or 2m`}},
		{"duration without unit", "timing:\n  lease_ttl: 10\n",
			[]string{"line 2: timing.lease_ttl: 10 has no unit: write e.g. 10s or 10ms"}},
		{"duration as a list", "timing:\n  db_timeout: [3s]\n",
			[]string{"line 2: timing.db_timeout: must be a duration with a unit, e.g. 10s, 500ms or 2m"}},
		{"port as text", "database:\n  port: pg\n",
			[]string{"line 2: database.port: must be a whole number"}},
		{"port as fraction", "database:\n  port: 5432.5\n",
			[]string{"line 2: database.port: must be a whole number"}},
		{"negative byte count", "failover:\n  maximum_lag_on_failover: -1\n",
			[]string{"line 2: failover.maximum_lag_on_failover: must not be negative"}},
		{"int overflow", "node:\n  priority: 99999999999999999999\n",
			[]string{"line 2: node.priority: must be a whole number"}},
		{"bool as word", "failover:\n  automatic: sometimes\n",
			[]string{"line 2: failover.automatic: must be true or false"}},
		{"single value for a list", "trusted_ips: 198.18.0.1\n",
			[]string{`line 1: trusted_ips: must be a list: write [value, ...] or one "- value" per line`}},
		{"mapping for a string", "cluster:\n  name: main\n",
			[]string{"line 2: cluster: must be a single value, not a list or a mapping"}},
		{"value for a section", "timing: fast\n",
			[]string{"line 1: timing: must be a mapping of keys, see examples/vigil.yaml"}},
		{"list for a map", "dcs:\n  embedded:\n    initial_cluster: [node1]\n",
			[]string{"line 3: dcs.embedded.initial_cluster: must be a mapping of name: value pairs"}},
		{"list item of wrong type", "dcs:\n  endpoints:\n    - http://a:2379\n    - {url: http://b:2379}\n",
			[]string{"line 4: dcs.endpoints[1]: must be a single value, not a list or a mapping"}},

		// Unknown and repeated keys.
		{"misspelt key", "timing:\n  loop_intervall: 1s\n",
			[]string{`line 2: timing.loop_intervall: unknown key (did you mean "loop_interval"?)`}},
		{"camel case key", "timing:\n  leaseTTL: 10s\n",
			[]string{`line 2: timing.leaseTTL: unknown key (did you mean "lease_ttl"?)`}},
		{"misspelt section", "timings:\n  lease_ttl: 10s\n",
			[]string{`line 1: timings: unknown key (did you mean "timing"?)`}},
		{"key in the wrong section", "loop_interval: 1s\n",
			[]string{"line 1: loop_interval: unknown key here (did you mean timing.loop_interval?)"}},
		{"key in several other sections", "node:\n  data_dir: /x\n",
			[]string{"line 2: node.data_dir: unknown key here (did you mean database.data_dir or dcs.embedded.data_dir?)"}},
		{"short key, nothing close", "database:\n  host: db1\n",
			[]string{"line 2: database.host: unknown key here (did you mean node.host?)"}},
		{"unknown key, no suggestion", "colour: red\n",
			[]string{"line 1: colour: unknown key"}},
		{"key twice", "cluster: a\ncluster: b\n",
			[]string{"line 2: cluster: set twice (first on line 1)"}},
		{"map entry twice", "dcs:\n  embedded:\n    initial_cluster:\n      n1: http://a:2380\n      n1: http://b:2380\n",
			[]string{"line 5: dcs.embedded.initial_cluster.n1: set twice (first on line 4)"}},

		// Literal passwords.
		{"superuser password", "database:\n  superuser:\n    user: postgres\n    password: hunter2\n",
			[]string{"line 4: database.superuser.password: passwords are not written in the configuration file: use password_file (a file only the agent's account can read, mode 0600) or password_env (an environment variable)"}},
		{"dcs passwd", "dcs:\n  username: vigil\n  passwd: hunter2\n",
			[]string{"line 3: dcs.passwd: passwords are not written in the configuration file: use password_file (a file only the agent's account can read, mode 0600) or password_env (an environment variable)"}},

		// Several at once, in file order.
		{"several problems", "cluster: main\ntiming:\n  lease_ttl: 10\n  loop_intervall: 1s\nfailover:\n  automatic: sometimes\n",
			[]string{
				"line 3: timing.lease_ttl: 10 has no unit: write e.g. 10s or 10ms",
				`line 4: timing.loop_intervall: unknown key (did you mean "loop_interval"?)`,
				"line 6: failover.automatic: must be true or false",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("accepted:\n%s\ngot %+v", tt.yaml, c)
			}
			got := problemLines(t, err)
			equalLines(t, got, tt.want)
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the problem quotes the password: %v", err)
			}
		})
	}
}

func TestLoadNamesUnreadableFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.yaml")
	_, err := Load(path)
	want := "read configuration: open " + path + ": no such file or directory"
	if err == nil || err.Error() != want {
		t.Errorf("Load(missing) = %v, want %q", err, want)
	}
}

// TestValidateProblemsPointAtLines: problems found after decoding still
// name the file and carry the line of the key to change, and no line for
// keys the file left out.
func TestValidateProblemsPointAtLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vigil.yaml")
	text := minimalYAML(t) + "timing:\n  lease_ttl: 2s\n  loop_interval: 1s\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	equalLines(t, problemLines(t, c.Validate()), []string{
		path + ":13: timing.loop_interval: must be less than half of timing.lease_ttl (1s): a leader that cannot renew its lease must get to demote itself before the lease expires",
	})
	// With a shorter loop the default dcs_timeout (800ms) is what does not fit,
	// and the file has no line for it.
	c.Timing.LoopInterval = 500 * time.Millisecond
	equalLines(t, problemLines(t, c.Validate()), []string{
		path + ": timing.dcs_timeout: must be less than timing.lease_ttl/2 - timing.loop_interval (500ms): a leader whose lease renewal hangs this long must still demote itself before the lease expires",
	})
}
