// Package sim is a deterministic simulation of a Vigil cluster: N real
// agents (package agent, stepped) on a virtual clock, over an in-memory DCS
// with leases, in-memory servers with timelines, WAL positions, replay
// backlog, hangs and crashes, in-memory routes, and a client that commits
// writes where the routes point. A schedule of faults (see Step) runs on it
// and invariants are checked after every event: at most one writable
// primary, routes only on a server whose write probe committed, no
// acknowledged write lost in synchronous mode, convergence after the faults
// stop.
//
// # Time and determinism
//
// Nothing runs on its own goroutine. The world keeps a queue of events
// (agent loop ticks, lease-keeper renewals, client writes, the schedule's
// faults and checks) ordered by virtual time and sequence number, and runs
// them one by one. When agent code waits (Clock.Sleep: the readiness gate's
// polls, a promotion replaying its backlog, a switchover waiting for its
// target), the world runs the events due meanwhile from inside that call, so
// other agents act while one waits, as they would in production. A
// lease-keeper renewal never waits, so lease timing is exact; a loop step
// that waits delays the wake-up of waits below it on the call stack, which
// in production is only a slow loop, and the safety rules must not depend
// on loop speed. The same seed always gives the same run.
package sim

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/internal/agent"
	"github.com/vigil-ha/vigil/internal/decision"
)

// Epoch is virtual time zero.
var epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// Config is one simulated cluster.
type Config struct {
	Nodes      int               // 3 when 0
	Sync       decision.SyncMode // off when empty
	Failsafe   bool
	AutoRejoin bool
	// Seed orders the agents' loop phases; the schedule has its own.
	Seed uint64
	// Decide replaces the decision core of every agent (nil: the real one).
	Decide func(decision.Input) decision.Output
	// Log, when set, receives every agent's log, in virtual time.
	Log io.Writer
}

// Timing of the simulated cluster: the production defaults.
var timing = decision.Config{LeaseTTL: 3 * time.Second, LoopInterval: 500 * time.Millisecond, DCSTimeout: 500 * time.Millisecond,
	MaximumLagOnFailover: 1 << 20, PrimaryCrash: decision.CrashFailover}

const (
	clientEvery = 100 * time.Millisecond
	// walReceiverTimeout and walRetry are PostgreSQL's defaults: a
	// receiver cut off silently says "streaming" this long, and a broken
	// one reconnects only this often.
	walReceiverTimeout = 60 * time.Second
	walRetry           = 5 * time.Second
	// walSenderTimeout is the lab's wal_sender_timeout, which the agents
	// read to bound an upstream's silence.
	walSenderTimeout = 4 * time.Second
	traceLines       = 400
	// readinessTimeout is shorter than production's 5 minutes: in strict
	// mode a failover whose promotion outlasts the lease TTL can wait in
	// the readiness gate until this timeout (the new leader's member key,
	// which the other standbys need in order to follow it, expires while
	// its loop runs the procedure; see the change's report). The random
	// schedules' convergence bound (60 s) covers it.
	readinessTimeout = 20 * time.Second
)

var (
	errKilled  = errors.New("agent killed")
	errSimOver = errors.New("simulation over")
)

// World is one simulated cluster and its virtual time.
type World struct {
	cfg   Config
	dcfg  decision.Config
	now   time.Time
	end   time.Time
	ended bool
	seq   uint64
	queue eventQueue

	nodes []*Node
	dcs   *DCS

	writes     []write
	writeID    int
	violations []Violation
	splitSince map[string]bool
	converge   *convergence
	// degraded is when synchronous mode "on" last ran asynchronous.
	degraded time.Time

	logMu sync.Mutex // agents' failsafe pings log from goroutines
	trace []string
	log   io.Writer
}

// Node is one host: a server, its agent (nil while killed), its links.
type Node struct {
	Name string
	srv  *Server
	inc  *incarnation
	incs int
	// Faults on the node's links.
	cutDCS, cutTrusted, cutPeers bool
	vipUp                        bool
}

// incarnation is one run of a node's agent; a killed agent's calls fail.
type incarnation struct {
	w      *World
	node   *Node
	agent  *agent.Agent
	ctx    context.Context
	cancel context.CancelFunc
	alive  bool
	frozen bool
	// prepared: Prepare ran (the first loop step of a run).
	prepared bool
	// pendingTick, pendingRenew: an event fell due while frozen.
	pendingTick, pendingRenew bool
}

// Violation is a broken invariant.
type Violation struct {
	At     time.Duration
	Kind   string
	Detail string
}

func (v Violation) String() string {
	return fmt.Sprintf("%s %s: %s", fmtDur(v.At), v.Kind, v.Detail)
}

// Violation kinds.
const (
	SplitBrain = "split-brain"
	// SplitBrainNoAgent is a split brain next to a primary whose agent is
	// killed or frozen: surviving it needs a fence or a watchdog (issue
	// 12), so the simulation reports it apart and a test may accept it.
	SplitBrainNoAgent = "split-brain-without-agent"
	RouteNoProbe      = "route-before-write"
	LostWrite         = "lost-write"
	NoConverge        = "no-convergence"
	// NeedsOperator is a failure to converge that the design leaves to an
	// operator (see needsOperator); the simulation reports it, a test
	// may accept it.
	NeedsOperator = "needs-operator"
	ScriptCheck   = "check-failed"
)

// NewWorld builds a cluster: node1 a primary, the others its standbys,
// every agent started at a seeded phase of its loop.
func NewWorld(cfg Config) *World {
	if cfg.Nodes <= 0 {
		cfg.Nodes = 3
	}
	if cfg.Sync == "" {
		cfg.Sync = decision.SyncOff
	}
	dcfg := timing
	dcfg.SyncMode, dcfg.Failsafe, dcfg.AutoRejoin = cfg.Sync, cfg.Failsafe, cfg.AutoRejoin
	w := &World{cfg: cfg, dcfg: dcfg, now: epoch, end: epoch.Add(24 * time.Hour), splitSince: map[string]bool{}, log: cfg.Log}
	w.dcs = newDCS(w)
	first := newLineage(nil, 0)
	for i := range cfg.Nodes {
		n := &Node{Name: fmt.Sprintf("node%d", i+1)}
		n.srv = &Server{w: w, node: n, lin: first, wal: 1 << 24, replayed: 1 << 24, running: true, replayRate: 256 << 20}
		if i > 0 {
			n.srv.standby, n.srv.inRecovery, n.srv.upstream = true, true, "node1"
		}
		w.nodes = append(w.nodes, n)
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5157))
	for _, n := range w.nodes {
		w.startAgent(n, time.Duration(rng.Int64N(int64(timing.LoopInterval))))
	}
	w.every(clientEvery, clientEvery, w.clientWrite)
	return w
}

// Now is the virtual time since the start.
func (w *World) Now() time.Duration { return w.now.Sub(epoch) }

// Node returns the named node, nil if there is none.
func (w *World) Node(name string) *Node {
	for _, n := range w.nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Violations found so far.
func (w *World) Violations() []Violation { return slices.Clone(w.violations) }

// Trace is the last lines of the agents' logs and the world's events.
func (w *World) Trace() []string {
	w.logMu.Lock()
	defer w.logMu.Unlock()
	return slices.Clone(w.trace)
}

func (w *World) violate(kind, format string, args ...any) {
	v := Violation{At: w.Now(), Kind: kind, Detail: fmt.Sprintf(format, args...)}
	w.violations = append(w.violations, v)
	w.note("VIOLATION " + v.Kind + ": " + v.Detail)
}

// note adds a line to the trace.
func (w *World) note(line string) {
	w.logMu.Lock()
	defer w.logMu.Unlock()
	line = fmtDur(w.Now()) + " " + line
	if w.log != nil {
		fmt.Fprintln(w.log, line)
	}
	if len(w.trace) >= traceLines {
		w.trace = w.trace[1:]
	}
	w.trace = append(w.trace, line)
}

func fmtDur(d time.Duration) string { return fmt.Sprintf("%8.3fs", d.Seconds()) }

// ---- agents

func (w *World) startAgent(n *Node, phase time.Duration) {
	n.incs++
	ctx, cancel := context.WithCancel(context.Background())
	inc := &incarnation{w: w, node: n, ctx: ctx, cancel: cancel, alive: true}
	a, err := agent.New(agent.Options{
		Cluster: "sim", Node: n.Name, Host: n.Name, Port: 5432, Priority: 1,
		Server: serverHandle{n.srv, inc}, Control: serverHandle{n.srv, inc},
		Store: &session{d: w.dcs, inc: inc}, Trusted: trusted{inc},
		Routers: []agent.Router{route{inc}}, Pinger: pinger{w}, Clock: vclock{inc},
		Decision: w.dcfg, DCSTimeout: timing.DCSTimeout, DBTimeout: time.Second,
		PromoteTimeout: time.Minute, ReadinessTimeout: readinessTimeout, RejoinMethod: "auto",
		APIURL: "sim://" + n.Name, Stepped: true, Decide: w.cfg.Decide,
		Logger: slog.New(&logHandler{w: w, node: n.Name}),
	})
	if err != nil {
		panic(fmt.Sprintf("sim: agent options: %v", err)) // a bug of this package
	}
	inc.agent = a
	n.inc = inc
	w.note(fmt.Sprintf("%s agent started (run %d)", n.Name, n.incs))
	w.after(phase, func() { w.tick(inc) })
	w.after(phase+timing.LoopInterval/2, func() { w.renew(inc) })
}

// tick is one loop of an agent, then the next one is scheduled as a Go
// ticker would deliver it: one interval later, or at once if that passed.
func (w *World) tick(inc *incarnation) {
	switch {
	case !inc.alive:
		return
	case inc.frozen:
		inc.pendingTick = true
		return
	}
	due := w.now
	if !inc.prepared {
		inc.prepared = true
		inc.agent.Prepare(inc.ctx)
	}
	inc.agent.Tick(inc.ctx)
	w.at(w.nextTick(due), func() { w.tick(inc) })
}

// renew is one lease-keeper renewal.
func (w *World) renew(inc *incarnation) {
	switch {
	case !inc.alive:
		return
	case inc.frozen:
		inc.pendingRenew = true
		return
	}
	due := w.now
	inc.agent.RenewLease()
	w.at(w.nextTick(due), func() { w.renew(inc) })
}

// nextTick is when a Go ticker started at due delivers its next tick to a
// receiver that is only now ready: one interval after due, or at once.
func (w *World) nextTick(due time.Time) time.Time {
	next := due.Add(timing.LoopInterval)
	if next.Before(w.now) {
		return w.now
	}
	return next
}

func (w *World) killAgent(n *Node) {
	if n.inc == nil {
		return
	}
	n.inc.alive = false
	n.inc.cancel()
	n.inc = nil
	w.note(n.Name + " agent killed (its server and routes stay as they are)")
}

func (w *World) freezeAgent(n *Node, frozen bool) {
	inc := n.inc
	if inc == nil || inc.frozen == frozen {
		return
	}
	inc.frozen = frozen
	if frozen {
		w.note(n.Name + " agent frozen")
		return
	}
	w.note(n.Name + " agent thawed")
	if inc.pendingTick {
		inc.pendingTick = false
		w.at(w.now, func() { w.tick(inc) })
	}
	if inc.pendingRenew {
		inc.pendingRenew = false
		w.at(w.now, func() { w.renew(inc) })
	}
}

// vclock is an incarnation's Clock.
type vclock struct{ inc *incarnation }

func (c vclock) Now() time.Time { return c.inc.w.now }

// Sleep runs the world's events until d has passed (and, for a frozen
// agent, until it is thawed).
func (c vclock) Sleep(ctx context.Context, d time.Duration) error {
	w, inc := c.inc.w, c.inc
	deadline := w.now.Add(d)
	for {
		switch {
		case !inc.alive:
			return errKilled
		case ctx.Err() != nil:
			return ctx.Err()
		case w.ended:
			return errSimOver
		case !w.now.Before(deadline) && !inc.frozen:
			return nil
		}
		limit := deadline
		if inc.frozen {
			limit = w.end
		}
		w.step(limit)
	}
}

// ---- the event queue

type event struct {
	at  time.Time
	seq uint64
	fn  func()
}

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

func (w *World) at(t time.Time, fn func()) {
	w.seq++
	heap.Push(&w.queue, &event{at: t, seq: w.seq, fn: fn})
}

func (w *World) after(d time.Duration, fn func()) { w.at(w.now.Add(d), fn) }

// every runs fn every period from first on.
func (w *World) every(first, period time.Duration, fn func()) {
	var loop func()
	loop = func() {
		fn()
		w.after(period, loop)
	}
	w.after(first, loop)
}

// step runs the next event due by limit, or moves the time to limit.
func (w *World) step(limit time.Time) {
	if limit.After(w.end) {
		limit = w.end
	}
	if len(w.queue) == 0 || w.queue[0].at.After(limit) {
		if limit.After(w.now) {
			w.now = limit
			w.replicate()
		}
		if !w.now.Before(w.end) {
			w.ended = true
		}
		return
	}
	e := heap.Pop(&w.queue).(*event)
	if e.at.After(w.now) {
		w.now = e.at
	}
	w.replicate()
	e.fn()
	w.replicate()
	w.checkInvariants()
}

// RunFor runs the world for d of virtual time.
func (w *World) RunFor(d time.Duration) {
	w.RunUntil(w.now.Add(d))
}

// RunUntil runs the world until virtual time t.
func (w *World) RunUntil(t time.Time) {
	for !w.ended && w.now.Before(t) {
		w.step(t)
	}
}

// Stop ends the world: agents still waiting return.
func (w *World) Stop() {
	w.ended = true
	for _, n := range w.nodes {
		if n.inc != nil {
			n.inc.cancel()
		}
	}
}

// ---- logs

// logHandler keeps agents' log lines in the trace, stamped with virtual time.
type logHandler struct {
	w    *World
	node string
}

func (h *logHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *logHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s", h.node, r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "timeline" { // multi-line failover tables
			return true
		}
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	h.w.note(b.String())
	return nil
}

func (h *logHandler) WithAttrs(attrs []slog.Attr) slog.Handler { return h }
func (h *logHandler) WithGroup(string) slog.Handler            { return h }
