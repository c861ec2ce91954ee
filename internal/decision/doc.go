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
//
//   - No DCS, no promotion. A node that cannot reach the DCS, or cannot reach
//     any trusted IP (it may be the one cut off), never promotes; a leader in
//     that situation demotes itself before its lease can expire.
//
//   - The candidate is the standby with the most WAL, then the highest
//     priority, then the smallest name; one lagging more than
//     maximum_lag_on_failover behind the last position the leader published
//     refuses.
//
//   - In synchronous mode the DCS records a superset of the standbys that
//     PostgreSQL waits for (added to the DCS before PostgreSQL, removed from
//     it after). Every acknowledged commit is therefore on at least one
//     recorded standby, and only the recorded standby with the most WAL, seen
//     alongside every other recorded standby, may be promoted.
//
//   - The key before the server: a stopped former primary takes the leader
//     key (atomically; it fails if anyone holds it) before it starts as a
//     primary, never after. An agent that gave the key up because its
//     server failed (Input.GaveUpAt) does not start it again for
//     Config.StayDownFor (three lease TTLs): a standby is being promoted in
//     its place. Only if none took the key by then (none can) does the old
//     primary start again, the key first.
//
//   - A primary found running without a leader (a restarted agent, or one
//     paused past its lease) takes the free key back only when no member
//     and no record shows a newer timeline; otherwise it stops.
//
//   - A leader whose server runs but answers no SQL withdraws the routes at
//     once and, after UnresponsiveGrace, ends the server (immediate
//     shutdown, then SIGKILL within StopGrace) before releasing the key.
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
// Detection itself may wait for one renewal attempt, bounded by
// R = min(dcs_timeout, L) (Config.RenewalTimeout), so the budget is
//
//	D < T/2 - L - R   (Config.DemotionBudget; Config.CheckTiming verifies it is positive)
//
// With the defaults (T = 3 s, L = 0.5 s, R = 0.5 s) a demotion has 0.5 s,
// while stopping a server in immediate mode and removing the VIP take about
// 0.1 s. A server that does not stop within half the budget
// (Config.StopGrace: it hangs on a dead disk, or is SIGSTOPped) is killed
// with SIGKILL, which works on stopped processes too. A
// standby sees the key free only after T, by which time the old leader has
// been down for T/2 - L - D. The agent's lease keeper enforces the demotion
// on its own timer, so a long step of the main loop cannot delay it.
//
// # Failsafe
//
// With Config.Failsafe a leader that cannot reach the DCS may keep the
// primary past T/2. After each failed renewal it sends every other member
// of its last DCS view a ping through that member's agent API. A member
// that confirms promises not to take the leader key for P = T
// (Config.FailsafePromise) from when it received the ping; it refuses when
// it holds or is taking the key, or sees another leader. Let s_i be the
// send time of the newest ping member i confirmed. Member i cannot promote
// before s_i + P. The leader keeps the role at time t only while
//
//	t < min_i(s_i) + P - L - R - D
//
// (Config.FailsafeHolds): if it holds at one check and not at the next (at
// most L + R later), the demotion then ends D later, still before the
// earliest promise expires. No confirmation from some member, or no other
// member at all, means no failsafe: the rule above applies unchanged. The
// members compare durations on their own clocks only, so clock offsets
// between hosts do not matter; only their rates must agree over P.
// A member that joins while the DCS is down is not asked; it is kept from
// promoting by the same rule as any standby whose upstream is alive.
//
// # Nodes without data
//
// A node whose data directory holds no cluster (Local.NoData) is built,
// never promoted: it bootstraps only while the cluster shows no trace of
// ever existing (no initialize key, no leader ever recorded, no member
// with data), and the initialize key, taken atomically, lets one node do
// so; it clones the leader once the leader is writable; otherwise it
// waits. It publishes no running standby, so no candidate count includes
// it until it streams. A node whose data names another system identifier
// than the one the initialize key recorded is refused: nothing starts,
// follows, rejoins or copies over it.
package decision
