package config

import (
	"net/netip"
	"regexp"
	"slices"
)

// Bootstrap says how the agent creates the cluster when its node's data
// directory holds none and no node created it yet (the initialize key in
// the DCS decides which node does), and the server settings every node
// built by Vigil gets.
type Bootstrap struct {
	// Method is BootstrapInitDB or BootstrapCommand.
	Method string `yaml:"method"`
	InitDB InitDB `yaml:"initdb"`
	// Command (method: command) creates the data directory instead of
	// initdb, e.g. a restore from a pgBackRest or WAL-G backup. It runs as
	// the server's OS user with VIGIL_DATA_DIR and VIGIL_RECOVERY_TARGET in
	// its environment; it must leave a data directory that starts as a
	// primary once recovery ends.
	Command []string `yaml:"command"`
	// RecoveryTarget is passed to Command (e.g. "2026-12-01 12:00:00+00",
	// or "immediate"); empty: the end of the archive.
	RecoveryTarget string `yaml:"recovery_target"`
	// Parameters are server settings written, after Vigil's own, into the
	// file Vigil includes from the main configuration file, on every node
	// Vigil builds (bootstrap and clone).
	Parameters map[string]string `yaml:"parameters"`
	// MemberNetworks are the addresses (CIDR) the members connect from:
	// pg_hba.conf lets them in, over scram-sha-256, for replication and for
	// the agents' SQL. Empty: node.host of each member that published it.
	MemberNetworks []string `yaml:"member_networks"`
	// PgHBA are more pg_hba.conf lines, written before Vigil's own.
	PgHBA []string `yaml:"pg_hba"`
}

// InitDB tunes initdb (method: initdb).
type InitDB struct {
	// DataChecksums: pg_rewind and corruption detection both want them.
	DataChecksums bool   `yaml:"data_checksums"`
	Locale        string `yaml:"locale"`
	Encoding      string `yaml:"encoding"`
	// Args are more initdb arguments, as given.
	Args []string `yaml:"args"`
}

// Clone says how a node whose data directory holds no cluster becomes a
// standby of the writable primary.
type Clone struct {
	// Methods are tried in order until one leaves a streaming standby.
	Methods []CloneMethod `yaml:"methods"`
	// MaxRate limits a base backup's transfer from the primary, in
	// pg_basebackup's --max-rate form ("32M", "500k"); empty: unlimited.
	// It applies to rejoins and reinits by base backup too.
	MaxRate string `yaml:"max_rate"`
}

// CloneMethod is one way of creating a replica.
type CloneMethod struct {
	// Name is CloneBaseBackup (pg_basebackup from the primary, streaming
	// WAL, through the node's replication slot) or CloneCommand.
	Name string `yaml:"name"`
	// Command (name: command) fills the empty data directory, e.g. a
	// restore from a backup tool; it runs as the server's OS user with
	// VIGIL_DATA_DIR, VIGIL_PRIMARY_HOST and VIGIL_PRIMARY_PORT set. Vigil
	// then configures the result as a standby of the primary.
	Command []string `yaml:"command"`
}

// Values of bootstrap.method and clone.methods[].name.
const (
	BootstrapInitDB  = "initdb"
	BootstrapCommand = "command"
	CloneBaseBackup  = "basebackup"
	CloneCommand     = "command"
)

func bootstrapDefaults() Bootstrap {
	return Bootstrap{
		Method: BootstrapInitDB,
		// Checksums catch storage corruption and let pg_rewind work
		// whatever wal_log_hints says; their cost is small.
		InitDB: InitDB{DataChecksums: true, Encoding: "UTF8"},
	}
}

func cloneDefaults() Clone {
	return Clone{Methods: []CloneMethod{{Name: CloneBaseBackup}}}
}

// maxRate is pg_basebackup's --max-rate: kilobytes per second, or with a
// k or M suffix.
var maxRate = regexp.MustCompile(`^[1-9][0-9]*[kM]?$`)

// settingName is a server setting's name as postgresql.conf spells it.
var settingName = regexp.MustCompile(`^[a-z_][a-z0-9_.]*$`)

// bootstrapProblems checks bootstrap and clone.
func (c *Config) bootstrapProblems() Problems {
	var ps Problems
	b := c.Bootstrap
	switch b.Method {
	case BootstrapInitDB:
	case BootstrapCommand:
		if len(b.Command) == 0 {
			ps = append(ps, c.at("bootstrap.command", "required with method command: the program (and its arguments) that creates the data directory"))
		}
	default:
		ps = append(ps, c.at("bootstrap.method", "%q is not a method: use initdb or command", b.Method))
	}
	for name := range b.Parameters {
		if !settingName.MatchString(name) {
			ps = append(ps, c.at("bootstrap.parameters", "%q is not a server setting's name", name))
		}
	}
	for _, n := range b.MemberNetworks {
		if _, err := netip.ParsePrefix(n); err != nil {
			ps = append(ps, c.at("bootstrap.member_networks", "%q is not an address with its prefix length (e.g. 198.18.0.0/24)", n))
		}
	}
	if r := c.Clone.MaxRate; r != "" && !maxRate.MatchString(r) {
		ps = append(ps, c.at("clone.max_rate", "%q is not a rate: kilobytes per second, or with k or M, e.g. 32M", r))
	}
	if len(c.Clone.Methods) == 0 {
		ps = append(ps, c.at("clone.methods", "at least one method is required, e.g. [{name: basebackup}]"))
	}
	for _, m := range c.Clone.Methods {
		switch {
		case m.Name == CloneCommand && len(m.Command) == 0:
			ps = append(ps, c.at("clone.methods", "a method named command needs its command"))
		case !slices.Contains([]string{CloneBaseBackup, CloneCommand}, m.Name):
			ps = append(ps, c.at("clone.methods", "%q is not a method: use basebackup or command", m.Name))
		}
	}
	return ps
}
