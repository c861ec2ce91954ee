package pgpool

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/config"
	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/flavor"
)

// kingbaseConfig is the seed's cluster as a Pgpool configuration file: only
// what has no default is written, so the flavor's defaults show.
func kingbaseConfig(t *testing.T) *config.Pgpool {
	t.Helper()
	dir := t.TempDir()
	pw := filepath.Join(dir, "superuser.password")
	if err := os.WriteFile(pw, []byte("secret-not-to-be-seen\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.ParsePgpool([]byte(`
cluster: r3ha
database:
  flavor: kingbase
  bin_dir: /home/kingbase/cluster/R3HA/db/bin
  data_dir: /home/kingbase/cluster/R3HA/db/data
  os_user: kingbase
  superuser:
    password_file: ` + pw + `
nodes:
  - name: kb1
  - name: kb2
trusted_ips: [192.168.1.1]
ssh:
  user: root
  key_file: /root/.ssh/id_ed25519
  known_hosts_file: /etc/vigil/known_hosts
vip:
  address: 192.168.1.10/24
  interface: enp0s3
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
	return cfg
}

// pgName finds PostgreSQL names that KingbaseES does not have.
var pgName = regexp.MustCompile(`\bpg_|psql|postgresql|postmaster|\b5432\b`)

func TestKingbaseSetupUsesTheFlavorsDefaults(t *testing.T) {
	cfg := kingbaseConfig(t)
	var out bytes.Buffer
	o, _, closeAll, err := Setup(cfg, Env{Stdout: &out, EUID: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll()
	if o.Defaults.Port != 54321 || o.SQLUser != "system" || o.SQLDatabase != "test" || o.Flavor.Name != flavor.Kingbase {
		t.Errorf("defaults: port %d user %s database %s flavor %s", o.Defaults.Port, o.SQLUser, o.SQLDatabase, o.Flavor.Name)
	}
	if o.VIP == nil || o.VIP.Label != "enp0s3:2" || o.VIP.ARPCount != 3 {
		t.Errorf("VIP %+v", o.VIP)
	}
	srv, ok := o.Connect(Target{Name: "kb2", Host: "192.168.1.202", Port: 54321, DataDir: "/data"}).(*database.Server)
	if !ok {
		t.Fatal("Connect does not return the adapter")
	}
	if srv.Conn.Port != 54321 || srv.Conn.User != "system" || srv.Conn.Database != "test" || srv.Flavor.ControlBinary != "sys_ctl" {
		t.Errorf("adapter %+v", srv.Conn)
	}
	if srv.Conn.Password != "secret-not-to-be-seen" {
		t.Error("the superuser's password was not read from its file")
	}
	// A server on another host must never be driven by this host's control binary.
	if _, err := os.Stat(srv.Ctl.Runner.Dir); err == nil {
		t.Errorf("the remote server's control binary would run here (in %s)", srv.Ctl.Runner.Dir)
	}
	// SSH as root: the control binary runs as kingbase, ip needs no sudo.
	if strings.Join(o.Commands.DBPrefix, " ") != "runuser -u kingbase --" || o.Commands.NetPrefix != nil {
		t.Errorf("prefixes %q %q", o.Commands.DBPrefix, o.Commands.NetPrefix)
	}
}

// TestKingbaseCommandsAndSQL runs the whole procedure for the kingbase
// flavor, on a V8R3 server (no sys_promote: the control binary over SSH)
// and on a newer one (sys_promote), and checks every command line and every
// statement it logged: sys_ctl, sys_ functions, port 54321, and no
// PostgreSQL name.
func TestKingbaseCommandsAndSQL(t *testing.T) {
	for _, version := range []int{90600, 120004} {
		kb := flavor.MustLookup(flavor.Kingbase)
		c := seedCluster(t, kb)
		for _, n := range c.nodes {
			n.version = version
		}
		c.nodes["10.0.0.2"].syncNames = "kb1"
		var human, steps bytes.Buffer
		o := fakeOptions(c, &human, &steps)
		o.Commands.BinDir = "/home/kingbase/cluster/R3HA/db/bin"
		o.Defaults.Names = []string{"kb1", "kb2", "kb3"}
		args := placeholders(t, "0", "10.0.0.1", "", "/home/kingbase/data", "1", "10.0.0.2", "0", "0", "", "/home/kingbase/data", "10.0.0.1", "")
		out := Failover(testCtx(t, time.Minute), o, args)
		if out.Exit != ExitOK {
			t.Fatalf("server %d: exit %d: %v\n%s", version, out.Exit, out.Err, human.String())
		}
		ctl := 0
		for _, e := range c.Events() {
			if strings.Contains(e, "_ctl") {
				ctl++
				if !strings.Contains(e, "/home/kingbase/cluster/R3HA/db/bin/sys_ctl -D /home/kingbase/data ") {
					t.Errorf("server %d: control binary call %q", version, e)
				}
			}
			if pgName.MatchString(e) {
				t.Errorf("server %d: PostgreSQL name in %q", version, e)
			}
		}
		wantCtl := 2 // stop and status on the old primary
		if version < versionPgPromote {
			wantCtl = 3 // and promote on the new one
		}
		if ctl != wantCtl {
			t.Errorf("server %d: %d control binary calls, want %d", version, ctl, wantCtl)
		}
		log := human.String()
		if loc := pgName.FindStringIndex(log); loc != nil {
			t.Errorf("server %d: PostgreSQL name in the log: %q", version, log[max(loc[0]-60, 0):min(loc[1]+20, len(log))])
		}
		for _, want := range []string{"select sys_reload_conf()", "%r = new master port [], %R = new master database cluster path [/home/kingbase/data]"} {
			if !strings.Contains(log, want) {
				t.Errorf("server %d: log lacks %q", version, want)
			}
		}
		promote := "execute: select sys_promote(true, 5) on 10.0.0.2:54321"
		if version < versionPgPromote {
			promote = "execute: [runuser -u dbuser -- /home/kingbase/cluster/R3HA/db/bin/sys_ctl -D /home/kingbase/data promote -w -t 5] exit 0"
		}
		if !strings.Contains(log, promote) {
			t.Errorf("server %d: log lacks %q:\n%s", version, promote, log)
		}
		if bytes.Contains(steps.Bytes(), []byte("pg_")) {
			t.Errorf("server %d: PostgreSQL name in the step log:\n%s", version, steps.String())
		}
	}
}

// TestKingbaseDescribe: the dry run's commands, which are also the
// migration guide's "what you would type", for KingbaseES.
func TestKingbaseDescribe(t *testing.T) {
	cfg := kingbaseConfig(t)
	o, _, closeAll, err := Setup(cfg, Env{EUID: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll()
	args := placeholders(t, "0", "192.168.1.201", "", "", "1", "192.168.1.202", "0", "0", "", "", "192.168.1.201", "")
	for _, tc := range []struct {
		cand Candidate
		want []string
	}{
		{standbyOK(), []string{"ksql 'host=192.168.1.202 port=54321 user=system dbname=test connect_timeout=10' -c 'select sys_promote(true, 60)'"}},
		{standbyV8(), []string{"on 192.168.1.202: runuser -u kingbase -- /home/kingbase/cluster/R3HA/db/bin/sys_ctl -D /home/kingbase/cluster/R3HA/db/data promote -w -t 60"}},
	} {
		p := Decide(Input{Args: args, Defaults: o.Defaults, Trusted: true, Candidate: tc.cand, VIP: true, PromoteMethod: MethodAuto})
		lines := Describe(p, o)
		text := strings.Join(lines, "\n")
		want := append(tc.want,
			"on 192.168.1.201: runuser -u kingbase -- /home/kingbase/cluster/R3HA/db/bin/sys_ctl -D /home/kingbase/cluster/R3HA/db/data stop -m immediate -w -t 29",
			"on 192.168.1.201: /sbin/ip addr del 192.168.1.10/24 dev enp0s3",
			"select sys_is_in_recovery(), sys_last_wal_receive_lsn(), sys_last_wal_replay_lsn()",
			"returning sys_current_wal_lsn()",
			"select sys_reload_conf()",
			"-c CHECKPOINT",
			"on 192.168.1.202: /sbin/ip addr add 192.168.1.10/24 dev enp0s3 label enp0s3:2",
			"on 192.168.1.202: /usr/sbin/arping -U 192.168.1.10 -I enp0s3 -c 3 -w 4",
			"host=192.168.1.10 port=54321")
		for _, w := range want {
			if !strings.Contains(text, w) {
				t.Errorf("dry run lacks %q:\n%s", w, text)
			}
		}
		if loc := pgName.FindStringIndex(text); loc != nil {
			t.Errorf("PostgreSQL name in the dry run: %q", text[max(loc[0]-40, 0):min(loc[1]+20, len(text))])
		}
		if strings.Contains(text, "secret-not-to-be-seen") {
			t.Error("the password is in the dry run")
		}
		// The VIP is the last thing, after the gate.
		gate, vip := strings.Index(text, string(ActGate)), strings.Index(text, "ip addr add")
		if gate < 0 || vip < gate {
			t.Errorf("the VIP comes before the readiness gate:\n%s", text)
		}
	}
}

func TestPgpoolConfigProblems(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"no trusted IP", "database: {bin_dir: /b}\nssh: {user: u, key_file: /k, known_hosts_file: /h}\n", "trusted_ips: required"},
		{"loopback trusted IP", "database: {bin_dir: /b}\ntrusted_ips: [127.0.0.1]\nssh: {user: u, key_file: /k, known_hosts_file: /h}\n", "always answers"},
		{"no known_hosts", "database: {bin_dir: /b}\ntrusted_ips: [10.0.0.1]\nssh: {user: u, key_file: /k}\n", "ssh.known_hosts_file: required"},
		{"label of another interface", "database: {bin_dir: /b}\ntrusted_ips: [10.0.0.1]\nssh: {user: u, key_file: /k, known_hosts_file: /h}\nvip: {address: 10.0.0.9/24, interface: eth0, label: eth1:2}\n", "vip.label"},
		{"unknown policy", "database: {bin_dir: /b}\ntrusted_ips: [10.0.0.1]\nssh: {user: u, key_file: /k, known_hosts_file: /h}\nfence: {if_unreachable: ignore}\n", "fence.if_unreachable"},
		{"readiness longer than the total", "database: {bin_dir: /b}\ntrusted_ips: [10.0.0.1]\nssh: {user: u, key_file: /k, known_hosts_file: /h}\ntiming: {readiness_timeout: 10m}\n", "timing.total_timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.ParsePgpool([]byte(tc.yaml))
			if err == nil {
				err = cfg.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
	_, err := config.ParsePgpool([]byte("database:\n  bin_dir: /b\n  password: x\n"))
	if err == nil || !strings.Contains(err.Error(), "line 3") || strings.Contains(err.Error(), ": x") {
		t.Errorf("a password in the file: %v", err)
	}
}
