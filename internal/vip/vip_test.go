package vip

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/vishvananda/netns"
)

// segment is a switched network made of namespaces this test creates: a
// bridge in its own namespace and hosts a, b, c attached to it. Nothing
// outside these namespaces is touched.
type segment struct {
	t      *testing.T
	prefix string
	hosts  map[string]string // host -> its address
	netns  []string
}

func ipRun(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func newSegment(t *testing.T) *segment {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("VIP tests need root: they create network namespaces (CI runs as root)")
	}
	id := fmt.Sprintf("%04x", rand.IntN(0xffff))
	// 198.19.x.0/24: inside 198.18.0.0/15, and only inside the namespaces below.
	s := &segment{t: t, prefix: fmt.Sprintf("198.19.%d", 100+rand.IntN(100)), hosts: map[string]string{}}
	sw := "vgvip-" + id + "-sw"
	ipRun(t, "netns", "add", sw)
	s.netns = append(s.netns, sw)
	t.Cleanup(s.cleanup)
	ipRun(t, "-n", sw, "link", "add", "br0", "type", "bridge")
	ipRun(t, "-n", sw, "link", "set", "br0", "up")
	for i, h := range []string{"a", "b", "c"} {
		ns := "vgvip-" + id + "-" + h
		ipRun(t, "netns", "add", ns)
		s.netns = append(s.netns, ns)
		ipRun(t, "-n", sw, "link", "add", "p"+h, "type", "veth", "peer", "name", "eth0", "netns", ns)
		ipRun(t, "-n", sw, "link", "set", "p"+h, "master", "br0", "up")
		addr := fmt.Sprintf("%s.%d", s.prefix, 11+i)
		ipRun(t, "-n", ns, "addr", "add", addr+"/24", "dev", "eth0")
		ipRun(t, "-n", ns, "link", "set", "eth0", "up")
		ipRun(t, "-n", ns, "link", "set", "lo", "up")
		s.hosts[h] = addr
	}
	return s
}

func (s *segment) ns(host string) string { return s.netns[0][:len(s.netns[0])-2] + host }

func (s *segment) cleanup() {
	for _, ns := range s.netns {
		exec.Command("ip", "netns", "del", ns).Run()
	}
}

// in runs f on an OS thread inside host's namespace.
func (s *segment) in(host string, f func()) {
	s.t.Helper()
	done := make(chan struct{})
	var failure error
	go func() {
		defer close(done)
		runtime.LockOSThread()
		// The thread is left in the namespace and dies with the goroutine
		// (no UnlockOSThread), so no other goroutine ever runs on it.
		h, err := netns.GetFromName(s.ns(host))
		if err != nil {
			failure = err
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			failure = err
			return
		}
		f()
	}()
	<-done
	if failure != nil {
		s.t.Fatalf("enter namespace of %s: %v", host, failure)
	}
}

func (s *segment) manager(host string) *Manager {
	return &Manager{Address: netip.MustParsePrefix(s.prefix + ".100/24"), Interface: "eth0", Label: "eth0:vip", ARPCount: 3, ARPInterval: 20 * time.Millisecond}
}

// resolve asks, from host, who has ip.
func (s *segment) resolve(host, ip string) (net.HardwareAddr, error) {
	var hw net.HardwareAddr
	var err error
	s.in(host, func() {
		ifi, ierr := net.InterfaceByName("eth0")
		if ierr != nil {
			err = ierr
			return
		}
		c, derr := arp.Dial(ifi)
		if derr != nil {
			err = derr
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(500 * time.Millisecond))
		hw, err = c.Resolve(netip.MustParseAddr(ip))
	})
	return hw, err
}

func (s *segment) mac(host string) net.HardwareAddr {
	var hw net.HardwareAddr
	s.in(host, func() {
		ifi, err := net.InterfaceByName("eth0")
		if err == nil {
			hw = ifi.HardwareAddr
		}
	})
	return hw
}

// neighbour returns the MAC host has cached for ip ("" when none).
func (s *segment) neighbour(host, ip string) string {
	out, _ := exec.Command("ip", "-n", s.ns(host), "neigh", "show", ip).Output()
	fields := strings.Fields(string(out))
	for i, f := range fields {
		if f == "lladdr" && i+1 < len(fields) {
			return fields[i+1]
		}
	}
	return ""
}

func TestVIPMovesAndNeighboursFollow(t *testing.T) {
	s := newSegment(t)
	ctx := context.Background()
	vip := s.prefix + ".100"

	var err error
	s.in("a", func() { err = s.manager("a").Up(ctx) })
	if err != nil {
		t.Fatalf("up on a: %v", err)
	}
	s.in("a", func() { err = s.manager("a").Up(ctx) })
	if err != nil {
		t.Fatalf("second up on a (idempotent): %v", err)
	}
	var present bool
	s.in("a", func() { present, err = s.manager("a").Present() })
	if !present || err != nil {
		t.Fatalf("present on a = %v, %v", present, err)
	}
	hw, err := s.resolve("c", vip)
	if err != nil || hw.String() != s.mac("a").String() {
		t.Fatalf("c resolves the VIP to %s (%v), want a's %s", hw, err, s.mac("a"))
	}
	// c has talked to the VIP: its kernel caches a's MAC for it.
	ipRun(t, "-n", s.ns("c"), "neigh", "replace", vip, "lladdr", s.mac("a").String(), "dev", "eth0", "nud", "stale")
	if got := s.neighbour("c", vip); got != s.mac("a").String() {
		t.Fatalf("c's cache for the VIP = %q, want a's %s", got, s.mac("a"))
	}

	// Duplicate-address detection: b must refuse while a holds it.
	s.in("b", func() { err = s.manager("b").Up(ctx) })
	if !errors.Is(err, ErrDuplicate) || !strings.Contains(err.Error(), s.mac("a").String()) {
		t.Fatalf("up on b while a holds the VIP: %v, want ErrDuplicate naming a's MAC", err)
	}
	s.in("b", func() { present, _ = s.manager("b").Present() })
	if present {
		t.Fatal("b added the VIP despite the duplicate")
	}

	// Move: down on a (twice: idempotent), up on b; c's cache follows the
	// gratuitous ARP without c asking.
	s.in("a", func() { err = s.manager("a").Down(ctx) })
	if err != nil {
		t.Fatal(err)
	}
	s.in("a", func() { err = s.manager("a").Down(ctx) })
	if err != nil {
		t.Fatalf("second down (idempotent): %v", err)
	}
	s.in("b", func() { err = s.manager("b").Up(ctx) })
	if err != nil {
		t.Fatalf("up on b: %v", err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for s.neighbour("c", vip) != s.mac("b").String() {
		if time.Now().After(deadline) {
			t.Fatalf("c's cache for the VIP = %q after the gratuitous ARP, want b's %s", s.neighbour("c", vip), s.mac("b"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestProbeStandsInForUpsCheckUntilDown: a probe made while the server
// promotes lets the next Up skip its own wait for an answer; Down forgets
// the probe, so an Up after it checks the segment again. (Here a host
// takes the address after the probe, which a leader-key holder never
// sees in a cluster; it shows which check ran.)
func TestProbeStandsInForUpsCheckUntilDown(t *testing.T) {
	s := newSegment(t)
	ctx := context.Background()
	a, b := s.manager("a"), s.manager("b")
	var err error
	s.in("a", func() { err = a.Up(ctx) })
	if err != nil {
		t.Fatalf("up on a: %v", err)
	}
	s.in("b", func() { _, err = b.Probe(ctx) })
	if !errors.Is(err, ErrDuplicate) || !strings.Contains(err.Error(), s.mac("a").String()) {
		t.Fatalf("probe on b while a holds the address: %v, want ErrDuplicate naming a's MAC", err)
	}
	s.in("a", func() { err = a.Down(ctx) })
	if err != nil {
		t.Fatal(err)
	}

	var evidence string
	s.in("b", func() { evidence, err = b.Probe(ctx) })
	if err != nil || !strings.Contains(evidence, "no host answers") {
		t.Fatalf("probe on b with the address free: %q, %v", evidence, err)
	}
	s.in("a", func() { err = s.manager("a").Up(ctx) })
	if err != nil {
		t.Fatalf("up on a: %v", err)
	}
	s.in("b", func() { err = b.Up(ctx) })
	if err != nil {
		t.Fatalf("up on b right after its probe: %v; want the probe trusted, no second check", err)
	}
	for _, h := range []string{"a", "b"} {
		s.in(h, func() { err = s.manager(h).Down(ctx) })
		if err != nil {
			t.Fatal(err)
		}
	}

	s.in("b", func() { _, err = b.Probe(ctx) })
	if err != nil {
		t.Fatal(err)
	}
	s.in("b", func() { err = b.Down(ctx) })
	if err != nil {
		t.Fatal(err)
	}
	s.in("a", func() { err = s.manager("a").Up(ctx) })
	if err != nil {
		t.Fatalf("up on a: %v", err)
	}
	s.in("b", func() { err = b.Up(ctx) })
	if !errors.Is(err, ErrDuplicate) {
		t.Fatalf("up on b after Down forgot its probe, while a holds the address: %v, want ErrDuplicate", err)
	}
}

func TestMissingInterfaceAndPermissionMessages(t *testing.T) {
	s := newSegment(t)
	var err error
	s.in("a", func() {
		m := s.manager("a")
		m.Interface = "nosuch0"
		err = m.Up(context.Background())
	})
	if err == nil || !strings.Contains(err.Error(), `interface "nosuch0"`) {
		t.Errorf("missing interface: %v", err)
	}
	m := &Manager{Address: netip.MustParsePrefix("198.19.0.100/24"), Interface: "eth0"}
	if got := m.wrap("add", fmt.Errorf("netlink: %w", os.ErrPermission)); !errors.Is(got, ErrPermission) || !strings.Contains(got.Error(), "CAP_NET_ADMIN and CAP_NET_RAW") {
		t.Errorf("permission error = %v", got)
	}
}
