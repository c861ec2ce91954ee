// Package sshdtest runs a real OpenSSH server (Debian's openssh-server) for
// tests: inside a network namespace the test created, with generated host
// and user keys and its own configuration, and removes all of it when the
// test ends.
//
// sshd insists on a privilege-separation directory at the compiled-in path
// /run/sshd. Rather than create it on the host, the server runs in a
// private mount namespace with a fresh tmpfs on /run, so nothing outside
// the test's temporary directory is touched, and every process the server
// starts can be found afterwards by that mount namespace.
package sshdtest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/vigil-ha/vigil/internal/proc"
	"github.com/vigil-ha/vigil/internal/remote"
)

// Binary is Debian's OpenSSH server.
const Binary = "/usr/sbin/sshd"

// Server is a running sshd that accepts root with UserKeyFile.
type Server struct {
	Host string
	Port int
	// Dir holds the configuration, keys and pid file.
	Dir string
	// HostKeyED25519 and HostKeyECDSA are the server's two host keys: with
	// two, a client must also get the key type right.
	HostKeyED25519, HostKeyECDSA ssh.PublicKey
	// UserKeyFile is a private key in root's authorized_keys.
	UserKeyFile string
	// KnownHostsFile lists only HostKeyED25519 for Host:Port.
	KnownHostsFile string

	log *lockedBuffer
}

// Start runs sshd listening on host:22 inside network namespace netns
// (created with `ip netns add`, e.g. a lab node's) and registers its
// removal. It returns once the server accepts connections.
func Start(t testing.TB, netns, host string) *Server {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		t.Fatalf("%s: %v (install openssh-server: scripts/install-deps.sh)", Binary, err)
	}
	dir := t.TempDir()
	s := &Server{Host: host, Port: remote.DefaultPort, Dir: dir, log: &lockedBuffer{}}
	s.HostKeyED25519 = writeKey(t, filepath.Join(dir, "ssh_host_ed25519_key"), newED25519(t))
	s.HostKeyECDSA = writeKey(t, filepath.Join(dir, "ssh_host_ecdsa_key"), newECDSA(t))
	s.UserKeyFile = filepath.Join(dir, "id_ed25519")
	userKey := NewUserKey(t, s.UserKeyFile)
	writeFile(t, filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(userKey))
	s.KnownHostsFile = filepath.Join(dir, "known_hosts")
	writeFile(t, s.KnownHostsFile, []byte(s.KnownHostsLine(s.HostKeyED25519)+"\n"))

	conf := filepath.Join(dir, "sshd_config")
	writeFile(t, conf, []byte(strings.Join([]string{
		"ListenAddress " + s.Addr(),
		"HostKey " + filepath.Join(dir, "ssh_host_ed25519_key"),
		"HostKey " + filepath.Join(dir, "ssh_host_ecdsa_key"),
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"AuthorizedKeysFile " + filepath.Join(dir, "authorized_keys"),
		"PermitRootLogin prohibit-password",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		// No PAM: the host's PAM stack (loginuid, systemd sessions) has no
		// business in a test, and root's password is not locked here.
		"UsePAM no",
		// The test's temporary directories are not the layout StrictModes
		// expects of a home directory.
		"StrictModes no",
		"UseDNS no",
		"PrintMotd no",
		"X11Forwarding no",
		"AllowTcpForwarding no",
		"LogLevel VERBOSE",
		"",
	}, "\n")))

	script := `mount -t tmpfs -o mode=0755,size=1m vigil-sshdtest /run && mkdir -m 0755 /run/sshd && exec "$0" -D -e -f "$1"`
	// nsenter and unshare exec without forking (no PID namespace is
	// involved), so the process started here becomes sshd itself.
	cmd := exec.Command("nsenter", "--net="+proc.NetnsPath(netns), "--",
		"unshare", "--mount", "--propagation", "private", "--",
		"sh", "-c", script, Binary, conf)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	cmd.Dir = "/"
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	var mntns string
	t.Cleanup(func() { s.stop(t, cmd, exited, mntns) })

	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr(), 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			t.Fatalf("sshd exited before it accepted connections:\n%s", s.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd did not accept connections on %s within 15s (%v):\n%s", s.Addr(), err, s.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", cmd.Process.Pid))
	if err != nil {
		t.Fatalf("sshd's mount namespace: %v", err)
	}
	own, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil || own == ns {
		t.Fatalf("sshd is not in a private mount namespace (%s, ours %s, %v)", ns, own, err)
	}
	mntns = ns
	return s
}

// stop ends sshd and then every process still in its mount namespace: the
// per-connection servers and the commands they started.
func (s *Server) stop(t testing.TB, cmd *exec.Cmd, exited <-chan struct{}, mntns string) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
	if mntns == "" {
		return
	}
	if left, err := proc.KillUntilGone(func() ([]int, error) { return processesIn(mntns) }, 10*time.Second); len(left) > 0 || err != nil {
		t.Errorf("processes of the test's sshd still run: %v %v", left, err)
	}
}

// processesIn lists the processes in mount namespace ns ("mnt:[inode]").
func processesIn(ns string) ([]int, error) {
	return proc.Processes(func(pid int) bool {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
		return err == nil && link == ns
	})
}

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// Log is what sshd has written so far (it logs to stderr with -e).
func (s *Server) Log() string { return s.log.String() }

// KnownHostsLine is a known_hosts line giving key for this server.
func (s *Server) KnownHostsLine(key ssh.PublicKey) string {
	return knownhosts.Line([]string{knownhosts.Normalize(s.Addr())}, key)
}

// Config logs in as root with UserKeyFile and checks KnownHostsFile.
func (s *Server) Config() remote.Config {
	return remote.Config{User: "root", KeyFile: s.UserKeyFile, KnownHostsFile: s.KnownHostsFile, Port: s.Port, Timeout: 10 * time.Second}
}

// NewUserKey writes a new ED25519 private key to path (mode 0600, OpenSSH
// format) and returns its public key.
func NewUserKey(t testing.TB, path string) ssh.PublicKey {
	t.Helper()
	return writeKey(t, path, newED25519(t))
}

// NewHostKey returns a new ED25519 public key, e.g. to put a wrong key in a
// known_hosts file.
func NewHostKey(t testing.TB) ssh.PublicKey {
	t.Helper()
	signer, err := ssh.NewSignerFromKey(newED25519(t))
	if err != nil {
		t.Fatal(err)
	}
	return signer.PublicKey()
}

func newED25519(t testing.TB) crypto.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func newECDSA(t testing.TB) crypto.Signer {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func writeKey(t testing.TB, path string, key crypto.Signer) ssh.PublicKey {
	t.Helper()
	block, err := ssh.MarshalPrivateKey(key, "vigil-test")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, pem.EncodeToMemory(block))
	pub, err := ssh.NewPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
