package sim

import (
	"fmt"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/internal/decision"
)

// write is one write the client saw acknowledged.
type write struct {
	id   int
	node string
	lin  *lineage
	lsn  uint64
	at   time.Time
	// sync: a synchronous standby had it when it was acknowledged.
	sync bool
}

// clientWrite commits one write where the routes point, as the client
// would through the VIP. Only a running, writable primary acknowledges;
// with synchronous standbys named, only when one of them received it.
func (w *World) clientWrite() {
	for _, n := range w.nodes {
		if !n.vipUp {
			continue
		}
		s := n.srv
		if !s.canAck() {
			return
		}
		s.wal += probeBytes
		w.writeID++
		wr := write{id: w.writeID, node: n.Name, lin: s.lin, lsn: s.wal, at: w.now, sync: len(s.syncNames) > 0}
		w.writes = append(w.writes, wr)
		return
	}
}

// checkInvariants runs after every event.
func (w *World) checkInvariants() {
	var writable []string
	for _, n := range w.nodes {
		if n.srv.canAck() {
			writable = append(writable, n.Name)
		}
	}
	if len(writable) > 1 {
		key := strings.Join(writable, "+")
		if !w.splitSince[key] {
			w.splitSince[key] = true
			for _, name := range writable {
				if n := w.Node(name); n.inc == nil || n.inc.frozen {
					// Nothing can stop a primary whose agent is gone but
					// a fence or a watchdog, which are not simulated.
					w.violate(SplitBrainNoAgent, "%s accept writes at the same time, and %s has no running agent (%s)", strings.Join(writable, " and "), name, w.describe())
					return
				}
			}
			w.violate(SplitBrain, "%s accept writes at the same time (%s)", strings.Join(writable, " and "), w.describe())
		}
	} else {
		clear(w.splitSince)
	}
	if w.dcfg.SyncMode == decision.SyncOn && len(writable) > 0 && len(w.dcs.sync) == 0 {
		// "on" went asynchronous: from now on the primary alone may hold
		// what was acknowledged before, and a failover may lose it.
		w.degraded = w.now
	}
	if c := w.converge; c != nil && c.at.IsZero() && w.converged() == "" {
		c.at = w.now
	}
}

// converged is "" once the cluster has exactly one writable primary that
// holds the leader key and has the routes, and no other node has them;
// otherwise what is missing.
func (w *World) converged() string {
	var writable []*Node
	for _, n := range w.nodes {
		if n.srv.canAck() {
			writable = append(writable, n)
		}
	}
	if len(writable) != 1 {
		return fmt.Sprintf("%d writable primaries", len(writable))
	}
	p := writable[0]
	if l := w.dcs.Leader(); l != p.Name {
		return fmt.Sprintf("%s is writable but the leader key names %q", p.Name, l)
	}
	for _, n := range w.nodes {
		if n.vipUp != (n == p) {
			return fmt.Sprintf("the routes are not on %s alone", p.Name)
		}
	}
	return ""
}

// convergence watches for convergence after the faults stop.
type convergence struct {
	from, by time.Time
	at       time.Time
}

// expectConvergence starts watching: the cluster must converge within d.
func (w *World) expectConvergence(d time.Duration) {
	c := &convergence{from: w.now, by: w.now.Add(d)}
	w.converge = c
	if w.converged() == "" {
		c.at = w.now
	}
	w.at(c.by, func() {
		if c.at.IsZero() && w.needsOperator() {
			w.violate(NeedsOperator, "no writable primary %s after the faults stopped, and no server left that may come back on its own: %s", d, w.describe())
			return
		}
		if c.at.IsZero() {
			w.violate(NoConverge, "no single writable primary with the routes %s after the faults stopped: %s (%s)", d, w.converged(), w.describe())
		}
	})
}

// checkLostWrites: in synchronous mode, every write acknowledged while a
// synchronous standby was named ("on"), or every one ("strict"), must be
// in the history of the writable primary.
func (w *World) checkLostWrites() {
	if w.dcfg.SyncMode == decision.SyncOff {
		return
	}
	var primary *Server
	for _, n := range w.nodes {
		if n.srv.canAck() {
			if primary != nil {
				return // no single primary: reported as such
			}
			primary = n.srv
		}
	}
	if primary == nil {
		return
	}
	var lost []string
	for _, wr := range w.writes {
		if w.dcfg.SyncMode == decision.SyncOn && (!wr.sync || !wr.at.After(w.degraded)) {
			// "on" promises nothing for a write acknowledged without a
			// synchronous standby, or followed by an asynchronous period
			// (see decision.SyncOn).
			continue
		}
		if !contains(primary.lin, primary.wal, wr.lin, wr.lsn) {
			lost = append(lost, fmt.Sprintf("#%d (%s at %s, timeline %d, WAL %d)", wr.id, wr.node, fmtDur(wr.at.Sub(epoch)), wr.lin.tli, wr.lsn))
		}
	}
	if len(lost) > 0 {
		if len(lost) > 5 {
			lost = append(lost[:5], fmt.Sprintf("and %d more", len(lost)-5))
		}
		w.violate(LostWrite, "%s misses acknowledged writes: %s", primary.node.Name, strings.Join(lost, ", "))
	}
}

// describe is the state of every node in one line.
func (w *World) describe() string {
	parts := make([]string, 0, len(w.nodes)+1)
	for _, n := range w.nodes {
		s := n.srv
		state := "stopped"
		switch {
		case s.hung:
			state = "hung"
		case s.running && s.inRecovery:
			state = "standby<" + s.upstream
			if s.receiving {
				state += "(streaming)"
			}
		case s.running:
			state = "primary"
			if s.canAck() {
				state += "(writable)"
			}
		}
		agentState := "agent"
		switch {
		case n.inc == nil:
			agentState = "no-agent"
		case n.inc.frozen:
			agentState = "frozen-agent"
		}
		var flags []string
		if n.vipUp {
			flags = append(flags, "vip")
		}
		if n.cutDCS {
			flags = append(flags, "cut-dcs")
		}
		if n.cutTrusted {
			flags = append(flags, "cut-trusted")
		}
		if n.cutPeers {
			flags = append(flags, "cut-peers")
		}
		parts = append(parts, fmt.Sprintf("%s: %s tl%d wal %d %s %s", n.Name, state, s.lin.tli, s.wal, agentState, strings.Join(flags, ",")))
	}
	leader := w.dcs.leader
	if w.dcs.down {
		leader += " (DCS down)"
	}
	parts = append(parts, "leader key: "+leader)
	return strings.Join(parts, "; ")
}

// needsOperator: no server is writable, the leader key is free, and every
// agent says why it will not act: a stopped former primary stays down until
// rejoined (the stay-down rule), a standby refuses to promote (too far
// behind, or not the recorded synchronous standby). Only an operator brings
// such a cluster back; the simulation reports it apart from other failures
// to converge (see the report of the change that added it).
//
// It also covers the strict-mode deadlock this simulation found: a leader
// whose commits wait for a synchronous standby, while every other member is
// a former primary whose automatic rejoin waits for a writable leader.
func (w *World) needsOperator() bool {
	for _, n := range w.nodes {
		if n.srv.canAck() || n.inc == nil {
			return false
		}
		reason := n.inc.agent.Status().Reason
		switch {
		case !n.srv.running && strings.Contains(reason, "staying stopped"):
		case !n.srv.running && strings.Contains(reason, "rejoin waits until the leader"):
		case n.srv.running && n.srv.inRecovery && strings.Contains(reason, "not promoting"):
		case n.srv.running && n.srv.inRecovery && !n.srv.receiving && w.dcfg.SyncMode == decision.SyncStrict:
			// A standby that diverged from the new leader's history
			// cannot stream; it is rejoined on the operator's word only.
		case n.srv.running && !n.srv.inRecovery && w.dcfg.SyncMode == decision.SyncStrict &&
			(strings.Contains(reason, "does not commit writes") || strings.Contains(reason, "readiness gate")):
		default:
			return false
		}
	}
	return true
}
