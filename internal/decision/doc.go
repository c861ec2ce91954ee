// Package decision is Vigil's HA decision core: a pure, deterministic function
// from what one agent knows (its own database, the cluster state in the DCS,
// whether it can reach the trusted IPs, the time) to what it must do next.
// It performs no I/O and reads no clock; the agent (package agent) observes,
// calls Decide, and carries the actions out. The same separation as etcd's
// raft package: every safety rule lives here and is table-tested.
//
// # Safety rules
//
//   - At most one writable primary: a node is primary only while it holds the
//     leader key in the DCS, which lives under a lease. A node that runs a
//     primary without holding the key stops it at once.
//   - No DCS, no promotion. A node that cannot reach the DCS, or cannot reach
//     any trusted IP (it may be the one cut off), never promotes; a leader in
//     that situation demotes itself before its lease can expire.
//   - The candidate is the standby with the most WAL, then the highest
//     priority, then the smallest name; one lagging more than
//     maximum_lag_on_failover behind the last position the leader published
//     refuses.
//   - In synchronous mode the DCS records a superset of the standbys that
//     PostgreSQL waits for (added to the DCS before PostgreSQL, removed from
//     it after). Every acknowledged commit is therefore on at least one
//     recorded standby, and only the recorded standby with the most WAL, seen
//     alongside every other recorded standby, may be promoted.
//
// # Lease arithmetic
//
// Let T be the leader lease TTL, L the loop interval and D the time a
// demotion (stop immediate, remove the VIP) takes. The leader renews its
// lease every L. etcd expires a lease T after the last renewal it received;
// that renewal was sent at or after the moment the agent recorded as
// LeaseRenewedAt, so no other node can acquire the key before
// LeaseRenewedAt + T (an etcd leader change only extends leases).
//
// When renewals fail, the leader keeps serving until
//
//	LeaseRenewedAt + T/2
//
// and demotes at the first loop tick after that, at most L later, finishing
// at most D after that. The configuration enforces L < T/2, and the demotion
// must fit in what is left:
//
//	T/2 + L + D < T   ⇔   D < T/2 - L
//
// With the defaults (T = 3 s, L = 0.5 s) a demotion has 1 s, while stopping
// a server in immediate mode and removing the VIP take about 0.1 s. A
// standby sees the key free only after T, by which time the old leader has
// been down for T/2 - L - D. The agent's lease keeper enforces the demotion
// on its own timer, so a long step of the main loop cannot delay it.
package decision
