package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/internal/flavor"
)

// Config is one node's configuration. The yaml tags are the file's keys;
// examples/vigil.yaml explains each of them.
type Config struct {
	// Cluster names the cluster; it is part of every DCS key, so the agents
	// of one cluster must agree on it and different clusters must not.
	Cluster  string   `yaml:"cluster"`
	Node     Node     `yaml:"node"`
	Database Database `yaml:"database"`
	DCS      DCS      `yaml:"dcs"`
	VIP      VIP      `yaml:"vip"`
	// TrustedIPs are addresses outside the cluster (gateway, DNS server) the
	// agent pings to tell "the others are gone" from "I am cut off".
	TrustedIPs []string  `yaml:"trusted_ips"`
	Timing     Timing    `yaml:"timing"`
	Failover   Failover  `yaml:"failover"`
	Rejoin     Rejoin    `yaml:"rejoin"`
	API        API       `yaml:"api"`
	Callbacks  Callbacks `yaml:"callbacks"`

	// lines maps a key's dotted path to its line in the loaded file, so that
	// problems found after decoding still point at the line to change.
	lines map[string]int
}

// Node describes this node.
type Node struct {
	Name string `yaml:"name"`
	// Host is the address the other members use to reach this node's server.
	Host string `yaml:"host"`
	// Priority breaks ties between equally up-to-date candidates (higher
	// wins); 0 means this node is never promoted.
	Priority int `yaml:"priority"`
}

// Database says where this node's server is and how to reach it.
type Database struct {
	Flavor  string `yaml:"flavor"`
	BinDir  string `yaml:"bin_dir"`
	DataDir string `yaml:"data_dir"`
	Port    int    `yaml:"port"`
	// ConnectHost is where the agent connects to its own server: a unix
	// socket directory or an address. Load sets it to node.host when empty.
	ConnectHost string `yaml:"connect_host"`
	// OSUser is the account the server runs as when the agent runs as root;
	// empty means the owner of the data directory.
	OSUser         string        `yaml:"os_user"`
	Superuser      Superuser     `yaml:"superuser"`
	Replication    Replication   `yaml:"replication"`
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
}

// Superuser is the role the agent uses for its own SQL.
type Superuser struct {
	User     string `yaml:"user"`
	Database string `yaml:"database"`
	// Secret is inline, so the file says password_file or password_env next
	// to user, and Resolve reads the password.
	Secret `yaml:",inline"`
}

// Replication is the role standbys stream with.
type Replication struct {
	User   string `yaml:"user"`
	Secret `yaml:",inline"`
}

// DCS says how to reach etcd: external endpoints, or a member embedded in
// the agent. Exactly one of the two.
type DCS struct {
	Endpoints []string `yaml:"endpoints"`
	Embedded  Embedded `yaml:"embedded"`
	Prefix    string   `yaml:"prefix"`
	TLS       TLS      `yaml:"tls"`
	Username  string   `yaml:"username"`
	Secret    `yaml:",inline"`
	// Failsafe keeps the primary through a DCS outage while every other
	// member's agent confirms, through its API, that it will not promote.
	// It needs api.listen and api.token_file on every node.
	Failsafe bool `yaml:"failsafe"`
}

// Embedded is an etcd member run inside the agent, named after the node.
type Embedded struct {
	Enabled   bool   `yaml:"enabled"`
	PeerURL   string `yaml:"peer_url"`
	ClientURL string `yaml:"client_url"`
	// DataDir is the member's data directory; Load derives it from
	// database.data_dir when empty.
	DataDir string `yaml:"data_dir"`
	// InitialCluster maps every member's name to its peer URL; it is read
	// only when the member's data directory is still empty.
	InitialCluster map[string]string `yaml:"initial_cluster"`
	// TickMs and ElectionMs tune etcd's raft (its heartbeat interval and
	// election timeout, in milliseconds); 0 keeps etcd's 100 and 1000.
	TickMs     uint `yaml:"tick_ms"`
	ElectionMs uint `yaml:"election_ms"`
	// TLS puts the member's peer and client URLs on https and requires a
	// certificate from the cluster's CA on both: whoever can write the
	// leader key decides which server takes writes. The agent's own client
	// presents the same node certificate.
	TLS TLS `yaml:"tls"`
	// Insecure lets the member listen on a non-loopback address without
	// TLS. It is the only way to do so, so that an open etcd is a decision
	// written in the file rather than an omission.
	Insecure bool `yaml:"insecure"`
}

// TLS holds the files for talking to etcd over TLS: the agent's client side
// to an external etcd (dcs.tls), or an embedded member's mutual TLS
// (dcs.embedded.tls).
type TLS struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Enabled reports whether any TLS file is set.
func (t TLS) Enabled() bool { return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" }

// VIP is the service address that follows the writable primary; an empty
// Address means no VIP.
type VIP struct {
	Address            string `yaml:"address"`
	Interface          string `yaml:"interface"`
	GratuitousARPCount int    `yaml:"gratuitous_arp_count"`
}

// Timing holds the agent's clocks; package decision explains how lease_ttl
// and loop_interval bound the time two primaries could coexist.
type Timing struct {
	LeaseTTL         time.Duration `yaml:"lease_ttl"`
	LoopInterval     time.Duration `yaml:"loop_interval"`
	DCSTimeout       time.Duration `yaml:"dcs_timeout"`
	DBTimeout        time.Duration `yaml:"db_timeout"`
	PromoteTimeout   time.Duration `yaml:"promote_timeout"`
	ReadinessTimeout time.Duration `yaml:"readiness_timeout"`
}

// Failover holds the failover policy.
type Failover struct {
	// Automatic off: the agent watches and reports but never promotes.
	Automatic            bool   `yaml:"automatic"`
	MaximumLagOnFailover uint64 `yaml:"maximum_lag_on_failover"`
	SynchronousMode      string `yaml:"synchronous_mode"`
	// PrimaryCrash is what the leader's agent does when its own server dies.
	PrimaryCrash   string        `yaml:"primary_crash"`
	RestartTimeout time.Duration `yaml:"restart_timeout"`
	// FenceCommand stops the old primary from outside before a promotion.
	FenceCommand []string `yaml:"fence_command"`
	// FenceSSH stops the old primary's server and deletes the VIP on its
	// host over SSH before a promotion; an empty User means off.
	FenceSSH FenceSSH `yaml:"fence_ssh"`
}

// FenceSSH is how the new leader reaches the old primary's host.
type FenceSSH struct {
	User           string `yaml:"user"`
	KeyFile        string `yaml:"key_file"`
	KnownHostsFile string `yaml:"known_hosts_file"`
	Port           int    `yaml:"port"`
}

// Rejoin says how a former primary comes back as a standby of the new one.
type Rejoin struct {
	// Automatic: the agent of a former primary rejoins it by itself. Off, the
	// node stays down until an operator runs `vigil ctl rejoin`, which is the
	// safe default: its diverged commits are discarded by a rewind, and a
	// DBA may want to look at them first.
	Automatic bool `yaml:"automatic"`
	// Method is RejoinAuto, RejoinRewind or RejoinBaseBackup.
	Method string `yaml:"method"`
}

// API is the agent's HTTP API; an empty Listen means none.
type API struct {
	Listen string `yaml:"listen"`
	// CertFile and KeyFile serve it over TLS, both or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// TokenFile holds the bearer token of the mutating endpoints; without
	// one (or ClientCAFile) they are refused.
	TokenFile string `yaml:"token_file"`
	// ClientCAFile, with CertFile and KeyFile, makes the API ask for client
	// certificates: one signed by this CA authorises the mutating
	// endpoints as the token does.
	ClientCAFile string `yaml:"client_ca_file"`
	// ReplicaMaxLag is the lag limit of /replica and /read-only without ?lag=.
	ReplicaMaxLag uint64 `yaml:"replica_max_lag"`
}

// Callbacks are commands run on events, like Patroni's callbacks.
type Callbacks struct {
	// OnRoleChange runs with the new role and the cluster name appended.
	OnRoleChange []string      `yaml:"on_role_change"`
	Timeout      time.Duration `yaml:"timeout"`
}

// Values of rejoin.method.
const (
	RejoinAuto       = "auto"
	RejoinRewind     = "rewind"
	RejoinBaseBackup = "basebackup"
)

// Values of failover.synchronous_mode and failover.primary_crash, spelt as
// package decision spells its SyncMode and CrashPolicy, so the agent can
// convert them directly.
const (
	SyncOff    = "off"
	SyncOn     = "on"
	SyncStrict = "strict"

	CrashFailover = "failover"
	CrashRestart  = "restart"
)

// Flavor returns the flavor named by database.flavor. It is meant for a
// validated configuration: for an unknown name it returns the zero Flavor.
func (c *Config) Flavor() flavor.Flavor {
	f, err := flavor.Lookup(c.Database.Flavor)
	if err != nil {
		return flavor.Flavor{}
	}
	return f
}

// Problem is one thing wrong with a configuration.
type Problem struct {
	// Line is the line in the file, 0 when unknown (a missing key, a value
	// that came from the defaults, a configuration not loaded from a file).
	Line int
	// Field is the key's dotted path, e.g. "timing.loop_interval" or
	// "dcs.endpoints[1]"; empty when the file as a whole is wrong.
	Field   string
	Message string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Problems is every problem found, in the order of the file where possible.
// It is the error type of Load and Validate.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// at builds a problem that points at field's line, if the file set it.
func (c *Config) at(field, format string, args ...any) Problem {
	return Problem{Line: c.lines[field], Field: field, Message: fmt.Sprintf(format, args...)}
}

// set reports whether the loaded file gave field a value (as opposed to the
// value coming from the defaults).
func (c *Config) set(field string) bool {
	_, ok := c.lines[field]
	return ok
}
