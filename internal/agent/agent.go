// Package agent runs beside one database node: every loop it observes its
// server, reads the cluster from the DCS, checks isolation, asks the decision
// core what to do, and does it. The decisions live in package decision; this
// package only performs I/O and keeps the memory a decision needs (whether
// this agent holds the leader lease, since when the database is down).
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/internal/clock"
	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
	"github.com/vigil-ha/vigil/internal/failover"
	"github.com/vigil-ha/vigil/internal/isolation"
	"github.com/vigil-ha/vigil/internal/pgctl"
	"github.com/vigil-ha/vigil/internal/timeline"
	"github.com/vigil-ha/vigil/internal/wal"
)

// Router is anything that sends clients to the writable primary: the VIP,
// a health endpoint. Up is called only after the node proved it can write;
// Down as soon as it may no longer be the primary. Both are idempotent.
type Router interface {
	Name() string
	Up(ctx context.Context) error
	Down(ctx context.Context) error
}

// Prober is a Router that can check, before it comes up, that no other
// host holds its address; the failover probes while the server promotes
// and the next Up trusts that probe (vip.Manager).
type Prober interface {
	Probe(ctx context.Context) (evidence string, err error)
}

// Fencer stops a former primary by means other than its own agent (a
// command, SSH). It is optional.
type Fencer interface {
	Fence(ctx context.Context, old dcs.Member) (evidence string, err error)
}

// Options configure an agent.
type Options struct {
	Cluster  string
	Node     string
	Host     string // address the other members use for this node's database
	Port     int
	Priority int

	// Server is the database server (a *database.Server); Control is what
	// the agent knows of it outside SQL, derived from a *database.Server
	// when nil.
	Server  Server
	Control Control
	// Store is the DCS (a *dcs.Store).
	Store Store
	// Trusted checks for isolation (an isolation.Checker; nil: none
	// configured, the node is never considered cut off).
	Trusted TrustedChecker
	// Decision holds TTL, loop interval, synchronous mode, crash policy.
	Decision decision.Config

	DCSTimeout       time.Duration
	DBTimeout        time.Duration
	PromoteTimeout   time.Duration
	ReadinessTimeout time.Duration

	// ReplicationUser and ReplicationPassFile are how standbys connect to
	// the primary (the pass file is in pgpass format, readable by the
	// server's OS user).
	ReplicationUser     string
	ReplicationPassFile string

	Routers []Router
	Fencer  Fencer

	// OnRoleChange is run (argv, no shell) with the new role and the
	// cluster name appended whenever this node's role changes, like
	// Patroni's on_role_change. It runs in the background, bounded by
	// CallbackTimeout; a failure is logged and never delays a failover.
	OnRoleChange    []string
	CallbackTimeout time.Duration

	// EmbeddedEtcd is the client URL of the etcd member embedded in this
	// agent ("" with an external etcd). The leader keeps etcd's raft
	// leadership off its own node (see dcs.Store.MoveEtcdLeaderFrom).
	EmbeddedEtcd string

	// RejoinMethod is how a former primary becomes a standby again:
	// "auto" (pg_rewind, else a base backup), "rewind" or "basebackup".
	RejoinMethod string
	// RewindUser and RewindPassword are the account pg_rewind connects as
	// (rejoin.rewind); empty: the agent's own database account.
	RewindUser, RewindPassword string

	// Plan is the failover procedure (zero: failover.Agent()).
	// failover.Legacy() reproduces failover_stream.sh for benchmarks:
	// routes go up before the promotion and readiness is judged by a
	// query, not a write. It exists to measure what Vigil fixes; never
	// use it.
	Plan failover.Plan

	// APIURL is where the other agents reach this agent's API (published
	// in the DCS); APIToken is the bearer token of the members' APIs, used
	// for failsafe pings; HTTPClient makes those calls (nil: the default).
	APIURL     string
	APIToken   string
	HTTPClient *http.Client

	// Parameters applies the cluster-wide PostgreSQL parameters (nil:
	// they are not managed, as in a simulation).
	Parameters ParameterServer

	// ConfigDigest identifies the settings that must agree across members.
	ConfigDigest string
	Version      string

	Logger *slog.Logger
	// StepLog receives one JSON line per failover step.
	StepLog io.Writer

	// Clock is the agent's time (nil: package time). Pinger sends failsafe
	// pings (nil: HTTP to the members' APIs with APIToken).
	Clock  Clock
	Pinger FailsafePinger
	// Stepped hands the agent's pace to the caller: Run is refused, the
	// lease keeper starts no goroutine, and the caller calls Prepare once,
	// then Tick every loop interval and RenewLease every loop interval
	// (a deterministic simulation does, on a virtual Clock).
	Stepped bool
	// Decide replaces decision.Decide (nil: decision.Decide). Only a
	// simulation sets it, to show what an older rule would have done.
	Decide func(decision.Input) decision.Output
	// Builder and Initializer build a node whose data directory holds no
	// cluster (see build.go); nil: the agent never builds one.
	Builder     Builder
	Initializer Initializer
}

// Agent is one node's HA agent.
type Agent struct {
	o     Options
	log   *slog.Logger
	clock Clock

	lease *leaseKeeper

	mu        sync.Mutex
	downSince time.Time
	// notStreamingSince: see decision.Local.NotStreamingSince; counted
	// per upstream (notStreamingFrom).
	notStreamingSince time.Time
	notStreamingFrom  string
	routesUp          bool
	lastReason        string
	lastDigest        map[string]string
	slotsMade         map[string]bool
	status            Status
	// lastRole is the role last reported to on_role_change.
	lastRole string
	// etcdLeaderCheckedAt rate-limits the etcd leadership check.
	etcdLeaderCheckedAt time.Time
	// rejoinFailedAt is when the last rejoin failed, rejoinFailures how
	// many failed in a row (see rejoinRetryAfter).
	rejoinFailedAt time.Time
	rejoinFailures int
	// gaveUpAt: see decision.Input.GaveUpAt. Cleared once another leader
	// exists: from then on the rejoin rules keep the old server stopped.
	gaveUpAt time.Time
	// senderTimeoutWarned: see checkSenderTimeout.
	senderTimeoutWarned bool
	// peerLoginWarned: see upstreamIsPrimary.
	peerLoginWarned bool
	// configSeen is the cluster's run-time configuration last read, once
	// configKnown: a change is an operator's pause or resume, logged with
	// who asked.
	configSeen  dcs.ClusterConfig
	configKnown bool
	// settings: see syncSettings.
	settings settingsState
	// restarted is the rolling restart in which this agent restarted its
	// server; restartWaiting what the leader last waited for in one (see
	// rollingRestart).
	restarted      string
	restartWaiting string
	// acting is the operator's request the action being executed carries
	// out (nil: none), for its history record. Only the loop's goroutine,
	// which executes actions, uses it.
	acting *dcs.Request
	// Failsafe mode, see failsafe.go: the members a leader must hear from
	// and when each confirmed; the promise this node gave; whether it is
	// taking the leader key right now.
	failsafeMembers map[string]string
	failsafeAcks    map[string]time.Time
	promisedUntil   time.Time
	acquiring       bool
	// wake runs the loop early on events (see wakeups); nil for a stepped
	// agent. wokenBy is the cause of the loop run in progress ("" for the
	// ticker). Only the loop's goroutine uses either field.
	wake    *wakeups
	wokenBy string
	// observed is this node as the loop run in progress saw it, for the
	// procedures it starts (loop's goroutine only).
	observed decision.Local
	// trustedLostAt is when the trusted-IP checks began to fail (zero
	// while they answer); loop's goroutine only.
	trustedLostAt time.Time
	// phase and cloneProgress: the build under way, published in the
	// member record (see build.go); buildFailedAt and buildFailures space
	// out retries as for rejoins.
	phase         string
	cloneProgress *dcs.CloneProgress
	buildFailedAt time.Time
	buildFailures int
}

// Status is what the agent knows after its last loop, for the API and ctl.
type Status struct {
	Node        string        `json:"node"`
	Cluster     string        `json:"cluster"`
	Role        decision.Role `json:"role"`
	Leader      string        `json:"leader"`
	HoldsLeader bool          `json:"holds_leader"`
	// Writable: this node holds the leader key and its last write probe
	// committed. The only state in which clients may be sent here.
	Writable  bool                  `json:"writable"`
	LastProbe *database.ProbeResult `json:"last_probe,omitempty"`
	Paused    bool                  `json:"paused"`
	Timeline  uint32                `json:"timeline"`
	WAL       wal.LSN               `json:"wal"`
	// Streaming: a standby whose WAL receiver hears from its upstream.
	Streaming bool   `json:"streaming"`
	Upstream  string `json:"upstream,omitempty"`
	// LagBytes is how far this node's WAL is behind the leader's last
	// published position (0 on the leader).
	LagBytes  uint64    `json:"lag_bytes"`
	Reason    string    `json:"reason"`
	Isolation string    `json:"isolation"`
	DCSError  string    `json:"dcs_error,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
	// Failovers counts the failovers this agent ran since it started;
	// LastFailover is the newest record.
	Failovers    int              `json:"failovers"`
	LastFailover *timeline.Record `json:"last_failover,omitempty"`
}

// New checks the options and builds an agent.
func New(o Options) (*Agent, error) {
	switch {
	case o.Node == "" || o.Cluster == "":
		return nil, errors.New("agent: node and cluster names are required")
	case o.Server == nil || o.Store == nil:
		return nil, errors.New("agent: a database server and a DCS store are required")
	}
	if o.Control == nil {
		srv, ok := o.Server.(*database.Server)
		if !ok {
			return nil, fmt.Errorf("agent: a server of type %T needs its Control", o.Server)
		}
		o.Control = pgControl{srv: srv, rewindUser: o.RewindUser, rewindPassword: o.RewindPassword}
	}
	if o.Trusted == nil {
		o.Trusted = isolation.Checker{}
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Pinger == nil {
		o.Pinger = httpPinger{token: o.APIToken, client: o.HTTPClient}
	}
	if o.Decide == nil {
		o.Decide = decision.Decide
	}
	if o.DCSTimeout <= 0 {
		o.DCSTimeout = (o.Decision.LeaseTTL/2 - o.Decision.LoopInterval) / 2
	}
	o.Decision.DCSTimeout = o.DCSTimeout
	if p := o.Decision.CheckTiming(); p != nil {
		return nil, fmt.Errorf("agent: %w", p)
	}
	if o.DBTimeout <= 0 || o.DBTimeout > o.Decision.LoopInterval*2 {
		o.DBTimeout = max(o.Decision.LoopInterval, time.Second)
	}
	if o.PromoteTimeout <= 0 {
		o.PromoteTimeout = time.Minute
	}
	if o.ReadinessTimeout <= 0 {
		o.ReadinessTimeout = 5 * time.Minute
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("node", o.Node, "cluster", o.Cluster)
	a := &Agent{o: o, log: log, clock: o.Clock, lastDigest: map[string]string{}, slotsMade: map[string]bool{}, failsafeAcks: map[string]time.Time{}}
	a.lease = newLeaseKeeper(o.Store, o.Node, o.Decision, log, a.leaseLost, a.failsafeHolds)
	a.lease.clock, a.lease.stepped = o.Clock, o.Stepped
	return a, nil
}

// Status returns the agent's latest status.
func (a *Agent) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.status
}

// Run loops until ctx ends, then shuts down cleanly: routes down, leader key
// released, member key withdrawn. The database is left running; a standby
// keeps replicating and a primary stays up for an operator, but without the
// key nothing routes clients to it and another node may take over.
func (a *Agent) Run(ctx context.Context) error {
	if a.o.Stepped {
		return errors.New("agent: Run of a stepped agent (its caller drives Tick and RenewLease)")
	}
	a.Prepare(ctx)
	a.startWakeups(ctx)
	ticker := time.NewTicker(a.o.Decision.LoopInterval)
	defer ticker.Stop()
	for {
		a.tick(ctx)
		select {
		case <-ctx.Done():
			a.shutdown()
			return nil
		case <-ticker.C:
			a.wokenBy = ""
		case a.wokenBy = <-a.wake.cause:
		}
	}
}

// Prepare is what an agent does once before its first loop: routes left
// behind by a previous run (a crashed agent) go first, since this node has
// proved nothing yet; then the DCS gets its grace period (waitForDCS).
func (a *Agent) Prepare(ctx context.Context) {
	a.log.Info("agent starting", "ttl", a.o.Decision.LeaseTTL, "loop", a.o.Decision.LoopInterval, "sync_mode", a.o.Decision.SyncMode)
	a.routesDown(ctx, "agent starting")
	a.waitForDCS(ctx)
}

// Tick is one loop of a stepped agent (Options.Stepped): observe, read,
// decide, act.
func (a *Agent) Tick(ctx context.Context) { a.tick(ctx) }

// RenewLease is one renewal of a stepped agent's lease keeper, a no-op
// while it holds no key: what the keeper's goroutine does every loop
// interval otherwise.
func (a *Agent) RenewLease() { a.lease.renewStep() }

// waitForDCS gives the DCS one lease TTL to answer before the first
// decision. Agents that start together (with embedded etcd members that
// must first elect a leader) would otherwise see "no DCS" at their first
// tick and stop a healthy primary. After the grace period the rules for an
// unreachable DCS apply, demotion included.
func (a *Agent) waitForDCS(ctx context.Context) {
	grace := a.clock.Now().Add(a.o.Decision.LeaseTTL)
	for {
		if _, err := a.snapshot(ctx); err == nil {
			return
		} else if a.clock.Now().After(grace) {
			a.log.Warn("DCS unreachable at start: no promotion, and a primary without the leader key will be stopped", "err", err)
			return
		}
		if a.clock.Sleep(ctx, a.o.Decision.LoopInterval) != nil {
			return
		}
	}
}

func (a *Agent) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*a.o.DCSTimeout+5*time.Second)
	defer cancel()
	a.routesDown(ctx, "agent shutting down")
	if a.lease.holding() {
		// Stop accepting writes before the key goes, or a new primary could
		// appear while this one still writes.
		if err := a.o.Server.Stop(ctx, pgctl.Fast); err != nil {
			a.log.Error("stop primary at shutdown", "err", err)
		}
		a.lease.release(ctx)
		a.log.Info("leader key released at shutdown")
	}
	if err := a.o.Store.WithdrawMember(ctx); err != nil {
		a.log.Warn("withdraw member key at shutdown", "err", err)
	}
	a.log.Info("agent stopped")
}

// tick is one loop: observe, read, decide, act.
func (a *Agent) tick(ctx context.Context) {
	view, dcsErr := a.snapshot(ctx)
	local, probe := a.observeLocal(ctx, view)
	a.observed = local
	trusted, trustedLostAt := a.checkTrusted(ctx)

	holds, renewedAt := a.lease.state()
	a.mu.Lock()
	if view.Leader != "" && view.Leader != a.o.Node {
		a.gaveUpAt = time.Time{}
	}
	gaveUpAt, promisedUntil := a.gaveUpAt, a.promisedUntil
	a.mu.Unlock()
	var failsafeMembers []string
	var failsafeAcks map[string]time.Time
	if a.o.Decision.Failsafe {
		if dcsErr == nil {
			a.rememberMembers(view)
		}
		failsafeMembers, failsafeAcks = a.failsafeState()
	}
	in := decision.Input{
		GaveUpAt:                gaveUpAt,
		PromisedUntil:           promisedUntil,
		FailsafeMembers:         failsafeMembers,
		FailsafeAcks:            failsafeAcks,
		Now:                     a.clock.Now(),
		Config:                  a.o.Decision,
		Self:                    local,
		TrustedReachable:        trusted.Reachable,
		TrustedUnreachableSince: trustedLostAt,
		HoldsLeader:             holds,
		LeaseRenewedAt:          renewedAt,
		Cluster:                 clusterInput(view, dcsErr == nil),
	}
	out := a.o.Decide(in)
	a.logDecision(out, trusted)

	if dcsErr == nil {
		a.syncSettings(ctx, view, local)
		a.publishMember(ctx, local, !trusted.Reachable)
		a.checkConfigDigests(view)
		a.noticeConfigChange(view.Config)
		for _, p := range view.Problems {
			a.log.Warn("DCS data ignored", "problem", p)
		}
	}
	a.execute(ctx, out, view, local)
	if dcsErr == nil {
		a.rollingRestart(ctx, view, local)
	}

	a.mu.Lock()
	prev := a.status
	if role := callbackRole(local, a.lease.holding()); role != a.lastRole {
		a.lastRole = role
		defer a.roleChanged(role)
	}
	a.status = Status{Node: a.o.Node, Cluster: a.o.Cluster, Role: local.Role(), Leader: view.Leader, HoldsLeader: a.lease.holding(),
		Writable: local.Writable && a.lease.holding(), LastProbe: probe, Paused: view.Config.Paused,
		Timeline: local.Timeline, WAL: local.WAL, Streaming: local.Streaming, Upstream: local.Upstream,
		LagBytes: in.Cluster.LastLeaderWAL.Sub(local.WAL), Reason: out.Reason, Isolation: trusted.Evidence, UpdatedAt: in.Now,
		Failovers: prev.Failovers, LastFailover: prev.LastFailover}
	if dcsErr != nil {
		a.status.DCSError = dcsErr.Error()
	}
	a.mu.Unlock()
}

// checkTrusted runs a round of trusted-IP checks and says since when they
// fail (zero while they answer): a primary rides out a short failure
// (decision.Config.IsolationGrace).
func (a *Agent) checkTrusted(ctx context.Context) (isolation.Result, time.Time) {
	r := a.o.Trusted.Check(ctx)
	switch {
	case r.Reachable:
		a.trustedLostAt = time.Time{}
	case a.trustedLostAt.IsZero():
		a.trustedLostAt = a.clock.Now()
	}
	return r, a.trustedLostAt
}

func (a *Agent) snapshot(ctx context.Context) (dcs.View, error) {
	ctx, cancel := context.WithTimeout(ctx, a.o.DCSTimeout)
	defer cancel()
	v, err := a.o.Store.Snapshot(ctx)
	if err != nil {
		return dcs.View{Members: map[string]dcs.Member{}}, err
	}
	return v, nil
}

func clusterInput(v dcs.View, reachable bool) decision.Cluster {
	if !reachable {
		return decision.Cluster{}
	}
	c := decision.Cluster{
		Reachable:          true,
		Leader:             v.Leader,
		Members:            map[string]decision.Member{},
		Paused:             v.Config.Paused,
		SyncStandbys:       v.Sync,
		LastLeaderTimeline: v.Status.Timeline,
		LastLeader:         v.Status.Leader,
	}
	if lsn, err := wal.ParseLSN(v.Status.WAL); err == nil {
		c.LastLeaderWAL = lsn
	}
	for name, m := range v.Members {
		c.Members[name] = m.Member
	}
	if i := v.Initialize; i != nil {
		c.Initialize, c.InitializedSystemID = i.Node, i.SystemID
	}
	if r := v.Request; r != nil {
		c.Request = &decision.Request{Kind: r.Kind, From: r.From, To: r.To, At: r.At, Created: r.Created, HandedOver: r.HandedOver}
	}
	return c
}

func (a *Agent) logDecision(out decision.Output, trusted isolation.Result) {
	a.mu.Lock()
	changed := out.Reason != a.lastReason
	a.lastReason = out.Reason
	a.mu.Unlock()
	if changed || len(out.Actions) > 0 && !onlyRoutine(out) {
		attrs := []any{"role", out.Role, "reason", out.Reason, "actions", actionKinds(out), "isolation", trusted.Evidence}
		if a.wokenBy != "" {
			attrs = append(attrs, "woken_by", a.wokenBy)
		}
		a.log.Info("decision", attrs...)
	}
}

// onlyRoutine is true for the actions a healthy leader takes every loop.
func onlyRoutine(out decision.Output) bool {
	for _, act := range out.Actions {
		switch act.Kind {
		case decision.RenewLeader, decision.PublishWritable:
		default:
			return false
		}
	}
	return true
}

func actionKinds(out decision.Output) []string {
	ks := make([]string, 0, len(out.Actions))
	for _, act := range out.Actions {
		ks = append(ks, string(act.Kind))
	}
	return ks
}

func (a *Agent) checkConfigDigests(v dcs.View) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for name, m := range v.Members {
		if name == a.o.Node || m.ConfigDigest == "" || m.ConfigDigest == a.o.ConfigDigest {
			delete(a.lastDigest, name)
			continue
		}
		if a.lastDigest[name] != m.ConfigDigest {
			a.log.Warn("configuration differs between members: timings and synchronous mode must match on every node (set them once for all with vigil ctl edit-config; an agent takes them at its start)",
				"member", name, "their_digest", m.ConfigDigest, "our_digest", a.o.ConfigDigest)
			a.lastDigest[name] = m.ConfigDigest
		}
	}
}

// callbackRole is the role reported to on_role_change: a primary only
// counts as one while it holds the leader key.
func callbackRole(l decision.Local, leader bool) string {
	switch r := l.Role(); {
	case r == decision.RolePrimary && leader:
		return "primary"
	case r == decision.RolePrimary:
		return "demoting"
	default:
		return string(r)
	}
}

// roleChanged runs the on_role_change command in the background.
func (a *Agent) roleChanged(role string) {
	if len(a.o.OnRoleChange) == 0 {
		return
	}
	timeout := a.o.CallbackTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	argv := append(append([]string(nil), a.o.OnRoleChange...), role, a.o.Cluster)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			a.log.Error("on_role_change callback failed (failover is not affected)", "role", role, "command", argv[0], "err", err, "output", strings.TrimSpace(string(out)))
			return
		}
		a.log.Info("on_role_change callback done", "role", role, "command", argv[0])
	}()
}

// noticeConfigChange logs an operator's pause or resume, with who asked and
// from where, the first time this agent reads it: every agent acts on it
// (a paused agent takes no automatic action). The configuration found at
// start is no change.
func (a *Agent) noticeConfigChange(c dcs.ClusterConfig) {
	a.mu.Lock()
	changed := a.configKnown && (c.Paused != a.configSeen.Paused || !c.ChangedAt.Equal(a.configSeen.ChangedAt))
	a.configSeen, a.configKnown = c, true
	a.mu.Unlock()
	if !changed {
		return
	}
	msg := "cluster resumed by an operator: automatic failover again"
	if c.Paused {
		msg = "cluster paused by an operator: no automatic failover until resumed"
	}
	by := c.ChangedBy.OrUnknown()
	a.log.Info(msg, "requested_by", by.By, "requested_from", by.From)
}

// startAction notes, and logs, whose request act carries out (the
// decision says whether it carries one out) before the agent acts. It is
// noted now: a procedure may outlast its request's expiry, and it still
// carried the request out.
func (a *Agent) startAction(view dcs.View, act decision.Action) {
	a.acting = nil
	if !act.Requested || view.Request == nil {
		return
	}
	a.acting = view.Request
	r, by := a.acting, a.acting.Actor.OrUnknown()
	a.log.Info("acting on an operator's request", "action", act.Kind, "request", r.Kind, "to", r.To,
		"requested_at", r.Created, "requested_by", by.By, "requested_from", by.From)
}

// attribute names in rec the operator whose request the action being
// executed carries out, if any: the history says who asked.
func (a *Agent) attribute(rec *timeline.Record) {
	if r := a.acting; r != nil {
		by := r.Actor.OrUnknown()
		rec.RequestedBy, rec.RequestedFrom = by.By, by.From
	}
}
