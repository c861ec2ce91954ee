package config

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/vigil-ha/vigil/internal/flavor"
)

// The sections below are written once and used by both kinds of file, a
// node's configuration and the Pgpool command's, so that one setting has
// one name, one default and one check wherever it appears. A file's own
// section embeds a shared one (",inline") and adds only what is its own.

// Database says how the database servers are run and reached.
type Database struct {
	Flavor string `yaml:"flavor"`
	// BinDir holds the control binary (pg_ctl, sys_ctl): on this node, or
	// on every node for the Pgpool command.
	BinDir string `yaml:"bin_dir"`
	// DataDir is this node's data directory; for the Pgpool command, the
	// one used when Pgpool-II passes no %D / %R.
	DataDir string `yaml:"data_dir"`
	// Port is the server's port; for the Pgpool command, the one used when
	// Pgpool-II passes no %p / %r / %S.
	Port int `yaml:"port"`
	// OSUser is the account the control binary runs as when Vigil runs (or
	// logs in over SSH) as root; empty means the owner of the data
	// directory.
	OSUser         string        `yaml:"os_user"`
	Superuser      Superuser     `yaml:"superuser"`
	Replication    Replication   `yaml:"replication"`
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
}

// Superuser is the role Vigil uses for its own SQL.
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

// StepTimeouts bound the steps of a promotion, whoever runs it.
type StepTimeouts struct {
	// DBTimeout bounds every database call, its connection included.
	DBTimeout time.Duration `yaml:"db_timeout"`
	// PromoteTimeout bounds the promotion itself.
	PromoteTimeout time.Duration `yaml:"promote_timeout"`
	// ReadinessTimeout bounds the readiness gate: the new primary gets the
	// VIP only after a write commits.
	ReadinessTimeout time.Duration `yaml:"readiness_timeout"`
}

// VIP is the service address that follows the writable primary; an empty
// Address means no VIP.
type VIP struct {
	Address            string `yaml:"address"`
	Interface          string `yaml:"interface"`
	GratuitousARPCount int    `yaml:"gratuitous_arp_count"`
}

// SSH is how Vigil logs in on another node's host. Host keys are always
// verified against KnownHostsFile.
type SSH struct {
	User           string `yaml:"user"`
	KeyFile        string `yaml:"key_file"`
	KnownHostsFile string `yaml:"known_hosts_file"`
	Port           int    `yaml:"port"`
}

func databaseDefaults() Database {
	return Database{
		// A KingbaseES installation under the default is caught by
		// Validate: its bin_dir holds sys_ctl, not pg_ctl.
		Flavor: string(flavor.Postgres),
		// Long enough for a loaded server to accept a session, short
		// enough that a dead one is noticed within a few loop ticks;
		// libpq counts it in whole seconds.
		ConnectTimeout: 2 * time.Second,
		Replication: Replication{
			// The name a wrong guess costs nothing with: a role that
			// does not exist fails authentication loudly the first time
			// a standby follows, it can never reach the wrong server.
			User: "replicator",
		},
	}
}

func vipDefaults() VIP {
	// Three announcements survive one lost packet on the way to a switch
	// or router that still holds the old MAC address, and cost nothing on
	// a healthy network.
	return VIP{GratuitousARPCount: 3}
}

func sshDefaults() SSH { return SSH{Port: 22} }

// applyFlavorDefaults fills the defaults that differ between products, for
// the keys the file did not set: they come from the flavor table so that a
// KingbaseES node gets port 54321 and the "system" superuser without the
// operator having to know.
func (d *Database) applyFlavorDefaults(s source) {
	f, err := flavor.Lookup(d.Flavor)
	if err != nil {
		return // Validate reports the unknown flavor
	}
	if !s.set("database.port") {
		d.Port = f.DefaultPort
	}
	if !s.set("database.superuser.user") {
		d.Superuser.User = f.DefaultSuperuser
	}
	if !s.set("database.superuser.database") {
		d.Superuser.Database = f.DefaultDatabase
	}
}

// databaseProblems checks the database section's values; dataDirRequired
// is false where data_dir is only a fallback.
func (s source) databaseProblems(d Database, dataDirRequired bool) Problems {
	var ps Problems
	f, err := flavor.Lookup(d.Flavor)
	if err != nil {
		ps = append(ps, s.at("database.flavor", "%v", err))
	}
	binHint := "the directory holding the control binary"
	switch f.Name {
	case flavor.Postgres:
		binHint = "the directory holding pg_ctl (e.g. /usr/lib/postgresql/15/bin)"
	case "":
	default:
		binHint = "the directory holding " + f.ControlBinary
	}
	ps = append(ps, s.requiredPath("database.bin_dir", d.BinDir, binHint)...)
	if dataDirRequired {
		ps = append(ps, s.requiredPath("database.data_dir", d.DataDir, "the server's data directory")...)
	} else {
		ps = append(ps, s.optionalPath("database.data_dir", d.DataDir)...)
	}
	if d.Port < 1 || d.Port > 65535 {
		ps = append(ps, s.at("database.port", "%d is out of range: use 1 to 65535", d.Port))
	}
	return ps
}

// roleProblems checks the database section's roles and connection
// timeout, which Validate reports after the keys between them.
func (s source) roleProblems(d Database) Problems {
	var ps Problems
	if d.Superuser.User == "" {
		ps = append(ps, s.at("database.superuser.user", "required: the role Vigil runs its SQL as"))
	}
	if d.Superuser.Database == "" {
		ps = append(ps, s.at("database.superuser.database", "required: the database Vigil connects to"))
	}
	ps = append(ps, s.secretProblems("database.superuser", d.Superuser.Secret)...)
	if d.Replication.User == "" {
		ps = append(ps, s.at("database.replication.user", "required: the role standbys stream with"))
	}
	ps = append(ps, s.secretProblems("database.replication", d.Replication.Secret)...)
	ps = append(ps, s.durationProblems("database.connect_timeout", d.ConnectTimeout, databaseDefaults().ConnectTimeout)...)
	if d.ConnectTimeout > 0 && d.ConnectTimeout%time.Second != 0 {
		ps = append(ps, s.at("database.connect_timeout", "must be a whole number of seconds: the server's client library counts it in seconds"))
	}
	return ps
}

// stepTimeoutProblems checks the timeouts both files share; def holds the
// file's defaults, which the messages quote.
func (s source) stepTimeoutProblems(t, def StepTimeouts) Problems {
	var ps Problems
	ps = append(ps, s.durationProblems("timing.db_timeout", t.DBTimeout, def.DBTimeout)...)
	ps = append(ps, s.durationProblems("timing.promote_timeout", t.PromoteTimeout, def.PromoteTimeout)...)
	ps = append(ps, s.durationProblems("timing.readiness_timeout", t.ReadinessTimeout, def.ReadinessTimeout)...)
	return ps
}

// readinessProblems checks the one relation between the shared timeouts,
// once each is positive.
func (s source) readinessProblems(t StepTimeouts) Problems {
	if t.ReadinessTimeout <= t.DBTimeout {
		return Problems{s.at("timing.readiness_timeout", "must be longer than timing.db_timeout (%s): the readiness gate needs time for at least one write probe", t.DBTimeout)}
	}
	return nil
}

// vipProblems checks the VIP section and returns the parsed address
// (invalid when there is none or it does not parse).
func (s source) vipProblems(v VIP) (Problems, netip.Prefix) {
	var ps Problems
	if v.GratuitousARPCount < 0 {
		ps = append(ps, s.at("vip.gratuitous_arp_count", "must be 0 (send none) or more"))
	}
	if v.Address == "" {
		return ps, netip.Prefix{}
	}
	prefix, err := netip.ParsePrefix(v.Address)
	if err != nil {
		ps = append(ps, s.at("vip.address", "must be an address with its prefix length, e.g. 198.18.0.100/24"))
	}
	if v.Interface == "" {
		ps = append(ps, s.at("vip.interface", "required with vip.address: the network interface to add the address to (e.g. eth0)"))
	}
	return ps, prefix
}

// trustedAddrProblem reads trusted address raw and says what is wrong with
// it, "" if nothing. Loopback is accepted only where every node runs on
// this host (a lab), where no node can be cut off.
func trustedAddrProblem(raw string, allowLoopback bool) (netip.Addr, string) {
	ip, err := trustedAddr(raw)
	switch {
	case err != nil:
		return ip, "must be an IP address or IP:port: a host name would need DNS, which may be what failed"
	case (ip.IsLoopback() || ip.IsUnspecified()) && !allowLoopback:
		return ip, fmt.Sprintf("%s always answers, so it cannot tell a node it is cut off: use an address outside this host", ip)
	}
	return ip, ""
}

// trustedAddr reads a trusted address: an IP, or IP:port for the TCP probe.
func trustedAddr(raw string) (netip.Addr, error) {
	if ap, err := netip.ParseAddrPort(raw); err == nil {
		return ap.Addr(), nil
	}
	return netip.ParseAddr(raw)
}

// sshProblems checks an SSH section in use (section is its dotted path).
func (s source) sshProblems(section string, ssh SSH) Problems {
	var ps Problems
	for _, k := range []struct{ field, path string }{
		{section + ".key_file", ssh.KeyFile}, {section + ".known_hosts_file", ssh.KnownHostsFile},
	} {
		if !filepath.IsAbs(k.path) {
			ps = append(ps, s.at(k.field, "required with %s.user, as an absolute path (host keys are always verified)", section))
		}
	}
	if ssh.Port < 1 || ssh.Port > 65535 {
		ps = append(ps, s.at(section+".port", "%d is out of range: use 1 to 65535", ssh.Port))
	}
	return ps
}

// requiredPath checks a required absolute path.
func (s source) requiredPath(field, path, what string) Problems {
	switch {
	case path == "":
		return Problems{s.at(field, "required: %s", what)}
	case !filepath.IsAbs(path):
		return Problems{s.at(field, "must be an absolute path")}
	}
	return nil
}

// optionalPath checks a path that may be empty. The path is not quoted back
// in case it is a password put in the wrong key.
func (s source) optionalPath(field, path string) Problems {
	if path != "" && !filepath.IsAbs(path) {
		return Problems{s.at(field, "must be an absolute path")}
	}
	return nil
}

// secretProblems checks the form of the secret at field (e.g.
// "database.superuser"); passwordFileProblems reads the file.
func (s source) secretProblems(field string, sec Secret) Problems {
	if sec.PasswordFile != "" && sec.PasswordEnv != "" {
		return Problems{s.at(field, "password_file and password_env are both set: keep one")}
	}
	ps := s.optionalPath(field+".password_file", sec.PasswordFile)
	if sec.PasswordEnv != "" && !validEnvName(sec.PasswordEnv) {
		// Not quoted back: this is where a password typed into the wrong
		// key would land.
		ps = append(ps, s.at(field+".password_env", "must be the name of an environment variable (letters, digits and _), not the password itself"))
	}
	return ps
}

// durationProblems checks that a duration is positive; relations between
// durations are checked only once each is.
func (s source) durationProblems(field string, d, def time.Duration) Problems {
	if d <= 0 {
		return Problems{s.at(field, "must be positive (the default is %s)", def)}
	}
	return nil
}

// readableFilesProblems checks that each absolute path names a file this
// process can read; a relative one is already a problem of its own.
func (s source) readableFilesProblems(files []struct{ field, path string }) Problems {
	var ps Problems
	for _, f := range files {
		if filepath.IsAbs(f.path) {
			if msg := readableFileProblem(f.path); msg != "" {
				ps = append(ps, s.at(f.field, "%s", msg))
			}
		}
	}
	return ps
}
