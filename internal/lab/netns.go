package lab

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/internal/proc"
)

// claimsDir holds one file per subnet taken by a lab, naming the lab's
// directory: how concurrent and existing labs keep out of each other's way
// before their bridges exist.
const claimsDir = "/run/vigil-lab"

// labRange is where lab subnets come from: 198.18.0.0/15 is reserved for
// benchmarking (RFC 2544) and never routed on the internet.
const labRange = "198.18.0.0/15"

// staleClaimAge: a claim younger than this may belong to a lab still being
// built, whose state file does not list the subnet yet.
const staleClaimAge = 2 * time.Minute

// hostIP is the bridge's address in the lab subnet; node K gets .10+K.
const hostIP, firstNodeIP = 1, 11

// createNetwork builds a bridge on the host and, per node, a namespace
// joined to it by a veth pair whose inner end is eth0. Each creation is
// recorded before the next, so Down can undo a partial network.
func (l *Lab) createNetwork(ctx context.Context) error {
	id := l.st.ID
	subnet, claim, err := claimSubnet(ctx, l.st.Dir)
	if err != nil {
		return err
	}
	if err := l.update(func(st *state) { st.Subnet, st.SubnetClaim = subnet.String(), claim }); err != nil {
		return err
	}
	bridge := "vgl-" + id
	if err := ip(ctx, "link", "add", "name", bridge, "type", "bridge"); err != nil {
		return fmt.Errorf("create bridge %s: %w", bridge, err)
	}
	if err := l.update(func(st *state) { st.Bridge = bridge }); err != nil {
		return err
	}
	if err := ip(ctx, "addr", "add", addrIn(subnet, hostIP).String()+"/24", "dev", bridge); err != nil {
		return fmt.Errorf("address bridge %s: %w", bridge, err)
	}
	if err := ip(ctx, "link", "set", bridge, "up"); err != nil {
		return fmt.Errorf("bring up bridge %s: %w", bridge, err)
	}
	l.log().Info("bridge", "name", bridge, "subnet", subnet)

	for i, n := range l.Nodes() {
		ns := fmt.Sprintf("vigil-%s-%s", id, n.Name)
		if err := ip(ctx, "netns", "add", ns); err != nil {
			return fmt.Errorf("create namespace for %s: %w", n.Name, err)
		}
		if err := l.update(func(st *state) { st.Namespaces = append(st.Namespaces, ns) }); err != nil {
			return err
		}
		// Interface names have at most 15 bytes: "vgl-" + 6 + "-" + 2 digits.
		hostEnd := fmt.Sprintf("vgl-%s-%d", id, i+1)
		peer := fmt.Sprintf("vgp-%s-%d", id, i+1)
		if err := ip(ctx, "link", "add", "name", hostEnd, "type", "veth", "peer", "name", peer); err != nil {
			return fmt.Errorf("create veth pair for %s: %w", n.Name, err)
		}
		addr := addrIn(subnet, firstNodeIP+i)
		if err := l.update(func(st *state) {
			st.Links = append(st.Links, hostEnd)
			st.Nodes[i].Link, st.Nodes[i].Netns, st.Nodes[i].Host = hostEnd, ns, addr.String()
		}); err != nil {
			return err
		}
		steps := [][]string{
			{"link", "set", hostEnd, "master", bridge},
			{"link", "set", hostEnd, "up"},
			{"link", "set", peer, "netns", ns},
			{"-n", ns, "link", "set", peer, "name", "eth0"},
			{"-n", ns, "addr", "add", addr.String() + "/24", "dev", "eth0"},
			{"-n", ns, "link", "set", "eth0", "up"},
			{"-n", ns, "link", "set", "lo", "up"},
		}
		for _, s := range steps {
			if err := ip(ctx, s...); err != nil {
				return fmt.Errorf("connect namespace %s: %w", ns, err)
			}
		}
		l.log().Info("namespace", "node", n.Name, "netns", ns, "addr", addr, "link", hostEnd)
	}
	return nil
}

func ip(ctx context.Context, args ...string) error {
	_, err := proc.Runner{}.Run(ctx, "ip", args...)
	return err
}

// addrIn returns host number k of a /24.
func addrIn(subnet netip.Prefix, k int) netip.Addr {
	a := subnet.Addr().As4()
	a[3] = byte(k)
	return netip.AddrFrom4(a)
}

// claimSubnet picks a /24 in labRange that no address or route on the host
// touches and no other lab has claimed, and claims it for labDir.
func claimSubnet(ctx context.Context, labDir string) (netip.Prefix, string, error) {
	used, err := hostPrefixes(ctx)
	if err != nil {
		return netip.Prefix{}, "", err
	}
	base := netip.MustParsePrefix(labRange)
	count := 1 << (24 - base.Bits())
	// A random start: concurrent labs rarely race for the same claim.
	start := rand.IntN(count)
	for i := range count {
		k := (start + i) % count
		a := base.Addr().As4()
		a[1] += byte(k >> 8)
		a[2] = byte(k)
		cand := netip.PrefixFrom(netip.AddrFrom4(a), 24)
		if overlapsAny(cand, used) {
			continue
		}
		path := filepath.Join(claimsDir, strings.ReplaceAll(cand.String(), "/", "_"))
		ok, err := claim(path, labDir, cand)
		if err != nil {
			return netip.Prefix{}, "", err
		}
		if ok {
			return cand, path, nil
		}
	}
	return netip.Prefix{}, "", fmt.Errorf("no free /24 in %s: each is used by an address or route on this host or claimed by another lab (%s)", labRange, claimsDir)
}

func overlapsAny(p netip.Prefix, used []netip.Prefix) bool {
	for _, u := range used {
		if u.Bits() == 0 { // the default route overlaps everything and conflicts with nothing
			continue
		}
		if u.Overlaps(p) {
			return true
		}
	}
	return false
}

// claim creates the claim file; an existing claim is taken over only when
// it is stale: old, and its lab no longer lists the subnet.
func claim(path, labDir string, subnet netip.Prefix) (bool, error) {
	tookOver := false
	for range 4 {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrNotExist) {
			// The last lab's Down may just have removed the directory.
			if err := os.MkdirAll(claimsDir, 0o755); err != nil {
				return false, fmt.Errorf("create %s: %w", claimsDir, err)
			}
			continue
		}
		if err == nil {
			_, werr := f.WriteString(labDir + "\n")
			if cerr := f.Close(); werr == nil {
				werr = cerr
			}
			if werr != nil {
				_ = os.Remove(path)
				return false, fmt.Errorf("claim subnet %s: %w", subnet, werr)
			}
			return true, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return false, fmt.Errorf("claim subnet %s: %w", subnet, err)
		}
		if tookOver || !staleClaim(path, subnet) {
			return false, nil
		}
		tookOver = true
		_ = os.Remove(path)
	}
	return false, fmt.Errorf("claim subnet %s: %s keeps disappearing", subnet, claimsDir)
}

func staleClaim(path string, subnet netip.Prefix) bool {
	fi, err := os.Stat(path)
	if err != nil || time.Since(fi.ModTime()) < staleClaimAge {
		return false
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	st, err := loadState(strings.TrimSpace(string(data)))
	return err != nil || st.Subnet != subnet.String()
}

// hostPrefixes lists every IPv4 prefix of the host's addresses and routes
// (all tables).
func hostPrefixes(ctx context.Context) ([]netip.Prefix, error) {
	var out []netip.Prefix
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list host addresses: %w", err)
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() {
			out = append(out, p.Masked())
		}
	}
	routes, err := proc.Runner{}.Run(ctx, "ip", "-4", "-o", "route", "show", "table", "all")
	if err != nil {
		return nil, fmt.Errorf("list host routes: %w", err)
	}
	return append(out, parseRoutes(string(routes))...), nil
}

// isRouteType recognises the words `ip route` puts before a destination.
func isRouteType(word string) bool {
	switch word {
	case "unicast", "local", "broadcast", "multicast", "throw", "unreachable", "prohibit", "blackhole", "nat", "anycast":
		return true
	}
	return false
}

// parseRoutes reads the destinations of `ip -4 -o route show` lines.
func parseRoutes(s string) []netip.Prefix {
	var out []netip.Prefix
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && isRouteType(f[0]) {
			f = f[1:]
		}
		if len(f) == 0 || f[0] == "default" {
			continue
		}
		if p, err := netip.ParsePrefix(f[0]); err == nil {
			out = append(out, p.Masked())
		} else if a, err := netip.ParseAddr(f[0]); err == nil && a.Is4() {
			out = append(out, netip.PrefixFrom(a, 32))
		}
	}
	return out
}

// removeNetwork deletes the links, bridge, namespaces and claim listed in
// st that still exist. Deleting a veth end deletes its peer.
func (l *Lab) removeNetwork(ctx context.Context, st state) error {
	var errs []error
	for _, link := range append(append([]string(nil), st.Links...), st.Bridge) {
		if link == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join("/sys/class/net", link)); err != nil {
			continue
		}
		if err := ip(ctx, "link", "del", link); err != nil {
			errs = append(errs, fmt.Errorf("delete link %s: %w", link, err))
		}
	}
	for _, ns := range st.Namespaces {
		if _, err := os.Stat(proc.NetnsPath(ns)); err != nil {
			continue
		}
		if err := ip(ctx, "netns", "del", ns); err != nil {
			errs = append(errs, fmt.Errorf("delete namespace %s: %w", ns, err))
		}
	}
	if st.SubnetClaim != "" {
		// Only our own claim: after a stale takeover it may be another lab's.
		if data, err := os.ReadFile(st.SubnetClaim); err == nil && strings.TrimSpace(string(data)) == st.Dir {
			if err := os.Remove(st.SubnetClaim); err != nil {
				errs = append(errs, fmt.Errorf("remove subnet claim: %w", err))
			}
		}
		// The directory too, once no lab has a claim in it.
		_ = os.Remove(filepath.Dir(st.SubnetClaim))
	}
	return errors.Join(errs...)
}

// Holders names the live nodes whose eth0 carries addr, "a,b" if several,
// "" for none. A crashed node (link down) holds nothing on the network.
func (l *Lab) Holders(addr string) string {
	var holders []string
	for _, n := range l.Nodes() {
		link, err := exec.Command("ip", "-n", n.Netns, "-o", "link", "show", "dev", "eth0").Output()
		if err != nil || !strings.Contains(string(link), "LOWER_UP") {
			continue
		}
		out, err := exec.Command("ip", "-n", n.Netns, "-o", "addr", "show", "dev", "eth0").Output()
		if err == nil && strings.Contains(string(out), " "+addr+"/") {
			holders = append(holders, n.Name)
		}
	}
	return strings.Join(holders, ",")
}
