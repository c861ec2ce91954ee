package pgpool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"

	"github.com/vigil-ha/vigil/internal/proc"
	"github.com/vigil-ha/vigil/internal/remote"
)

// Result is what a command did on a node: its output (standard output and
// standard error together) and its exit status.
type Result struct {
	Output   []byte
	ExitCode int
}

// Runner runs one program on one host of the cluster. A command that ran
// and exited non-zero is not an error: its status is in the Result. The
// error is for a command that could not run to the end; it wraps an
// *UnreachableError when the host itself could not be reached.
type Runner interface {
	Run(ctx context.Context, host string, argv []string) (Result, error)
}

// UnreachableError means no session could be opened to the host for a
// network reason (refused, timed out, no route). Authentication and
// host-key failures are not this: they are configuration or an attack, and
// never let a failover go ahead.
type UnreachableError struct {
	Host string
	Err  error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("host %s unreachable: %v", e.Host, e.Err)
}
func (e *UnreachableError) Unwrap() error { return e.Err }

// IsUnreachable reports whether err says the host could not be reached.
func IsUnreachable(err error) bool {
	var ue *UnreachableError
	return errors.As(err, &ue)
}

// Shell runs shell command lines on one host; *remote.Client (SSH with
// verified host keys) is one. A command that exits non-zero returns a
// *remote.ExitError.
type Shell interface {
	Run(ctx context.Context, cmd string) (stdout, stderr []byte, err error)
	Close() error
}

// Hosts is the Runner Vigil uses: commands for this host run here, the
// others over one SSH session per host, opened on first use.
type Hosts struct {
	// IsLocal tells this host's addresses from the others'.
	IsLocal func(host string) bool
	// Dial opens a session to a host; nil when SSH is not configured.
	Dial func(ctx context.Context, host string) (Shell, error)
	// Local runs local commands; the zero value runs them as this process.
	Local proc.Runner

	mu     sync.Mutex
	shells map[string]Shell
}

// Run implements Runner.
func (h *Hosts) Run(ctx context.Context, host string, argv []string) (Result, error) {
	if len(argv) == 0 {
		return Result{}, errors.New("run: empty command")
	}
	if h.IsLocal != nil && h.IsLocal(host) {
		out, err := h.Local.Run(ctx, argv[0], argv[1:]...)
		if code := proc.ExitCode(err); code >= 0 {
			return Result{Output: out, ExitCode: code}, nil
		}
		if err != nil {
			return Result{Output: out}, fmt.Errorf("run %s on this host: %w", argv[0], err)
		}
		return Result{Output: out}, nil
	}
	sh, err := h.shell(ctx, host)
	if err != nil {
		return Result{}, err
	}
	stdout, stderr, err := sh.Run(ctx, remote.Command(argv...))
	res := Result{Output: append(stdout, stderr...)}
	if err == nil {
		return res, nil
	}
	var ee *remote.ExitError
	if errors.As(err, &ee) && ee.Signal == "" {
		res.ExitCode = ee.Status
		return res, nil
	}
	// The session broke: the next command dials again.
	h.drop(host)
	return res, fmt.Errorf("run %s on %s: %w", argv[0], host, err)
}

func (h *Hosts) shell(ctx context.Context, host string) (Shell, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if sh, ok := h.shells[host]; ok {
		return sh, nil
	}
	if h.Dial == nil {
		return nil, fmt.Errorf("%s is not this host and no SSH is configured", host)
	}
	sh, err := h.Dial(ctx, host)
	if err != nil {
		if networkError(err) {
			return nil, &UnreachableError{Host: host, Err: err}
		}
		return nil, fmt.Errorf("ssh to %s: %w", host, err)
	}
	if h.shells == nil {
		h.shells = map[string]Shell{}
	}
	h.shells[host] = sh
	return sh, nil
}

func (h *Hosts) drop(host string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if sh, ok := h.shells[host]; ok {
		_ = sh.Close() // the session is broken already
		delete(h.shells, host)
	}
}

// Close ends every session.
func (h *Hosts) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var errs []error
	for host, sh := range h.shells {
		if err := sh.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close session to %s: %w", host, err))
		}
	}
	h.shells = nil
	return errors.Join(errs...)
}

// networkError reports whether a dial error is the network's (refused,
// timed out, unreachable, unknown name) rather than SSH's (authentication,
// host key).
func networkError(err error) bool {
	var ne net.Error
	var oe *net.OpError
	var de *net.DNSError
	switch {
	case errors.As(err, &de), errors.As(err, &oe):
		return true
	case errors.As(err, &ne) && ne.Timeout():
		return true
	case errors.Is(err, context.DeadlineExceeded):
		return true
	}
	for _, e := range []error{syscall.ECONNREFUSED, syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ETIMEDOUT, syscall.ECONNRESET} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// LocalHost returns a function that says whether a host is this machine:
// a loopback name or address, or one of this machine's interface addresses.
func LocalHost() (func(host string) bool, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list this host's addresses: %w", err)
	}
	own := map[string]bool{"localhost": true}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			own[ipn.IP.String()] = true
		}
	}
	return func(host string) bool {
		h := strings.Trim(host, "[]")
		if ip := net.ParseIP(h); ip != nil {
			return ip.IsLoopback() || own[ip.String()]
		}
		return own[strings.ToLower(h)]
	}, nil
}
