package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/internal/decision"
)

// Validate reports every problem with the configuration as Problems, one
// entry per problem, or nil. It checks the values themselves first, then
// this host (see hostProblems); it changes nothing.
func (c *Config) Validate() error {
	ps := append(c.settingProblems(), c.hostProblems()...)
	if len(ps) == 0 {
		return nil
	}
	return ps
}

// Warnings lists what is allowed but probably not meant. They do not stop
// the agent.
func (c *Config) Warnings() Problems {
	ws := slices.Clone(c.src.deprecated)
	ws = append(ws, c.settingWarnings()...)
	return append(ws, c.hostWarnings()...)
}

// settingProblems checks the values alone, the same on any host.
func (c *Config) settingProblems() Problems {
	var ps Problems
	ps = append(ps, c.nodeProblems()...)
	ps = append(ps, c.databaseProblems()...)
	ps = append(ps, c.dcsProblems()...)
	ps = append(ps, c.vipProblems()...)
	ps = append(ps, c.trustedIPProblems()...)
	ps = append(ps, c.timingProblems()...)
	ps = append(ps, c.failoverProblems()...)
	ps = append(ps, c.operationProblems()...)
	ps = append(ps, c.bootstrapProblems()...)
	return ps
}

// maxNameLength is NAMEDATALEN - 1: a node's name becomes its standby's
// application_name, which the server truncates beyond that, and
// synchronous_standby_names would then match the wrong string.
const maxNameLength = 63

// nameProblem says what is wrong with a cluster or node name, "" if nothing.
// Names are part of DCS keys and of synchronous_standby_names, where only
// this plain alphabet needs no quoting.
func nameProblem(name string) string {
	if len(name) > maxNameLength {
		return fmt.Sprintf("%q is longer than %d characters", name, maxNameLength)
	}
	for _, r := range name {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' && r != '-' {
			return fmt.Sprintf("%q may contain only a-z, 0-9, _ and -", name)
		}
	}
	return ""
}

// validHost accepts an IP address or a DNS host name, without scheme or port.
func validHost(host string) bool {
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	if len(host) == 0 || len(host) > 253 {
		return false
	}
	for label := range strings.SplitSeq(strings.TrimSuffix(host, "."), ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '-' {
				return false
			}
		}
	}
	return true
}

func (c *Config) nodeProblems() Problems {
	var ps Problems
	switch {
	case c.Cluster == "":
		ps = append(ps, c.at("cluster", "required: the cluster's name, the same on every node (e.g. main)"))
	case nameProblem(c.Cluster) != "":
		ps = append(ps, c.at("cluster", "%s", nameProblem(c.Cluster)))
	}
	switch {
	case c.Node.Name == "":
		ps = append(ps, c.at("node.name", "required: this node's name, unique in the cluster (e.g. node1)"))
	case nameProblem(c.Node.Name) != "":
		ps = append(ps, c.at("node.name", "%s", nameProblem(c.Node.Name)))
	}
	switch {
	case c.Node.Host == "":
		ps = append(ps, c.at("node.host", "required: the address the other members reach this node's database at"))
	case !validHost(c.Node.Host):
		ps = append(ps, c.at("node.host", "must be an IP address or a host name, without scheme or port"))
	}
	if c.Node.Priority < 0 {
		ps = append(ps, c.at("node.priority", "must be 0 (never promote this node) or more"))
	}
	return ps
}

func (c *Config) databaseProblems() Problems {
	d := c.Database
	ps := c.src.databaseProblems(d.Database, true)
	if h := d.ConnectHost; h != "" && !strings.HasPrefix(h, "/") && !validHost(h) {
		ps = append(ps, c.at("database.connect_host", "must be a unix socket directory (an absolute path), an IP address or a host name"))
	}
	return append(ps, c.src.roleProblems(d.Database)...)
}

func validEnvName(name string) bool {
	for i, r := range name {
		letter := r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
		if !letter && (i == 0 || r < '0' || r > '9') {
			return false
		}
	}
	return name != ""
}

func (c *Config) dcsProblems() Problems {
	var ps Problems
	d := c.DCS
	switch {
	case len(d.Endpoints) == 0 && !d.Embedded.Enabled:
		ps = append(ps, c.at("dcs", "set dcs.endpoints (an external etcd) or dcs.embedded.enabled: true (an etcd member inside the agent)"))
	case len(d.Endpoints) > 0 && d.Embedded.Enabled:
		ps = append(ps, c.at("dcs", "dcs.endpoints and dcs.embedded are both set: use an external etcd or the embedded member, not both"))
	}
	if d.Failsafe && (c.API.Listen == "" || c.API.TokenFile == "") {
		ps = append(ps, c.at("dcs.failsafe", "needs api.listen and api.token_file: a primary without the DCS keeps its role only while every other member's agent confirms through its API that it will not promote"))
	}
	for i, e := range d.Endpoints {
		field := fmt.Sprintf("dcs.endpoints[%d]", i)
		if msg := etcdURLProblem(e); msg != "" {
			ps = append(ps, c.at(field, "%s", msg))
		}
	}
	if d.Embedded.Enabled {
		ps = append(ps, c.embeddedProblems()...)
	}
	if !strings.HasPrefix(d.Prefix, "/") || (len(d.Prefix) > 1 && strings.HasSuffix(d.Prefix, "/")) || strings.ContainsAny(d.Prefix, " \t\n") {
		ps = append(ps, c.at("dcs.prefix", "must start with / and not end with one, e.g. /vigil"))
	}
	ps = append(ps, c.src.optionalPath("dcs.tls.ca_file", d.TLS.CAFile)...)
	ps = append(ps, c.src.optionalPath("dcs.tls.cert_file", d.TLS.CertFile)...)
	ps = append(ps, c.src.optionalPath("dcs.tls.key_file", d.TLS.KeyFile)...)
	if d.Embedded.Enabled && d.TLS.Enabled() {
		// Two sets of files for one connection would leave the reader
		// guessing which one the agent presents.
		ps = append(ps, c.at("dcs.tls", "is for an external etcd: with dcs.embedded the member and this agent's client both use dcs.embedded.tls"))
	}
	switch {
	case d.TLS.CertFile != "" && d.TLS.KeyFile == "":
		ps = append(ps, c.at("dcs.tls.key_file", "required with dcs.tls.cert_file: the client certificate's private key"))
	case d.TLS.CertFile == "" && d.TLS.KeyFile != "":
		ps = append(ps, c.at("dcs.tls.cert_file", "required with dcs.tls.key_file: the client certificate"))
	}
	switch {
	case d.Username != "" && !d.IsSet():
		ps = append(ps, c.at("dcs.username", "needs dcs.password_file or dcs.password_env: etcd authenticates a user by password"))
	case d.Username == "" && d.IsSet():
		ps = append(ps, c.at("dcs.username", "required with dcs.password_file or dcs.password_env: the etcd user the password belongs to"))
	}
	ps = append(ps, c.src.secretProblems("dcs", d.Secret)...)
	return ps
}

// etcdURLProblem says what is wrong with an etcd client or peer URL.
func etcdURLProblem(raw string) string {
	const want = "must be a URL with scheme, address and port, e.g. http://198.18.0.21:2379"
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.Port() == "" {
		return want
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return "must be just scheme, address and port, e.g. http://198.18.0.21:2379"
	}
	return ""
}

func (c *Config) embeddedProblems() Problems {
	var ps Problems
	e := c.DCS.Embedded
	for _, u := range []struct{ field, value string }{
		{"dcs.embedded.peer_url", e.PeerURL},
		{"dcs.embedded.client_url", e.ClientURL},
	} {
		switch {
		case u.value == "":
			ps = append(ps, c.at(u.field, "required with dcs.embedded.enabled (e.g. https://198.18.0.11:2380 for peers, :2379 for clients)"))
		case etcdURLProblem(u.value) != "":
			ps = append(ps, c.at(u.field, "%s", etcdURLProblem(u.value)))
		default:
			ps = append(ps, c.embeddedURLProblems(u.field, u.value, true)...)
		}
	}
	ps = append(ps, c.embeddedTLSProblems()...)
	ps = append(ps, c.src.optionalPath("dcs.embedded.data_dir", e.DataDir)...)
	tick, election := e.raftTiming()
	switch {
	case election > maxElectionMs:
		ps = append(ps, c.at("dcs.embedded.election_ms", "must be at most %d: etcd refuses a longer election timeout", maxElectionMs))
	case 5*tick > election:
		ps = append(ps, c.at("dcs.embedded.election_ms", "must be at least 5 times dcs.embedded.tick_ms (%d): etcd refuses to start otherwise", 5*tick))
	}
	if !slices.Contains([]string{ClusterStateNew, ClusterStateExisting}, e.InitialClusterState) {
		ps = append(ps, c.at("dcs.embedded.initial_cluster_state", "%q is not a state: use new (found the cluster with initial_cluster) or existing (join a running cluster after `vigil ctl member add`)", e.InitialClusterState))
	}
	if len(e.InitialCluster) == 0 {
		return append(ps, c.at("dcs.embedded.initial_cluster", "required with dcs.embedded.enabled: every member's name and peer URL, the same on every member"))
	}
	names := make([]string, 0, len(e.InitialCluster))
	for name := range e.InitialCluster {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		field := "dcs.embedded.initial_cluster." + name
		if msg := nameProblem(name); msg != "" {
			ps = append(ps, c.at(field, "%s", msg))
		}
		if msg := etcdURLProblem(e.InitialCluster[name]); msg != "" {
			ps = append(ps, c.at(field, "%s", msg))
		} else if name != c.Node.Name {
			// This node's own entry equals peer_url, checked below.
			ps = append(ps, c.embeddedURLProblems(field, e.InitialCluster[name], false)...)
		}
	}
	// etcd refuses to start when its own entry is missing or differs; saying
	// so here names the keys to fix.
	own, ok := e.InitialCluster[c.Node.Name]
	switch {
	case c.Node.Name == "":
	case !ok:
		ps = append(ps, c.at("dcs.embedded.initial_cluster", "must list this node (%s) with its peer URL: the embedded member is named after node.name", c.Node.Name))
	case e.PeerURL != "" && own != e.PeerURL:
		ps = append(ps, c.at("dcs.embedded.initial_cluster."+c.Node.Name, "must equal dcs.embedded.peer_url (%s)", e.PeerURL))
	}
	return ps
}

// embeddedTLSProblems checks the form of dcs.embedded.tls and insecure;
// hostProblems reads the files.
func (c *Config) embeddedTLSProblems() Problems {
	e := c.DCS.Embedded
	var ps Problems
	files := []struct{ field, path, what string }{
		{"dcs.embedded.tls.ca_file", e.TLS.CAFile, "the cluster's CA certificate (ca.crt of `vigil certs init`), which every peer and client certificate must be signed by"},
		{"dcs.embedded.tls.cert_file", e.TLS.CertFile, "this node's certificate (`vigil certs node`)"},
		{"dcs.embedded.tls.key_file", e.TLS.KeyFile, "this node's private key (`vigil certs node`)"},
	}
	for _, f := range files {
		switch {
		case f.path == "" && e.TLS.Enabled():
			ps = append(ps, c.at(f.field, "required with the other dcs.embedded.tls files: mutual TLS needs %s", f.what))
		case f.path != "":
			ps = append(ps, c.src.optionalPath(f.field, f.path)...)
		}
	}
	if e.Insecure && e.TLS.Enabled() {
		ps = append(ps, c.at("dcs.embedded.insecure", "is true while dcs.embedded.tls is set: remove insecure (TLS is on)"))
	}
	return ps
}

// embeddedURLProblems checks that an embedded member's URL matches its TLS
// setting, and, when listen is true (this member's own URLs), that a member
// without TLS listens only on loopback unless dcs.embedded.insecure says
// otherwise. raw is a valid URL.
func (c *Config) embeddedURLProblems(field, raw string, listen bool) Problems {
	e := c.DCS.Embedded
	u, _ := url.Parse(raw)
	switch {
	case e.TLS.Enabled() && u.Scheme != "https":
		// etcd serves a member's URLs either with TLS or without, and a
		// peer dialling http:// would never reach a TLS member.
		return Problems{c.at(field, "must be https:// with dcs.embedded.tls: every member serves TLS only")}
	case !e.TLS.Enabled() && u.Scheme != "http":
		return Problems{c.at(field, "is https:// but dcs.embedded.tls is not set: set its ca_file, cert_file and key_file (`vigil certs`)")}
	case listen && !e.TLS.Enabled() && !e.Insecure && !loopbackHost(u.Hostname()):
		return Problems{c.at(field, "listens on %s without TLS: anyone who reaches that port can write the leader key and force a failover (or, on the peer port, talk raft to the members). "+
			"Set dcs.embedded.tls (certificates from `vigil certs`), or dcs.embedded.insecure: true only on a network the cluster's hosts alone can reach", u.Host)}
	}
	return nil
}

// loopbackHost reports whether host names only this machine. An empty or
// unspecified address (0.0.0.0) listens on every interface, so it is not.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// etcd's raft defaults and its upper limit on the election timeout, in
// milliseconds (go.etcd.io/etcd/server/v3/embed).
const (
	defaultTickMs     = 100
	defaultElectionMs = 1000
	maxElectionMs     = 50000
)

// raftTiming returns the heartbeat interval and election timeout etcd will
// use, in milliseconds.
func (e Embedded) raftTiming() (tick, election uint) {
	tick, election = e.TickMs, e.ElectionMs
	if tick == 0 {
		tick = defaultTickMs
	}
	if election == 0 {
		election = defaultElectionMs
	}
	return tick, election
}

func (c *Config) vipProblems() Problems {
	ps, prefix := c.src.vipProblems(c.VIP)
	if host, err := netip.ParseAddr(c.Node.Host); err == nil && prefix.IsValid() && host == prefix.Addr() {
		ps = append(ps, c.at("vip.address", "must differ from node.host: the VIP moves between nodes, node.host must stay put"))
	}
	return ps
}

func (c *Config) trustedIPProblems() Problems {
	var ps Problems
	if len(c.TrustedIPs) == 0 && c.Failover.Automatic {
		ps = append(ps, c.at("trusted_ips", "required while failover.automatic is true: at least one address outside the cluster (e.g. the gateway) that lets an agent tell it is the one cut off; or set failover.automatic: false"))
	}
	vip, _ := netip.ParsePrefix(c.VIP.Address)
	host, _ := netip.ParseAddr(c.Node.Host)
	for i, raw := range c.TrustedIPs {
		field := fmt.Sprintf("trusted_ips[%d]", i)
		ip, msg := trustedAddrProblem(raw, host.IsLoopback())
		switch {
		case msg != "":
			ps = append(ps, c.at(field, "%s", msg))
		case ip == host && !host.IsLoopback():
			ps = append(ps, c.at(field, "%s is node.host, which always answers: use an address outside this host", ip))
		case vip.IsValid() && ip == vip.Addr():
			ps = append(ps, c.at(field, "%s is the VIP, which may be on this very node: use an address outside the cluster", ip))
		}
	}
	return ps
}

func (c *Config) timingProblems() Problems {
	t := c.Timing
	def := Defaults().Timing
	var ps Problems
	for _, d := range []struct {
		field      string
		value, def time.Duration
	}{
		{"timing.lease_ttl", t.LeaseTTL, def.LeaseTTL},
		{"timing.loop_interval", t.LoopInterval, def.LoopInterval},
		{"timing.dcs_timeout", t.DCSTimeout, def.DCSTimeout},
	} {
		ps = append(ps, c.src.durationProblems(d.field, d.value, d.def)...)
	}
	ps = append(ps, c.src.stepTimeoutProblems(t.StepTimeouts, def.StepTimeouts)...)
	if len(ps) > 0 {
		return ps
	}
	if t.LeaseTTL%time.Second != 0 {
		ps = append(ps, c.at("timing.lease_ttl", "must be a whole number of seconds: etcd grants leases in seconds"))
	}
	// The lease arithmetic is package decision's; it names the setting at fault.
	lease := decision.Config{LeaseTTL: t.LeaseTTL, LoopInterval: t.LoopInterval, DCSTimeout: t.DCSTimeout}
	if p := lease.CheckTiming(); p != nil {
		ps = append(ps, c.at("timing."+p.Field, "%s", strings.NewReplacer("lease_ttl", "timing.lease_ttl", "loop_interval", "timing.loop_interval").Replace(p.Reason)))
	}
	return append(ps, c.src.readinessProblems(t.StepTimeouts)...)
}

func (c *Config) failoverProblems() Problems {
	var ps Problems
	f := c.Failover
	if !slices.Contains([]string{SyncOff, SyncOn, SyncStrict}, f.SynchronousMode) {
		ps = append(ps, c.at("failover.synchronous_mode", "%q is not a mode: use off, on or strict", f.SynchronousMode))
	}
	switch f.PrimaryCrash {
	case CrashFailover:
	case CrashRestart:
		ps = append(ps, c.src.durationProblems("failover.restart_timeout", f.RestartTimeout, Defaults().Failover.RestartTimeout)...)
	default:
		ps = append(ps, c.at("failover.primary_crash", "%q is not a policy: use failover or restart", f.PrimaryCrash))
	}
	if f.FenceSSH.User != "" {
		ps = append(ps, c.src.sshProblems("failover.fence_ssh", f.FenceSSH)...)
	}
	return ps
}

// operationProblems checks rejoin, api and callbacks.
func (c *Config) operationProblems() Problems {
	var ps Problems
	if !slices.Contains([]string{RejoinAuto, RejoinRewind, RejoinBaseBackup}, c.Rejoin.Method) {
		ps = append(ps, c.at("rejoin.method", "%q is not a method: use auto, rewind or basebackup", c.Rejoin.Method))
	}
	if rw := c.Rejoin.Rewind; rw.User != "" || rw.IsSet() {
		if rw.User == "" {
			ps = append(ps, c.at("rejoin.rewind.user", "required with a rewind password: the role pg_rewind connects as"))
		}
		if !rw.IsSet() {
			ps = append(ps, c.at("rejoin.rewind", "password_file or password_env is required with rejoin.rewind.user"))
		}
		ps = append(ps, c.src.secretProblems("rejoin.rewind", rw.Secret)...)
	}
	a := c.API
	if a.Listen != "" {
		if _, port, err := net.SplitHostPort(a.Listen); err != nil || port == "" {
			ps = append(ps, c.at("api.listen", "%q is not host:port (e.g. :8008 or 198.18.0.11:8008)", a.Listen))
		}
	}
	if (a.CertFile == "") != (a.KeyFile == "") {
		ps = append(ps, c.at("api.cert_file", "api.cert_file and api.key_file go together: set both for TLS, or neither"))
	}
	if a.ClientCAFile != "" && a.CertFile == "" {
		ps = append(ps, c.at("api.client_ca_file", "client certificates need TLS: set api.cert_file and api.key_file too"))
	}
	for _, f := range []struct{ field, path string }{
		{"api.cert_file", a.CertFile}, {"api.key_file", a.KeyFile}, {"api.token_file", a.TokenFile}, {"api.client_ca_file", a.ClientCAFile},
	} {
		if f.path != "" && !filepath.IsAbs(f.path) {
			ps = append(ps, c.at(f.field, "must be an absolute path: the agent's working directory is not the file's"))
		}
	}
	if a.Listen == "" && (a.CertFile != "" || a.TokenFile != "") {
		ps = append(ps, c.at("api.listen", "is empty, so no API is served, but api.cert_file or api.token_file is set: set api.listen (e.g. :8008)"))
	}
	if a.ReplicaMaxLag == 0 {
		ps = append(ps, c.at("api.replica_max_lag", "must be positive (bytes; the default is %d)", Defaults().API.ReplicaMaxLag))
	}
	ps = append(ps, c.src.durationProblems("callbacks.timeout", c.Callbacks.Timeout, Defaults().Callbacks.Timeout)...)
	if cb := c.Callbacks.OnRoleChange; len(cb) > 0 && !filepath.IsAbs(cb[0]) {
		ps = append(ps, c.at("callbacks.on_role_change", "the program %q must be an absolute path: it runs without a shell or PATH lookup", cb[0]))
	}
	return ps
}

// settingWarnings flags values that work but are probably not meant.
func (c *Config) settingWarnings() Problems {
	var ws Problems
	if host, err := netip.ParseAddr(c.Node.Host); err == nil && host.IsLoopback() {
		for i, raw := range c.TrustedIPs {
			if ip, err := trustedAddr(raw); err == nil && ip.IsLoopback() {
				ws = append(ws, c.at(fmt.Sprintf("trusted_ips[%d]", i), "%s is loopback: accepted only because every node runs on this host (a lab), where no node can be cut off", ip))
			}
		}
	}
	t := c.Timing
	if c.Database.ConnectTimeout > t.DBTimeout && t.DBTimeout > 0 {
		ws = append(ws, c.at("database.connect_timeout", "is longer than timing.db_timeout (%s), which bounds every database call including its connection, so it never takes effect", t.DBTimeout))
	}
	if c.VIP.Address == "" && c.VIP.Interface != "" {
		ws = append(ws, c.at("vip.interface", "is set but vip.address is empty: no VIP is managed"))
	}
	if e := c.DCS.Embedded; e.Enabled {
		// etcd raises shorter leases to 1.5 election timeouts, rounded up
		// to seconds. Still safe (the leader demotes after lease_ttl/2 by
		// its own clock), but failovers then take longer than lease_ttl.
		_, election := e.raftTiming()
		minTTL := time.Duration((3*election+1999)/2000) * time.Second
		if t.LeaseTTL > 0 && t.LeaseTTL < minTTL {
			ws = append(ws, c.at("timing.lease_ttl", "is below etcd's shortest lease with election_ms %d (%s), which etcd uses instead: failovers take that long", election, minTTL))
		}
		// A member joining a running cluster lists the members of the
		// moment, one step of a growth (3, 4, 5): the count says nothing
		// of the cluster's final size.
		switch n := len(e.InitialCluster); {
		case e.InitialClusterState == ClusterStateExisting:
		case n == 1:
			ws = append(ws, c.at("dcs.embedded.initial_cluster", "has one member: etcd, and with it every failover, stops when that member does; use 3 or 5"))
		case n > 1 && n%2 == 0:
			ws = append(ws, c.at("dcs.embedded.initial_cluster", "has %d members: etcd needs a majority, so %d tolerate no more failures than %d; use an odd number", n, n, n-1))
		}
	}
	return ws
}
