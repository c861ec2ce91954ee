package remote

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"

	"github.com/vigil-ha/vigil/internal/host"
)

// Host is one machine reached over SSH, as a host.Host. It logs in on
// first use and keeps the connection; a connection that breaks is dropped
// and the next Run logs in again. A host that cannot be reached is an
// error matching host.ErrUnreachable; an unknown or changed host key, or a
// refused login, is not.
type Host struct {
	// Name is the host name or address to dial.
	Name   string
	Config Config

	mu sync.Mutex
	cl *Client
}

// Run runs argv (quoted by Command) with the remote shell, in the root
// directory as proc.Runner does locally: a prefix such as runuser
// switches to an account that may not read the login's home, and the
// control binary then warns about it on every call.
func (h *Host) Run(ctx context.Context, argv []string) (host.Result, error) {
	if len(argv) == 0 {
		return host.Result{}, errors.New("run: empty command")
	}
	cl, err := h.Client(ctx)
	if err != nil {
		return host.Result{}, err
	}
	stdout, stderr, err := cl.Run(ctx, "cd / && "+Command(argv...))
	res := host.Result{Output: append(stdout, stderr...)}
	var ee *ExitError
	switch {
	case err == nil:
		return res, nil
	case errors.As(err, &ee) && ee.Signal == "":
		res.ExitCode = ee.Status
		return res, nil
	}
	// The session may be broken: the next command logs in again.
	h.drop(cl)
	return res, fmt.Errorf("run %s on %s: %w", argv[0], h.Name, err)
}

// Client returns the logged-in connection, dialling when there is none:
// for evidence such as the verified host key.
func (h *Host) Client(ctx context.Context) (*Client, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cl != nil {
		return h.cl, nil
	}
	cl, err := Dial(ctx, h.Name, h.Config)
	if err != nil {
		return nil, err
	}
	h.cl = cl
	return cl, nil
}

func (h *Host) drop(cl *Client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cl == cl {
		_ = cl.Close() // broken already
		h.cl = nil
	}
}

// Close ends the connection, if any.
func (h *Host) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cl == nil {
		return nil
	}
	err := h.cl.Close()
	h.cl = nil
	return err
}

// unreachable marks err as the network's doing (host.ErrUnreachable),
// unless the caller cancelled: then nothing was learnt about the host.
func unreachable(ctx context.Context, err error) error {
	if errors.Is(context.Cause(ctx), context.Canceled) {
		return err
	}
	return host.Unreachable(err)
}

// networkError reports whether a handshake failed because the network
// did (reset, timed out, unreachable) rather than SSH.
func networkError(err error) bool {
	var oe *net.OpError
	var ne net.Error
	if errors.As(err, &oe) || (errors.As(err, &ne) && ne.Timeout()) {
		return true
	}
	for _, e := range []error{syscall.ECONNRESET, syscall.ECONNREFUSED, syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ETIMEDOUT} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
