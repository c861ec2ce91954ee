// Package vip moves the service address (virtual IP) between hosts: it adds
// the address to an interface with netlink, announces it with gratuitous
// ARP so that neighbours update their caches at once, and removes it.
//
// The agent calls Up only after its node has published "writable primary"
// (a write committed), and Down before anything that may end the primary
// role. Removal happens before any other node can acquire the leader key:
// the agent removes the address when it demotes, which the lease arithmetic
// of package decision places at least lease_ttl/2 - loop_interval - the
// time of the removal itself before the old lease can expire.
package vip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/vishvananda/netlink"
)

// Manager owns one service address on one interface.
type Manager struct {
	Address   netip.Prefix
	Interface string
	// Label is the address label (ip addr ... label), e.g. "eth0:vip";
	// empty for none.
	Label string
	// ARPCount gratuitous ARPs are sent ARPInterval apart after adding.
	ARPCount    int
	ARPInterval time.Duration
	// DADTimeout is how long to wait for another host to answer for the
	// address before adding it; 0 uses 200 ms (a LAN answers in well under
	// a millisecond).
	DADTimeout time.Duration
	Logger     *slog.Logger

	mu sync.Mutex
	// stopAnnounce ends the announcements still pending after Up; Down
	// calls it, so no announcement outlives the address.
	stopAnnounce context.CancelFunc
	// clearedAt is when Probe last found no other host answering for the
	// address; the next Up trusts it instead of probing again, and Down
	// forgets it.
	clearedAt time.Time
}

// probeTrustedFor is how long Up trusts a probe that found the address
// free. The probe is made by a node that holds the leader key (while its
// server promotes), and no other node brings the address up without the
// key; losing the key takes this route down, which forgets the probe. The
// bound only keeps an old probe from standing in for a new one.
const probeTrustedFor = 30 * time.Second

// ErrDuplicate means another host answers ARP for the address.
var ErrDuplicate = errors.New("address in use by another host")

// ErrPermission means the process lacks CAP_NET_ADMIN or CAP_NET_RAW.
var ErrPermission = errors.New("managing a VIP needs CAP_NET_ADMIN and CAP_NET_RAW: run the agent as root or grant both capabilities (see examples/vigil.service)")

// Name identifies the router in logs and timelines.
func (m *Manager) Name() string { return fmt.Sprintf("vip %s on %s", m.Address, m.Interface) }

func (m *Manager) log() *slog.Logger {
	if m.Logger != nil {
		return m.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (m *Manager) link() (netlink.Link, error) {
	l, err := netlink.LinkByName(m.Interface)
	if err != nil {
		return nil, fmt.Errorf("%s: interface %q: %w", m.Name(), m.Interface, err)
	}
	return l, nil
}

func (m *Manager) addr() *netlink.Addr {
	return &netlink.Addr{IPNet: &net.IPNet{IP: m.Address.Addr().AsSlice(), Mask: net.CIDRMask(m.Address.Bits(), m.Address.Addr().BitLen())}, Label: m.Label}
}

// Present reports whether the address is on the interface.
func (m *Manager) Present() (bool, error) {
	l, err := m.link()
	if err != nil {
		return false, err
	}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return false, fmt.Errorf("%s: list addresses: %w", m.Name(), err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == m.Address.Addr() {
			return true, nil
		}
	}
	return false, nil
}

// Up adds the address unless it is there, after checking that no other
// host answers for it (Add), then announces it. Adding an address that is
// already here is not an error.
func (m *Manager) Up(ctx context.Context) error {
	added, err := Add(ctx, local{m})
	if err != nil {
		return err
	}
	if added {
		m.log().Info("VIP added", "address", m.Address, "interface", m.Interface)
	}
	// The first announcement goes now; the repeats (for a lost packet)
	// follow in the background, so that clients are not kept waiting.
	if err := m.announceOnce(); err != nil {
		return err
	}
	if m.ARPCount > 1 {
		actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		m.mu.Lock()
		if m.stopAnnounce != nil {
			m.stopAnnounce()
		}
		m.stopAnnounce = cancel
		m.mu.Unlock()
		go func() {
			defer cancel()
			if err := m.announce(actx, m.ARPCount-1); err != nil && actx.Err() == nil {
				m.log().Warn("gratuitous ARP repeat", "err", err)
			}
		}()
	}
	return nil
}

// Probe checks now that no other host answers for the address, so that
// the next Up need not wait for the check: a failover runs it while the
// server promotes. An address another host answers for is ErrDuplicate.
func (m *Manager) Probe(ctx context.Context) (string, error) {
	if held, err := m.Present(); err != nil || held {
		return fmt.Sprintf("%s already on this host", m.Address), err
	}
	hw, err := m.checkDuplicate(ctx)
	if err != nil {
		return "", err
	}
	if hw != nil {
		return "", fmt.Errorf("%s: %w: %s answers ARP for it", m.Name(), ErrDuplicate, hw)
	}
	m.mu.Lock()
	m.clearedAt = time.Now()
	m.mu.Unlock()
	return fmt.Sprintf("no host answers ARP for %s", m.Address.Addr()), nil
}

// takeClearance reports a recent Probe that found the address free, and
// uses it up.
func (m *Manager) takeClearance() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	fresh := !m.clearedAt.IsZero() && time.Since(m.clearedAt) < probeTrustedFor
	m.clearedAt = time.Time{}
	return fresh
}

// Down removes the address (Remove). Removing an absent address is not an
// error.
func (m *Manager) Down(ctx context.Context) error {
	m.mu.Lock()
	if m.stopAnnounce != nil {
		m.stopAnnounce()
		m.stopAnnounce = nil
	}
	m.clearedAt = time.Time{}
	m.mu.Unlock()
	removed, err := Remove(ctx, local{m})
	if err != nil {
		return err
	}
	if removed {
		m.log().Info("VIP removed", "address", m.Address, "interface", m.Interface)
	}
	return nil
}

// local is the Transport of this host: netlink and a raw ARP socket.
type local struct{ m *Manager }

func (t local) Name() string                        { return t.m.Name() }
func (t local) Holds(context.Context) (bool, error) { return t.m.Present() }

func (t local) Answerer(ctx context.Context) (string, error) {
	if t.m.takeClearance() {
		return "", nil
	}
	hw, err := t.m.checkDuplicate(ctx)
	if err != nil || hw == nil {
		return "", err
	}
	return hw.String(), nil
}

func (t local) Assign(context.Context) error {
	l, err := t.m.link()
	if err != nil {
		return err
	}
	if err := netlink.AddrAdd(l, t.m.addr()); err != nil && !errors.Is(err, syscall.EEXIST) {
		return t.m.wrap("add", err)
	}
	return nil
}

func (t local) Unassign(context.Context) error {
	l, err := t.m.link()
	if err != nil {
		return err
	}
	if err := netlink.AddrDel(l, t.m.addr()); err != nil {
		return t.m.wrap("remove", err)
	}
	return nil
}

func (m *Manager) announceOnce() error { return m.announce(context.Background(), 1) }

// Announce sends ARPCount gratuitous ARPs for the address from this
// interface, so that hosts and switches that cached the old owner's MAC
// update at once.
func (m *Manager) Announce(ctx context.Context) error { return m.announce(ctx, m.ARPCount) }

func (m *Manager) announce(ctx context.Context, count int) error {
	ifi, err := net.InterfaceByName(m.Interface)
	if err != nil {
		return fmt.Errorf("%s: %w", m.Name(), err)
	}
	c, err := arp.Dial(ifi)
	if err != nil {
		return m.wrap("open ARP socket", err)
	}
	defer c.Close()
	// A gratuitous ARP is a request from the address for the address.
	p, err := arp.NewPacket(arp.OperationRequest, ifi.HardwareAddr, m.Address.Addr(), ethernet.Broadcast, m.Address.Addr())
	if err != nil {
		return fmt.Errorf("%s: build gratuitous ARP: %w", m.Name(), err)
	}
	count = max(count, 1)
	interval := m.ARPInterval
	if interval <= 0 {
		interval = 100 * time.Millisecond
	}
	for i := range count {
		if err := c.WriteTo(p, ethernet.Broadcast); err != nil {
			return m.wrap("send gratuitous ARP", err)
		}
		if i < count-1 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(interval):
			}
		}
	}
	m.log().Debug("gratuitous ARP sent", "address", m.Address, "count", count)
	return nil
}

// checkDuplicate asks the segment who has the address and returns the
// MAC that answers, nil when none does within DADTimeout.
func (m *Manager) checkDuplicate(ctx context.Context) (net.HardwareAddr, error) {
	ifi, err := net.InterfaceByName(m.Interface)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.Name(), err)
	}
	c, err := arp.Dial(ifi)
	if err != nil {
		return nil, m.wrap("open ARP socket", err)
	}
	defer c.Close()
	timeout := m.DADTimeout
	if timeout <= 0 {
		timeout = 200 * time.Millisecond
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.SetDeadline(deadline); err != nil {
		return nil, fmt.Errorf("%s: %w", m.Name(), err)
	}
	hw, err := c.Resolve(m.Address.Addr())
	if err == nil {
		return hw, nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil, nil
	}
	return nil, m.wrap("duplicate-address check", err)
}

func (m *Manager) wrap(what string, err error) error {
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("%s: %s: %w (%v)", m.Name(), what, ErrPermission, err)
	}
	return fmt.Errorf("%s: %s: %w", m.Name(), what, err)
}
