package pgpool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/vigil-ha/vigil/internal/host"
	"github.com/vigil-ha/vigil/internal/proc"
	"github.com/vigil-ha/vigil/internal/remote"
)

// Result is what a command did on a node: its output (standard output and
// standard error together) and its exit status.
type Result = host.Result

// Runner runs one program on one host of the cluster, named by its address.
// A command that ran and exited non-zero is not an error: its status is in
// the Result. The error is for a command that could not run to the end; it
// matches host.ErrUnreachable when the host itself could not be reached.
type Runner interface {
	Run(ctx context.Context, host string, argv []string) (Result, error)
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
	// Dial opens a session to a host; nil when SSH is not configured. An
	// error of the network's (remote.Dial's classification) matches
	// host.ErrUnreachable, and Run keeps it so: a host key or login
	// refused never does.
	Dial func(ctx context.Context, host string) (Shell, error)
	// Local runs local commands; the zero value runs them as this process.
	Local proc.Runner

	mu     sync.Mutex
	shells map[string]Shell
}

// Run implements Runner.
func (h *Hosts) Run(ctx context.Context, name string, argv []string) (Result, error) {
	if len(argv) == 0 {
		return Result{}, errors.New("run: empty command")
	}
	if h.IsLocal != nil && h.IsLocal(name) {
		return proc.Local{Runner: h.Local}.Run(ctx, argv)
	}
	sh, err := h.shell(ctx, name)
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
	h.drop(name)
	return res, fmt.Errorf("run %s on %s: %w", argv[0], name, err)
}

func (h *Hosts) shell(ctx context.Context, name string) (Shell, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if sh, ok := h.shells[name]; ok {
		return sh, nil
	}
	if h.Dial == nil {
		return nil, fmt.Errorf("%s is not this host and no SSH is configured", name)
	}
	sh, err := h.Dial(ctx, name)
	if err != nil {
		// The dialler (remote.Dial) tells the network's failures, which
		// match host.ErrUnreachable, from SSH's; wrapping keeps that.
		return nil, fmt.Errorf("ssh to %s: %w", name, err)
	}
	if h.shells == nil {
		h.shells = map[string]Shell{}
	}
	h.shells[name] = sh
	return sh, nil
}

func (h *Hosts) drop(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if sh, ok := h.shells[name]; ok {
		_ = sh.Close() // the session is broken already
		delete(h.shells, name)
	}
}

// Close ends every session.
func (h *Hosts) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var errs []error
	for name, sh := range h.shells {
		if err := sh.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close session to %s: %w", name, err))
		}
	}
	h.shells = nil
	return errors.Join(errs...)
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
