package config

import (
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// The three-node deployment example: examples/cluster/<node>.yaml for
// these nodes and their addresses.
const clusterExampleDir = "../../examples/cluster"

var clusterExampleHosts = map[string]string{"node1": "198.18.0.11", "node2": "198.18.0.12", "node3": "198.18.0.13"}

func loadClusterExample(t *testing.T, node string) *Config {
	t.Helper()
	path := filepath.Join(clusterExampleDir, node+".yaml")
	c, err := Load(path)
	if err != nil {
		t.Fatalf("%s does not load:\n%v", path, err)
	}
	return c
}

// TestClusterExamplesAreValid: every node's file passes `vigil config
// check`. Its settings must pass as written; what it names on the host
// (binaries, account, interface, password, TLS and token files, the
// callback) is replaced by the test's own where this machine lacks it, as
// TestExampleIsValid does, and then the whole check passes without a
// warning.
func TestClusterExamplesAreValid(t *testing.T) {
	for node := range clusterExampleHosts {
		t.Run(node, func(t *testing.T) {
			c := loadClusterExample(t, node)
			if ps := c.settingProblems(); len(ps) > 0 {
				t.Fatalf("the settings of %s.yaml are invalid:\n%v", node, ps)
			}
			if _, err := os.Stat(filepath.Join(c.Database.BinDir, "pg_ctl")); err != nil {
				t.Logf("%s has no pg_ctl here: using a fake one", c.Database.BinDir)
				c.Database.BinDir = fakeBinDir(t, "pg_ctl")
			}
			if _, err := user.Lookup(c.Database.OSUser); err != nil {
				t.Logf("no account %s here: using root", c.Database.OSUser)
				c.Database.OSUser = "root"
			}
			if _, err := net.InterfaceByName(c.VIP.Interface); err != nil {
				t.Logf("no interface %s here: using lo", c.VIP.Interface)
				c.VIP.Interface = "lo"
			}
			// These belong in /etc/vigil and /usr/local/lib/vigil on a real node.
			c.Database.Superuser.PasswordFile = writeFile(t, "superuser.password", "s3cr3t\n", 0o600)
			c.Database.Replication.PasswordFile = writeFile(t, "replication.password", "s3cr3t\n", 0o600)
			c.API.TokenFile = writeFile(t, "api.token", "0123456789abcdef0123\n", 0o600)
			c.API.CertFile = writeFile(t, "api.pem", "certificate\n", 0o600)
			c.API.KeyFile = writeFile(t, "api.key", "key\n", 0o600)
			if !c.DCS.Embedded.TLS.Enabled() {
				t.Fatalf("%s.yaml: the embedded etcd member has no TLS", node)
			}
			c.DCS.Embedded.TLS = issueNodeTLS(t, node, clusterExampleHosts[node])
			if len(c.Callbacks.OnRoleChange) == 0 {
				t.Fatalf("%s.yaml sets no callbacks.on_role_change: the example is meant to show one", node)
			}
			c.Callbacks.OnRoleChange[0] = filepath.Join(fakeBinDir(t, "on-role-change"), "on-role-change")
			if err := c.Validate(); err != nil {
				t.Fatalf("%s.yaml is invalid on this host:\n%v", node, err)
			}
			if ws := c.Warnings(); len(ws) > 0 {
				t.Errorf("%s.yaml draws warnings:\n%v", node, ws)
			}
		})
	}
}

// TestClusterExamplesDescribeOneCluster: the three files are one cluster.
// Each names its own node and address (and its etcd member and API on that
// address); everything the agents must agree on is the same in all three.
func TestClusterExamplesDescribeOneCluster(t *testing.T) {
	configs := map[string]*Config{}
	for node, host := range clusterExampleHosts {
		c := loadClusterExample(t, node)
		configs[node] = c
		if c.Node.Name != node || c.Node.Host != host {
			t.Errorf("%s.yaml: node %s at %s, want %s at %s", node, c.Node.Name, c.Node.Host, node, host)
		}
		for _, u := range []struct{ key, got, want string }{
			{"dcs.embedded.peer_url", c.DCS.Embedded.PeerURL, "https://" + host + ":2380"},
			{"dcs.embedded.client_url", c.DCS.Embedded.ClientURL, "https://" + host + ":2379"},
		} {
			if u.got != u.want {
				t.Errorf("%s.yaml: %s = %q, want %q", node, u.key, u.got, u.want)
			}
		}
		if h, _, err := net.SplitHostPort(c.API.Listen); err != nil || h != host {
			t.Errorf("%s.yaml: api.listen = %q, want %s:PORT (the proxy checks each node on its own address)", node, c.API.Listen, host)
		}
		if !c.DCS.Embedded.Enabled || !c.Rejoin.Automatic || c.VIP.Address == "" || c.API.CertFile == "" || c.API.TokenFile == "" {
			t.Errorf("%s.yaml: the example must show embedded etcd, automatic rejoin, a VIP, and the API with TLS and a token", node)
		}
	}
	// What differs between nodes by design; everything else must match.
	shared := func(c *Config) Config {
		s := *c
		s.Node = Node{}
		s.Database.ConnectHost = "" // node.host when not set
		s.DCS.Embedded.PeerURL, s.DCS.Embedded.ClientURL = "", ""
		s.API.Listen = ""
		s.src = source{}
		return s
	}
	want := shared(configs["node1"])
	for _, node := range []string{"node2", "node3"} {
		if got := shared(configs[node]); !reflect.DeepEqual(got, want) {
			t.Errorf("%s.yaml differs from node1.yaml beyond the node's own name, address, priority, etcd URLs and API address:\n%+v\nnode1:\n%+v", node, got, want)
		}
	}
	if ic := configs["node1"].DCS.Embedded.InitialCluster; len(ic) != len(clusterExampleHosts) {
		t.Errorf("dcs.embedded.initial_cluster has %d members, want all %d nodes", len(ic), len(clusterExampleHosts))
	}
}

// TestClusterExamplesMatchHAProxyAndSystemd: examples/haproxy.cfg checks
// each node's database and API where the node files put them, and
// examples/vigil.service lets the agent (and the server it starts) write
// every directory the node files name, which ProtectSystem=strict would
// otherwise make read-only.
func TestClusterExamplesMatchHAProxyAndSystemd(t *testing.T) {
	hap, err := os.ReadFile("../../examples/haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	unit, err := os.ReadFile("../../examples/vigil.service")
	if err != nil {
		t.Fatal(err)
	}
	var writable []string
	for _, m := range regexp.MustCompile(`(?m)^ReadWritePaths=(.*)$`).FindAllStringSubmatch(string(unit), -1) {
		for _, p := range strings.Fields(m[1]) {
			writable = append(writable, strings.TrimPrefix(p, "-"))
		}
	}
	for _, m := range regexp.MustCompile(`(?m)^StateDirectory=(.*)$`).FindAllStringSubmatch(string(unit), -1) {
		for _, p := range strings.Fields(m[1]) {
			writable = append(writable, filepath.Join("/var/lib", p))
		}
	}
	under := func(path string) bool {
		for _, w := range writable {
			if path == w || strings.HasPrefix(path, strings.TrimSuffix(w, "/")+"/") {
				return true
			}
		}
		return false
	}
	for node, host := range clusterExampleHosts {
		c := loadClusterExample(t, node)
		_, apiPort, err := net.SplitHostPort(c.API.Listen)
		if err != nil {
			t.Fatalf("%s.yaml: api.listen %q: %v", node, c.API.Listen, err)
		}
		for _, backend := range []string{"vigil_primary", "vigil_replicas"} {
			line := fmt.Sprintf(`(?m)^backend %s\n(?:[ \t].*\n|\n|#.*\n)*?\s+server %s %s:%d check port %s\b`, backend, node, regexp.QuoteMeta(host), c.Database.Port, apiPort)
			if !regexp.MustCompile(line).Match(hap) {
				t.Errorf("examples/haproxy.cfg: backend %s has no `server %s %s:%d check port %s ...` line", backend, node, host, c.Database.Port, apiPort)
			}
		}
		// The server's data directory, the pgpass file the agent writes
		// beside it, and where a rejoin moves the old one: its parent.
		for _, dir := range []string{filepath.Dir(c.Database.DataDir), c.DCS.Embedded.DataDir} {
			if !under(dir) {
				t.Errorf("%s.yaml names %s, which examples/vigil.service leaves read-only (ReadWritePaths/StateDirectory: %v)", node, dir, writable)
			}
		}
	}
}
