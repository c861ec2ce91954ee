package fence

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
	"github.com/vigil-ha/vigil/internal/flavor"
	"github.com/vigil-ha/vigil/internal/host"
	"github.com/vigil-ha/vigil/internal/lab"
	"github.com/vigil-ha/vigil/internal/lab/labtest"
	"github.com/vigil-ha/vigil/internal/pgctl"
	"github.com/vigil-ha/vigil/internal/remote"
	"github.com/vigil-ha/vigil/internal/remote/sshdtest"
)

// script is a host whose programs answer from a table, keyed by the
// command line; it records what ran.
type script struct {
	answers map[string]host.Result
	ran     []string
	closed  bool
}

func (s *script) Run(_ context.Context, argv []string) (host.Result, error) {
	line := strings.Join(argv, " ")
	s.ran = append(s.ran, line)
	res, ok := s.answers[line]
	if !ok {
		return host.Result{}, fmt.Errorf("unexpected command %q", line)
	}
	return res, nil
}

func (s *script) Close() error   { s.closed = true; return nil }
func (s *script) String() string { return "scripted host" }

func TestSSHReadsExitCodesNotMessages(t *testing.T) {
	kb := pgctl.Ctl{Flavor: flavor.MustLookup(flavor.Kingbase), BinDir: "/opt/Kingbase/ES/V8/Server/bin", DataDir: "/data/kingbase data",
		Prefix: []string{"runuser", "-u", "kingbase", "--"}}
	const (
		stop   = "runuser -u kingbase -- /opt/Kingbase/ES/V8/Server/bin/sys_ctl -D /data/kingbase data stop -m immediate -w -t 60"
		status = "runuser -u kingbase -- /opt/Kingbase/ES/V8/Server/bin/sys_ctl -D /data/kingbase data status"
		show   = "sudo -n ip -o -4 addr show dev eth0"
		del    = "sudo -n ip addr del 10.0.0.100/24 dev eth0"
		held   = "2: eth0    inet 10.0.0.11/24 brd 10.0.0.255 scope global eth0\n2: eth0    inet 10.0.0.100/24 scope global secondary eth0\n"
		free   = "2: eth0    inet 10.0.0.11/24 brd 10.0.0.255 scope global eth0\n"
		// What sys_ctl says on a zh_CN host: nothing an English reader
		// of messages would recognise.
		translated = "sys_ctl: PID 文件 \"/data/kingbase data/kingbase.pid\" 不存在\n服务器是否在运行?\n"
	)
	old := dcs.Member{Member: decision.Member{Name: "node1"}, Host: "10.0.0.11", Port: 54321}
	for _, tc := range []struct {
		name    string
		answers map[string]host.Result
		want    []string // in the evidence, or in the error when wantErr
		wantErr bool
		notRun  string
	}{
		{name: "stopped and VIP deleted", answers: map[string]host.Result{
			stop: {Output: []byte("waiting for server to shut down.... done\nserver stopped\n")},
			show: {Output: []byte(held)}, del: {},
		}, want: []string{"scripted host: ", "database stopped (server stopped)", "VIP 10.0.0.100/24 deleted from eth0"}},
		{name: "a translated refusal with status 3 is already stopped", answers: map[string]host.Result{
			stop: {Output: []byte(translated), ExitCode: 1}, status: {Output: []byte("sys_ctl: 没有服务器在运行\n"), ExitCode: 3},
			show: {Output: []byte(free)},
		}, want: []string{"database already stopped", "kingbase.pid", "VIP 10.0.0.100/24 already absent from eth0"}, notRun: del},
		{name: "the English words with status 4 are not stopped", answers: map[string]host.Result{
			stop:   {Output: []byte("sys_ctl: PID file \"/d/kingbase.pid\" does not exist\nIs server running?\n"), ExitCode: 1},
			status: {Output: []byte("sys_ctl: directory \"/data/kingbase data\" is not a database cluster directory\n"), ExitCode: 4},
			show:   {Output: []byte(held)}, del: {},
		}, want: []string{"stop the database", "exit status 1", "done nevertheless: VIP 10.0.0.100/24 deleted from eth0"}, wantErr: true},
		{name: "a stop that fails while status says running", answers: map[string]host.Result{
			stop: {Output: []byte("sys_ctl: server does not shut down\n"), ExitCode: 1}, status: {Output: []byte("sys_ctl: server is running (PID: 42)\n")},
			show: {Output: []byte(free)},
		}, want: []string{"server does not shut down", "done nevertheless: VIP 10.0.0.100/24 already absent"}, wantErr: true},
		{name: "a delete that fails leaves the VIP held", answers: map[string]host.Result{
			stop: {Output: []byte("server stopped\n")},
			show: {Output: []byte(held)}, del: {Output: []byte("RTNETLINK answers: Operation not permitted\n"), ExitCode: 2},
		}, want: []string{"delete VIP 10.0.0.100/24 from eth0", "exit status 2", "done nevertheless: database stopped"}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &script{answers: tc.answers}
			f := SSH{Ctl: kb, VIP: "10.0.0.100/24", Interface: "eth0", Sudo: true,
				login: func(context.Context, string) (session, error) { return h, nil }}
			ev, err := f.Fence(context.Background(), old)
			got := ev
			if tc.wantErr {
				if err == nil {
					t.Fatalf("fence succeeded: %s", ev)
				}
				got = err.Error()
			} else if err != nil {
				t.Fatalf("fence: %v (ran %q)", err, h.ran)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("%q lacks %q", got, w)
				}
			}
			for _, line := range h.ran {
				if line == tc.notRun {
					t.Errorf("ran %q", line)
				}
			}
			if !h.closed {
				t.Error("session left open")
			}
		})
	}

	// Refused before any connection is made.
	login := func(context.Context, string) (session, error) {
		t.Fatal("logged in despite a configuration that cannot fence")
		return nil, nil
	}
	for _, tc := range []struct {
		s    SSH
		old  dcs.Member
		want string
	}{
		{SSH{}, old, "no stop command"},
		{SSH{Ctl: kb}, dcs.Member{Member: decision.Member{Name: "node1"}}, "no host"},
		{SSH{Ctl: kb, VIP: "10.0.0.100", Interface: "eth0"}, old, "prefix length"},
		{SSH{Ctl: kb, VIP: "10.0.0.100/24"}, old, "no interface"},
	} {
		tc.s.login = login
		if _, err := tc.s.Fence(context.Background(), tc.old); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want %q", tc.s, err, tc.want)
		}
	}

	// A host that cannot be reached stays recognisable through the fence.
	down := SSH{Ctl: kb, login: func(context.Context, string) (session, error) {
		return nil, host.Unreachable(errors.New("dial tcp 10.0.0.11:22: connect: no route to host"))
	}}
	if _, err := down.Fence(context.Background(), old); !errors.Is(err, host.ErrUnreachable) {
		t.Errorf("unreachable host: err = %v, want host.ErrUnreachable", err)
	}
}

// TestSSHFencesARealPrimary logs in with Debian's sshd running inside a lab
// node's network namespace, so the fence reaches the node at its own
// address, as it would reach another machine.
func TestSSHFencesARealPrimary(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("SSH fence tests need root: they run sshd in a network namespace (CI runs as root)")
	}
	l := labtest.New(t, lab.Options{Nodes: 1, Netns: true})
	n, err := l.Node("node1")
	if err != nil {
		t.Fatal(err)
	}
	srv := sshdtest.Start(t, n.Netns, n.Host)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sshd log:\n%s", srv.Log())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	addr, err := l.AddressIn(100)
	if err != nil {
		t.Fatal(err)
	}
	vip := addr.String() + "/24"
	nsIP := func(args ...string) (string, error) {
		out, err := exec.Command("ip", append([]string{"-n", n.Netns}, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := nsIP("addr", "add", vip, "dev", "eth0"); err != nil {
		t.Fatalf("add the VIP to node1: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if vipPresent(t, nsIP, addr.String()) {
			if out, err := nsIP("addr", "del", vip, "dev", "eth0"); err != nil {
				t.Errorf("remove the test's VIP: %v: %s", err, out)
			}
		}
	})
	ctl := l.Ctl(n)
	running := func() bool {
		t.Helper()
		up, _, err := ctl.Status(ctx)
		if err != nil {
			t.Fatalf("pg_ctl status: %v", err)
		}
		return up
	}
	if !running() || !vipPresent(t, nsIP, addr.String()) {
		t.Fatal("setup: node1 should run and carry the VIP")
	}

	old := dcs.Member{Member: decision.Member{Name: n.Name}, Host: n.Host, Port: n.Port}
	// Logged in as root; pg_ctl refuses root, so it runs as the lab's user.
	asOwner := []string{"runuser", "-u", lab.DefaultOSUser, "--"}
	fencer := SSH{
		Config:    srv.Config(),
		Ctl:       pgctl.Ctl{Flavor: l.Flavor(), BinDir: l.BinDir(), DataDir: n.DataDir, Prefix: asOwner},
		VIP:       vip,
		Interface: "eth0",
	}
	untouched := func(what string) {
		t.Helper()
		if !running() || !vipPresent(t, nsIP, addr.String()) {
			t.Fatalf("%s: node1 was touched (running %v)", what, running())
		}
	}

	t.Run("UnknownHostKeyAbortsBeforeAnythingIsDone", func(t *testing.T) {
		f := fencer
		f.Config.KnownHostsFile = filepath.Join(t.TempDir(), "known_hosts")
		if err := os.WriteFile(f.Config.KnownHostsFile, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		ev, err := f.Fence(ctx, old)
		if err == nil {
			t.Fatalf("fence with an empty known_hosts succeeded: %s", ev)
		}
		var he *remote.HostKeyError
		t.Log(err)
		if !errors.Is(err, remote.ErrUnknownHostKey) || !errors.As(err, &he) || errors.Is(err, host.ErrUnreachable) {
			t.Fatalf("err = %v, want an unknown host key", err)
		}
		if msg := err.Error(); !strings.Contains(msg, "node1") || !strings.Contains(msg, he.Fingerprint()) || !strings.Contains(msg, f.Config.KnownHostsFile) {
			t.Errorf("message %q does not name the node, the fingerprint and the file", msg)
		}
		untouched("unknown host key")
	})

	t.Run("UnreachableHostIsAnError", func(t *testing.T) {
		f := fencer
		f.Config.Port = 2222 // nothing listens there
		if _, err := f.Fence(ctx, old); err == nil || !strings.Contains(err.Error(), "connection refused") || !errors.Is(err, host.ErrUnreachable) {
			t.Fatalf("err = %v, want connection refused, unreachable", err)
		}
		untouched("unreachable")
	})

	t.Run("AnUnrecognisedStopFailureIsNotTakenForStopped", func(t *testing.T) {
		f := fencer
		f.VIP, f.Interface = "", ""
		f.Ctl.DataDir = "/nonexistent/vigil-data"
		if _, err := f.Fence(ctx, old); err == nil || !strings.Contains(err.Error(), "does not exist") {
			t.Fatalf("err = %v, want pg_ctl's complaint about the directory", err)
		}
		untouched("wrong data directory")
	})

	t.Run("StopsTheServerAndDeletesTheVIPOnceAndAgain", func(t *testing.T) {
		ev, err := fencer.Fence(ctx, old)
		if err != nil {
			t.Fatalf("fence: %v", err)
		}
		t.Logf("evidence: %s", ev)
		if running() {
			t.Error("node1's server still runs after the fence")
		}
		if vipPresent(t, nsIP, addr.String()) {
			t.Error("node1 still carries the VIP after the fence")
		}
		for _, want := range []string{"database stopped", "server stopped", "VIP " + vip + " deleted from eth0", ssh.FingerprintSHA256(srv.HostKeyED25519)} {
			if !strings.Contains(ev, want) {
				t.Errorf("evidence %q lacks %q", ev, want)
			}
		}

		ev, err = fencer.Fence(ctx, old)
		if err != nil {
			t.Fatalf("second fence: %v", err)
		}
		t.Logf("second evidence: %s", ev)
		for _, want := range []string{"database already stopped", "postmaster.pid\" does not exist", "VIP " + vip + " already absent from eth0"} {
			if !strings.Contains(ev, want) {
				t.Errorf("second evidence %q lacks %q", ev, want)
			}
		}
	})

	t.Run("ACrashedServerCountsAsStopped", func(t *testing.T) {
		// A postmaster killed outright leaves its PID file behind.
		if err := l.Start(ctx, n); err != nil {
			t.Fatal(err)
		}
		if err := l.Kill(ctx, n); err != nil {
			t.Fatal(err)
		}
		f := fencer
		f.VIP, f.Interface = "", ""
		ev, err := f.Fence(ctx, old)
		if err != nil {
			t.Fatalf("fence of a crashed server: %v", err)
		}
		t.Logf("evidence: %s", ev)
		if !strings.Contains(ev, "database already stopped") || !strings.Contains(ev, "No such process") {
			t.Errorf("evidence %q, want an already stopped database with a stale PID file", ev)
		}
	})
}

func vipPresent(t *testing.T, nsIP func(...string) (string, error), addr string) bool {
	t.Helper()
	out, err := nsIP("-o", "addr", "show", "dev", "eth0")
	if err != nil {
		t.Fatalf("list node1's addresses: %v: %s", err, out)
	}
	return strings.Contains(out, " "+addr+"/")
}
