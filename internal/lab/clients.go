package lab

import (
	"context"
	"fmt"
	"net/netip"
)

// firstClientIP is where client hosts start in the lab subnet; the VIP
// tests and demos use addresses below it (.100).
const firstClientIP = 200

// Client is a host without a database on the lab's network (netns mode):
// where a demo or benchmark runs the application that writes through the VIP.
type Client struct {
	Name  string `json:"name"`
	Netns string `json:"netns"`
	Host  string `json:"host"`
	Link  string `json:"link"`
}

// AddClient creates a client host: a namespace joined to the lab's bridge.
// Down removes it with the rest of the lab.
func (l *Lab) AddClient(ctx context.Context, name string) (Client, error) {
	if !l.Netns() {
		return Client{}, fmt.Errorf("add client %s: only a --netns lab has a network to join", name)
	}
	l.mu.Lock()
	id, k, bridge, subnetText := l.st.ID, len(l.st.Clients), l.st.Bridge, l.st.Subnet
	l.mu.Unlock()
	subnet, err := netip.ParsePrefix(subnetText)
	if err != nil {
		return Client{}, fmt.Errorf("add client %s: lab subnet %q: %w", name, subnetText, err)
	}
	c := Client{
		Name:  name,
		Netns: fmt.Sprintf("vigil-%s-%s", id, name),
		Host:  addrIn(subnet, firstClientIP+k).String(),
		Link:  fmt.Sprintf("vgl-%s-c%d", id, k+1),
	}
	peer := fmt.Sprintf("vgp-%s-c%d", id, k+1)
	if err := ip(ctx, "netns", "add", c.Netns); err != nil {
		return Client{}, fmt.Errorf("add client %s: %w", name, err)
	}
	if err := l.update(func(st *state) { st.Namespaces = append(st.Namespaces, c.Netns) }); err != nil {
		return Client{}, err
	}
	if err := ip(ctx, "link", "add", "name", c.Link, "type", "veth", "peer", "name", peer); err != nil {
		return Client{}, fmt.Errorf("add client %s: %w", name, err)
	}
	if err := l.update(func(st *state) { st.Links = append(st.Links, c.Link); st.Clients = append(st.Clients, c) }); err != nil {
		return Client{}, err
	}
	for _, s := range [][]string{
		{"link", "set", c.Link, "master", bridge},
		{"link", "set", c.Link, "up"},
		{"link", "set", peer, "netns", c.Netns},
		{"-n", c.Netns, "link", "set", peer, "name", "eth0"},
		{"-n", c.Netns, "addr", "add", c.Host + "/24", "dev", "eth0"},
		{"-n", c.Netns, "link", "set", "eth0", "up"},
		{"-n", c.Netns, "link", "set", "lo", "up"},
	} {
		if err := ip(ctx, s...); err != nil {
			return Client{}, fmt.Errorf("add client %s: %w", name, err)
		}
	}
	return c, nil
}

// AddressIn returns host number k of the lab subnet (netns mode), e.g. the
// VIP at .100.
func (l *Lab) AddressIn(k int) (netip.Addr, error) {
	subnet, err := netip.ParsePrefix(l.Subnet())
	if err != nil {
		return netip.Addr{}, fmt.Errorf("lab subnet %q: %w", l.Subnet(), err)
	}
	return addrIn(subnet, k), nil
}

// BridgeAddress is the host's address on the lab network.
func (l *Lab) BridgeAddress() (netip.Addr, error) { return l.AddressIn(hostIP) }
