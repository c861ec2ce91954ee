package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/vigil-ha/vigil/internal/proc"
)

// proxyMark is the firewall mark of the delaying proxies' own connections,
// which the redirect rules let through.
const proxyMark = 0x7667 // "vg"

// nsDialer dials from inside a namespace ("" for this process's own).
type nsDialer struct {
	ns   string
	mark int
}

func (d nsDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	dl := net.Dialer{}
	if d.mark != 0 {
		dl.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_MARK, d.mark)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	if d.ns == "" {
		return dl.DialContext(ctx, network, addr)
	}
	var conn net.Conn
	err := proc.InNetns(d.ns, func() error {
		var err error
		conn, err = dl.DialContext(ctx, network, addr)
		return err
	})
	return conn, err
}

// nft runs an nftables script inside namespace ns.
func nft(ctx context.Context, ns, script string) error {
	if _, err := (proc.Runner{Netns: ns}).RunInput(ctx, strings.NewReader(script), "nft", "-f", "-"); err != nil {
		return fmt.Errorf("nft in %s: %w", ns, err)
	}
	return nil
}

// NFTTable is the table every fault's rules go into, one per namespace
// (exported for the tests that look for it).
const NFTTable = "vigil_chaos"

// RemoveRules removes the campaign's table (NFTTable) from ns, which
// undoes DropPackets and DelayConnections there; a missing table (or
// namespace) is not an error.
func RemoveRules(ctx context.Context, ns string) error {
	if _, err := os.Stat(proc.NetnsPath(ns)); err != nil {
		return nil
	}
	out, err := (proc.Runner{Netns: ns}).Run(ctx, "nft", "list", "tables")
	if err != nil {
		return fmt.Errorf("nft list tables in %s: %w", ns, err)
	}
	if !strings.Contains(string(out), "inet "+NFTTable) {
		return nil
	}
	if _, err := (proc.Runner{Netns: ns}).Run(ctx, "nft", "delete", "table", "inet", NFTTable); err != nil {
		return fmt.Errorf("nft delete table in %s: %w", ns, err)
	}
	return nil
}

// resetConnections destroys the TCP sockets of ns connected to any of
// dsts (`ss -K`), so that their owners reconnect through new rules.
func resetConnections(ctx context.Context, ns string, dsts []string) error {
	for _, d := range dsts {
		if _, err := (proc.Runner{Netns: ns}).Run(ctx, "ss", "-K", "-t", "dst", d); err != nil {
			return fmt.Errorf("ss -K dst %s in %s: %w", d, ns, err)
		}
	}
	return nil
}

// setLink brings a host-side link up or down.
func setLink(ctx context.Context, link, state string) error {
	if _, err := (proc.Runner{}).Run(ctx, "ip", "link", "set", link, state); err != nil {
		return fmt.Errorf("ip link set %s %s: %w", link, state, err)
	}
	return nil
}

// serverPIDs lists the live processes of the server on dataDir: the
// postmaster and its children, which all run in their data directory.
func serverPIDs(serverBinary, dataDir string) ([]int, error) {
	return proc.Processes(func(pid int) bool {
		dir := filepath.Join("/proc", strconv.Itoa(pid))
		exe, err := os.Readlink(filepath.Join(dir, "exe"))
		if err != nil || filepath.Base(strings.TrimSuffix(exe, " (deleted)")) != serverBinary {
			return false
		}
		cwd, err := os.Readlink(filepath.Join(dir, "cwd"))
		return err == nil && strings.TrimSuffix(cwd, " (deleted)") == dataDir
	})
}

// cmdlinePIDs lists the processes whose command line holds every one of
// args as whole arguments.
func cmdlinePIDs(args ...string) ([]int, error) {
	self := os.Getpid()
	return proc.Processes(func(pid int) bool {
		if pid == self {
			return false
		}
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
		if err != nil {
			return false
		}
		have := strings.Split(string(bytes.TrimRight(b, "\x00")), "\x00")
		for _, a := range args {
			if !slices.Contains(have, a) {
				return false
			}
		}
		return true
	})
}

// signalAll sends sig to every pid; processes already gone are skipped.
func signalAll(pids []int, sig syscall.Signal) error {
	var errs []error
	for _, pid := range pids {
		if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("signal %d to %d: %w", sig, pid, err))
		}
	}
	return errors.Join(errs...)
}
