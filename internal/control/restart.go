package control

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
	"github.com/vigil-ha/vigil/internal/timeline"
)

// RestartRecordKind is the history record kind of a rolling restart's
// request, each member's turn, and its end.
const RestartRecordKind = "restart"

// RestartStore is the part of the DCS a rolling restart needs.
type RestartStore interface {
	Snapshot(ctx context.Context) (dcs.View, error)
	ReplaceRestart(ctx context.Context, p *dcs.RestartPlan, revision int64, recordAt time.Time, record any) error
}

// Restart requests a rolling restart of nodes (every member when empty;
// with pending, only those among them with a parameter pending restart),
// starting at `at` (at once when zero). The agents carry it out (see
// NextRestartStep), so it goes on without the caller.
func (c Controller) Restart(ctx context.Context, store RestartStore, nodes []string, pending bool, at time.Time) (dcs.RestartPlan, error) {
	v, err := store.Snapshot(ctx)
	if err != nil {
		return dcs.RestartPlan{}, fmt.Errorf("restart: %w", err)
	}
	if p := v.Restart; p != nil {
		return dcs.RestartPlan{}, fmt.Errorf("restart: %w", refuse("the rolling restart %s (%s) is still in progress, done: %s; wait for it or cancel it with vigil ctl restart --cancel",
			p.ID, strings.Join(p.Order, ", "), orNone(p.Done)))
	}
	if err := c.noPending(v); err != nil {
		return dcs.RestartPlan{}, fmt.Errorf("restart: %w", err)
	}
	order, err := RestartOrder(v, nodes, pending)
	if err != nil {
		return dcs.RestartPlan{}, fmt.Errorf("restart: %w", err)
	}
	if !at.IsZero() && at.Before(c.now().Add(-time.Minute)) {
		return dcs.RestartPlan{}, fmt.Errorf("restart: %w", refuse("--scheduled %s is in the past", at.Format(time.RFC3339)))
	}
	now := c.now()
	p := dcs.RestartPlan{ID: "restart-" + now.UTC().Format("20060102T150405.000Z"), Order: order, At: at, Created: now, Actor: c.Actor}
	rec := c.restartRecord(p, now, fmt.Sprintf("rolling restart requested: %s, one at a time, the leader's turn a switchover", strings.Join(order, ", ")))
	if err := store.ReplaceRestart(ctx, &p, v.RestartRevision, now, rec); err != nil {
		if errors.Is(err, dcs.ErrRequestChanged) {
			return dcs.RestartPlan{}, fmt.Errorf("restart: %w", refuse("another rolling restart was requested at the same time"))
		}
		return dcs.RestartPlan{}, fmt.Errorf("restart: %w", err)
	}
	return p, nil
}

// CancelRestart removes the rolling restart in progress: the turn under
// way finishes, no other starts.
func (c Controller) CancelRestart(ctx context.Context, store RestartStore) (dcs.RestartPlan, error) {
	v, err := store.Snapshot(ctx)
	if err != nil {
		return dcs.RestartPlan{}, fmt.Errorf("cancel restart: %w", err)
	}
	p := v.Restart
	if p == nil {
		return dcs.RestartPlan{}, fmt.Errorf("cancel restart: %w", refuse("no rolling restart in progress"))
	}
	now := c.now()
	rec := c.restartRecord(*p, now, fmt.Sprintf("rolling restart cancelled; done: %s", orNone(p.Done)))
	if err := store.ReplaceRestart(ctx, nil, v.RestartRevision, now, rec); err != nil {
		return dcs.RestartPlan{}, fmt.Errorf("cancel restart: %w", err)
	}
	return *p, nil
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// RestartOrder is the order of a rolling restart: the chosen standbys by
// name, then the leader, whose turn is a switchover that needs a standby
// to hand over to.
func RestartOrder(v dcs.View, nodes []string, pending bool) ([]string, error) {
	if l, ok := v.Members[v.Leader]; !ok || !l.Writable {
		return nil, refuse("there is no healthy writable primary: a rolling restart needs one to stream from")
	}
	for _, n := range nodes {
		if _, ok := v.Members[n]; !ok {
			return nil, refuse("%s is not a live member (members: %s)", n, MemberNames(v))
		}
	}
	var standbys []string
	leader := false
	for name, m := range v.Members {
		if len(nodes) > 0 && !slices.Contains(nodes, name) || pending && len(m.PendingRestart) == 0 {
			continue
		}
		if name == v.Leader {
			leader = true
		} else {
			standbys = append(standbys, name)
		}
	}
	sort.Strings(standbys)
	order := standbys
	if leader {
		if len(v.Members) < 2 {
			return nil, refuse("%s is the only member: its restart would be an outage, not a switchover", v.Leader)
		}
		order = append(order, v.Leader)
	}
	if len(order) == 0 {
		if pending {
			return nil, refuse("no chosen member has a parameter pending restart")
		}
		return nil, refuse("nothing to restart")
	}
	return order, nil
}

// Kinds of RestartStep.
const (
	RestartWait       = "wait"
	RestartStartTurn  = "start turn"
	RestartFinishTurn = "finish turn"
	RestartSwitchover = "switchover"
	RestartFinish     = "finish"
)

// RestartStep is what the leader's agent does next for the plan.
type RestartStep struct {
	Kind   string
	Node   string
	Reason string
}

// NextRestartStep is the rule that advances a rolling restart, applied by
// the leader's agent every loop: streaming are the standbys streaming from
// it now. One member at a time: a standby's turn ends once its agent
// restarted its server and it streams again; the leader's turn is a
// switchover, which restarts it as a standby, and ends (under the new
// leader) once it streams from the new leader.
func NextRestartStep(v dcs.View, streaming []string, now time.Time) RestartStep {
	p := v.Restart
	switch {
	case p == nil:
		return RestartStep{Kind: RestartWait, Reason: "no rolling restart"}
	case !p.At.IsZero() && now.Before(p.At):
		return RestartStep{Kind: RestartWait, Reason: "scheduled for " + p.At.Format(time.RFC3339)}
	case p.Current != "":
		m, live := v.Members[p.Current]
		back := live && m.Role == decision.RoleStandby && slices.Contains(streaming, p.Current)
		switch {
		case p.Phase == dcs.RestartPhaseSwitchover && p.Current == v.Leader && v.Request == nil && now.Sub(p.TurnStarted) > decision.RequestTimeout:
			return RestartStep{Kind: RestartSwitchover, Node: p.Current, Reason: "the switchover of " + p.Current + " did not happen: asking again"}
		case p.Phase == dcs.RestartPhaseSwitchover && p.Current == v.Leader:
			return RestartStep{Kind: RestartWait, Node: p.Current, Reason: "switchover of " + p.Current + " under way"}
		case p.Phase == dcs.RestartPhaseRestart && m.Restarted != p.ID:
			return RestartStep{Kind: RestartWait, Node: p.Current, Reason: p.Current + " restarting"}
		case !back:
			return RestartStep{Kind: RestartWait, Node: p.Current, Reason: p.Current + " restarted, not streaming yet"}
		}
		return RestartStep{Kind: RestartFinishTurn, Node: p.Current, Reason: p.Current + " restarted and streams again"}
	}
	for _, n := range p.Order {
		if slices.Contains(p.Done, n) {
			continue
		}
		if _, live := v.Members[n]; !live {
			return RestartStep{Kind: RestartWait, Node: n, Reason: n + " has no live agent: its turn waits for it (or vigil ctl restart --cancel)"}
		}
		if n == v.Leader {
			if len(streaming) == 0 {
				return RestartStep{Kind: RestartWait, Node: n, Reason: "no standby streams to hand the leader over to"}
			}
			return RestartStep{Kind: RestartSwitchover, Node: n, Reason: n + " is the leader: a switchover restarts it as a standby"}
		}
		return RestartStep{Kind: RestartStartTurn, Node: n, Reason: n + "'s turn"}
	}
	return RestartStep{Kind: RestartFinish, Reason: restartFinishedReason + strings.Join(p.Done, ", ")}
}

const restartFinishedReason = "every member restarted: "

// RestartFinished reports whether rec is the record of plan's end with
// every member restarted (not of a cancel).
func RestartFinished(rec timeline.Record, plan string) bool {
	return rec.Kind == RestartRecordKind && strings.HasPrefix(rec.ID, plan) && strings.Contains(rec.Reason, restartFinishedReason)
}

// Advanced is p after step: the plan to store, nil when it is over.
func Advanced(p dcs.RestartPlan, step RestartStep, now time.Time) *dcs.RestartPlan {
	switch step.Kind {
	case RestartStartTurn:
		p.Current, p.Phase, p.TurnStarted = step.Node, dcs.RestartPhaseRestart, now
	case RestartSwitchover:
		p.Current, p.Phase, p.TurnStarted = step.Node, dcs.RestartPhaseSwitchover, now
	case RestartFinishTurn:
		p.Done = append(slices.Clone(p.Done), step.Node)
		p.Current, p.Phase, p.TurnStarted = "", "", time.Time{}
	case RestartFinish:
		return nil
	}
	return &p
}

// RestartRecord is the history record of a step of p.
func RestartRecord(cluster string, p dcs.RestartPlan, node string, at time.Time, reason string) timeline.Record {
	by := p.Actor.OrUnknown()
	return timeline.Record{
		ID:   fmt.Sprintf("%s-%s", p.ID, at.UTC().Format("150405.000")),
		Kind: RestartRecordKind, Cluster: cluster, Node: node, Reason: reason,
		Start: at, End: at, OK: true,
		RequestedBy: by.By, RequestedFrom: by.From,
	}
}

func (c Controller) restartRecord(p dcs.RestartPlan, at time.Time, reason string) timeline.Record {
	return RestartRecord(c.Cluster, p, "", at, reason)
}
