package config

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

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
	Cluster  string         `yaml:"cluster"`
	Database PgpoolDatabase `yaml:"database"`
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

	lines map[string]int
}

// PgpoolDatabase is what every node of the cluster shares.
type PgpoolDatabase struct {
	Flavor string `yaml:"flavor"`
	// BinDir holds the control binary on every node (sys_ctl, pg_ctl).
	BinDir string `yaml:"bin_dir"`
	// DataDir is used when Pgpool-II passes no %D / %R.
	DataDir string `yaml:"data_dir"`
	// Port is used when Pgpool-II passes no %p / %r / %S.
	Port int `yaml:"port"`
	// OSUser runs the control binary when the SSH user is root.
	OSUser         string        `yaml:"os_user"`
	Superuser      Superuser     `yaml:"superuser"`
	Replication    Replication   `yaml:"replication"`
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
}

// PgpoolNode is one Pgpool-II backend.
type PgpoolNode struct {
	Name string `yaml:"name"`
}

// PgpoolSSH says how the nodes are reached. Host keys are always verified
// against known_hosts_file.
type PgpoolSSH struct {
	User           string        `yaml:"user"`
	KeyFile        string        `yaml:"key_file"`
	KnownHostsFile string        `yaml:"known_hosts_file"`
	Port           int           `yaml:"port"`
	Timeout        time.Duration `yaml:"timeout"`
}

// PgpoolVIP is the database VIP the seed's script moved; no address, no VIP.
type PgpoolVIP struct {
	Address   string `yaml:"address"`
	Interface string `yaml:"interface"`
	// Label is `ip addr add ... label`; default <interface>:2, as the seed.
	Label              string `yaml:"label"`
	GratuitousARPCount int    `yaml:"gratuitous_arp_count"`
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

// PgpoolTiming bounds every step; Total bounds the whole command, since
// Pgpool-II waits for it.
type PgpoolTiming struct {
	Total     time.Duration `yaml:"total"`
	TrustedIP time.Duration `yaml:"trusted_ip"`
	DB        time.Duration `yaml:"db"`
	Command   time.Duration `yaml:"command"`
	Promote   time.Duration `yaml:"promote"`
	Readiness time.Duration `yaml:"readiness"`
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
		Cluster: "pgpool",
		Database: PgpoolDatabase{
			Flavor:         string(flavor.Postgres),
			ConnectTimeout: 2 * time.Second,
			Replication:    Replication{User: "replicator"},
		},
		SSH: PgpoolSSH{Port: 22, Timeout: 10 * time.Second},
		// The seed announced once; three survive a lost packet.
		VIP: PgpoolVIP{GratuitousARPCount: 3},
		Commands: PgpoolCommands{
			// Absolute: a non-interactive SSH session's PATH lacks /sbin.
			IP: "/sbin/ip", Arping: "/usr/sbin/arping", NetworkPrivilege: PrivilegeAuto,
		},
		Fence:   PgpoolFence{IfUnreachable: FenceAbort, StopMode: "immediate"},
		Promote: PgpoolPromote{Method: PromoteAuto},
		Timing: PgpoolTiming{
			// Pgpool-II waits for the command: five minutes covers a
			// replay backlog far beyond the seed's 35 s.
			Total: 5 * time.Minute, TrustedIP: time.Second, DB: 2 * time.Second,
			Command: 30 * time.Second, Promote: 60 * time.Second, Readiness: 4 * time.Minute,
		},
	}
}

// LoadPgpool reads a Pgpool configuration file and completes it with the
// defaults; Validate judges the values.
func LoadPgpool(path string) (*Pgpool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	return ParsePgpool(data)
}

// ParsePgpool is LoadPgpool for a file already in memory.
func ParsePgpool(data []byte) (*Pgpool, error) {
	root, err := parseDocument(data)
	if err != nil {
		return nil, err
	}
	p := PgpoolDefaults()
	w := schemaWalker{lines: map[string]int{}, root: reflect.TypeOf(p)}
	w.walk(root, reflect.TypeOf(p), "")
	if len(w.problems) > 0 {
		return nil, w.problems
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		return nil, yamlProblems(data, err)
	}
	p.lines = w.lines
	if f, err := flavor.Lookup(p.Database.Flavor); err == nil {
		if _, ok := p.lines["database.port"]; !ok {
			p.Database.Port = f.DefaultPort
		}
		if _, ok := p.lines["database.superuser.user"]; !ok {
			p.Database.Superuser.User = f.DefaultSuperuser
		}
		if _, ok := p.lines["database.superuser.database"]; !ok {
			p.Database.Superuser.Database = f.DefaultDatabase
		}
	}
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
	return Problem{Line: p.lines[field], Field: field, Message: fmt.Sprintf(format, args...)}
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
	var ps Problems
	for _, f := range []struct{ field, path string }{
		{"ssh.key_file", p.SSH.KeyFile},
		{"ssh.known_hosts_file", p.SSH.KnownHostsFile},
		{"database.superuser.password_file", p.Database.Superuser.PasswordFile},
	} {
		if filepath.IsAbs(f.path) {
			if msg := readableFileProblem(f.path); msg != "" {
				ps = append(ps, p.at(f.field, "%s", msg))
			}
		}
	}
	if len(ps) == 0 {
		return nil
	}
	return ps
}

func (p *Pgpool) absPath(field, path string, required bool, what string) Problems {
	switch {
	case path == "" && required:
		return Problems{p.at(field, "required: %s", what)}
	case path != "" && !filepath.IsAbs(path):
		return Problems{p.at(field, "must be an absolute path")}
	}
	return nil
}

func (p *Pgpool) databaseProblems() Problems {
	var ps Problems
	d := p.Database
	if _, err := flavor.Lookup(d.Flavor); err != nil {
		ps = append(ps, p.at("database.flavor", "%v", err))
	}
	ps = append(ps, p.absPath("database.bin_dir", d.BinDir, true, "the directory holding the control binary on the nodes (sys_ctl, pg_ctl)")...)
	ps = append(ps, p.absPath("database.data_dir", d.DataDir, false, "")...)
	if d.Port < 1 || d.Port > 65535 {
		ps = append(ps, p.at("database.port", "%d is out of range: use 1 to 65535", d.Port))
	}
	if d.Superuser.User == "" || d.Superuser.Database == "" {
		ps = append(ps, p.at("database.superuser", "user and database are required: the role and database the readiness gate writes with"))
	}
	for _, s := range []struct {
		field  string
		secret Secret
	}{{"database.superuser", d.Superuser.Secret}, {"database.replication", d.Replication.Secret}} {
		if s.secret.PasswordFile != "" && s.secret.PasswordEnv != "" {
			ps = append(ps, p.at(s.field, "password_file and password_env are both set: keep one"))
		}
		ps = append(ps, p.absPath(s.field+".password_file", s.secret.PasswordFile, false, "")...)
		if e := s.secret.PasswordEnv; e != "" && !validEnvName(e) {
			ps = append(ps, p.at(s.field+".password_env", "must be the name of an environment variable, not the password itself"))
		}
	}
	if d.ConnectTimeout <= 0 || d.ConnectTimeout%time.Second != 0 {
		ps = append(ps, p.at("database.connect_timeout", "must be a positive whole number of seconds"))
	}
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
	ps = append(ps, p.absPath("follow.passfile", p.Follow.Passfile, false, "")...)
	ps = append(ps, p.absPath("follow.remote_vigil", p.Follow.RemoteVigil, false, "")...)
	ps = append(ps, p.absPath("follow.remote_config", p.Follow.RemoteConfig, p.Follow.RemoteVigil != "", "the configuration file on the nodes, for follow.remote_vigil")...)
	ps = append(ps, p.absPath("log.failover_log", p.Log.FailoverLog, false, "")...)
	ps = append(ps, p.absPath("log.step_log", p.Log.StepLog, false, "")...)
	return ps
}

func (p *Pgpool) guardProblems() Problems {
	var ps Problems
	if len(p.TrustedIPs) == 0 {
		ps = append(ps, p.at("trusted_ips", "required: at least one address outside the cluster (the gateway); without an answer from one nothing is promoted"))
	}
	for i, raw := range p.TrustedIPs {
		ip, err := trustedAddr(raw)
		switch {
		case err != nil:
			ps = append(ps, p.at(fmt.Sprintf("trusted_ips[%d]", i), "must be an IP address or IP:port"))
		case ip.IsLoopback() || ip.IsUnspecified():
			ps = append(ps, p.at(fmt.Sprintf("trusted_ips[%d]", i), "%s always answers: use an address outside this host", ip))
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
	ps = append(ps, p.absPath("ssh.key_file", s.KeyFile, true, "the private key Vigil logs in with")...)
	ps = append(ps, p.absPath("ssh.known_hosts_file", s.KnownHostsFile, true, "the nodes' host keys: an unknown host key stops the failover")...)
	if s.Port < 1 || s.Port > 65535 {
		ps = append(ps, p.at("ssh.port", "%d is out of range: use 1 to 65535", s.Port))
	}
	if s.Timeout <= 0 {
		ps = append(ps, p.at("ssh.timeout", "must be positive"))
	}
	return ps
}

func (p *Pgpool) vipProblems() Problems {
	var ps Problems
	v := p.VIP
	if v.GratuitousARPCount < 0 {
		ps = append(ps, p.at("vip.gratuitous_arp_count", "must be 0 or more"))
	}
	ps = append(ps, p.absPath("commands.ip", p.Commands.IP, true, "the ip program on the nodes")...)
	ps = append(ps, p.absPath("commands.arping", p.Commands.Arping, true, "the arping program on the nodes (iputils)")...)
	if v.Address == "" {
		return ps
	}
	if pfx, err := netip.ParsePrefix(v.Address); err != nil || !pfx.Addr().Is4() {
		ps = append(ps, p.at("vip.address", "must be an IPv4 address with its prefix length, e.g. 192.168.1.10/24"))
	}
	if v.Interface == "" {
		return append(ps, p.at("vip.interface", "required with vip.address"))
	}
	if !strings.HasPrefix(v.Label, v.Interface) || len(v.Label) > 15 {
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
	var ps Problems
	for _, d := range []struct {
		field string
		value time.Duration
	}{
		{"timing.total", t.Total}, {"timing.trusted_ip", t.TrustedIP}, {"timing.db", t.DB},
		{"timing.command", t.Command}, {"timing.promote", t.Promote}, {"timing.readiness", t.Readiness},
	} {
		if d.value <= 0 {
			ps = append(ps, p.at(d.field, "must be positive"))
		}
	}
	if len(ps) > 0 {
		return ps
	}
	if t.Readiness <= t.DB {
		ps = append(ps, p.at("timing.readiness", "must be longer than timing.db: the gate needs time for one write"))
	}
	if t.Readiness >= t.Total || t.Promote >= t.Total {
		ps = append(ps, p.at("timing.total", "must be longer than timing.promote and timing.readiness: it bounds the whole command"))
	}
	return ps
}
