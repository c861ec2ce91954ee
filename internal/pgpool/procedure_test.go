package pgpool

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/lab"
	"github.com/vigil-ha/vigil/internal/lab/labtest"
	"github.com/vigil-ha/vigil/internal/proc"
	"github.com/vigil-ha/vigil/internal/remote"
	"github.com/vigil-ha/vigil/internal/remote/sshdtest"
	"github.com/vigil-ha/vigil/internal/timeline"
)

// arpingStub stands in for iputils arping, which the test machine need not
// have: it logs each call with its time and answers "no duplicate". The
// real ip adds and removes the VIP.
const arpingStub = `#!/bin/sh
echo "$(date +%s.%N) $*" >> "$(dirname "$0")/arping.log"
exit 0
`

// e2e is a three-node lab in network namespaces, each node with its own
// sshd: Pgpool-II's host is the test process, on the lab's bridge.
type e2e struct {
	l          *lab.Lab
	n1, n2, n3 lab.Node
	sshd       map[string]*sshdtest.Server // by host
	vip        netip.Prefix
	bridge     netip.Addr
	stubDir    string
}

func newE2E(t *testing.T) *e2e {
	l := labtest.New(t, lab.Options{Nodes: 3, Netns: true})
	e := &e2e{l: l, sshd: map[string]*sshdtest.Server{}}
	for i, p := range []*lab.Node{&e.n1, &e.n2, &e.n3} {
		n, err := l.Node(fmt.Sprintf("node%d", i+1))
		if err != nil {
			t.Fatal(err)
		}
		*p = n
	}
	for _, n := range []lab.Node{e.n1, e.n2} {
		e.sshd[n.Host] = sshdtest.Start(t, n.Netns, n.Host)
	}
	e.vip, e.bridge = labAddresses(t, l)
	e.stubDir = t.TempDir()
	if err := os.WriteFile(filepath.Join(e.stubDir, "arping"), []byte(arpingStub), 0o755); err != nil {
		t.Fatal(err)
	}
	return e
}

// dial logs in to a node's sshd; knownHosts replaces its known_hosts file.
func (e *e2e) dial(knownHosts string) func(ctx context.Context, host string) (Shell, error) {
	return func(ctx context.Context, host string) (Shell, error) {
		s, ok := e.sshd[host]
		if !ok {
			return nil, fmt.Errorf("no sshd on %s in this test", host)
		}
		cfg := s.Config()
		if knownHosts != "" {
			cfg.KnownHostsFile = knownHosts
		}
		c, err := remote.Dial(ctx, host, cfg)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}

func (e *e2e) options(t *testing.T, hosts *Hosts, human, steps io.Writer) Options {
	f := e.l.Flavor()
	user, password, err := e.l.Superuser()
	if err != nil {
		t.Fatal(err)
	}
	byHost := map[string]lab.Node{}
	for _, n := range []lab.Node{e.n1, e.n2, e.n3} {
		byHost[n.Host] = n
	}
	// Pgpool-II runs as root here and logs in as root: the control binary
	// runs as the database's account, ip needs no sudo.
	db, net := Privileges("root", "postgres", "auto")
	return Options{
		Cluster:  "e2e",
		Flavor:   f,
		Defaults: Defaults{Port: e.n1.Port, Names: []string{"node1", "node2", "node3"}},
		Commands: Commands{Flavor: f, BinDir: e.l.BinDir(), IP: "/usr/sbin/ip", Arping: filepath.Join(e.stubDir, "arping"), DBPrefix: db, NetPrefix: net},
		Runner:   hosts,
		Connect: func(tg Target) Server {
			s := &database.Server{Name: tg.Name, Flavor: f, Conn: database.ConnConfig{Host: tg.Host, Port: tg.Port, User: user, Password: password,
				Database: f.DefaultDatabase, ConnectTimeout: 2 * time.Second}}
			if n, ok := byHost[tg.Host]; ok {
				s.Ctl, s.StartOptions = e.l.Ctl(n), e.l.StartOptions(n)
			} else {
				s.Ctl.Runner = proc.Runner{Dir: noRemoteControl}
			}
			return s
		},
		SQLUser: user, SQLDatabase: f.DefaultDatabase,
		TrustedIPs: []string{e.bridge.String()},
		VIP:        &VIP{Prefix: e.vip, Interface: "eth0", Label: "eth0:2", ARPCount: 3},
		Total:      3 * time.Minute, DBTimeout: 2 * time.Second, CommandTimeout: 30 * time.Second,
		PromoteTimeout: time.Minute, ReadinessTimeout: 2 * time.Minute,
		Human: human, StepLog: steps,
	}
}

// args are the placeholders Pgpool-II passes when node 0 (node1), the
// primary, fails and node 1 (node2) is the new main node.
func (e *e2e) args(t *testing.T) Args {
	return placeholders(t, "0", e.n1.Host, strconv.Itoa(e.n1.Port), e.n1.DataDir, "1", e.n2.Host, "0", "0",
		strconv.Itoa(e.n2.Port), e.n2.DataDir, e.n1.Host, strconv.Itoa(e.n1.Port))
}

// addresses lists the IPv4 addresses of eth0 in node n's namespace.
func (e *e2e) addresses(t *testing.T, ctx context.Context, n lab.Node) string {
	t.Helper()
	out, err := proc.Runner{Netns: n.Netns}.Run(ctx, "ip", "-o", "-4", "addr", "show", "dev", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func execSQL(t *testing.T, ctx context.Context, s *database.Server, stmt string) {
	t.Helper()
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=%s dbname=%s", s.Conn.Host, s.Conn.Port, s.Conn.User, s.Conn.Database))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = s.Conn.Password
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, stmt); err != nil {
		t.Fatalf("%s on %s: %v", stmt, s.Name, err)
	}
}

// stepByName returns the named step of a record.
func stepByName(t *testing.T, r timeline.Record, name string) timeline.Step {
	t.Helper()
	for _, s := range r.Steps {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no step %s in %v", name, stepNames(r))
	return timeline.Step{}
}

// TestFailoverCommandOnALab kills a real primary that has a standby 64 MiB
// behind on replay and commits waiting for it synchronously, and calls the
// procedure with Pgpool-II's placeholders, over real SSH: first with an
// unknown host key (nothing may be promoted), then properly. The standby
// must end writable with the VIP, the VIP added only after the readiness
// gate committed a write; a repeated call must change nothing; the third
// node must follow the new primary.
func TestFailoverCommandOnALab(t *testing.T) {
	e := newE2E(t)
	ctx := testCtx(t, 8*time.Minute)
	s1, s2, s3 := labtest.Server(t, e.l, "node1"), labtest.Server(t, e.l, "node2"), labtest.Server(t, e.l, "node3")

	// The seed's conditions: the old primary held the VIP, the new primary
	// has a replay backlog, and its commits would wait for the old primary.
	if _, err := (proc.Runner{Netns: e.n1.Netns}).Run(ctx, "ip", "addr", "add", e.vip.String(), "dev", "eth0", "label", "eth0:2"); err != nil {
		t.Fatal(err)
	}
	execSQL(t, ctx, s2, "ALTER SYSTEM SET synchronous_standby_names = 'node1'")
	execSQL(t, ctx, s2, "SELECT pg_reload_conf()")
	if err := e.l.PauseReplay(ctx, e.n2); err != nil {
		t.Fatal(err)
	}
	if err := e.l.GenerateWAL(ctx, e.n1, 64); err != nil {
		t.Fatal(err)
	}
	p, err := s1.Observe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*database.Server{s2, s3} {
		labtest.WaitFor(t, ctx, s.Name+" to receive the primary's WAL", func() bool {
			o, err := s.Observe(ctx)
			return err == nil && o.ReceivedLSN >= p.CurrentLSN
		})
	}
	if err := e.l.Kill(ctx, e.n1); err != nil {
		t.Fatal(err)
	}
	// Killed, node1 still holds the VIP: the fence must take it away.

	t.Run("unknown host key: nothing promoted", func(t *testing.T) {
		// A known_hosts file that knows none of the nodes.
		wrong := filepath.Join(t.TempDir(), "known_hosts")
		if err := os.WriteFile(wrong, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		hosts := &Hosts{Dial: e.dial(wrong)}
		defer hosts.Close()
		var human bytes.Buffer
		o := e.options(t, hosts, &human, nil)
		o.FenceIfUnreachable = FenceContinue // a host key failure is never "unreachable"
		out := Failover(ctx, o, e.args(t))
		if out.Exit != ExitFenceFailed || !strings.Contains(human.String(), remote.ErrUnknownHostKey.Error()) {
			t.Fatalf("exit %d: %v\n%s", out.Exit, out.Err, human.String())
		}
		if o, err := s2.Observe(ctx); err != nil || !o.InRecovery {
			t.Fatalf("node2 after a refused fence: in recovery %v, %v", o.InRecovery, err)
		}
	})

	hosts := &Hosts{Dial: e.dial("")}
	defer hosts.Close()
	var human, steps bytes.Buffer
	o := e.options(t, hosts, &human, &steps)
	out := Failover(ctx, o, e.args(t))
	t.Logf("failover log:\n%s\n%s", human.String(), timeline.Format(out.Record))
	if out.Exit != ExitOK {
		t.Fatalf("exit %d: %v", out.Exit, out.Err)
	}

	// node2 is the writable primary.
	if r := s2.ProbeWrite(ctx); !r.Writable() {
		t.Fatalf("node2 is not writable: %v", r)
	}
	// The readiness gate committed a write before the VIP step began, the
	// synchronous wait was turned into asynchronous commits, and the
	// promotion saw the backlog.
	rec := out.Record
	gate, routes, promote := stepByName(t, rec, string(ActGate)), stepByName(t, rec, string(ActVIP)), stepByName(t, rec, string(ActPromote))
	if !gate.OK || !routes.OK || gate.End.After(routes.Start) {
		t.Errorf("gate %v..%v ok %v, routes %v.. ok %v", gate.Start, gate.End, gate.OK, routes.Start, routes.OK)
	}
	if s := stepByName(t, rec, StepSyncToAsync); !s.OK {
		t.Errorf("sync_to_async: %+v", s)
	}
	var backlog uint64
	if i := strings.Index(promote.Evidence, "replay backlog before: "); i >= 0 {
		fmt.Sscanf(promote.Evidence[i:], "replay backlog before: %d bytes", &backlog)
	}
	if backlog < 32<<20 {
		t.Errorf("promotion saw a backlog of %d bytes, want the injected lag (>= 32 MiB): %s", backlog, promote.Evidence)
	}
	// The VIP moved: gone from node1, on node2 with the seed's label.
	if a := e.addresses(t, ctx, e.n1); strings.Contains(a, e.vip.Addr().String()+"/") {
		t.Errorf("the VIP is still on node1: %s", a)
	}
	if a := e.addresses(t, ctx, e.n2); !strings.Contains(a, e.vip.String()) || !strings.Contains(a, "eth0:2") {
		t.Errorf("the VIP is not on node2 with label eth0:2: %s", a)
	}
	// arping ran on node2: the duplicate check, then the announcement,
	// both after the gate.
	calls := arpingCalls(t, filepath.Join(e.stubDir, "arping.log"))
	if len(calls) != 2 || !strings.Contains(calls[0].args, "-D") || !strings.Contains(calls[1].args, "-U "+e.vip.Addr().String()) {
		t.Errorf("arping calls %+v", calls)
	}
	for _, c := range calls {
		if c.at.Before(gate.End) {
			t.Errorf("arping %q at %v, before the gate passed at %v", c.args, c.at, gate.End)
		}
	}
	// vigil analyze reads both logs and sees no read-only window.
	rep := analyzeLogs(t, human.Bytes(), steps.Bytes())
	if f := rep.Files[0]; f.Unknown != 0 {
		t.Errorf("%d lines of the failover log unrecognised", f.Unknown)
	}
	if f := rep.Findings; f == nil || f.ReadOnlyWindowS == nil || *f.ReadOnlyWindowS != 0 {
		t.Errorf("findings %+v", f)
	}

	t.Run("repeated call", func(t *testing.T) {
		var again bytes.Buffer
		out := Failover(ctx, e.options(t, hosts, &again, nil), e.args(t))
		if out.Exit != ExitOK || out.Plan.Case != CaseAlreadyDone || strings.Contains(again.String(), "execute promote") {
			t.Fatalf("exit %d case %s: %v\n%s", out.Exit, out.Plan.Case, out.Err, again.String())
		}
	})

	t.Run("follow-command re-points node3", func(t *testing.T) {
		repl, _, err := e.l.Replication()
		if err != nil {
			t.Fatal(err)
		}
		var log bytes.Buffer
		s := FollowSettings{ReplicationUser: repl, Passfile: e.l.PassFile(), UseSlots: true}
		args := placeholders(t, "2", e.n3.Host, strconv.Itoa(e.n3.Port), e.n3.DataDir, "1", e.n2.Host, "0", "0",
			strconv.Itoa(e.n2.Port), e.n2.DataDir, e.n1.Host, strconv.Itoa(e.n1.Port))
		out := Follow(ctx, e.options(t, hosts, &log, nil), s, args)
		if out.Exit != ExitOK {
			t.Fatalf("exit %d: %v\n%s", out.Exit, out.Err, log.String())
		}
		o, err := s3.Observe(ctx)
		if err != nil || o.WALReceiver == nil || o.WALReceiver.SenderHost != e.n2.Host || o.WALReceiver.Status != "streaming" {
			t.Fatalf("node3 receiver %+v, %v", o.WALReceiver, err)
		}
		w := s2.ProbeWrite(ctx)
		labtest.WaitFor(t, ctx, "node3 to replay a write of the new primary", func() bool {
			o, err := s3.Observe(ctx)
			return err == nil && o.ReplayedLSN >= w.CommitLSN
		})
	})
}

type arpingCall struct {
	at   time.Time
	args string
}

func arpingCalls(t *testing.T, path string) []arpingCall {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("arping was never called: %v", err)
	}
	defer f.Close()
	var out []arpingCall
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		stamp, args, _ := strings.Cut(sc.Text(), " ")
		secs, err := strconv.ParseFloat(stamp, 64)
		if err != nil {
			t.Fatalf("arping log line %q", sc.Text())
		}
		out = append(out, arpingCall{at: time.Unix(0, int64(secs*1e9)), args: args})
	}
	return out
}
