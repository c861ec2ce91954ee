package decision

import (
	"fmt"
	"time"

	"github.com/vigil-ha/vigil/internal/wal"
)

// SyncMode is the synchronous replication policy.
type SyncMode string

// Synchronous modes.
const (
	// SyncOff: asynchronous replication; a failover may lose the last commits.
	SyncOff SyncMode = "off"
	// SyncOn: commits wait for one standby while one is healthy; with none
	// left the primary goes asynchronous rather than stop accepting writes.
	SyncOn SyncMode = "on"
	// SyncStrict: commits always wait for a standby; with none left writes
	// block. No acknowledged commit can ever be lost.
	SyncStrict SyncMode = "strict"
)

// CrashPolicy says what the leader's agent does when its database dies
// while the agent itself is fine.
type CrashPolicy string

// Crash policies.
const (
	// CrashFailover releases the leader key at once so a standby takes over;
	// the crashed server stays down until rejoined. Fast, and never exposes a
	// server that is still in crash recovery.
	CrashFailover CrashPolicy = "failover"
	// CrashRestart restarts the server in place and keeps the key for up to
	// Config.RestartTimeout, then fails over.
	CrashRestart CrashPolicy = "restart"
)

// Config is the part of the cluster configuration the decisions depend on.
type Config struct {
	LeaseTTL     time.Duration
	LoopInterval time.Duration
	// DCSTimeout bounds one DCS request, a lease renewal included.
	DCSTimeout           time.Duration
	MaximumLagOnFailover uint64
	SyncMode             SyncMode
	PrimaryCrash         CrashPolicy
	RestartTimeout       time.Duration
	// Failsafe keeps the primary through a DCS outage while every other
	// member confirms, directly, that it will not promote (see the package
	// doc, "Failsafe").
	Failsafe bool
	// AutoRejoin: a stopped former primary, or a standby that cannot follow
	// the leader (Config.CannotFollowAfter), rejoins the writable leader as
	// a standby by itself (pg_rewind or a base backup) instead of waiting
	// for `vigil ctl rejoin`.
	AutoRejoin bool
}

// DemoteAfter is how long after its last successful renewal a leader that
// cannot renew keeps serving (see the package doc for the arithmetic).
func (c Config) DemoteAfter() time.Duration { return c.LeaseTTL / 2 }

// DemotionBudget is D's bound in the package doc: the time a demotion may
// take (routes down, server ended) so that it is over before the lease can
// expire elsewhere.
func (c Config) DemotionBudget() time.Duration {
	return c.LeaseTTL/2 - c.LoopInterval - c.RenewalTimeout()
}

// RenewalTimeout bounds one lease renewal: a DCS request, and never longer
// than a loop, so that the renewals keep their pace.
func (c Config) RenewalTimeout() time.Duration { return min(c.DCSTimeout, c.LoopInterval) }

// StopGrace is how long a demotion waits for an immediate shutdown before
// it kills the server's processes: half the budget, so that the kill fits in
// the rest.
func (c Config) StopGrace() time.Duration { return c.DemotionBudget() / 2 }

// UnresponsiveGrace is how long a leader whose server runs but answers no
// SQL keeps the key (routes already withdrawn) before it kills the server
// and gives the key up: long enough to ride out one slow probe, short
// enough that a hung server is replaced within about one lease TTL.
func (c Config) UnresponsiveGrace() time.Duration { return c.LeaseTTL / 2 }

// IsolationGrace is how long a primary goes on when no trusted IP answers
// before it gives up its role: a check is one round of TCP connections,
// and under packet loss a round can fail while the network is fine (the
// stability bench saw a primary give up its key every 25 s at 2 % loss
// with no grace). A standby never promotes while the last round failed.
func (c Config) IsolationGrace() time.Duration { return c.LeaseTTL / 2 }

// FailsafePromise is how long a member that confirmed a failsafe ping
// promises not to promote, counted from when it received the ping.
func (c Config) FailsafePromise() time.Duration { return c.LeaseTTL }

// FailsafeHolds says whether a leader without the DCS may keep the primary
// role at now: members are the other members of its last DCS view, acks the
// send time of the newest ping each confirmed. The role holds while the
// earliest of those promises, minus the time to notice (a loop and a ping)
// and to demote, lies ahead.
func (c Config) FailsafeHolds(now time.Time, members []string, acks map[string]time.Time) (bool, string) {
	if !c.Failsafe {
		return false, "failsafe mode is off"
	}
	if len(members) == 0 {
		return false, "failsafe: no other member is known, so none can confirm"
	}
	var oldest time.Time
	for _, m := range members {
		at, ok := acks[m]
		if !ok {
			return false, "failsafe: " + m + " has not confirmed that it will not promote"
		}
		if oldest.IsZero() || at.Before(oldest) {
			oldest = at
		}
	}
	deadline := oldest.Add(c.FailsafePromise() - c.LoopInterval - c.RenewalTimeout() - c.DemotionBudget())
	if !now.Before(deadline) {
		return false, fmt.Sprintf("failsafe: the oldest confirmation was sent %s ago, too long to rely on", now.Sub(oldest).Round(time.Millisecond))
	}
	return true, fmt.Sprintf("failsafe: all %d other members confirmed they will not promote (for %s more)", len(members), deadline.Sub(now).Round(time.Millisecond))
}

// StayDownFor is how long a former leader that gave its key up for a
// failed server leaves the key to the standbys: a candidate takes it within
// a loop or two of seeing it free, so three lease TTLs without a new leader
// mean that no standby can be promoted.
func (c Config) StayDownFor() time.Duration { return 3 * c.LeaseTTL }

// UpstreamSilentAfter is how long a standby's WAL receiver may go without
// a message from its upstream before that upstream counts as gone. It is
// the guard against promoting next to a primary whose agent froze: that
// server still takes writes, and when no WAL flows it speaks only through
// keepalives, sent once its walsender has had no reply for
// walSenderTimeout/2. A lease TTL on top of that gap leaves room for a
// loaded host; a silence bound of the lease TTL alone was shorter than
// the gap plus scheduling delays, and a loaded 2-core lab promoted next
// to a serving primary. A negative walSenderTimeout (unknown) keeps the
// lease TTL; zero (keepalives disabled) returns 0: silence proves nothing,
// only the receiver's own state (wal_receiver_timeout) does.
func (c Config) UpstreamSilentAfter(walSenderTimeout time.Duration) time.Duration {
	switch {
	case walSenderTimeout < 0:
		return c.LeaseTTL
	case walSenderTimeout == 0:
		return 0
	}
	return c.LeaseTTL + walSenderTimeout/2
}

// CannotFollowAfter is how long a standby configured for the writable
// leader may go without streaming from it before it is rejoined (see
// Decide): a standby that merely reconnects streams again within a retry
// or two (wal_retrieve_retry_interval, 5 s by default).
func (c Config) CannotFollowAfter() time.Duration { return 3 * c.LeaseTTL }

// TimingProblem names the timing setting that breaks the lease arithmetic.
type TimingProblem struct {
	Field  string // lease_ttl, loop_interval or dcs_timeout
	Reason string
}

func (p *TimingProblem) Error() string { return p.Field + " " + p.Reason }

// CheckTiming verifies the lease arithmetic of the package doc. Every
// place that accepts timings (configuration, agent, labs) asks here.
func (c Config) CheckTiming() *TimingProblem {
	half := c.LeaseTTL / 2
	switch {
	case c.LeaseTTL <= 0:
		return &TimingProblem{"lease_ttl", "must be positive"}
	case c.LoopInterval <= 0:
		return &TimingProblem{"loop_interval", "must be positive"}
	case c.LoopInterval >= half:
		return &TimingProblem{"loop_interval", fmt.Sprintf("must be less than half of lease_ttl (%s): a leader that cannot renew its lease must get to demote itself before the lease expires", half)}
	case c.DCSTimeout < 0 || c.LoopInterval+c.DCSTimeout >= half:
		return &TimingProblem{"dcs_timeout", fmt.Sprintf("must be less than lease_ttl/2 - loop_interval (%s): a leader whose lease renewal hangs this long must still demote itself before the lease expires", half-c.LoopInterval)}
	}
	return nil
}

// Role is what a node's database currently is.
type Role string

// Roles.
const (
	RolePrimary Role = "primary"
	RoleStandby Role = "standby"
	RoleStopped Role = "stopped"
	RoleUnknown Role = "unknown"
)

// Local is this node's own state, observed by its agent this tick.
type Local struct {
	Name     string
	Priority int // 0 = never promote
	// Running: the control binary reports a server process.
	Running bool
	// Reachable: SQL sessions work.
	Reachable  bool
	InRecovery bool
	// StandbyConfigured: the data directory holds a standby signal, so a
	// stopped server would start as a standby.
	StandbyConfigured bool
	Timeline          uint32
	// WAL is the newest position this server has: the current write position
	// of a primary, the newest received or replayed position of a standby.
	WAL wal.LSN
	// Replayed is the newest position this server has applied: of a
	// standby, its replay position (what it still has to replay before it
	// can take writes is WAL - Replayed); of a primary, WAL.
	Replayed wal.LSN
	// Writable: the last write probe committed.
	Writable bool
	// ProbeSyncWait: the last write probe waited for a synchronous standby.
	ProbeSyncWait bool
	SystemID      string
	// Upstream is the member this standby is configured to stream from
	// ("" when none or unknown).
	Upstream string
	// Streaming: this standby's WAL receiver is streaming and heard from
	// its upstream within Config.UpstreamSilentAfter, so that server is
	// alive and may be a primary whose agent died.
	Streaming bool
	// UpstreamIsPrimary: the server this standby is configured to stream
	// from answered this tick as a primary. The agent asks only while there
	// is no leader and the receiver is quiet (Streaming false): a receiver
	// that timed out under load says nothing of a primary whose agent froze.
	UpstreamIsPrimary bool
	// StreamingStandbys are the members streaming from this server.
	StreamingStandbys []string
	// SyncStandbys are the standbys named in synchronous_standby_names.
	SyncStandbys []string
	// DownSince is when the database was first seen down (zero while up).
	DownSince time.Time
	// NotStreamingSince is when this standby was first seen not streaming
	// (zero while it streams, and for a server that is not a standby).
	NotStreamingSince time.Time
	// NoData: the data directory holds no cluster (missing, empty, or
	// left half-built by an interrupted bootstrap or clone). Such a node
	// is built (Bootstrap, Clone) and never a candidate until it streams.
	NoData bool
}

// Role derives the role from the observation.
func (l Local) Role() Role {
	switch {
	case !l.Running:
		return RoleStopped
	case !l.Reachable:
		return RoleUnknown
	case l.InRecovery:
		return RoleStandby
	default:
		return RolePrimary
	}
}

// Member is what another agent published about its node.
type Member struct {
	Name       string  `json:"name"`
	Role       Role    `json:"role"`
	Reachable  bool    `json:"reachable"`
	InRecovery bool    `json:"in_recovery"`
	Writable   bool    `json:"writable"`
	Timeline   uint32  `json:"timeline"`
	WAL        wal.LSN `json:"wal"`
	Replayed   wal.LSN `json:"replayed,omitempty"`
	Priority   int     `json:"priority"`
	Isolated   bool    `json:"isolated"`
	SystemID   string  `json:"system_id"`
	Upstream   string  `json:"upstream,omitempty"`
}

// Cluster is the DCS as this agent read it this tick.
type Cluster struct {
	// Reachable is false when the DCS could not be read: everything else is
	// then unknown.
	Reachable bool
	// Leader is the holder of the leader key, "" when the key is free.
	Leader string
	// Members are the published states of the live members (their keys live
	// under their own leases, so a dead agent's entry disappears).
	Members map[string]Member
	Paused  bool
	// Request is a pending manual failover or switchover, nil for none.
	Request *Request
	// SyncStandbys is the recorded synchronous set (see package doc).
	SyncStandbys []string
	// LastLeaderWAL and LastLeaderTimeline are the newest position and
	// timeline a leader published; they outlive the leader. A timeline of
	// 0 means the cluster has never had a leader.
	LastLeaderWAL      wal.LSN
	LastLeaderTimeline uint32
	// LastLeader is the node that published them.
	LastLeader string
	// Initialize is the holder of the initialize key ("" when nobody
	// created the cluster through Vigil yet), InitializedSystemID the
	// system identifier it recorded once the cluster existed ("" while
	// the bootstrap runs).
	Initialize          string
	InitializedSystemID string
}

// Request kinds.
const (
	RequestFailover   = "failover"
	RequestSwitchover = "switchover"
	// RequestRejoin asks node To to come back as a standby of the leader.
	RequestRejoin = "rejoin"
	// RequestReinit asks node To, not the leader, to rebuild its server
	// from the leader by a base backup, whatever state its data is in.
	RequestReinit = "reinit"
)

// RequestTimeout: a request nobody acted on within this long is ignored,
// so a target that died cannot block automatic failover for ever.
const RequestTimeout = time.Minute

// Request is an operator's manual failover, switchover, rejoin or reinit.
type Request struct {
	Kind string
	// From is the leader a switchover replaces; To the node to promote
	// (empty in a switchover: the best candidate).
	From, To string
	// At is when a switchover may start (zero: now).
	At         time.Time
	Created    time.Time
	HandedOver bool
}

// promotes reports whether the request asks for a new primary (a failover
// or a switchover), as opposed to work on one node (a rejoin or reinit).
func (r *Request) promotes() bool {
	return r != nil && (r.Kind == RequestFailover || r.Kind == RequestSwitchover)
}

// active reports whether the request still stands at now.
func (r *Request) active(now time.Time) bool {
	return r != nil && RequestActive(r.Created, r.At, now)
}

// RequestActive is the one rule for a request's life: made at created, to
// start at at (zero: at once), it stands for RequestTimeout from its start.
// The agents and `vigil ctl` ask here about the DCS's requests too.
func RequestActive(created, at, now time.Time) bool {
	start := created
	if at.After(start) {
		start = at
	}
	return now.Sub(start) < RequestTimeout
}

// Input is everything Decide looks at.
type Input struct {
	Now     time.Time
	Config  Config
	Self    Local
	Cluster Cluster
	// TrustedReachable: at least one trusted IP answered (or none are
	// configured and isolation checks are off).
	TrustedReachable bool
	// TrustedUnreachableSince is when the rounds of trusted-IP checks
	// began to fail (zero while they answer; zero also when unknown, which
	// counts as failing for longer than any grace).
	TrustedUnreachableSince time.Time
	// HoldsLeader: this agent acquired the leader key and its last renewal
	// succeeded at LeaseRenewedAt.
	HoldsLeader    bool
	LeaseRenewedAt time.Time
	// GaveUpAt: when this agent gave the leader key up because its server
	// could not write (crashed, hung, read-only); zero when it did not. A
	// standby is to be promoted in its place, so for Config.StayDownFor the
	// old server must not come back as a primary. If no standby took the
	// key by then, none can, and the old primary may start again (taking
	// the key first, as always).
	GaveUpAt time.Time
	// FailsafeMembers and FailsafeAcks feed Config.FailsafeHolds for a
	// leader that cannot reach the DCS.
	FailsafeMembers []string
	FailsafeAcks    map[string]time.Time
	// PromisedUntil: this node confirmed a failsafe leader's ping and must
	// not take the leader key before then.
	PromisedUntil time.Time
}

// ActionKind names what the agent must do.
type ActionKind string

// Actions, carried out by the agent in the order returned.
const (
	// RenewLeader refreshes the leader lease.
	RenewLeader ActionKind = "renew_leader"
	// AcquireLeader takes the free leader key, atomically: it fails when
	// another node holds it, and the actions after it are then skipped.
	AcquireLeader ActionKind = "acquire_leader"
	// ReleaseLeader deletes the leader key so that a standby can take over at once.
	ReleaseLeader ActionKind = "release_leader"
	// Failover runs the failover procedure: take the key, fence, promote,
	// pass the readiness gate, fix synchronous replication, checkpoint,
	// publish. Target is the leader being replaced, if known.
	Failover ActionKind = "failover"
	// CompletePromotion resumes a promotion this leader started (its server
	// is still in recovery): promote, gate, publish.
	CompletePromotion ActionKind = "complete_promotion"
	// Demote ends a server that must not be a primary: immediate shutdown,
	// and SIGKILL of its processes when that does not finish within
	// Config.StopGrace.
	Demote ActionKind = "demote"
	// StartStandby starts a stopped server configured as a standby.
	StartStandby ActionKind = "start_standby"
	// RestartPrimary starts the leader's crashed server in place.
	RestartPrimary ActionKind = "restart_primary"
	// StartPrimary starts a stopped former primary at a cold start, when
	// no member is ahead of it. It always follows AcquireLeader.
	StartPrimary ActionKind = "start_primary"
	// Follow points this standby at Target, the leader.
	Follow ActionKind = "follow"
	// PublishWritable records in the DCS that this node is the writable
	// primary: the signal routers (VIP, health endpoint) wait for.
	PublishWritable ActionKind = "publish_writable"
	// WithdrawWritable removes that record (or the routes) at once.
	WithdrawWritable ActionKind = "withdraw_writable"
	// SetSyncKey records Names as the synchronous set in the DCS.
	SetSyncKey ActionKind = "set_sync_key"
	// SetSyncStandbys sets synchronous_standby_names to Names (empty: async).
	SetSyncStandbys ActionKind = "set_sync_standbys"
	// Switchover hands the primary role over to Target with no data loss:
	// routes down, clean stop, wait until Target has all WAL, follow it,
	// release the key to it.
	Switchover ActionKind = "switchover"
	// ClearRequest removes a request that is done or cannot be honoured.
	ClearRequest ActionKind = "clear_request"
	// Rejoin makes this former primary a standby of Target, the writable
	// leader: pg_rewind, or a base backup when a rewind is impossible.
	Rejoin ActionKind = "rejoin"
	// Reinit rebuilds this node's server as a standby of Target, the
	// writable leader, by a base backup: the server is stopped if it runs
	// and its data directory moved aside (never deleted), whatever it
	// holds, since a damaged directory can fool the rejoin's assessment.
	Reinit ActionKind = "reinit"
	// Bootstrap creates the cluster on this node, whose data directory
	// holds none: take the initialize key (atomically: it fails when
	// another node holds it, and nothing is done), initdb or the
	// configured bootstrap command, the server settings, roles and
	// schema Vigil needs, then record the system identifier.
	Bootstrap ActionKind = "bootstrap"
	// Clone builds this node, whose data directory holds no cluster, as a
	// standby of Target, the writable leader (a base backup or the
	// configured replica methods).
	Clone ActionKind = "clone"
)

// Action is one step for the agent.
type Action struct {
	Kind   ActionKind `json:"kind"`
	Target string     `json:"target,omitempty"`
	Names  []string   `json:"names,omitempty"`
	// Requested: the action carries out the operator's pending request
	// (Cluster.Request), which the agent then names in its log and the
	// history record; false when the agent acts on its own.
	Requested bool `json:"requested,omitempty"`
}

// Output is Decide's answer: the actions and why.
type Output struct {
	Role    Role     `json:"role"`
	Actions []Action `json:"actions"`
	Reason  string   `json:"reason"`
}

// Has reports whether the output contains an action of kind k.
func (o Output) Has(k ActionKind) bool {
	for _, a := range o.Actions {
		if a.Kind == k {
			return true
		}
	}
	return false
}
