// Package chaos runs a seeded fault campaign on a real cluster: a netns lab
// of three PostgreSQL hosts and a client host, agents as their own
// processes, a client that records every write, and a random but
// reproducible schedule of faults, each healed and followed by a settle
// period. What happened is written with package history; package check
// judges it.
//
// The catalogue (the names are the values of `vigil chaos --faults`):
//
//   - node-crash: the node's link goes down and its agent and every
//     PostgreSQL process are killed with SIGKILL, as when the machine
//     dies; healed by bringing the link up and restarting the agent.
//   - db-crash: SIGKILL of the postmaster; the agent must cope alone.
//   - db-hung: SIGSTOP of every PostgreSQL process of the node (a dead SAN,
//     a kernel stuck in D state) for 2×lease_ttl+4 s, then SIGCONT.
//   - agent-crash: SIGKILL of a node's agent, restarted within lease_ttl.
//   - agent-frozen: SIGSTOP of the primary's agent for 2×lease_ttl+1 s
//     (longer than the lease), then SIGCONT.
//   - partition: the node's link is cut (every address, both ways).
//   - partition-primary-dcs: nftables in the primary's namespace drop TCP
//     ports 2379 and 2380 to and from the other hosts: cut from the other
//     etcd members only.
//   - partition-primary-standbys: drop the replication port (the database
//     port) between the primary and its standbys. With embedded etcd the
//     standbys' hosts are also etcd members; those ports stay open, so
//     this cuts replication only, not the DCS.
//   - partition-primary-clients: drop everything between the primary and
//     the client host.
//   - packet-loss: nftables `numgen random mod 100 < N drop` on every
//     packet in and out of a node's eth0 (N from 20 to 40).
//   - latency: this kernel has no netem (nor fq, so no EDT delay): every
//     TCP connection to and from the node goes through a delaying proxy
//     run by the campaign (nftables redirects them, existing connections
//     are reset with `ss -K` so that they reconnect through it); each
//     direction is delayed by 50 to 200 ms.
//   - etcd-member-kill: with embedded etcd a member lives in its agent's
//     process, so this kills a standby's agent (its member with it) for
//     2×lease_ttl+2 s and restarts it; agent-crash is the short kill of
//     any agent. With --dcs external it kills one of the external
//     members (SIGKILL) and restarts it on its data directory.
//   - etcd-down: nftables in every database host drop etcd's ports between
//     the hosts for 2×lease_ttl: each member is alone, no quorum anywhere,
//     while every database and every agent API stays reachable. With
//     --dcs external the rules go into each external member's namespace,
//     against every other host (the other members included).
//   - switchover: `vigil ctl switchover` to the best standby.
//   - flapping: the primary's link goes down and up every one to four
//     seconds, four times.
//   - disk-full: the primary's WAL filesystem is filled (a file takes
//     every free block) for 10 s, and the server is made to switch to new
//     WAL segments until creating one fails with ENOSPC, a PANIC; healed
//     by deleting the file. For it every server's WAL directory is moved,
//     before the agents start, to a tmpfs of its own (walFSSize) and
//     replaced with a symbolic link; the campaign unmounts them at the end.
//     A base-backup rejoin makes a new data directory whose WAL is on the
//     ordinary disk: after the step the campaign kills that standby's
//     agent, moves its WAL back to its filesystem and restarts both.
//
// With --dcs external the agents use a separate 3-member etcd instead of
// embedded members: `vigil witness` processes on three more hosts of the
// lab's bridge, with mutual TLS from a CA made for the campaign. The
// partition faults that cut etcd then cut the node from those hosts.
package chaos

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Fault type names.
const (
	NodeCrash                = "node-crash"
	DBCrash                  = "db-crash"
	DBHung                   = "db-hung"
	AgentCrash               = "agent-crash"
	AgentFrozen              = "agent-frozen"
	Partition                = "partition"
	PartitionPrimaryDCS      = "partition-primary-dcs"
	PartitionPrimaryStandbys = "partition-primary-standbys"
	PartitionPrimaryClients  = "partition-primary-clients"
	PacketLoss               = "packet-loss"
	Latency                  = "latency"
	EtcdMemberKill           = "etcd-member-kill"
	EtcdDown                 = "etcd-down"
	DiskFull                 = "disk-full"
	Switchover               = "switchover"
	Flapping                 = "flapping"
)

// Role is which node a step hits, resolved when the step runs: the
// schedule is fixed by the seed, the primary at that moment is not.
type Role string

// Roles.
const (
	RolePrimary Role = "primary"
	RoleStandby Role = "standby"
	RoleAny     Role = "any"
	RoleAll     Role = "all"
)

// faultType describes one entry of the catalogue.
type faultType struct {
	name string
	// roles the target is drawn from.
	roles []Role
	// hold is how long the fault stays before it is healed.
	hold func(ttl time.Duration) time.Duration
}

func fixed(d time.Duration) func(time.Duration) time.Duration {
	return func(time.Duration) time.Duration { return d }
}

func ttlTimes(k int, plus time.Duration) func(time.Duration) time.Duration {
	return func(ttl time.Duration) time.Duration { return time.Duration(k)*ttl + plus }
}

// catalogue lists every fault type in a fixed order (the order of the
// report and of the default --faults).
func catalogue() []faultType {
	return []faultType{
		{name: NodeCrash, roles: []Role{RolePrimary, RolePrimary, RoleStandby}, hold: ttlTimes(2, 0)},
		{name: DBCrash, roles: []Role{RolePrimary, RolePrimary, RoleStandby}, hold: fixed(0)},
		{name: DBHung, roles: []Role{RolePrimary, RolePrimary, RoleStandby}, hold: ttlTimes(2, 4*time.Second)},
		{name: AgentCrash, roles: []Role{RoleAny}, hold: ttlTimes(0, time.Second)},
		{name: AgentFrozen, roles: []Role{RolePrimary}, hold: ttlTimes(2, time.Second)},
		{name: Partition, roles: []Role{RoleAny}, hold: ttlTimes(2, 2*time.Second)},
		{name: PartitionPrimaryDCS, roles: []Role{RolePrimary}, hold: ttlTimes(2, 2*time.Second)},
		{name: PartitionPrimaryStandbys, roles: []Role{RolePrimary}, hold: ttlTimes(2, 2*time.Second)},
		{name: PartitionPrimaryClients, roles: []Role{RolePrimary}, hold: ttlTimes(2, 2*time.Second)},
		{name: PacketLoss, roles: []Role{RoleAny}, hold: fixed(10 * time.Second)},
		{name: Latency, roles: []Role{RoleAny}, hold: fixed(10 * time.Second)},
		{name: EtcdMemberKill, roles: []Role{RoleStandby}, hold: ttlTimes(2, 2*time.Second)},
		{name: EtcdDown, roles: []Role{RoleAll}, hold: ttlTimes(2, 0)},
		{name: DiskFull, roles: []Role{RolePrimary}, hold: fixed(10 * time.Second)},
		{name: Switchover, roles: []Role{RolePrimary}, hold: fixed(0)},
		{name: Flapping, roles: []Role{RolePrimary}, hold: fixed(0)},
	}
}

// flapCycles is how many times flapping cuts the link; each cut lasts one
// to four seconds, and so does each pause between cuts.
const flapCycles = 4

// settleAllowance is what the schedule counts per fault on top of its hold
// for the recovery and a short calm before the next fault.
const settleAllowance = 12 * time.Second

func lookup(name string) (faultType, bool) {
	for _, f := range catalogue() {
		if f.name == name {
			return f, true
		}
	}
	return faultType{}, false
}

// Catalogue returns every fault type's name, in the catalogue's order.
func Catalogue() []string {
	out := make([]string, len(catalogue()))
	for i, f := range catalogue() {
		out[i] = f.name
	}
	return out
}

// ParseFaults reads a comma-separated list of fault type names; empty or
// "all" means the whole catalogue. Unknown names and duplicates are errors.
func ParseFaults(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "all" {
		return Catalogue(), nil
	}
	var out []string
	for _, part := range strings.Split(s, ",") {
		name := strings.TrimSpace(part)
		if name == "" {
			return nil, fmt.Errorf("--faults %q: empty fault name", s)
		}
		if _, ok := lookup(name); !ok {
			return nil, fmt.Errorf("--faults: unknown fault %q; the catalogue has %s", name, strings.Join(Catalogue(), ", "))
		}
		if slices.Contains(out, name) {
			return nil, fmt.Errorf("--faults: %s is listed twice", name)
		}
		out = append(out, name)
	}
	return out, nil
}

// cost is what the schedule budgets for one fault of type name.
func cost(name string, ttl time.Duration) time.Duration {
	f, _ := lookup(name)
	d := f.hold(ttl) + settleAllowance
	if name == Flapping {
		d += flapCycles * 5 * time.Second
	}
	if name == Switchover {
		d += 5 * time.Second
	}
	return d
}

// MinDuration is the shortest campaign that holds one fault of each type.
func MinDuration(types []string, ttl time.Duration) time.Duration {
	var d time.Duration
	for _, t := range types {
		d += cost(t, ttl)
	}
	return d
}
