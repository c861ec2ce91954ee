package config

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/internal/flavor"
)

// Pgpool is the configuration of `vigil failover-command` and `vigil
// follow-command`, the commands Pgpool-II runs as its failover_command and
// follow_primary_command. It is a file of its own, not a section of a node's
// configuration: those commands run on the Pgpool-II host, which need not
// be a database node, there is no etcd, and the nodes are reached over SSH.
// docs/migration-from-failover_stream.md shows a complete file.
type Pgpool struct {
	// Cluster names the failover records (step log ids); default "pgpool".
	Cluster  string   `yaml:"cluster"`
	Database Database `yaml:"database"`
	// Nodes names Pgpool-II's backends in the order of backend_hostname0,
	// backend_hostname1, ...: the name is the application_name a standby
	// streams with (synchronous_standby_names matches on it). Optional: a
	// backend without an entry is called node<id>.
	Nodes []PgpoolNode `yaml:"nodes"`
	// TrustedIPs are addresses outside the cluster (the gateway) that must
	// answer before anything is done: the seed's "ping trust ip".
	TrustedIPs []string       `yaml:"trusted_ips"`
	SSH        PgpoolSSH      `yaml:"ssh"`
	VIP        PgpoolVIP      `yaml:"vip"`
	Commands   PgpoolCommands `yaml:"commands"`
	Fence      PgpoolFence    `yaml:"fence"`
	Promote    PgpoolPromote  `yaml:"promote"`
	Follow     PgpoolFollow   `yaml:"follow"`
	Timing     PgpoolTiming   `yaml:"timing"`
	Log        PgpoolLog      `yaml:"log"`

	// src is the file the configuration was read from, as for Config.
	src source
}

// PgpoolNode is one Pgpool-II backend.
type PgpoolNode struct {
	Name string `yaml:"name"`
}

// PgpoolSSH says how the nodes are reached: every step on a node goes
// through it, not only the fence.
type PgpoolSSH struct {
	SSH     `yaml:",inline"`
	Timeout time.Duration `yaml:"timeout"`
}

// PgpoolVIP is the database VIP the seed's script moved; no address, no VIP.
type PgpoolVIP struct {
	VIP `yaml:",inline"`
	// Label is `ip addr add ... label`; default <interface>:2, as the seed.
	Label string `yaml:"label"`
}

// PgpoolCommands are the programs run on the nodes.
type PgpoolCommands struct {
	IP     string `yaml:"ip"`
	Arping string `yaml:"arping"`
	// NetworkPrivilege: auto (sudo -n unless ssh.user is root), sudo, none.
	NetworkPrivilege string `yaml:"network_privilege"`
}

// PgpoolFence is how the old primary is stopped.
type PgpoolFence struct {
	// IfUnreachable: abort (default) or continue. Continue promotes although
	// the old primary's host could not be reached, trusting the trusted-IP
	// guard (this side is not the one cut off) and the VIP's duplicate
	// address check (the VIP is never taken from a host that still answers
	// for it).
	IfUnreachable string `yaml:"if_unreachable"`
	// StopMode: immediate (default) or fast.
	StopMode string `yaml:"stop_mode"`
}

// PgpoolPromote chooses how the new primary is promoted.
type PgpoolPromote struct {
	// Method: auto (SQL where the server has pg_promote/sys_promote, the
	// control binary over SSH otherwise), sql or ssh.
	Method string `yaml:"method"`
}

// PgpoolFollow configures `vigil follow-command`.
type PgpoolFollow struct {
	// UseSlots: the standby streams through a physical slot named after it,
	// created on the new primary first.
	UseSlots bool `yaml:"use_slots"`
	// Passfile is a pgpass file on the standby's host, readable by the
	// database's OS user: primary_conninfo names it, no password is written.
	Passfile string `yaml:"passfile"`
	// AttachCommand runs on the Pgpool-II host once the standby follows,
	// with {node_id} replaced: typically pcp_attach_node -w ... -n {node_id}.
	AttachCommand []string `yaml:"attach_command"`
	// RemoteVigil and RemoteConfig: vigil and this file on the nodes, used
	// when a remote standby must be re-pointed by a restart (it is down, or
	// its server reads primary_conninfo only at start).
	RemoteVigil  string `yaml:"remote_vigil"`
	RemoteConfig string `yaml:"remote_config"`
}

// PgpoolTiming bounds every step; TotalTimeout bounds the whole command,
// since Pgpool-II waits for it.
type PgpoolTiming struct {
	TotalTimeout     time.Duration `yaml:"total_timeout"`
	TrustedIPTimeout time.Duration `yaml:"trusted_ip_timeout"`
	StepTimeouts     `yaml:",inline"`
	// CommandTimeout bounds each command run on a node.
	CommandTimeout time.Duration `yaml:"command_timeout"`
}

// PgpoolLog says where the records go.
type PgpoolLog struct {
	// FailoverLog receives failover_stream.sh's human log (appended); it is
	// always written to standard output too, which Pgpool-II logs.
	FailoverLog string `yaml:"failover_log"`
	// StepLog receives Vigil's JSON step lines (appended).
	StepLog string `yaml:"step_log"`
}

// Values of the Pgpool settings.
const (
	FenceAbort    = "abort"
	FenceContinue = "continue"

	PromoteAuto = "auto"
	PromoteSQL  = "sql"
	PromoteSSH  = "ssh"

	PrivilegeAuto = "auto"
	PrivilegeSudo = "sudo"
	PrivilegeNone = "none"
)

// PgpoolDefaults is the configuration a Pgpool file starts from.
func PgpoolDefaults() Pgpool {
	return Pgpool{
		Cluster:  "pgpool",
		Database: databaseDefaults(),
		SSH:      PgpoolSSH{SSH: sshDefaults(), Timeout: 10 * time.Second},
		// The seed announced once; three survive a lost packet.
		VIP: PgpoolVIP{VIP: vipDefaults()},
		Commands: PgpoolCommands{
			// Absolute: a non-interactive SSH session's PATH lacks /sbin.
			IP: "/sbin/ip", Arping: "/usr/sbin/arping", NetworkPrivilege: PrivilegeAuto,
		},
		Fence:   PgpoolFence{IfUnreachable: FenceAbort, StopMode: "immediate"},
		Promote: PgpoolPromote{Method: PromoteAuto},
		Timing: PgpoolTiming{
			// Pgpool-II waits for the command: five minutes covers a
			// replay backlog far beyond the seed's 35 s.
			TotalTimeout: 5 * time.Minute, TrustedIPTimeout: time.Second, CommandTimeout: 30 * time.Second,
			StepTimeouts: StepTimeouts{DBTimeout: 2 * time.Second, PromoteTimeout: 60 * time.Second, ReadinessTimeout: 4 * time.Minute},
		},
	}
}

// pgpoolFile is the Pgpool command's kind of file. Its timing keys were
// named apart from a node's (timing.readiness for timing.readiness_timeout);
// they now follow the node's names, and the old ones are still read.
func pgpoolFile() fileKind {
	return fileKind{
		example: "docs/migration-from-failover_stream.md",
		keys:    "cluster:, database:, ssh:, ...",
		one:     "one Pgpool command's configuration",
		renamed: map[string]string{
			"timing.total":      "total_timeout",
			"timing.trusted_ip": "trusted_ip_timeout",
			"timing.db":         "db_timeout",
			"timing.command":    "command_timeout",
			"timing.promote":    "promote_timeout",
			"timing.readiness":  "readiness_timeout",
		},
	}
}

// LoadPgpool reads a Pgpool configuration file and completes it with the
// defaults, as Load does a node's; Validate judges the values.
func LoadPgpool(path string) (*Pgpool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	return parsePgpool(data, path)
}

// ParsePgpool is LoadPgpool for a file already in memory.
func ParsePgpool(data []byte) (*Pgpool, error) { return parsePgpool(data, "") }

func parsePgpool(data []byte, file string) (*Pgpool, error) {
	p := PgpoolDefaults()
	src, err := decode(data, file, &p, pgpoolFile())
	if err != nil {
		return nil, err
	}
	p.src = src
	p.Database.applyFlavorDefaults(p.src)
	if p.VIP.Label == "" && p.VIP.Interface != "" {
		p.VIP.Label = p.VIP.Interface + ":2"
	}
	return &p, nil
}

// Flavor returns the configured flavor (the zero Flavor when unknown).
func (p *Pgpool) Flavor() flavor.Flavor {
	f, _ := flavor.Lookup(p.Database.Flavor)
	return f
}

func (p *Pgpool) at(field, format string, args ...any) Problem {
	return p.src.at(field, format, args...)
}

// Warnings lists what is allowed but probably not meant, such as a key
// written with its old name; they do not stop the commands.
func (p *Pgpool) Warnings() Problems {
	ws := slices.Clone(p.src.deprecated)
	return append(ws, p.src.secretWarnings("database.superuser", p.Database.Superuser.Secret)...)
}

// Validate reports every problem with the values, or nil.
func (p *Pgpool) Validate() error {
	var ps Problems
	ps = append(ps, p.databaseProblems()...)
	ps = append(ps, p.guardProblems()...)
	ps = append(ps, p.sshProblems()...)
	ps = append(ps, p.vipProblems()...)
	ps = append(ps, p.choiceProblems()...)
	ps = append(ps, p.timingProblems()...)
	if len(ps) == 0 {
		return nil
	}
	return ps
}

// HostProblems checks what the commands will read on this host: the SSH
// key, the known_hosts file and the password files. A failover that finds
// one missing half-way would stop at the fence; found first, nothing is done.
func (p *Pgpool) HostProblems() error {
	ps := p.src.readableFilesProblems([]struct{ field, path string }{
		{"ssh.key_file", p.SSH.KeyFile},
		{"ssh.known_hosts_file", p.SSH.KnownHostsFile},
	})
	ps = append(ps, p.src.passwordFileProblems("database.superuser", p.Database.Superuser.Secret)...)
	if len(ps) == 0 {
		return nil
	}
	return ps
}

func (p *Pgpool) databaseProblems() Problems {
	ps := p.src.databaseProblems(p.Database, false)
	ps = append(ps, p.src.roleProblems(p.Database)...)
	seen := map[string]int{}
	for i, n := range p.Nodes {
		field := fmt.Sprintf("nodes[%d].name", i)
		if msg := nameProblem(n.Name); msg != "" || n.Name == "" {
			ps = append(ps, p.at(field, "must be a node name (a-z, 0-9, _ and -): the application_name the standby streams with"))
			continue
		}
		if j, dup := seen[n.Name]; dup {
			ps = append(ps, p.at(field, "%q is also nodes[%d]", n.Name, j))
		}
		seen[n.Name] = i
	}
	ps = append(ps, p.src.optionalPath("follow.passfile", p.Follow.Passfile)...)
	ps = append(ps, p.src.optionalPath("follow.remote_vigil", p.Follow.RemoteVigil)...)
	if p.Follow.RemoteVigil != "" {
		ps = append(ps, p.src.requiredPath("follow.remote_config", p.Follow.RemoteConfig, "the configuration file on the nodes, for follow.remote_vigil")...)
	} else {
		ps = append(ps, p.src.optionalPath("follow.remote_config", p.Follow.RemoteConfig)...)
	}
	ps = append(ps, p.src.optionalPath("log.failover_log", p.Log.FailoverLog)...)
	ps = append(ps, p.src.optionalPath("log.step_log", p.Log.StepLog)...)
	return ps
}

func (p *Pgpool) guardProblems() Problems {
	var ps Problems
	if len(p.TrustedIPs) == 0 {
		ps = append(ps, p.at("trusted_ips", "required: at least one address outside the cluster (the gateway); without an answer from one nothing is promoted"))
	}
	for i, raw := range p.TrustedIPs {
		if _, msg := trustedAddrProblem(raw, false); msg != "" {
			ps = append(ps, p.at(fmt.Sprintf("trusted_ips[%d]", i), "%s", msg))
		}
	}
	return ps
}

func (p *Pgpool) sshProblems() Problems {
	var ps Problems
	s := p.SSH
	if s.User == "" {
		ps = append(ps, p.at("ssh.user", "required: the account Vigil logs in as on the nodes"))
	}
	ps = append(ps, p.src.sshProblems("ssh", s.SSH)...)
	return append(ps, p.src.durationProblems("ssh.timeout", s.Timeout, PgpoolDefaults().SSH.Timeout)...)
}

func (p *Pgpool) vipProblems() Problems {
	v := p.VIP
	ps, prefix := p.src.vipProblems(v.VIP)
	ps = append(ps, p.src.requiredPath("commands.ip", p.Commands.IP, "the ip program on the nodes")...)
	ps = append(ps, p.src.requiredPath("commands.arping", p.Commands.Arping, "the arping program on the nodes (iputils)")...)
	if v.Address == "" {
		return ps
	}
	if prefix.IsValid() && !prefix.Addr().Is4() {
		// The commands announce it with arping, which is IPv4 only.
		ps = append(ps, p.at("vip.address", "must be an IPv4 address with its prefix length, e.g. 192.168.1.10/24: arping announces it"))
	}
	if v.Interface != "" && (!strings.HasPrefix(v.Label, v.Interface) || len(v.Label) > 15) {
		ps = append(ps, p.at("vip.label", "must start with the interface name and have at most 15 characters (e.g. %s:2)", v.Interface))
	}
	return ps
}

func (p *Pgpool) choiceProblems() Problems {
	var ps Problems
	for _, c := range []struct {
		field, value string
		allowed      []string
	}{
		{"fence.if_unreachable", p.Fence.IfUnreachable, []string{FenceAbort, FenceContinue}},
		{"fence.stop_mode", p.Fence.StopMode, []string{"immediate", "fast"}},
		{"promote.method", p.Promote.Method, []string{PromoteAuto, PromoteSQL, PromoteSSH}},
		{"commands.network_privilege", p.Commands.NetworkPrivilege, []string{PrivilegeAuto, PrivilegeSudo, PrivilegeNone}},
	} {
		ok := false
		for _, a := range c.allowed {
			ok = ok || c.value == a
		}
		if !ok {
			ps = append(ps, p.at(c.field, "%q: use one of %s", c.value, strings.Join(c.allowed, ", ")))
		}
	}
	return ps
}

func (p *Pgpool) timingProblems() Problems {
	t := p.Timing
	def := PgpoolDefaults().Timing
	var ps Problems
	for _, d := range []struct {
		field      string
		value, def time.Duration
	}{
		{"timing.total_timeout", t.TotalTimeout, def.TotalTimeout},
		{"timing.trusted_ip_timeout", t.TrustedIPTimeout, def.TrustedIPTimeout},
		{"timing.command_timeout", t.CommandTimeout, def.CommandTimeout},
	} {
		ps = append(ps, p.src.durationProblems(d.field, d.value, d.def)...)
	}
	ps = append(ps, p.src.stepTimeoutProblems(t.StepTimeouts, def.StepTimeouts)...)
	if len(ps) > 0 {
		return ps
	}
	ps = append(ps, p.src.readinessProblems(t.StepTimeouts)...)
	if t.ReadinessTimeout >= t.TotalTimeout || t.PromoteTimeout >= t.TotalTimeout {
		ps = append(ps, p.at("timing.total_timeout", "must be longer than timing.promote_timeout and timing.readiness_timeout: it bounds the whole command"))
	}
	return ps
}
