package fence

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/flavor"
	"github.com/vigil-ha/vigil/internal/pgctl"
	"github.com/vigil-ha/vigil/internal/remote"
)

// SSH fences a former primary by logging in to its host (host key verified
// against Config.KnownHostsFile) and removing the two ways clients could
// still write to it: the running database and the service address. Both
// steps succeed when there is nothing left to remove, so a second fence,
// e.g. when Pgpool-II calls the failover command twice, is harmless.
type SSH struct {
	Config remote.Config
	// StopCommand stops the database, as argv (StopArgv builds the usual
	// one). It runs as Config.User; the control binary refuses root, so
	// for a root login prefix it with e.g. runuser -u postgres --.
	StopCommand []string
	// VIP is the service address with its prefix length, e.g.
	// "10.0.0.100/24"; empty when there is none to remove.
	VIP string
	// Interface is the old primary's device carrying the VIP.
	Interface string
	// Sudo runs the ip command through sudo -n, for a Config.User that is
	// not root. The stop command is left as given.
	Sudo bool
}

// StopArgv is the flavor's immediate stop of the server on dataDir:
// `pg_ctl -D DATADIR -m immediate stop` (sys_ctl for KingbaseES). Immediate,
// because a fenced primary must stop taking writes now, not after its
// clients leave; it recovers like after a crash when it is rejoined.
func StopArgv(f flavor.Flavor, binDir, dataDir string) []string {
	return []string{filepath.Join(binDir, f.ControlBinary), "-D", dataDir, "-m", string(pgctl.Immediate), "stop"}
}

// Fence stops old's database and deletes the VIP on old.Host. A host that
// cannot be reached, or whose key is not the one on file, is an error: the
// caller decides whether its isolation guards allow going on without a
// fence. When stopping fails the VIP is still deleted, since that alone
// keeps clients away, but the result is an error.
func (s SSH) Fence(ctx context.Context, old dcs.Member) (string, error) {
	fail := func(err error) error { return fmt.Errorf("ssh fence %s: %w", old.Name, err) }
	if err := s.check(old); err != nil {
		return "", fail(err)
	}
	cl, err := remote.Dial(ctx, old.Host, s.Config)
	if err != nil {
		return "", fail(err)
	}
	defer cl.Close()

	var done []string
	var errs []error
	if ev, err := s.stop(ctx, cl); err != nil {
		errs = append(errs, err)
	} else {
		done = append(done, ev)
	}
	if s.VIP != "" {
		if ev, err := s.deleteVIP(ctx, cl); err != nil {
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
	return fmt.Sprintf("ssh %s (host key %s): %s", cl, cl.HostKeyFingerprint(), strings.Join(done, "; ")), nil
}

// check refuses a configuration that could not fence anything, before any
// connection is made.
func (s SSH) check(old dcs.Member) error {
	if old.Host == "" {
		return errors.New("no host to fence")
	}
	if len(s.StopCommand) == 0 {
		return errors.New("no stop command configured")
	}
	if s.VIP == "" {
		return nil
	}
	if _, err := netip.ParsePrefix(s.VIP); err != nil {
		return fmt.Errorf("VIP %q: want an address with its prefix length, e.g. 10.0.0.100/24", s.VIP)
	}
	if s.Interface == "" {
		return fmt.Errorf("VIP %s: no interface configured", s.VIP)
	}
	return nil
}

// stopCommandLine runs the stop command in the C locale: the control
// binary's messages are translated on hosts with another locale (the
// KingbaseES hosts of the seed incident run zh_CN), and alreadyStopped
// reads the English ones.
func (s SSH) stopCommandLine() string {
	return "LC_ALL=C " + remote.Command(s.StopCommand...)
}

func (s SSH) vipCommandLine() string {
	argv := []string{"ip", "addr", "del", s.VIP, "dev", s.Interface}
	if s.Sudo {
		argv = append([]string{"sudo", "-n"}, argv...)
	}
	return remote.Command(argv...)
}

func (s SSH) stop(ctx context.Context, cl *remote.Client) (string, error) {
	stdout, stderr, err := cl.Run(ctx, s.stopCommandLine())
	var ee *remote.ExitError
	switch {
	case err == nil:
		msg := lastLine(string(stdout))
		if msg == "" {
			msg = lastLine(string(stderr))
		}
		return fmt.Sprintf("database stopped (%s)", msg), nil
	case errors.As(err, &ee) && alreadyStopped(string(stderr)):
		return fmt.Sprintf("database already stopped (%s)", stoppedReason(string(stderr))), nil
	default:
		return "", fmt.Errorf("stop the database: %w", err)
	}
}

// alreadyStopped recognises the control binary's answers when there is no
// server to stop: no PID file ("... does not exist / Is server running?"),
// or the PID file of a server that died ("could not send stop signal (PID:
// N): No such process").
func alreadyStopped(stderr string) bool {
	return strings.Contains(stderr, "Is server running?") ||
		(strings.Contains(stderr, "could not send stop signal") && strings.Contains(stderr, "No such process"))
}

// stoppedReason picks the line that says why there was nothing to stop,
// leaving out what wrappers like runuser add.
func stoppedReason(stderr string) string {
	for _, line := range strings.Split(stderr, "\n") {
		if strings.Contains(line, "PID file") || strings.Contains(line, "could not send stop signal") {
			return lastLine(line)
		}
	}
	return lastLine(stderr)
}

func (s SSH) deleteVIP(ctx context.Context, cl *remote.Client) (string, error) {
	_, stderr, err := cl.Run(ctx, s.vipCommandLine())
	var ee *remote.ExitError
	switch {
	case err == nil:
		return fmt.Sprintf("VIP %s deleted from %s", s.VIP, s.Interface), nil
	case errors.As(err, &ee) && addressAbsent(string(stderr)):
		return fmt.Sprintf("VIP %s already absent from %s", s.VIP, s.Interface), nil
	default:
		return "", fmt.Errorf("delete VIP %s from %s: %w", s.VIP, s.Interface, err)
	}
}

// addressAbsent recognises ip's answer when the device lacks the address:
// the kernel's extended message (iproute2 with extended acks, e.g. Debian
// 12) or the bare EADDRNOTAVAIL that older versions print.
func addressAbsent(stderr string) bool {
	return strings.Contains(stderr, "Address not found") || strings.Contains(stderr, "Cannot assign requested address")
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
