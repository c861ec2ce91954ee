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
	Cluster  string       `yaml:"cluster"`
	Node     Node         `yaml:"node"`
	Database NodeDatabase `yaml:"database"`
	DCS      DCS          `yaml:"dcs"`
	VIP      VIP          `yaml:"vip"`
	// TrustedIPs are addresses outside the cluster (gateway, DNS server) the
	// agent pings to tell "the others are gone" from "I am cut off".
	TrustedIPs []string  `yaml:"trusted_ips"`
	Timing     Timing    `yaml:"timing"`
	Failover   Failover  `yaml:"failover"`
	Rejoin     Rejoin    `yaml:"rejoin"`
	Bootstrap  Bootstrap `yaml:"bootstrap"`
	Clone      Clone     `yaml:"clone"`
	API        API       `yaml:"api"`
	Callbacks  Callbacks `yaml:"callbacks"`

	// src is the file the configuration was read from: its problems name
	// the file and line to change.
	src source
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

// NodeDatabase is a node's database section: the keys every file shares
// and where the agent reaches its own server.
type NodeDatabase struct {
	Database `yaml:",inline"`
	// ConnectHost is where the agent connects to its own server: a unix
	// socket directory or an address. Load sets it to node.host when empty.
	ConnectHost string `yaml:"connect_host"`
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
	// InitialClusterState is "new" for a member founding the cluster with
	// the others of initial_cluster, "existing" for one joining a running
	// cluster after `vigil ctl member add` (which prints the
	// initial_cluster it needs). Like initial_cluster it is read only
	// while the data directory is empty.
	InitialClusterState string `yaml:"initial_cluster_state"`
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

// The values of dcs.embedded.initial_cluster_state.
const (
	ClusterStateNew      = "new"
	ClusterStateExisting = "existing"
)

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

// Timing holds the agent's clocks; package decision explains how lease_ttl
// and loop_interval bound the time two primaries could coexist.
type Timing struct {
	LeaseTTL     time.Duration `yaml:"lease_ttl"`
	LoopInterval time.Duration `yaml:"loop_interval"`
	DCSTimeout   time.Duration `yaml:"dcs_timeout"`
	StepTimeouts `yaml:",inline"`
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
	FenceSSH SSH `yaml:"fence_ssh"`
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
	// Rewind is the account pg_rewind reads the new primary's files as
	// (and runs a CHECKPOINT there with); empty User means the agent's own
	// database.superuser. An agent on the least-privilege role (vigil
	// setup-role) cannot rewind as itself: it needs a superuser here, or a
	// role with the pg_rewind grants.
	Rewind RewindAccount `yaml:"rewind"`
}

// RewindAccount is rejoin.rewind.
type RewindAccount struct {
	User   string `yaml:"user"`
	Secret `yaml:",inline"`
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
	// File is the file's path, empty for a configuration not loaded from
	// a file (Parse, ParsePgpool).
	File string
	// Line is the line in the file, 0 when unknown (a missing key, a value
	// that came from the defaults, a configuration not loaded from a file).
	Line int
	// Field is the key's dotted path, e.g. "timing.loop_interval" or
	// "dcs.endpoints[1]"; empty when the file as a whole is wrong.
	Field   string
	Message string
}

// String is "FILE:LINE: key: message", the form editors and grep -n users
// recognise, or "line LINE: key: message" when the file is not known.
func (p Problem) String() string {
	var b strings.Builder
	switch {
	case p.File != "" && p.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", p.File, p.Line)
	case p.File != "":
		fmt.Fprintf(&b, "%s: ", p.File)
	case p.Line > 0:
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
	return c.src.at(field, format, args...)
}

// set reports whether the loaded file gave field a value (as opposed to the
// value coming from the defaults).
func (c *Config) set(field string) bool { return c.src.set(field) }
