package config

import (
	"strings"
	"testing"
	"time"
)

// validEmbedded turns c into a node with a valid embedded etcd member.
func validEmbedded(c *Config) {
	c.DCS.Endpoints = nil
	c.DCS.Embedded = Embedded{
		Enabled:   true,
		PeerURL:   "http://198.18.0.11:2380",
		ClientURL: "http://198.18.0.11:2379",
		DataDir:   "/var/lib/vigil/etcd",
		// As Defaults has it.
		InitialClusterState: ClusterStateNew,
		InitialCluster: map[string]string{
			"node1": "http://198.18.0.11:2380",
			"node2": "http://198.18.0.12:2380",
			"node3": "http://198.18.0.13:2380",
		},
		// Settings and warnings tests need no certificate files; the TLS
		// cases below and in host_test.go turn TLS on themselves.
		Insecure: true,
	}
}

// withEmbeddedTLS turns a validEmbedded member to https with TLS files
// (which settingProblems does not read).
func withEmbeddedTLS(c *Config) {
	validEmbedded(c)
	e := &c.DCS.Embedded
	e.Insecure = false
	e.PeerURL, e.ClientURL = "https://198.18.0.11:2380", "https://198.18.0.11:2379"
	for n, u := range e.InitialCluster {
		e.InitialCluster[n] = "https" + strings.TrimPrefix(u, "http")
	}
	e.TLS = TLS{CAFile: "/etc/vigil/ca.crt", CertFile: "/etc/vigil/node1.crt", KeyFile: "/etc/vigil/node1.key"}
}

// TestValidateSettings covers the checks that look at the values alone
// (host_test.go covers the rest). Each case changes a valid configuration
// and lists exactly the problems expected; none means the change is allowed.
func TestValidateSettings(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   []string
	}{
		// Required keys.
		{"no cluster", func(c *Config) { c.Cluster = "" },
			[]string{"cluster: required: the cluster's name, the same on every node (e.g. main)"}},
		{"no node name", func(c *Config) { c.Node.Name = "" },
			[]string{"node.name: required: this node's name, unique in the cluster (e.g. node1)"}},
		{"no node host", func(c *Config) { c.Node.Host = "" },
			[]string{"node.host: required: the address the other members reach this node's database at"}},
		{"no bin dir", func(c *Config) { c.Database.BinDir = "" },
			[]string{"database.bin_dir: required: the directory holding pg_ctl (e.g. /usr/lib/postgresql/15/bin)"}},
		{"no data dir", func(c *Config) { c.Database.DataDir = "" },
			[]string{"database.data_dir: required: the server's data directory"}},
		{"no superuser", func(c *Config) { c.Database.Superuser.User = "" },
			[]string{"database.superuser.user: required: the role Vigil runs its SQL as"}},
		{"no superuser database", func(c *Config) { c.Database.Superuser.Database = "" },
			[]string{"database.superuser.database: required: the database Vigil connects to"}},
		{"no replication user", func(c *Config) { c.Database.Replication.User = "" },
			[]string{"database.replication.user: required: the role standbys stream with"}},

		{"failsafe without the API", func(c *Config) { c.DCS.Failsafe = true; c.API.Listen = "" },
			[]string{"dcs.failsafe: needs api.listen and api.token_file: a primary without the DCS keeps its role only while every other member's agent confirms through its API that it will not promote"}},

		// Names and addresses.
		{"upper-case node name", func(c *Config) { c.Node.Name = "Node1" },
			[]string{`node.name: "Node1" may contain only a-z, 0-9, _ and -`}},
		{"node name too long for application_name", func(c *Config) { c.Node.Name = strings.Repeat("n", 64) },
			[]string{`node.name: "` + strings.Repeat("n", 64) + `" is longer than 63 characters`}},
		{"cluster name with a slash", func(c *Config) { c.Cluster = "prod/main" },
			[]string{`cluster: "prod/main" may contain only a-z, 0-9, _ and -`}},
		{"host with scheme and port", func(c *Config) { c.Node.Host = "tcp://198.18.0.11:5432" },
			[]string{"node.host: must be an IP address or a host name, without scheme or port"}},
		{"host name is fine", func(c *Config) { c.Node.Host = "db1.example.net" }, nil},
		{"IPv6 host is fine", func(c *Config) { c.Node.Host = "2001:db8::11" }, nil},
		{"negative priority", func(c *Config) { c.Node.Priority = -1 },
			[]string{"node.priority: must be 0 (never promote this node) or more"}},
		{"priority 0 is fine", func(c *Config) { c.Node.Priority = 0 }, nil},

		// Database.
		{"unknown flavor", func(c *Config) { c.Database.Flavor = "oracle" },
			[]string{`database.flavor: unknown flavor "oracle": use one of kingbase, postgres`}},
		{"relative bin dir", func(c *Config) { c.Database.BinDir = "bin" },
			[]string{"database.bin_dir: must be an absolute path"}},
		{"relative data dir", func(c *Config) { c.Database.DataDir = "data" },
			[]string{"database.data_dir: must be an absolute path"}},
		{"port 0", func(c *Config) { c.Database.Port = 0 },
			[]string{"database.port: 0 is out of range: use 1 to 65535"}},
		{"port too high", func(c *Config) { c.Database.Port = 65536 },
			[]string{"database.port: 65536 is out of range: use 1 to 65535"}},
		{"connect host is a URL", func(c *Config) { c.Database.ConnectHost = "postgres://localhost" },
			[]string{"database.connect_host: must be a unix socket directory (an absolute path), an IP address or a host name"}},
		{"connect host is a socket directory", func(c *Config) { c.Database.ConnectHost = "/var/run/postgresql" }, nil},
		{"connect timeout in milliseconds", func(c *Config) { c.Database.ConnectTimeout = 1500 * time.Millisecond },
			[]string{"database.connect_timeout: must be a whole number of seconds: the server's client library counts it in seconds"}},
		{"connect timeout zero", func(c *Config) { c.Database.ConnectTimeout = 0 },
			[]string{"database.connect_timeout: must be positive (the default is 2s)"}},

		// Secrets.
		{"password file and env", func(c *Config) {
			c.Database.Superuser.Secret = Secret{PasswordFile: "/etc/vigil/pw", PasswordEnv: "PGPASSWORD"}
		}, []string{"database.superuser: password_file and password_env are both set: keep one"}},
		{"relative password file", func(c *Config) { c.Database.Replication.PasswordFile = "replication.password" },
			[]string{"database.replication.password_file: must be an absolute path"}},
		{"password typed as env name", func(c *Config) { c.Database.Replication.PasswordEnv = "s3cr3t!" },
			[]string{"database.replication.password_env: must be the name of an environment variable (letters, digits and _), not the password itself"}},
		{"env name starting with a digit", func(c *Config) { c.Database.Replication.PasswordEnv = "1PASSWORD" },
			[]string{"database.replication.password_env: must be the name of an environment variable (letters, digits and _), not the password itself"}},
		{"env name is fine", func(c *Config) { c.Database.Replication.PasswordEnv = "VIGIL_REPL_PASSWORD_2" }, nil},

		// DCS.
		{"no DCS", func(c *Config) { c.DCS.Endpoints = nil },
			[]string{"dcs: set dcs.endpoints (an external etcd) or dcs.embedded.enabled: true (an etcd member inside the agent)"}},
		{"both DCS kinds", func(c *Config) { validEmbedded(c); c.DCS.Endpoints = []string{"http://198.18.0.21:2379"} },
			[]string{"dcs: dcs.endpoints and dcs.embedded are both set: use an external etcd or the embedded member, not both"}},
		{"endpoint without scheme", func(c *Config) { c.DCS.Endpoints = []string{"http://198.18.0.21:2379", "198.18.0.22:2379"} },
			[]string{"dcs.endpoints[1]: must be a URL with scheme, address and port, e.g. http://198.18.0.21:2379"}},
		{"endpoint without port", func(c *Config) { c.DCS.Endpoints = []string{"https://etcd1"} },
			[]string{"dcs.endpoints[0]: must be a URL with scheme, address and port, e.g. http://198.18.0.21:2379"}},
		{"endpoint with path", func(c *Config) { c.DCS.Endpoints = []string{"http://etcd1:2379/v3"} },
			[]string{"dcs.endpoints[0]: must be just scheme, address and port, e.g. http://198.18.0.21:2379"}},
		{"embedded is fine", validEmbedded, nil},
		{"embedded with mutual TLS is fine", withEmbeddedTLS, nil},
		{"embedded on the network without TLS", func(c *Config) { validEmbedded(c); c.DCS.Embedded.Insecure = false },
			[]string{
				"dcs.embedded.peer_url: listens on 198.18.0.11:2380 without TLS: anyone who reaches that port can write the leader key and force a failover (or, on the peer port, talk raft to the members). " +
					"Set dcs.embedded.tls (certificates from `vigil certs`), or dcs.embedded.insecure: true only on a network the cluster's hosts alone can reach",
				"dcs.embedded.client_url: listens on 198.18.0.11:2379 without TLS: anyone who reaches that port can write the leader key and force a failover (or, on the peer port, talk raft to the members). " +
					"Set dcs.embedded.tls (certificates from `vigil certs`), or dcs.embedded.insecure: true only on a network the cluster's hosts alone can reach",
			}},
		{"embedded on every address without TLS", func(c *Config) {
			validEmbedded(c)
			c.DCS.Embedded.Insecure = false
			c.DCS.Embedded.ClientURL = "http://0.0.0.0:2379"
			c.DCS.Embedded.PeerURL = "http://localhost:2380"
			c.DCS.Embedded.InitialCluster["node1"] = c.DCS.Embedded.PeerURL
		}, []string{
			"dcs.embedded.client_url: listens on 0.0.0.0:2379 without TLS: anyone who reaches that port can write the leader key and force a failover (or, on the peer port, talk raft to the members). " +
				"Set dcs.embedded.tls (certificates from `vigil certs`), or dcs.embedded.insecure: true only on a network the cluster's hosts alone can reach",
		}},
		{"embedded on loopback without TLS is fine", func(c *Config) {
			validEmbedded(c)
			e := &c.DCS.Embedded
			e.Insecure = false
			e.PeerURL, e.ClientURL = "http://127.0.0.1:2380", "http://127.0.0.1:2379"
			e.InitialCluster = map[string]string{"node1": e.PeerURL, "node2": "http://127.0.0.1:2381", "node3": "http://127.0.0.1:2382"}
		}, nil},
		{"embedded TLS with http URLs", func(c *Config) {
			validEmbedded(c)
			c.DCS.Embedded.Insecure = false
			c.DCS.Embedded.TLS = TLS{CAFile: "/etc/vigil/ca.crt", CertFile: "/etc/vigil/node1.crt", KeyFile: "/etc/vigil/node1.key"}
		}, []string{
			"dcs.embedded.peer_url: must be https:// with dcs.embedded.tls: every member serves TLS only",
			"dcs.embedded.client_url: must be https:// with dcs.embedded.tls: every member serves TLS only",
			"dcs.embedded.initial_cluster.node2: must be https:// with dcs.embedded.tls: every member serves TLS only",
			"dcs.embedded.initial_cluster.node3: must be https:// with dcs.embedded.tls: every member serves TLS only",
		}},
		{"embedded https without TLS", func(c *Config) { withEmbeddedTLS(c); c.DCS.Embedded.TLS = TLS{} },
			[]string{
				"dcs.embedded.peer_url: is https:// but dcs.embedded.tls is not set: set its ca_file, cert_file and key_file (`vigil certs`)",
				"dcs.embedded.client_url: is https:// but dcs.embedded.tls is not set: set its ca_file, cert_file and key_file (`vigil certs`)",
				"dcs.embedded.initial_cluster.node2: is https:// but dcs.embedded.tls is not set: set its ca_file, cert_file and key_file (`vigil certs`)",
				"dcs.embedded.initial_cluster.node3: is https:// but dcs.embedded.tls is not set: set its ca_file, cert_file and key_file (`vigil certs`)",
			}},
		{"embedded TLS without CA and with a relative key", func(c *Config) {
			withEmbeddedTLS(c)
			c.DCS.Embedded.TLS.CAFile, c.DCS.Embedded.TLS.KeyFile = "", "node1.key"
		}, []string{
			"dcs.embedded.tls.ca_file: required with the other dcs.embedded.tls files: mutual TLS needs the cluster's CA certificate (ca.crt of `vigil certs init`), which every peer and client certificate must be signed by",
			"dcs.embedded.tls.key_file: must be an absolute path",
		}},
		{"embedded TLS and insecure", func(c *Config) { withEmbeddedTLS(c); c.DCS.Embedded.Insecure = true },
			[]string{"dcs.embedded.insecure: is true while dcs.embedded.tls is set: remove insecure (TLS is on)"}},
		{"dcs.tls with embedded", func(c *Config) { withEmbeddedTLS(c); c.DCS.TLS.CAFile = "/etc/vigil/ca.crt" },
			[]string{"dcs.tls: is for an external etcd: with dcs.embedded the member and this agent's client both use dcs.embedded.tls"}},
		{"embedded without settings", func(c *Config) { c.DCS.Endpoints = nil; c.DCS.Embedded.Enabled = true },
			[]string{
				"dcs.embedded.peer_url: required with dcs.embedded.enabled (e.g. https://198.18.0.11:2380 for peers, :2379 for clients)",
				"dcs.embedded.client_url: required with dcs.embedded.enabled (e.g. https://198.18.0.11:2380 for peers, :2379 for clients)",
				"dcs.embedded.initial_cluster: required with dcs.embedded.enabled: every member's name and peer URL, the same on every member",
			}},
		{"embedded without this node", func(c *Config) { validEmbedded(c); delete(c.DCS.Embedded.InitialCluster, "node1") },
			[]string{"dcs.embedded.initial_cluster: must list this node (node1) with its peer URL: the embedded member is named after node.name"}},
		{"embedded peer URL differs", func(c *Config) { validEmbedded(c); c.DCS.Embedded.PeerURL = "http://198.18.0.11:2381" },
			[]string{"dcs.embedded.initial_cluster.node1: must equal dcs.embedded.peer_url (http://198.18.0.11:2381)"}},
		{"embedded member with bad name and URL", func(c *Config) { validEmbedded(c); c.DCS.Embedded.InitialCluster["Node4"] = "node4:2380" },
			[]string{
				`dcs.embedded.initial_cluster.Node4: "Node4" may contain only a-z, 0-9, _ and -`,
				"dcs.embedded.initial_cluster.Node4: must be a URL with scheme, address and port, e.g. http://198.18.0.21:2379",
			}},
		{"embedded cluster state unknown", func(c *Config) { validEmbedded(c); c.DCS.Embedded.InitialClusterState = "join" },
			[]string{`dcs.embedded.initial_cluster_state: "join" is not a state: use new (found the cluster with initial_cluster) or existing (join a running cluster after ` + "`vigil ctl member add`)"}},
		{"embedded relative data dir", func(c *Config) { validEmbedded(c); c.DCS.Embedded.DataDir = "etcd" },
			[]string{"dcs.embedded.data_dir: must be an absolute path"}},
		{"election shorter than 5 ticks", func(c *Config) { validEmbedded(c); c.DCS.Embedded.TickMs = 300 },
			[]string{"dcs.embedded.election_ms: must be at least 5 times dcs.embedded.tick_ms (1500): etcd refuses to start otherwise"}},
		{"election too long", func(c *Config) { validEmbedded(c); c.DCS.Embedded.ElectionMs = 60000 },
			[]string{"dcs.embedded.election_ms: must be at most 50000: etcd refuses a longer election timeout"}},
		{"prefix without slash", func(c *Config) { c.DCS.Prefix = "vigil" },
			[]string{"dcs.prefix: must start with / and not end with one, e.g. /vigil"}},
		{"prefix with trailing slash", func(c *Config) { c.DCS.Prefix = "/vigil/" },
			[]string{"dcs.prefix: must start with / and not end with one, e.g. /vigil"}},
		{"certificate without key", func(c *Config) { c.DCS.TLS.CertFile = "/etc/vigil/etcd.pem" },
			[]string{"dcs.tls.key_file: required with dcs.tls.cert_file: the client certificate's private key"}},
		{"key without certificate", func(c *Config) { c.DCS.TLS.KeyFile = "/etc/vigil/etcd.key" },
			[]string{"dcs.tls.cert_file: required with dcs.tls.key_file: the client certificate"}},
		{"relative CA file", func(c *Config) { c.DCS.TLS.CAFile = "ca.pem" },
			[]string{"dcs.tls.ca_file: must be an absolute path"}},
		{"etcd user without password", func(c *Config) { c.DCS.Username = "vigil" },
			[]string{"dcs.username: needs dcs.password_file or dcs.password_env: etcd authenticates a user by password"}},
		{"etcd password without user", func(c *Config) { c.DCS.PasswordEnv = "ETCD_PASSWORD" },
			[]string{"dcs.username: required with dcs.password_file or dcs.password_env: the etcd user the password belongs to"}},

		// VIP.
		{"VIP without prefix length", func(c *Config) { c.VIP = VIP{Address: "198.18.0.100", Interface: "lo"} },
			[]string{"vip.address: must be an address with its prefix length, e.g. 198.18.0.100/24"}},
		{"VIP not an address", func(c *Config) { c.VIP = VIP{Address: "vip.example.net/24", Interface: "lo"} },
			[]string{"vip.address: must be an address with its prefix length, e.g. 198.18.0.100/24"}},
		{"VIP without interface", func(c *Config) { c.VIP.Address = "198.18.0.100/24" },
			[]string{"vip.interface: required with vip.address: the network interface to add the address to (e.g. eth0)"}},
		{"VIP is node host", func(c *Config) { c.VIP = VIP{Address: "198.18.0.11/24", Interface: "lo"} },
			[]string{"vip.address: must differ from node.host: the VIP moves between nodes, node.host must stay put"}},
		{"negative ARP count", func(c *Config) { c.VIP.GratuitousARPCount = -1 },
			[]string{"vip.gratuitous_arp_count: must be 0 (send none) or more"}},

		// Trusted IPs.
		{"no trusted IPs", func(c *Config) { c.TrustedIPs = nil },
			[]string{"trusted_ips: required while failover.automatic is true: at least one address outside the cluster (e.g. the gateway) that lets an agent tell it is the one cut off; or set failover.automatic: false"}},
		{"no trusted IPs without automatic failover", func(c *Config) { c.TrustedIPs = nil; c.Failover.Automatic = false }, nil},
		{"trusted host name", func(c *Config) { c.TrustedIPs = []string{"198.18.0.1", "gateway"} },
			[]string{"trusted_ips[1]: must be an IP address or IP:port: a host name would need DNS, which may be what failed"}},
		{"trusted IP with a port", func(c *Config) { c.TrustedIPs = []string{"198.18.0.1:22"} }, nil},
		{"trusted loopback on a single-host lab", func(c *Config) { c.Node.Host = "127.0.0.1"; c.TrustedIPs = []string{"127.0.0.1:1"} }, nil},
		{"trusted loopback", func(c *Config) { c.TrustedIPs = []string{"127.0.0.1"} },
			[]string{"trusted_ips[0]: 127.0.0.1 always answers, so it cannot tell a node it is cut off: use an address outside this host"}},
		{"trusted self", func(c *Config) { c.TrustedIPs = []string{"198.18.0.11"} },
			[]string{"trusted_ips[0]: 198.18.0.11 is node.host, which always answers: use an address outside this host"}},
		{"trusted VIP", func(c *Config) {
			c.VIP = VIP{Address: "198.18.0.100/24", Interface: "lo"}
			c.TrustedIPs = []string{"198.18.0.100"}
		}, []string{"trusted_ips[0]: 198.18.0.100 is the VIP, which may be on this very node: use an address outside the cluster"}},

		// Timing: what cannot work, not what is merely unusual.
		{"zero lease", func(c *Config) { c.Timing.LeaseTTL = 0 },
			[]string{"timing.lease_ttl: must be positive (the default is 3s)"}},
		{"negative loop interval", func(c *Config) { c.Timing.LoopInterval = -time.Second },
			[]string{"timing.loop_interval: must be positive (the default is 500ms)"}},
		{"zero timeouts", func(c *Config) {
			c.Timing.DCSTimeout, c.Timing.DBTimeout, c.Timing.PromoteTimeout, c.Timing.ReadinessTimeout = 0, 0, 0, 0
		}, []string{
			"timing.dcs_timeout: must be positive (the default is 800ms)",
			"timing.db_timeout: must be positive (the default is 2s)",
			"timing.promote_timeout: must be positive (the default is 1m0s)",
			"timing.readiness_timeout: must be positive (the default is 5m0s)",
		}},
		{"lease in milliseconds", func(c *Config) { c.Timing.LeaseTTL = 10500 * time.Millisecond },
			[]string{"timing.lease_ttl: must be a whole number of seconds: etcd grants leases in seconds"}},
		{"loop interval half the lease", func(c *Config) { c.Timing.LoopInterval = 1500 * time.Millisecond },
			[]string{"timing.loop_interval: must be less than half of timing.lease_ttl (1.5s): a leader that cannot renew its lease must get to demote itself before the lease expires"}},
		{"loop interval longer than the lease", func(c *Config) { c.Timing.LoopInterval = 20 * time.Second },
			[]string{"timing.loop_interval: must be less than half of timing.lease_ttl (1.5s): a leader that cannot renew its lease must get to demote itself before the lease expires"}},
		{"DCS timeout uses up the demotion time", func(c *Config) { c.Timing.DCSTimeout = time.Second },
			[]string{"timing.dcs_timeout: must be less than timing.lease_ttl/2 - timing.loop_interval (1s): a leader whose lease renewal hangs this long must still demote itself before the lease expires"}},
		{"DCS timeout longer than the loop is fine", func(c *Config) { c.Timing.DCSTimeout = 900 * time.Millisecond }, nil},
		{"readiness shorter than one probe", func(c *Config) { c.Timing.ReadinessTimeout = 2 * time.Second },
			[]string{"timing.readiness_timeout: must be longer than timing.db_timeout (2s): the readiness gate needs time for at least one write probe"}},

		// Failover policy.
		{"synchronous mode yes", func(c *Config) { c.Failover.SynchronousMode = "yes" },
			[]string{`failover.synchronous_mode: "yes" is not a mode: use off, on or strict`}},
		{"synchronous mode strict", func(c *Config) { c.Failover.SynchronousMode = SyncStrict }, nil},
		{"unknown crash policy", func(c *Config) { c.Failover.PrimaryCrash = "reboot" },
			[]string{`failover.primary_crash: "reboot" is not a policy: use failover or restart`}},
		{"restart without timeout", func(c *Config) { c.Failover.PrimaryCrash = CrashRestart; c.Failover.RestartTimeout = 0 },
			[]string{"failover.restart_timeout: must be positive (the default is 30s)"}},
		{"restart timeout unused by failover", func(c *Config) { c.Failover.RestartTimeout = 0 }, nil},

		// SSH fencing.
		{"SSH fence without key files", func(c *Config) { c.Failover.FenceSSH.User = "root" }, []string{
			"failover.fence_ssh.key_file: required with failover.fence_ssh.user, as an absolute path (host keys are always verified)",
			"failover.fence_ssh.known_hosts_file: required with failover.fence_ssh.user, as an absolute path (host keys are always verified)",
		}},
		{"SSH fence complete", func(c *Config) {
			c.Failover.FenceSSH = SSH{User: "root", KeyFile: "/etc/vigil/k", KnownHostsFile: "/etc/vigil/kh", Port: 2222}
		}, nil},

		// Rejoin, API, callbacks.
		{"unknown rejoin method", func(c *Config) { c.Rejoin.Method = "rsync" },
			[]string{`rejoin.method: "rsync" is not a method: use auto, rewind or basebackup`}},
		{"rejoin by base backup", func(c *Config) { c.Rejoin.Method = RejoinBaseBackup; c.Rejoin.Automatic = true }, nil},
		{"rewind account without a password", func(c *Config) { c.Rejoin.Rewind.User = "rewinder" },
			[]string{"rejoin.rewind: password_file or password_env is required with rejoin.rewind.user"}},
		{"rewind password without a user", func(c *Config) { c.Rejoin.Rewind.PasswordEnv = "REWIND_PW" },
			[]string{"rejoin.rewind.user: required with a rewind password: the role pg_rewind connects as"}},
		{"rewind account", func(c *Config) { c.Rejoin.Rewind.User, c.Rejoin.Rewind.PasswordEnv = "rewinder", "REWIND_PW" }, nil},
		{"API listen without port", func(c *Config) { c.API.Listen = "198.18.0.11" },
			[]string{`api.listen: "198.18.0.11" is not host:port (e.g. :8008 or 198.18.0.11:8008)`}},
		{"API listen on all addresses", func(c *Config) { c.API.Listen = ":8008" }, nil},
		{"API certificate without key", func(c *Config) { c.API = API{Listen: ":8008", CertFile: "/etc/vigil/api.pem", ReplicaMaxLag: 1} },
			[]string{"api.cert_file: api.cert_file and api.key_file go together: set both for TLS, or neither"}},
		{"API token file relative", func(c *Config) { c.API.Listen = ":8008"; c.API.TokenFile = "api.token" },
			[]string{"api.token_file: must be an absolute path: the agent's working directory is not the file's"}},
		{"API client CA without TLS", func(c *Config) { c.API.Listen = ":8008"; c.API.ClientCAFile = "/etc/vigil/ca.crt" },
			[]string{"api.client_ca_file: client certificates need TLS: set api.cert_file and api.key_file too"}},
		{"API client CA relative", func(c *Config) {
			c.API.Listen, c.API.CertFile, c.API.KeyFile, c.API.ClientCAFile = ":8008", "/etc/vigil/api.crt", "/etc/vigil/api.key", "ca.crt"
		}, []string{"api.client_ca_file: must be an absolute path: the agent's working directory is not the file's"}},
		{"API token without listen", func(c *Config) { c.API.TokenFile = "/etc/vigil/api.token" },
			[]string{"api.listen: is empty, so no API is served, but api.cert_file or api.token_file is set: set api.listen (e.g. :8008)"}},
		{"replica lag limit zero", func(c *Config) { c.API.ReplicaMaxLag = 0 },
			[]string{"api.replica_max_lag: must be positive (bytes; the default is 16777216)"}},
		{"callback timeout zero", func(c *Config) { c.Callbacks.Timeout = 0 },
			[]string{"callbacks.timeout: must be positive (the default is 30s)"}},
		{"callback through PATH", func(c *Config) { c.Callbacks.OnRoleChange = []string{"notify.sh", "--x"} },
			[]string{`callbacks.on_role_change: the program "notify.sh" must be an absolute path: it runs without a shell or PATH lookup`}},

		// Several problems at once: one entry each.
		{"several problems", func(c *Config) {
			c.Node.Name = ""
			c.Database.Port = 0
			c.Timing.LoopInterval = 5 * time.Second
			c.Failover.SynchronousMode = "maybe"
		}, []string{
			"node.name: required: this node's name, unique in the cluster (e.g. node1)",
			"database.port: 0 is out of range: use 1 to 65535",
			"timing.loop_interval: must be less than half of timing.lease_ttl (1.5s): a leader that cannot renew its lease must get to demote itself before the lease expires",
			`failover.synchronous_mode: "maybe" is not a mode: use off, on or strict`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig(t)
			tt.change(c)
			equalLines(t, c.settingProblems().strings(), tt.want)
		})
	}
}

// TestValidateMissingEverything: a file with only the cluster name gets one
// problem per missing key.
func TestValidateMissingEverything(t *testing.T) {
	c, err := Parse([]byte("cluster: main\n"))
	if err != nil {
		t.Fatal(err)
	}
	equalLines(t, problemLines(t, c.Validate()), []string{
		"node.name: required: this node's name, unique in the cluster (e.g. node1)",
		"node.host: required: the address the other members reach this node's database at",
		"database.bin_dir: required: the directory holding pg_ctl (e.g. /usr/lib/postgresql/15/bin)",
		"database.data_dir: required: the server's data directory",
		"dcs: set dcs.endpoints (an external etcd) or dcs.embedded.enabled: true (an etcd member inside the agent)",
		"trusted_ips: required while failover.automatic is true: at least one address outside the cluster (e.g. the gateway) that lets an agent tell it is the one cut off; or set failover.automatic: false",
	})
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   []string
	}{
		{"defaults", func(*Config) {}, nil},
		{"connect timeout longer than every call", func(c *Config) { c.Database.ConnectTimeout = 5 * time.Second },
			[]string{"database.connect_timeout: is longer than timing.db_timeout (2s), which bounds every database call including its connection, so it never takes effect"}},
		{"interface without VIP", func(c *Config) { c.VIP.Interface = "eth0" },
			[]string{"vip.interface: is set but vip.address is empty: no VIP is managed"}},
		{"embedded three members", validEmbedded, nil},
		{"embedded single member", func(c *Config) {
			validEmbedded(c)
			c.DCS.Embedded.InitialCluster = map[string]string{"node1": c.DCS.Embedded.PeerURL}
		}, []string{"dcs.embedded.initial_cluster: has one member: etcd, and with it every failover, stops when that member does; use 3 or 5"}},
		{"embedded two members", func(c *Config) { validEmbedded(c); delete(c.DCS.Embedded.InitialCluster, "node3") },
			[]string{"dcs.embedded.initial_cluster: has 2 members: etcd needs a majority, so 2 tolerate no more failures than 1; use an odd number"}},
		{"embedded member joining a cluster of three", func(c *Config) {
			validEmbedded(c)
			c.DCS.Embedded.InitialClusterState = ClusterStateExisting
			c.DCS.Embedded.InitialCluster["node4"] = "http://198.18.0.14:2380"
		}, nil},
		{"lease below etcd's minimum", func(c *Config) {
			validEmbedded(c)
			c.DCS.Embedded.ElectionMs = 5000
			c.Timing.LeaseTTL, c.Timing.DCSTimeout = 4*time.Second, 500*time.Millisecond
		}, []string{"timing.lease_ttl: is below etcd's shortest lease with election_ms 5000 (8s), which etcd uses instead: failovers take that long"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig(t)
			tt.change(c)
			if err := c.Validate(); err != nil {
				t.Fatalf("the change makes the configuration invalid:\n%v", err)
			}
			equalLines(t, c.Warnings().strings(), tt.want)
		})
	}
}
