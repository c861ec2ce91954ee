package fence

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/host"
	"github.com/vigil-ha/vigil/internal/pgctl"
	"github.com/vigil-ha/vigil/internal/remote"
	"github.com/vigil-ha/vigil/internal/vip"
)

// SSH fences a former primary by logging in to its host (host key verified
// against Config.KnownHostsFile) and removing the two ways clients could
// still write to it: the running database and the service address. Both
// steps succeed when there is nothing left to remove, so a second fence,
// e.g. when Pgpool-II calls the failover command twice, is harmless.
// Whether there was anything is read from exit codes (pg_ctl status) and
// the host's address list, never from messages, which the control binary
// translates on hosts with another locale (the KingbaseES hosts of the
// seed incident run zh_CN).
type SSH struct {
	Config remote.Config
	// Ctl is the old primary's control binary and data directory; its
	// Host is set to the SSH login. It runs as Config.User; the control
	// binary refuses root, so for a root login give it a Prefix such as
	// runuser -u postgres --.
	Ctl pgctl.Ctl
	// VIP is the service address with its prefix length, e.g.
	// "10.0.0.100/24"; empty when there is none to remove.
	VIP string
	// Interface is the old primary's device carrying the VIP.
	Interface string
	// Sudo runs the ip command through sudo -n, for a Config.User that is
	// not root. The control binary is left as given.
	Sudo bool

	// login replaces the SSH login (tests).
	login func(ctx context.Context, hostname string) (session, error)
}

// session is a logged-in host: commands, the evidence of which machine
// they run on, and the end of the login.
type session interface {
	host.Host
	Close() error
	String() string
}

// sshSession is a verified SSH login.
type sshSession struct {
	*remote.Host
	cl *remote.Client
}

func (s sshSession) String() string {
	return fmt.Sprintf("ssh %s (host key %s)", s.cl, s.cl.HostKeyFingerprint())
}

func (s SSH) open(ctx context.Context, hostname string) (session, error) {
	if s.login != nil {
		return s.login(ctx, hostname)
	}
	h := &remote.Host{Name: hostname, Config: s.Config}
	cl, err := h.Client(ctx)
	if err != nil {
		return nil, err
	}
	return sshSession{Host: h, cl: cl}, nil
}

// Fence stops old's database and deletes the VIP on old.Host. A host that
// cannot be reached (the error matches host.ErrUnreachable), or whose key
// is not the one on file, is an error: the caller decides whether its
// isolation guards allow going on without a fence. When stopping fails
// the VIP is still deleted, since that alone keeps clients away, but the
// result is an error.
func (s SSH) Fence(ctx context.Context, old dcs.Member) (string, error) {
	fail := func(err error) error { return fmt.Errorf("ssh fence %s: %w", old.Name, err) }
	prefix, err := s.check(old)
	if err != nil {
		return "", fail(err)
	}
	sess, err := s.open(ctx, old.Host)
	if err != nil {
		return "", fail(err)
	}
	defer sess.Close()

	var done []string
	var errs []error
	if ev, err := s.stop(ctx, sess); err != nil {
		errs = append(errs, err)
	} else {
		done = append(done, ev)
	}
	if s.VIP != "" {
		if ev, err := s.deleteVIP(ctx, sess, prefix); err != nil {
			errs = append(errs, err)
		} else {
			done = append(done, ev)
		}
	}
	if len(errs) > 0 {
		err := errors.Join(errs...)
		if len(done) > 0 {
			err = fmt.Errorf("%w (done nevertheless: %s)", err, strings.Join(done, "; "))
		}
		return "", fail(err)
	}
	return fmt.Sprintf("%s: %s", sess, strings.Join(done, "; ")), nil
}

// check refuses a configuration that could not fence anything, before any
// connection is made.
func (s SSH) check(old dcs.Member) (netip.Prefix, error) {
	if old.Host == "" {
		return netip.Prefix{}, errors.New("no host to fence")
	}
	if s.Ctl.BinDir == "" || s.Ctl.DataDir == "" || s.Ctl.Flavor.ControlBinary == "" {
		return netip.Prefix{}, errors.New("no stop command configured: the control binary's directory, flavor and data directory are needed")
	}
	if s.VIP == "" {
		return netip.Prefix{}, nil
	}
	prefix, err := netip.ParsePrefix(s.VIP)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("VIP %q: want an address with its prefix length, e.g. 10.0.0.100/24", s.VIP)
	}
	if s.Interface == "" {
		return netip.Prefix{}, fmt.Errorf("VIP %s: no interface configured", s.VIP)
	}
	return prefix, nil
}

// stop stops the database at once (immediate: a fenced primary must stop
// taking writes now, not after its clients leave; it recovers like after
// a crash when it is rejoined).
func (s SSH) stop(ctx context.Context, h host.Host) (string, error) {
	ctl := s.Ctl
	ctl.Host = h
	st, err := ctl.StopOutcome(ctx, pgctl.Immediate, 0)
	switch {
	case err != nil:
		return "", fmt.Errorf("stop the database: %w", err)
	case st.Already:
		return fmt.Sprintf("database already stopped (status: not running; %s)", st.Said), nil
	default:
		return fmt.Sprintf("database stopped (%s)", st.Said), nil
	}
}

func (s SSH) deleteVIP(ctx context.Context, h host.Host, prefix netip.Prefix) (string, error) {
	removed, err := vip.Remove(ctx, s.vipOn(h, prefix))
	switch {
	case err != nil:
		return "", fmt.Errorf("delete VIP %s from %s: %w", s.VIP, s.Interface, err)
	case removed:
		return fmt.Sprintf("VIP %s deleted from %s", s.VIP, s.Interface), nil
	default:
		return fmt.Sprintf("VIP %s already absent from %s", s.VIP, s.Interface), nil
	}
}

func (s SSH) vipOn(h host.Host, prefix netip.Prefix) vip.Remote {
	r := vip.Remote{Host: h, Address: prefix, Interface: s.Interface}
	if s.Sudo {
		r.Prefix = []string{"sudo", "-n"}
	}
	return r
}
