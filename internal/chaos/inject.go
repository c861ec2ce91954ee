package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-ha/vigil/internal/clock"
	"github.com/vigil-ha/vigil/internal/lab"
)

// injected is a fault in place: what it hit and how to undo it.
type injected struct {
	target string
	detail string
	// heal undoes the fault; nil when there is nothing to undo.
	heal func(ctx context.Context) error
}

// resolve names the node a step hits given the current primary ("" when
// there is none, then a primary's fault hits any node).
func (r *campaign) resolve(s Step, primary string) string {
	var candidates []string
	for _, n := range r.nodes {
		if s.Role == RoleStandby && n.Name == primary {
			continue
		}
		candidates = append(candidates, n.Name)
	}
	if s.Type == EtcdMemberKill && r.etcd != nil {
		// The external etcd's members are on hosts of their own.
		var members []string
		for _, m := range r.etcd.members {
			members = append(members, m.name)
		}
		return members[s.Pick%len(members)]
	}
	switch {
	case s.Role == RoleAll:
		return "all"
	case s.Role == RolePrimary && primary != "":
		return primary
	}
	return candidates[s.Pick%len(candidates)]
}

// inject puts step s in place on target. An error means the fault could
// not be injected; whatever part of it was put in place is healed by the
// returned heal, which is set even then.
func (r *campaign) inject(ctx context.Context, s Step, target, primary string) (injected, error) {
	in := injected{target: target}
	if s.Type == EtcdMemberKill && r.etcd != nil {
		return r.killEtcdMember(in, target)
	}
	var n lab.Node
	if target != "all" {
		var err error
		if n, err = r.l.Node(target); err != nil {
			return in, err
		}
	}
	switch s.Type {
	case NodeCrash:
		in.heal = func(ctx context.Context) error {
			return errors.Join(setLink(ctx, n.Link, "up"), r.startAgent(n.Name))
		}
		if err := setLink(ctx, n.Link, "down"); err != nil {
			return in, err
		}
		if err := r.requireAgent(n.Name); err != nil {
			return in, err
		}
		r.c.KillAgent(n.Name)
		pids, err := serverPIDs(r.l.Flavor().ServerBinary, n.DataDir)
		if err != nil {
			return in, err
		}
		in.detail = fmt.Sprintf("link down, agent and %d server processes killed", len(pids))
		return in, signalAll(pids, syscall.SIGKILL)

	case DBCrash:
		pid, err := r.postmaster(n)
		if err != nil {
			return in, err
		}
		in.detail = fmt.Sprintf("SIGKILL of postmaster %d", pid)
		return in, signalAll([]int{pid}, syscall.SIGKILL)

	case DBHung:
		pids, err := serverPIDs(r.l.Flavor().ServerBinary, n.DataDir)
		if err != nil {
			return in, err
		}
		if len(pids) == 0 {
			return in, fmt.Errorf("db-hung: no server process runs on %s", n.Name)
		}
		in.heal = func(context.Context) error {
			now, err := serverPIDs(r.l.Flavor().ServerBinary, n.DataDir)
			return errors.Join(err, signalAll(append(slices.Clone(pids), now...), syscall.SIGCONT))
		}
		in.detail = fmt.Sprintf("SIGSTOP of %d server processes", len(pids))
		return in, signalAll(pids, syscall.SIGSTOP)

	case AgentCrash, EtcdMemberKill:
		if err := r.requireAgent(n.Name); err != nil {
			return in, err
		}
		in.heal = func(context.Context) error { return r.startAgent(n.Name) }
		r.c.KillAgent(n.Name)
		in.detail = "agent killed (SIGKILL), its embedded etcd member with it"
		if r.etcd != nil {
			in.detail = "agent killed (SIGKILL)"
		}
		return in, nil

	case AgentFrozen:
		pids, err := r.agentPIDs(n.Name)
		if err != nil {
			return in, err
		}
		in.heal = func(context.Context) error { return signalAll(pids, syscall.SIGCONT) }
		in.detail = fmt.Sprintf("SIGSTOP of agent %v", pids)
		return in, signalAll(pids, syscall.SIGSTOP)

	case Partition:
		in.heal = func(ctx context.Context) error { return setLink(ctx, n.Link, "up") }
		in.detail = "link " + n.Link + " down"
		return in, setLink(ctx, n.Link, "down")

	case PartitionPrimaryDCS:
		in.detail = fmt.Sprintf("etcd ports 2379, 2380 dropped to and from %v", r.etcdPeers(n.Name))
		return r.firewall(ctx, in, n, dropRules(r.etcdPeers(n.Name), etcdPorts()))
	case PartitionPrimaryStandbys:
		in.detail = fmt.Sprintf("database port %d dropped to and from %v", n.Port, r.others(n.Name))
		return r.firewall(ctx, in, n, dropRules(r.others(n.Name), []int{n.Port}))
	case PartitionPrimaryClients:
		in.detail = "everything dropped to and from the client " + r.client.Host
		return r.firewall(ctx, in, n, dropRules([]string{r.client.Host}, nil))

	case PacketLoss:
		in.detail = fmt.Sprintf("%d%% of packets dropped both ways on eth0", s.Param)
		return r.firewall(ctx, in, n, packetLossRules(s.Param))

	case Latency:
		return r.latency(ctx, in, n, primary, time.Duration(s.Param)*time.Millisecond)

	case DiskFull:
		return r.diskFull(ctx, in, n, primary)

	case EtcdDown:
		return r.etcdDown(ctx, in)

	case Switchover:
		sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(sctx, r.o.Binary, "ctl", "--config", r.c.ConfigPath(n.Name), "switchover", "--wait", "60s").CombinedOutput()
		in.detail = "vigil ctl switchover: " + lastLines(string(out), 3)
		if err != nil {
			// Refusing a switchover is an answer, not a failed injection;
			// the settle period judges the cluster afterwards.
			in.detail = fmt.Sprintf("vigil ctl switchover failed (%v): %s", err, lastLines(string(out), 5))
			r.log.Warn("switchover failed", "err", err, "output", lastLines(string(out), 5))
		}
		return in, nil

	case Flapping:
		in.heal = func(ctx context.Context) error { return setLink(ctx, n.Link, "up") }
		var parts []string
		for i := 0; i+1 < len(s.Flaps); i += 2 {
			if err := setLink(ctx, n.Link, "down"); err != nil {
				return in, err
			}
			if err := clock.Sleep(ctx, s.Flaps[i]); err != nil {
				return in, err
			}
			if err := setLink(ctx, n.Link, "up"); err != nil {
				return in, err
			}
			parts = append(parts, fmt.Sprintf("down %s up %s", s.Flaps[i].Round(time.Millisecond), s.Flaps[i+1].Round(time.Millisecond)))
			if err := clock.Sleep(ctx, s.Flaps[i+1]); err != nil {
				return in, err
			}
		}
		in.detail = "link " + strings.Join(parts, ", ")
		return in, nil
	}
	return in, fmt.Errorf("fault %s: not implemented", s.Type)
}

// etcdPorts are etcd's client and peer ports.
func etcdPorts() []int { return []int{2379, 2380} }

// firewall loads script into n's namespace; healing deletes the table.
func (r *campaign) firewall(ctx context.Context, in injected, n lab.Node, script string) (injected, error) {
	in.heal = func(ctx context.Context) error { return RemoveRules(ctx, n.Netns) }
	return in, nft(ctx, n.Netns, script)
}

// packetLossRules drop percent % of the packets in and out of eth0, at
// random.
func packetLossRules(percent int) string {
	return fmt.Sprintf(`table inet %[1]s {
  chain in { type filter hook input priority -10; policy accept; iifname "eth0" numgen random mod 100 < %[2]d drop; }
  chain out { type filter hook output priority -10; policy accept; oifname "eth0" numgen random mod 100 < %[2]d drop; }
}
`, NFTTable, percent)
}

// DropPackets makes namespace ns drop percent % of the packets in and out
// of its eth0, at random (the packet-loss fault). RemoveRules undoes it.
func DropPackets(ctx context.Context, ns string, percent int) error {
	return nft(ctx, ns, packetLossRules(percent))
}

// DelayConnections sends every TCP connection that namespace ns opens to
// one of dsts through a delaying proxy in ns, which delays each chunk in
// either direction by a call of delay (the latency fault's mechanism).
// Connections already open to dsts are reset so that they come back
// through the proxy. RemoveRules and closing the proxy undo it; the proxy
// is returned, to be closed, also with an error once it was started.
// Its rules live in NFTTable beside DropPackets' (chains of their own).
func DelayConnections(ctx context.Context, ns string, dsts []string, delay func() time.Duration, log *slog.Logger) (*DelayProxy, error) {
	p, err := startDelayProxy(ns, delay, log)
	if err != nil {
		return nil, err
	}
	script := fmt.Sprintf(`table inet %s {
  chain delayed {
    type nat hook output priority -100; policy accept;
    meta mark != %d ip daddr { %s } meta l4proto tcp redirect to :%d
  }
}
`, NFTTable, proxyMark, strings.Join(dsts, ", "), p.Port())
	if err := nft(ctx, ns, script); err != nil {
		return p, err
	}
	return p, resetConnections(ctx, ns, dsts)
}

// dropRules drops traffic to and from peers, on ports (either end) when
// given, in both directions.
func dropRules(peers []string, ports []int) string {
	set := "{ " + strings.Join(peers, ", ") + " }"
	var sel []string
	if len(ports) == 0 {
		sel = []string{""}
	} else {
		ps := make([]string, len(ports))
		for i, p := range ports {
			ps[i] = strconv.Itoa(p)
		}
		pset := "{ " + strings.Join(ps, ", ") + " }"
		sel = []string{" tcp dport " + pset, " tcp sport " + pset}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n  chain in {\n    type filter hook input priority -10; policy accept;\n", NFTTable)
	for _, s := range sel {
		fmt.Fprintf(&b, "    ip saddr %s%s drop\n", set, s)
	}
	b.WriteString("  }\n  chain out {\n    type filter hook output priority -10; policy accept;\n")
	for _, s := range sel {
		fmt.Fprintf(&b, "    ip daddr %s%s drop\n", set, s)
	}
	b.WriteString("  }\n}\n")
	return b.String()
}

// latency sends every TCP connection between n and the other hosts
// through delaying proxies: one in n's namespace for the connections n
// opens, one in each other host's for those it opens to n (and to the VIP
// when n holds it). Existing connections are reset so that they come back
// through the proxies.
func (r *campaign) latency(ctx context.Context, in injected, n lab.Node, primary string, delay time.Duration) (injected, error) {
	type side struct {
		ns   string
		dsts []string
	}
	var others []string
	for _, m := range r.nodes {
		if m.Name != n.Name {
			others = append(others, m.Host)
		}
	}
	toN := []string{n.Host}
	if n.Name == primary && r.c.VIP() != "" {
		toN = append(toN, r.c.VIP())
	}
	fromN := append(slices.Clone(others), r.client.Host)
	if r.etcd != nil {
		fromN = append(fromN, r.etcd.hosts()...)
	}
	sides := []side{{ns: n.Netns, dsts: fromN}}
	for _, m := range r.nodes {
		if m.Name != n.Name {
			sides = append(sides, side{ns: m.Netns, dsts: toN})
		}
	}
	sides = append(sides, side{ns: r.client.Netns, dsts: toN})

	var proxies []*DelayProxy
	in.heal = func(ctx context.Context) error {
		var errs []error
		for _, s := range sides {
			errs = append(errs, RemoveRules(ctx, s.ns))
		}
		for _, p := range proxies {
			p.Close()
		}
		return errors.Join(errs...)
	}
	fixedDelay := func() time.Duration { return delay }
	for _, s := range sides {
		p, err := DelayConnections(ctx, s.ns, s.dsts, fixedDelay, r.log)
		if p != nil {
			proxies = append(proxies, p)
		}
		if err != nil {
			return in, err
		}
	}
	in.detail = fmt.Sprintf("every TCP connection to and from %s delayed %s each way (delaying proxies)", n.Name, delay)
	return in, nil
}

// etcdPeers lists the addresses of the etcd members node name talks to:
// the other database hosts' embedded members, or the external etcd.
func (r *campaign) etcdPeers(name string) []string {
	if r.etcd != nil {
		return r.etcd.hosts()
	}
	return r.others(name)
}

// killEtcdMember kills a member of the external etcd with SIGKILL; healing
// restarts it on its data directory.
func (r *campaign) killEtcdMember(in injected, name string) (injected, error) {
	m, err := r.etcd.member(name)
	if err != nil {
		return in, err
	}
	if len(m.pids()) == 0 {
		return in, fmt.Errorf("etcd member %s is not running", name)
	}
	in.heal = func(context.Context) error { return r.startMember(m) }
	pid := m.proc.Process.Pid
	r.killMember(m)
	in.detail = fmt.Sprintf("external etcd member %s (pid %d) killed (SIGKILL)", name, pid)
	return in, nil
}

// etcdDown cuts every etcd member from every other member and, with the
// external etcd, from every other host: nftables in each member's
// namespace drop etcd's ports. No quorum anywhere; the databases and the
// agents' APIs stay reachable.
func (r *campaign) etcdDown(ctx context.Context, in injected) (injected, error) {
	type member struct{ ns, host string }
	var members []member
	var all []string
	if r.etcd != nil {
		for _, m := range r.etcd.members {
			members = append(members, member{m.host.Netns, m.host.Host})
		}
		for _, n := range r.nodes {
			all = append(all, n.Host)
		}
		all = append(all, r.client.Host)
	} else {
		for _, n := range r.nodes {
			members = append(members, member{n.Netns, n.Host})
		}
	}
	for _, m := range members {
		all = append(all, m.host)
	}
	var heals []string
	in.heal = func(ctx context.Context) error {
		var errs []error
		for _, ns := range heals {
			errs = append(errs, RemoveRules(ctx, ns))
		}
		return errors.Join(errs...)
	}
	for _, m := range members {
		peers := slices.DeleteFunc(slices.Clone(all), func(a string) bool { return a == m.host })
		heals = append(heals, m.ns)
		if err := nft(ctx, m.ns, dropRules(peers, etcdPorts())); err != nil {
			return in, err
		}
	}
	in.detail = "etcd ports 2379 and 2380 dropped between every pair of hosts: no member reaches another"
	if r.etcd != nil {
		in.detail = fmt.Sprintf("etcd ports 2379 and 2380 dropped in every external member (%s) to and from every other host: no quorum, no client served",
			strings.Join(r.etcd.hosts(), ", "))
	}
	return in, nil
}

// others lists the addresses of every database host but name.
func (r *campaign) others(name string) []string {
	var out []string
	for _, n := range r.nodes {
		if n.Name != name {
			out = append(out, n.Host)
		}
	}
	return out
}

// postmaster reads n's postmaster pid and checks it is n's live server.
func (r *campaign) postmaster(n lab.Node) (int, error) {
	data, err := os.ReadFile(filepath.Join(n.DataDir, r.l.Flavor().PIDFile))
	if err != nil {
		return 0, fmt.Errorf("%s's server is not running: %w", n.Name, err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		return 0, fmt.Errorf("%s's pid file starts with %q", n.Name, line)
	}
	pids, err := serverPIDs(r.l.Flavor().ServerBinary, n.DataDir)
	if err != nil {
		return 0, err
	}
	if !slices.Contains(pids, pid) {
		return 0, fmt.Errorf("%s's server is not running (pid file names %d, not one of its processes %v)", n.Name, pid, pids)
	}
	return pid, nil
}

// agentPIDs finds node's agent process by its command line.
func (r *campaign) agentPIDs(node string) ([]int, error) {
	pids, err := cmdlinePIDs("agent", "--config", r.c.ConfigPath(node))
	if err != nil {
		return nil, err
	}
	if len(pids) == 0 {
		return nil, fmt.Errorf("the agent of %s is not running", node)
	}
	return pids, nil
}

func (r *campaign) requireAgent(node string) error {
	_, err := r.agentPIDs(node)
	return err
}

func (r *campaign) startAgent(node string) error {
	if pids, _ := cmdlinePIDs("agent", "--config", r.c.ConfigPath(node)); len(pids) > 0 {
		return nil
	}
	return r.c.StartAgent(node)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
