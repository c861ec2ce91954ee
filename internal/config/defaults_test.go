package config

import (
	"bytes"
	"slices"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/vigil-ha/vigil/internal/flavor"
)

// TestLoadAppliesDefaults: keys the file leaves out get the defaults, the
// flavor's where they differ, and keys it sets keep its value, zero or not.
func TestLoadAppliesDefaults(t *testing.T) {
	type result struct {
		Port                                int
		Superuser, SuperuserDB, ConnectHost string
		EtcdDataDir                         string
		Priority, ARPs                      int
		Automatic                           bool
	}
	const node = "cluster: main\nnode:\n  name: node1\n  host: 198.18.0.11\n"
	tests := []struct {
		name string
		yaml string
		want result
	}{
		{"postgres", node + "database:\n  data_dir: /var/lib/postgresql/15/main\n",
			result{5432, "postgres", "postgres", "198.18.0.11", "/var/lib/postgresql/15/vigil-etcd-node1", 100, 3, true}},
		{"kingbase", node + "database:\n  flavor: kingbase\n",
			result{54321, "system", "test", "198.18.0.11", "", 100, 3, true}},
		{"kingbase with explicit values", node + "database:\n  flavor: kingbase\n  port: 5432\n  connect_host: /tmp\n  superuser: {user: admin, database: kb}\n",
			result{5432, "admin", "kb", "/tmp", "", 100, 3, true}},
		{"explicit zeros are kept", node + "  priority: 0\nvip:\n  gratuitous_arp_count: 0\nfailover:\n  automatic: false\n",
			result{5432, "postgres", "postgres", "198.18.0.11", "", 0, 0, false}},
		{"empty sections keep the defaults", node + "timing:\nfailover:\nvip:\n",
			result{5432, "postgres", "postgres", "198.18.0.11", "", 100, 3, true}},
		{"empty port keeps the flavor's", node + "database:\n  flavor: kingbase\n  port:\n",
			result{54321, "system", "test", "198.18.0.11", "", 100, 3, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			d := c.Database
			got := result{d.Port, d.Superuser.User, d.Superuser.Database, d.ConnectHost, c.DCS.Embedded.DataDir,
				c.Node.Priority, c.VIP.GratuitousARPCount, c.Failover.Automatic}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestDefaultsPassValidation: every default is a valid value, so the only
// problems with the defaults alone are the keys that have none.
func TestDefaultsPassValidation(t *testing.T) {
	for _, name := range flavor.Names() {
		t.Run(name, func(t *testing.T) {
			c := DefaultsFor(name)
			var fields []string
			for _, p := range c.settingProblems() {
				fields = append(fields, p.Field)
			}
			want := []string{"cluster", "node.name", "node.host", "database.bin_dir", "database.data_dir", "dcs", "trusted_ips"}
			if !slices.Equal(fields, want) {
				t.Errorf("problems with the defaults: %v\nwant only the required keys %v", c.settingProblems(), want)
			}
			if ws := c.Warnings(); len(ws) > 0 {
				t.Errorf("the defaults draw warnings:\n%v", ws)
			}
		})
	}
}

// TestDefaultsRoundTrip: what `vigil config defaults` prints loads back
// into the same configuration.
func TestDefaultsRoundTrip(t *testing.T) {
	for _, name := range flavor.Names() {
		t.Run(name, func(t *testing.T) {
			printed, err := yaml.Marshal(DefaultsFor(name))
			if err != nil {
				t.Fatal(err)
			}
			c, err := Parse(printed)
			if err != nil {
				t.Fatalf("the printed defaults do not load:\n%v\n%s", err, printed)
			}
			again, err := yaml.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(printed, again) {
				t.Errorf("printed:\n%s\nloaded and printed again:\n%s", printed, again)
			}
		})
	}
}
