// Package remote runs commands on other hosts over SSH, the way a failover
// needs it: unattended (a private key without passphrase), bounded by a
// context, and never talking to a host whose key is not already on file. A
// fencing or promotion command sent to an impostor would act on the wrong
// machine, so an unknown or changed host key is an error, not a question.
package remote

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// DefaultPort is the SSH port when Config.Port is 0.
const DefaultPort = 22

// DefaultTimeout bounds connecting and the SSH handshake when
// Config.Timeout is 0.
const DefaultTimeout = 10 * time.Second

// maxOutput bounds what Run keeps of each of stdout and stderr, so that a
// runaway remote command cannot exhaust the failover's memory.
const maxOutput = 1 << 20

// closeGrace is how long a cancelled Run waits for the server to confirm
// that the session is closed before it gives up on the whole connection.
const closeGrace = 3 * time.Second

// Errors that callers can test with errors.Is.
var (
	// ErrUnknownHostKey: the known_hosts file has no key for the host.
	ErrUnknownHostKey = errors.New("unknown SSH host key")
	// ErrHostKeyChanged: the host offered a key other than the one on file.
	ErrHostKeyChanged = errors.New("SSH host key changed")
	// ErrAuthFailed: the server refused the client's key.
	ErrAuthFailed = errors.New("SSH authentication failed")
)

// Config says how to reach and log in to hosts.
type Config struct {
	// User is the account to log in as.
	User string
	// KeyFile is the private key (PEM or OpenSSH format, no passphrase:
	// nobody is there to type it during a failover), readable only by its
	// owner.
	KeyFile string
	// KnownHostsFile holds the accepted host keys, in OpenSSH's known_hosts
	// format (hashed host names are understood).
	KnownHostsFile string
	// Port is the SSH port; DefaultPort when 0.
	Port int
	// Timeout bounds connecting and the handshake; DefaultTimeout when 0.
	// Commands are bounded by the context given to Run.
	Timeout time.Duration
}

// Client is a connection to one host, logged in.
type Client struct {
	conn    *ssh.Client
	user    string
	addr    string
	hostKey ssh.PublicKey
}

// HostKeyError is a host key that is not the one on file. It matches
// ErrUnknownHostKey when the file has no key for the host, and
// ErrHostKeyChanged when it has others.
type HostKeyError struct {
	// Addr is the host and port dialled.
	Addr string
	// Offered is the key the server presented.
	Offered ssh.PublicKey
	// KnownHostsFile is the file that was checked, the one to fix.
	KnownHostsFile string
	// Known are the keys on file for the host; empty when it is unknown.
	Known []knownhosts.KnownKey
}

// Fingerprint is the SHA256 fingerprint of the offered key, as ssh-keygen -l
// prints it.
func (e *HostKeyError) Fingerprint() string { return ssh.FingerprintSHA256(e.Offered) }

// Is makes errors.Is(err, ErrUnknownHostKey) and ErrHostKeyChanged work.
func (e *HostKeyError) Is(target error) bool {
	if len(e.Known) == 0 {
		return target == ErrUnknownHostKey
	}
	return target == ErrHostKeyChanged
}

func (e *HostKeyError) Error() string {
	host, port, err := net.SplitHostPort(e.Addr)
	if err != nil {
		host, port = e.Addr, strconv.Itoa(DefaultPort)
	}
	entry := knownhosts.Normalize(e.Addr)
	offered := fmt.Sprintf("%s key %s", e.Offered.Type(), e.Fingerprint())
	if len(e.Known) == 0 {
		return fmt.Sprintf("%v: %s offered %s and %s has no key for %s; "+
			"check that fingerprint on the host itself (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), "+
			"then add the key to %s (e.g. ssh-keyscan -p %s -t %s %s >> %s)",
			ErrUnknownHostKey, e.Addr, offered, e.KnownHostsFile, entry,
			e.KnownHostsFile, port, e.Offered.Type(), host, e.KnownHostsFile)
	}
	var on []string
	for _, k := range e.Known {
		on = append(on, fmt.Sprintf("%s:%d has %s key %s", k.Filename, k.Line, k.Key.Type(), ssh.FingerprintSHA256(k.Key)))
	}
	return fmt.Sprintf("%v: %s offered %s, but %s; this may be a man-in-the-middle attack. "+
		"If the host was reinstalled, check the new fingerprint on the host itself, "+
		"then remove the old entry (ssh-keygen -R '%s' -f %s) and add the new key",
		ErrHostKeyChanged, e.Addr, offered, strings.Join(on, ", "), entry, e.KnownHostsFile)
}

// ExitError is a remote command that ran and did not exit with status 0.
type ExitError struct {
	Addr    string
	Command string
	// Status is the exit status; 128+N when the command was killed by
	// signal N, and -1 when the whole remote session was.
	Status int
	// Signal names the signal that killed the remote session, if any.
	Signal string
	// Stderr is what the command wrote to its standard error.
	Stderr []byte
}

func (e *ExitError) Error() string {
	what := fmt.Sprintf("exited with status %d", e.Status)
	if e.Signal != "" {
		what = "was killed by signal " + e.Signal
	}
	msg := fmt.Sprintf("%s on %s %s", shorten(e.Command, 200), e.Addr, what)
	if s := strings.TrimSpace(string(e.Stderr)); s != "" {
		msg += ": " + tail(s, 2000)
	}
	return msg
}

// Dial connects to host and logs in with c.KeyFile. The host key must be in
// c.KnownHostsFile: an unknown key is an error matching ErrUnknownHostKey, a
// different one an error matching ErrHostKeyChanged, both *HostKeyError
// naming the offered key's fingerprint and the file to fix.
func Dial(ctx context.Context, host string, c Config) (*Client, error) {
	port := c.Port
	if port == 0 {
		port = DefaultPort
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	fail := func(err error) error { return fmt.Errorf("ssh %s@%s: %w", c.User, addr, err) }
	if host == "" {
		return nil, fail(errors.New("no host given"))
	}
	if c.User == "" {
		return nil, fail(errors.New("no user configured"))
	}
	signer, err := loadKey(c.KeyFile)
	if err != nil {
		return nil, fail(err)
	}
	if c.KnownHostsFile == "" {
		return nil, fail(errors.New("no known_hosts file configured: host keys are always verified"))
	}
	check, err := knownhosts.New(c.KnownHostsFile)
	if err != nil {
		return nil, fail(fmt.Errorf("read known_hosts: %w", err))
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}

	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// ctxErr explains why dctx ended: the caller's context or our timeout.
	ctxErr := func() error {
		if ctx.Err() == nil {
			return fmt.Errorf("no answer within %s: %w", timeout, dctx.Err())
		}
		return context.Cause(ctx)
	}
	unreachable := func(err error) error { return unreachable(ctx, err) }
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		if dctx.Err() != nil {
			return nil, unreachable(fail(fmt.Errorf("connect: %w", ctxErr())))
		}
		return nil, unreachable(fail(fmt.Errorf("connect: %w", err)))
	}
	// The handshake has no context of its own; closing the connection is
	// what interrupts it.
	stop := context.AfterFunc(dctx, func() { conn.Close() })

	var keyErr error
	var offered ssh.PublicKey
	cfg := &ssh.ClientConfig{
		User: c.User,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: func(hostname string, remote net.Addr, key ssh.PublicKey) error {
			err := check(hostname, remote, key)
			var ke *knownhosts.KeyError
			switch {
			case err == nil:
				offered = key
				return nil
			case errors.As(err, &ke):
				keyErr = &HostKeyError{Addr: addr, Offered: key, KnownHostsFile: c.KnownHostsFile, Known: ke.Want}
			default:
				keyErr = fmt.Errorf("host key %s %s: %w (known_hosts %s)", key.Type(), ssh.FingerprintSHA256(key), err, c.KnownHostsFile)
			}
			return keyErr
		},
		HostKeyAlgorithms: knownAlgorithms(check, addr, conn.RemoteAddr()),
	}
	sc, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	interrupted := !stop()
	switch {
	case err == nil && interrupted:
		sc.Close()
		return nil, unreachable(fail(fmt.Errorf("handshake: %w", ctxErr())))
	case err == nil:
	case keyErr != nil:
		conn.Close()
		return nil, fail(keyErr)
	case interrupted:
		return nil, unreachable(fail(fmt.Errorf("handshake: %w", ctxErr())))
	case strings.Contains(err.Error(), "unable to authenticate"):
		conn.Close()
		return nil, fail(fmt.Errorf("%w: the server refused key %s (%s %s); is its public key in the authorized_keys of %s on the host? (%v)",
			ErrAuthFailed, c.KeyFile, signer.PublicKey().Type(), ssh.FingerprintSHA256(signer.PublicKey()), c.User, err))
	case networkError(err):
		conn.Close()
		return nil, unreachable(fail(fmt.Errorf("handshake: %w", err)))
	default:
		conn.Close()
		return nil, fail(fmt.Errorf("handshake: %w", err))
	}
	return &Client{conn: ssh.NewClient(sc, chans, reqs), user: c.User, addr: addr, hostKey: offered}, nil
}

// loadKey reads an unencrypted private key that only its owner can read,
// which is also what OpenSSH's client insists on.
func loadKey(path string) (ssh.Signer, error) {
	if path == "" {
		return nil, errors.New("no private key file configured")
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("private key %s is accessible by others (mode %04o): a key others can read is theirs too; chmod 600 it", path, perm)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(data)
	var pm *ssh.PassphraseMissingError
	if errors.As(err, &pm) {
		return nil, fmt.Errorf("private key %s is protected by a passphrase, which nobody can type during a failover: use a key without one, readable only by the account that runs Vigil", path)
	}
	if err != nil {
		return nil, fmt.Errorf("private key %s: %w", path, err)
	}
	return signer, nil
}

// knownAlgorithms returns the host key algorithms of the keys on file for
// addr, or nil (the library's defaults) when there are none. Without it a
// server with several host keys may present one of a type not on file (the
// library prefers ECDSA, ssh-keyscan users often record ED25519), which
// knownhosts reports as a changed key.
func knownAlgorithms(check ssh.HostKeyCallback, addr string, remote net.Addr) []string {
	// A key that is on file for no host: the error lists the keys that are.
	probe, err := ssh.NewPublicKey(ed25519.PublicKey(make([]byte, ed25519.PublicKeySize)))
	if err != nil {
		return nil
	}
	var ke *knownhosts.KeyError
	if !errors.As(check(addr, remote, probe), &ke) {
		return nil
	}
	var algos []string
	add := func(names ...string) {
		for _, n := range names {
			if !contains(algos, n) {
				algos = append(algos, n)
			}
		}
	}
	for _, k := range ke.Want {
		switch t := k.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			add(ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256)
		default:
			add(t)
		}
	}
	return algos
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// String is user@host:port.
func (c *Client) String() string { return c.user + "@" + c.addr }

// Addr is the host and port connected to.
func (c *Client) Addr() string { return c.addr }

// HostKeyFingerprint is the SHA256 fingerprint of the verified host key,
// evidence of which machine a command ran on.
func (c *Client) HostKeyFingerprint() string { return ssh.FingerprintSHA256(c.hostKey) }

// Close ends the connection.
func (c *Client) Close() error { return c.conn.Close() }

// runWrapper runs the command ($1) with sh and, as soon as the client's
// side of stdin closes (Run cancelled, client gone, connection lost), kills
// the session's whole process group. A command without a terminal gets no
// hangup when its session ends, and OpenSSH refuses the "signal" request
// for root logins (they run without privilege separation), so this is the
// one way to stop a remote command that works for every account and
// server. The command's exit status is passed on unchanged.
const runWrapper = `exec 3<&0; sh -c "$1" </dev/null 3<&- & p=$!; { read -r _ <&3; kill -KILL 0; } & w=$!; exec 3<&-; wait "$p"; s=$?; kill "$w" 2>/dev/null; exit "$s"`

// Run runs cmd with the remote sh (build it with Command) and returns what
// it wrote. A non-zero exit is an *ExitError carrying the status (128+N for
// a command killed by signal N, as a shell reports it) and stderr. When ctx
// ends first, the command and everything it started in its process group
// are killed on the remote host, and Run returns what had been written so
// far with ctx's error.
func (c *Client) Run(ctx context.Context, cmd string) (stdout, stderr []byte, err error) {
	fail := func(err error) error { return fmt.Errorf("run %s on %s: %w", shorten(cmd, 200), c, err) }
	if err := context.Cause(ctx); err != nil {
		return nil, nil, fail(err)
	}
	sess, err := c.newSession(ctx)
	if err != nil {
		return nil, nil, fail(err)
	}
	defer sess.Close()
	var out, errOut cappedBuffer
	sess.Stdout, sess.Stderr = &out, &errOut
	// Held open for as long as the command may run: its end is the remote
	// wrapper's signal to kill the command.
	stdin, err := sess.StdinPipe()
	if err != nil {
		return nil, nil, fail(fmt.Errorf("stdin: %w", err))
	}
	defer stdin.Close()
	if err := sess.Start(Command("sh", "-c", runWrapper, "vigil-remote", cmd)); err != nil {
		return nil, nil, fail(fmt.Errorf("start: %w", err))
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = stdin.Close()
		_ = sess.Close()
		select {
		case <-done:
		case <-time.After(closeGrace):
			// The server does not even answer a close: the connection is
			// dead, and with it the remote stdin.
			_ = c.conn.Close()
			<-done
		}
		return out.Bytes(), errOut.Bytes(), fail(context.Cause(ctx))
	}
	stdout, stderr = out.Bytes(), errOut.Bytes()
	var ee *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case err == nil:
		return stdout, stderr, nil
	case errors.As(err, &ee):
		x := &ExitError{Addr: c.addr, Command: cmd, Status: ee.ExitStatus(), Signal: ee.Signal(), Stderr: stderr}
		if x.Signal != "" {
			x.Status = -1
		}
		return stdout, stderr, x
	case errors.As(err, &missing):
		return stdout, stderr, fail(errors.New("the connection ended before the command's exit status arrived; it may or may not have completed"))
	default:
		return stdout, stderr, fail(err)
	}
}

// newSession opens a session channel, giving up when ctx ends.
func (c *Client) newSession(ctx context.Context) (*ssh.Session, error) {
	type result struct {
		s   *ssh.Session
		err error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := c.conn.NewSession()
		ch <- result{s, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("open session: %w", r.err)
		}
		return r.s, nil
	case <-ctx.Done():
		// A server that does not answer a channel open will not answer
		// anything else on this connection either.
		_ = c.conn.Close()
		if r := <-ch; r.s != nil {
			_ = r.s.Close()
		}
		return nil, fmt.Errorf("open session: %w", context.Cause(ctx))
	}
}

// cappedBuffer keeps the first maxOutput bytes written to it and discards
// the rest; it is written by the session's copying goroutines while Run may
// read it after a cancel.
type cappedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := maxOutput - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (b *cappedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// Quote makes arg one word for a POSIX shell, taken literally: words made
// only of characters no shell treats specially are left as they are (for
// readable logs), everything else is single-quoted. A NUL byte cannot be
// passed to a remote command by any quoting; the remote shell ends the
// argument there.
func Quote(arg string) string {
	if arg != "" && strings.IndexFunc(arg, needsQuote) < 0 {
		return arg
	}
	return "'" + strings.ReplaceAll(arg, "'", `'\''`) + "'"
}

// needsQuote: "=" is quoted too, because an unquoted first word with "="
// is a variable assignment, not a command.
func needsQuote(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return false
	case strings.ContainsRune("@%+:,./_-", r):
		return false
	}
	return true
}

// Command joins args, each quoted by Quote, into a command line that the
// remote shell splits back into exactly args.
func Command(args ...string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = Quote(a)
	}
	return strings.Join(q, " ")
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
