package remote_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/vigil-ha/vigil/internal/host"
	"github.com/vigil-ha/vigil/internal/lab"
	"github.com/vigil-ha/vigil/internal/lab/labtest"
	"github.com/vigil-ha/vigil/internal/remote"
	"github.com/vigil-ha/vigil/internal/remote/sshdtest"
)

// tricky are arguments a careless command builder would let the shell
// reinterpret.
var tricky = []string{
	"plain", "", " ", "two words", "it's", `"double"`, `back\slash`, "$HOME", "${PATH}",
	"$(id -u)", "`id`", "a;b", "a|b", "a&&b", "*", "?", "~", "~root", "x=1", "#hash",
	"new\nline", "tab\there", "-n", "--", "%s", "'", "''", "100%", "é中文", "{a,b}", "!", "<>",
}

func TestQuoteIsLiteralInARealShell(t *testing.T) {
	// printf repeats its format for every argument: one NUL-terminated
	// record per word the shell passed on.
	cmd := remote.Command(append([]string{"printf", `%s\0`}, tricky...)...)
	out, err := exec.Command("sh", "-c", cmd).Output()
	if err != nil {
		t.Fatalf("sh -c %s: %v", cmd, err)
	}
	assertWords(t, string(out), tricky)
	for _, w := range []string{"plain", "/usr/lib/postgresql/15/bin/pg_ctl", "-D", "198.18.0.100/24", "user@host:22", "a,b"} {
		if got := remote.Quote(w); got != w {
			t.Errorf("Quote(%q) = %q, want it unquoted", w, got)
		}
	}
	// An unquoted first word with "=" would be an assignment, not a command.
	if got := remote.Quote("LC_ALL=C"); got != "'LC_ALL=C'" {
		t.Errorf(`Quote("LC_ALL=C") = %s, want it quoted`, got)
	}
}

func assertWords(t *testing.T, out string, want []string) {
	t.Helper()
	got := strings.Split(out, "\x00")
	if len(got) == 0 || got[len(got)-1] != "" {
		t.Fatalf("output %q does not end with a NUL", out)
	}
	got = got[:len(got)-1]
	if len(got) != len(want) {
		t.Fatalf("the shell saw %d words, want %d: %q", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("word %d: the shell saw %q, want %q", i, got[i], want[i])
		}
	}
}

// TestAgainstRealSSHD runs Debian's sshd inside a lab node's network
// namespace, reached over the lab's bridge like a remote host.
func TestAgainstRealSSHD(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("SSH tests need root: they run sshd in a network namespace (CI runs as root)")
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

	dial := func(t *testing.T, c remote.Config) *remote.Client {
		t.Helper()
		cl, err := remote.Dial(ctx, srv.Host, c)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		t.Cleanup(func() { cl.Close() })
		return cl
	}
	knownHosts := func(t *testing.T, lines ...string) string {
		t.Helper()
		path := filepath.Join(t.TempDir(), "known_hosts")
		if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}

	t.Run("RunReturnsOutputFromTheNamespace", func(t *testing.T) {
		cl := dial(t, srv.Config())
		// The address is only in the node's namespace: the command ran there.
		stdout, stderr, err := cl.Run(ctx, "ip -o -4 addr show dev eth0; echo to-stderr >&2")
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		if !strings.Contains(string(stdout), " "+n.Host+"/") {
			t.Errorf("stdout %q does not show %s on eth0", stdout, n.Host)
		}
		if string(stderr) != "to-stderr\n" {
			t.Errorf("stderr = %q, want %q", stderr, "to-stderr\n")
		}
		if got, want := cl.HostKeyFingerprint(), ssh.FingerprintSHA256(srv.HostKeyED25519); got != want {
			t.Errorf("verified host key %s, want %s", got, want)
		}
		// The remote login shell splits a built command back into exactly
		// the words given.
		stdout, _, err = cl.Run(ctx, remote.Command(append([]string{"printf", `%s\0`}, tricky...)...))
		if err != nil {
			t.Fatalf("run printf: %v", err)
		}
		assertWords(t, string(stdout), tricky)
	})

	t.Run("NonZeroExitCarriesStatusAndStderr", func(t *testing.T) {
		cl := dial(t, srv.Config())
		stdout, _, err := cl.Run(ctx, "echo partial; echo 'no such data directory' >&2; exit 7")
		var ee *remote.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("err = %v (%T), want *remote.ExitError", err, err)
		}
		if ee.Status != 7 || string(ee.Stderr) != "no such data directory\n" || string(stdout) != "partial\n" {
			t.Errorf("status %d, stderr %q, stdout %q; want 7, the message, partial", ee.Status, ee.Stderr, stdout)
		}
		if msg := err.Error(); !strings.Contains(msg, "status 7") || !strings.Contains(msg, "no such data directory") || !strings.Contains(msg, srv.Addr()) {
			t.Errorf("message %q lacks the status, stderr or host", msg)
		}
		_, _, err = cl.Run(ctx, "kill -TERM $$")
		if !errors.As(err, &ee) || ee.Status != 128+15 {
			t.Errorf("command killed by SIGTERM: %v, want status 143 as a shell reports it", err)
		}
	})

	t.Run("CancelEndsTheRemoteCommand", func(t *testing.T) {
		cl := dial(t, srv.Config())
		rctx, rcancel := context.WithTimeout(ctx, time.Second)
		defer rcancel()
		start := time.Now()
		stdout, _, err := cl.Run(rctx, "echo $$; exec sleep 60")
		took := time.Since(start)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want the context's deadline", err)
		}
		if took > 5*time.Second {
			t.Errorf("Run returned %s after the deadline, want promptly", took-time.Second)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(stdout)))
		if err != nil {
			t.Fatalf("the remote shell's pid: stdout %q: %v", stdout, err)
		}
		// Only the network namespace differs, so the remote process is
		// visible here: it must be gone, not left sleeping.
		deadline := time.Now().Add(5 * time.Second)
		for alive(pid) {
			if time.Now().After(deadline) {
				cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
				t.Fatalf("remote process %d (%q) still runs after the cancel", pid, cmdline)
			}
			time.Sleep(50 * time.Millisecond)
		}
		// Only the session ended: the connection still runs commands.
		if out, _, err := cl.Run(ctx, "echo still-connected"); err != nil || string(out) != "still-connected\n" {
			t.Errorf("run after a cancel: %q, %v", out, err)
		}
	})

	t.Run("UnknownHostKeyIsRefusedWithItsFingerprint", func(t *testing.T) {
		// Empty, and then the server's own key but filed under another
		// address: neither vouches for this host.
		other := srv.KnownHostsLine(srv.HostKeyED25519)
		other = strings.Replace(other, srv.Host, "198.18.255.254", 1)
		for _, lines := range [][]string{{}, {other}} {
			c := srv.Config()
			c.KnownHostsFile = knownHosts(t, lines...)
			cl, err := remote.Dial(ctx, srv.Host, c)
			if err == nil {
				cl.Close()
				t.Fatalf("dial with known_hosts %q succeeded", lines)
			}
			if !errors.Is(err, remote.ErrUnknownHostKey) || errors.Is(err, remote.ErrHostKeyChanged) {
				t.Errorf("err = %v, want ErrUnknownHostKey only", err)
			}
			var he *remote.HostKeyError
			if !errors.As(err, &he) {
				t.Fatalf("err = %v, want a *remote.HostKeyError", err)
			}
			t.Logf("known_hosts %q: %v", lines, err)
			fp := he.Fingerprint()
			if fp != ssh.FingerprintSHA256(srv.HostKeyED25519) && fp != ssh.FingerprintSHA256(srv.HostKeyECDSA) {
				t.Errorf("offered key %s is neither of the server's host keys", fp)
			}
			if msg := err.Error(); !strings.Contains(msg, fp) || !strings.Contains(msg, c.KnownHostsFile) || !strings.Contains(msg, "unknown") {
				t.Errorf("message %q does not name the fingerprint and the file to fix", msg)
			}
		}
	})

	t.Run("ChangedHostKeyIsRefused", func(t *testing.T) {
		old := sshdtest.NewHostKey(t)
		c := srv.Config()
		c.KnownHostsFile = knownHosts(t, "# an earlier installation", srv.KnownHostsLine(old))
		cl, err := remote.Dial(ctx, srv.Host, c)
		if err == nil {
			cl.Close()
			t.Fatal("dial with a different key on file succeeded")
		}
		if !errors.Is(err, remote.ErrHostKeyChanged) || errors.Is(err, remote.ErrUnknownHostKey) {
			t.Errorf("err = %v, want ErrHostKeyChanged only", err)
		}
		t.Log(err)
		msg := err.Error()
		for _, want := range []string{
			ssh.FingerprintSHA256(srv.HostKeyED25519), // offered (the type on file)
			ssh.FingerprintSHA256(old),                // on file
			c.KnownHostsFile + ":2",                   // where
			"ssh-keygen -R",                           // how to fix
		} {
			if !strings.Contains(msg, want) {
				t.Errorf("message %q lacks %q", msg, want)
			}
		}
	})

	t.Run("OnlyTheKeyTypeOnFileIsNegotiated", func(t *testing.T) {
		// The server offers ED25519 and ECDSA; the library prefers ECDSA.
		// Whichever single type is on file must be the one verified.
		for _, key := range []ssh.PublicKey{srv.HostKeyED25519, srv.HostKeyECDSA} {
			c := srv.Config()
			c.KnownHostsFile = knownHosts(t, srv.KnownHostsLine(key))
			cl := dial(t, c)
			if got, want := cl.HostKeyFingerprint(), ssh.FingerprintSHA256(key); got != want {
				t.Errorf("%s on file: verified %s, want %s", key.Type(), got, want)
			}
		}
	})

	t.Run("WrongUserKeyFailsAuthentication", func(t *testing.T) {
		c := srv.Config()
		c.KeyFile = filepath.Join(t.TempDir(), "id_other")
		sshdtest.NewUserKey(t, c.KeyFile)
		cl, err := remote.Dial(ctx, srv.Host, c)
		if err == nil {
			cl.Close()
			t.Fatal("dial with a key not in authorized_keys succeeded")
		}
		t.Log(err)
		if !errors.Is(err, remote.ErrAuthFailed) || !strings.Contains(err.Error(), c.KeyFile) {
			t.Errorf("err = %v, want ErrAuthFailed naming %s", err, c.KeyFile)
		}
	})

	t.Run("UnsafeOrMissingConfigurationIsRefused", func(t *testing.T) {
		open := filepath.Join(t.TempDir(), "id_open")
		sshdtest.NewUserKey(t, open)
		if err := os.Chmod(open, 0o644); err != nil {
			t.Fatal(err)
		}
		for name, tc := range map[string]struct {
			edit func(*remote.Config)
			want string
		}{
			"key readable by others": {func(c *remote.Config) { c.KeyFile = open }, "chmod 600"},
			"no known_hosts":         {func(c *remote.Config) { c.KnownHostsFile = "" }, "host keys are always verified"},
			"missing known_hosts":    {func(c *remote.Config) { c.KnownHostsFile = filepath.Join(t.TempDir(), "none") }, "no such file"},
			"no key":                 {func(c *remote.Config) { c.KeyFile = "" }, "no private key"},
			"nothing listening":      {func(c *remote.Config) { c.Port = 2222 }, "connection refused"},
		} {
			c := srv.Config()
			tc.edit(&c)
			cl, err := remote.Dial(ctx, srv.Host, c)
			if err == nil {
				cl.Close()
				t.Errorf("%s: dial succeeded", name)
			} else if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: err = %v, want it to say %q", name, err, tc.want)
			}
		}
	})

	t.Run("HostRunsArgvAndCarriesExitCodes", func(t *testing.T) {
		h := &remote.Host{Name: srv.Host, Config: srv.Config()}
		t.Cleanup(func() { h.Close() })
		res, err := h.Run(ctx, []string{"sh", "-c", "echo out; echo 'not running' >&2; exit 3"})
		if err != nil || res.ExitCode != 3 || string(res.Output) != "out\nnot running\n" {
			t.Fatalf("exit 3: %+v (output %q), %v; want code 3 and both outputs, no error", res, res.Output, err)
		}
		if res, err := h.Run(ctx, []string{"pwd"}); err != nil || string(res.Output) != "/\n" {
			t.Errorf("pwd = %q, %v; want the root directory", res.Output, err)
		}
		// A broken connection is dropped; the next command logs in again.
		cl, err := h.Client(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cl.Close()
		if _, err := h.Run(ctx, []string{"true"}); err == nil {
			t.Fatal("run over a closed connection succeeded")
		}
		if res, err := h.Run(ctx, []string{"printf", "%s", "again"}); err != nil || string(res.Output) != "again" {
			t.Errorf("run after a broken connection: %q, %v", res.Output, err)
		}

		down := &remote.Host{Name: srv.Host, Config: srv.Config()}
		down.Config.Port = 2222 // nothing listens there
		if _, err := down.Run(ctx, []string{"true"}); !errors.Is(err, host.ErrUnreachable) || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("nothing listening: %v, want host.ErrUnreachable", err)
		}
		impostor := &remote.Host{Name: srv.Host, Config: srv.Config()}
		impostor.Config.KnownHostsFile = knownHosts(t)
		if _, err := impostor.Run(ctx, []string{"true"}); !errors.Is(err, remote.ErrUnknownHostKey) || errors.Is(err, host.ErrUnreachable) {
			t.Errorf("unknown host key: %v, want ErrUnknownHostKey and not unreachable", err)
		}
	})

	t.Run("RunAfterCloseFails", func(t *testing.T) {
		cl := dial(t, srv.Config())
		cl.Close()
		if _, _, err := cl.Run(ctx, "true"); err == nil {
			t.Error("run on a closed client succeeded")
		}
	})
}

// TestHandshakeIsBounded: a peer that accepts the connection and never
// speaks SSH must not hold Dial beyond its timeout, nor beyond the context.
func TestHandshakeIsBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, silent, until the test ends
		}
	}()
	dir := t.TempDir()
	c := remote.Config{User: "root", KeyFile: filepath.Join(dir, "id"), KnownHostsFile: filepath.Join(dir, "known_hosts"),
		Port: ln.Addr().(*net.TCPAddr).Port, Timeout: 500 * time.Millisecond}
	sshdtest.NewUserKey(t, c.KeyFile)
	if err := os.WriteFile(c.KnownHostsFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	_, err = remote.Dial(context.Background(), "127.0.0.1", c)
	if took := time.Since(start); err == nil || took > 3*time.Second || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "within 500ms") {
		t.Errorf("silent peer, 500ms timeout: returned after %s with %v", took, err)
	}
	if !errors.Is(err, host.ErrUnreachable) {
		t.Errorf("silent peer: %v, want host.ErrUnreachable", err)
	}

	c.Timeout = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start = time.Now()
	_, err = remote.Dial(ctx, "127.0.0.1", c)
	if took := time.Since(start); err == nil || took > 3*time.Second || !errors.Is(err, context.Canceled) {
		t.Errorf("silent peer, cancelled context: returned after %s with %v", took, err)
	}
	if errors.Is(err, host.ErrUnreachable) {
		t.Errorf("cancelled by the caller: %v, which says nothing about the host", err)
	}

	// Refused: connected to a port that was just closed.
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.Port = closed.Addr().(*net.TCPAddr).Port
	closed.Close()
	if _, err := remote.Dial(context.Background(), "127.0.0.1", c); !errors.Is(err, host.ErrUnreachable) || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("refused: %v, want host.ErrUnreachable", err)
	}
	// A configuration error is not the network's.
	c.KnownHostsFile = ""
	if _, err := remote.Dial(context.Background(), "127.0.0.1", c); err == nil || errors.Is(err, host.ErrUnreachable) {
		t.Errorf("no known_hosts file: %v, want an error that is not unreachable", err)
	}
}

func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie has ended; only its parent has not collected it yet.
	_, rest, _ := strings.Cut(string(data), ") ")
	return !strings.HasPrefix(rest, "Z")
}
