package vip

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/vigil-ha/vigil/internal/host"
)

// Remote is the Transport of another host, reached through a host.Host
// (SSH): iproute2's ip and iputils' arping, read by their exit codes and
// by ip's address list, never by their messages. It serves a host whose
// own agent cannot move the address: a former primary being fenced, or
// the nodes of the Pgpool-II failover command. Its argv builders are
// pure, so that dry runs can print them.
type Remote struct {
	Host      host.Host
	Address   netip.Prefix
	Interface string
	// Label is the address label (ip addr add ... label IF:N); empty for
	// none.
	Label string
	// IP and Arping are the programs; "ip" and "arping" (from the remote
	// PATH) when empty.
	IP, Arping string
	// Prefix gives ip and arping their privileges, e.g. sudo -n, for an
	// account that is not root.
	Prefix []string
}

// Name identifies the address and its host.
func (r Remote) Name() string { return fmt.Sprintf("vip %s on %s", r.Address, r.Interface) }

func (r Remote) argv(prog, def string, args ...string) []string {
	if prog == "" {
		prog = def
	}
	argv := append([]string(nil), r.Prefix...)
	argv = append(argv, prog)
	return append(argv, args...)
}

// ShowArgv lists the IPv4 addresses of the interface, one per line.
func (r Remote) ShowArgv() []string {
	return r.argv(r.IP, "ip", "-o", "-4", "addr", "show", "dev", r.Interface)
}

// AddArgv adds the address, with its label if any.
func (r Remote) AddArgv() []string {
	args := []string{"addr", "add", r.Address.String(), "dev", r.Interface}
	if r.Label != "" {
		args = append(args, "label", r.Label)
	}
	return r.argv(r.IP, "ip", args...)
}

// DelArgv deletes the address.
func (r Remote) DelArgv() []string {
	return r.argv(r.IP, "ip", "addr", "del", r.Address.String(), "dev", r.Interface)
}

// DuplicateCheckArgv asks the segment whether any host answers for the
// address: arping -D exits 0 when none does, 1 when one does.
func (r Remote) DuplicateCheckArgv() []string {
	return r.argv(r.Arping, "arping", "-D", "-c", "2", "-w", "3", "-I", r.Interface, r.Address.Addr().String())
}

// AnnounceArgv sends count gratuitous ARPs for the address, in the seed's
// argument order (arping -U VIP -I IF).
func (r Remote) AnnounceArgv(count int) []string {
	return r.argv(r.Arping, "arping", "-U", r.Address.Addr().String(), "-I", r.Interface, "-c", strconv.Itoa(count), "-w", strconv.Itoa(count+1))
}

// Holds reads the interface's address list.
func (r Remote) Holds(ctx context.Context) (bool, error) {
	res, err := r.check(ctx, "list the addresses of "+r.Interface, r.ShowArgv())
	if err != nil {
		return false, err
	}
	return HasAddress(string(res.Output), r.Address.Addr()), nil
}

// Answerer runs the duplicate check; arping -D does not say who answered.
func (r Remote) Answerer(ctx context.Context) (string, error) {
	argv := r.DuplicateCheckArgv()
	res, err := r.Host.Run(ctx, argv)
	switch {
	case err != nil:
		return "", fmt.Errorf("%s: duplicate address check: %w", r.Name(), err)
	case res.ExitCode == 1:
		return "another host", nil
	case res.ExitCode != 0:
		return "", fmt.Errorf("%s: duplicate address check: %w", r.Name(), &host.ExitError{Argv: argv, Code: res.ExitCode, Output: res.Output})
	}
	return "", nil
}

// Assign adds the address.
func (r Remote) Assign(ctx context.Context) error {
	_, err := r.check(ctx, "add", r.AddArgv())
	return err
}

// Unassign deletes the address.
func (r Remote) Unassign(ctx context.Context) error {
	_, err := r.check(ctx, "delete", r.DelArgv())
	return err
}

// Announce sends count gratuitous ARPs, so that neighbours that cached
// the former holder's MAC update at once.
func (r Remote) Announce(ctx context.Context, count int) error {
	_, err := r.check(ctx, "send gratuitous ARP", r.AnnounceArgv(count))
	return err
}

func (r Remote) check(ctx context.Context, what string, argv []string) (host.Result, error) {
	res, err := host.Check(ctx, r.Host, argv)
	if err != nil {
		return res, fmt.Errorf("%s: %s: %w", r.Name(), what, err)
	}
	return res, nil
}

// HasAddress reads `ip -o -4 addr show` output and reports whether addr
// is among the addresses.
func HasAddress(out string, addr netip.Addr) bool {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		for i := 0; i+1 < len(f); i++ {
			if f[i] != "inet" {
				continue
			}
			if p, err := netip.ParsePrefix(f[i+1]); err == nil && p.Addr() == addr {
				return true
			}
			if a, err := netip.ParseAddr(f[i+1]); err == nil && a == addr {
				return true
			}
		}
	}
	return false
}
