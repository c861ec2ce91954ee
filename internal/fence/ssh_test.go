package fence

import (
	"context"
	"errors"
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
	"github.com/vigil-ha/vigil/internal/lab"
	"github.com/vigil-ha/vigil/internal/lab/labtest"
	"github.com/vigil-ha/vigil/internal/remote"
	"github.com/vigil-ha/vigil/internal/remote/sshdtest"
)

func TestSSHConfigurationAndCommandLines(t *testing.T) {
	kb := flavor.MustLookup(flavor.Kingbase)
	stop := StopArgv(kb, "/opt/Kingbase/ES/V8/Server/bin", "/data/kingbase data")
	if got, want := (SSH{StopCommand: stop}).stopCommandLine(),
		`LC_ALL=C /opt/Kingbase/ES/V8/Server/bin/sys_ctl -D '/data/kingbase data' -m immediate stop`; got != want {
		t.Errorf("kingbase stop command line:\n got %s\nwant %s", got, want)
	}
	pg := StopArgv(flavor.MustLookup(flavor.Postgres), "/usr/lib/postgresql/15/bin", "/var/lib/postgresql/15/main")
	if got, want := strings.Join(pg, " "), "/usr/lib/postgresql/15/bin/pg_ctl -D /var/lib/postgresql/15/main -m immediate stop"; got != want {
		t.Errorf("postgres stop argv %q, want %q", got, want)
	}
	vip := SSH{VIP: "10.0.0.100/24", Interface: "eth0:1"}
	if got, want := vip.vipCommandLine(), "ip addr del 10.0.0.100/24 dev eth0:1"; got != want {
		t.Errorf("vip command line %q, want %q", got, want)
	}
	vip.Sudo = true
	if got, want := vip.vipCommandLine(), "sudo -n ip addr del 10.0.0.100/24 dev eth0:1"; got != want {
		t.Errorf("vip command line with sudo %q, want %q", got, want)
	}

	// Refused before any connection: the configuration names no key or
	// known_hosts file, so a dial would fail differently.
	old := dcs.Member{Member: decision.Member{Name: "node1"}, Host: "198.18.0.11", Port: 5432}
	for _, tc := range []struct {
		s    SSH
		old  dcs.Member
		want string
	}{
		{SSH{}, old, "no stop command"},
		{SSH{StopCommand: pg}, dcs.Member{Member: decision.Member{Name: "node1"}}, "no host"},
		{SSH{StopCommand: pg, VIP: "10.0.0.100", Interface: "eth0"}, old, "prefix length"},
		{SSH{StopCommand: pg, VIP: "10.0.0.100/24"}, old, "no interface"},
	} {
		if _, err := tc.s.Fence(context.Background(), tc.old); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want %q", tc.s, err, tc.want)
		}
	}

	// The messages pg_ctl (and sys_ctl) print with nothing to stop; the
	// fence test below meets both from a real pg_ctl.
	for out, want := range map[string]bool{
		"pg_ctl: PID file \"/d/postmaster.pid\" does not exist\nIs server running?":      true,
		"pg_ctl: could not send stop signal (PID: 4242): No such process":                true,
		"pg_ctl: directory \"/d\" does not exist":                                        false,
		"pg_ctl: could not send stop signal (PID: 4242): Operation not permitted":        false,
		"pg_ctl: cannot be run as root\nPlease log in (using, e.g., \"su\") as the user": false,
	} {
		if got := alreadyStopped(out); got != want {
			t.Errorf("alreadyStopped(%q) = %v, want %v", out, got, want)
		}
	}
	for out, want := range map[string]bool{
		"Error: ipv4: Address not found.":                    true,
		"RTNETLINK answers: Cannot assign requested address": true,
		"Cannot find device \"eth9\"":                        false,
		"RTNETLINK answers: Operation not permitted":         false,
	} {
		if got := addressAbsent(out); got != want {
			t.Errorf("addressAbsent(%q) = %v, want %v", out, got, want)
		}
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
		Config:      srv.Config(),
		StopCommand: append(asOwner, StopArgv(l.Flavor(), l.BinDir(), n.DataDir)...),
		VIP:         vip,
		Interface:   "eth0",
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
		if !errors.Is(err, remote.ErrUnknownHostKey) || !errors.As(err, &he) {
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
		if _, err := f.Fence(ctx, old); err == nil || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("err = %v, want connection refused", err)
		}
		untouched("unreachable")
	})

	t.Run("AnUnrecognisedStopFailureIsNotTakenForStopped", func(t *testing.T) {
		f := fencer
		f.VIP, f.Interface = "", ""
		f.StopCommand = append(asOwner, StopArgv(l.Flavor(), l.BinDir(), "/nonexistent/vigil-data")...)
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
