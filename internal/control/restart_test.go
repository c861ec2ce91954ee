package control

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
)

// restartStore is an in-memory restart key.
type restartStore struct {
	view    dcs.View
	stored  []*dcs.RestartPlan
	records []any
}

func (f *restartStore) Snapshot(context.Context) (dcs.View, error) { return f.view, nil }
func (f *restartStore) ReplaceRestart(_ context.Context, p *dcs.RestartPlan, rev int64, _ time.Time, record any) error {
	if rev != f.view.RestartRevision {
		return dcs.ErrRequestChanged
	}
	f.stored = append(f.stored, p)
	f.records = append(f.records, record)
	return nil
}

// threeNodes: node1 leads, node2 and node3 stream from it; pending lists
// the members with a parameter pending restart.
func threeNodes(pending ...string) dcs.View {
	v := dcs.View{Leader: "node1", Members: map[string]dcs.Member{
		"node1": member("node1", decision.RolePrimary, true, ""),
		"node3": member("node3", decision.RoleStandby, false, "node1"),
		"node2": member("node2", decision.RoleStandby, false, "node1"),
	}}
	for _, n := range pending {
		m := v.Members[n]
		m.PendingRestart = []string{"max_connections"}
		v.Members[n] = m
	}
	return v
}

func TestRestartOrder(t *testing.T) {
	for _, tc := range []struct {
		name    string
		view    dcs.View
		nodes   []string
		pending bool
		want    []string
		refused string
	}{
		{"everyone: standbys by name, leader last", threeNodes(), nil, false, []string{"node2", "node3", "node1"}, ""},
		{"named nodes keep the rule", threeNodes(), []string{"node1", "node3"}, false, []string{"node3", "node1"}, ""},
		{"pending only", threeNodes("node1", "node3"), nil, true, []string{"node3", "node1"}, ""},
		{"pending among named", threeNodes("node1", "node3"), []string{"node2", "node3"}, true, []string{"node3"}, ""},
		{"nothing pending", threeNodes(), nil, true, nil, "no chosen member has a parameter pending restart"},
		{"unknown node", threeNodes(), []string{"node9"}, false, nil, "node9 is not a live member"},
		{"no writable leader", func() dcs.View { v := threeNodes(); v.Leader = ""; return v }(), nil, false, nil, "no healthy writable primary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := RestartOrder(tc.view, tc.nodes, tc.pending)
			if tc.refused != "" {
				if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.refused) {
					t.Fatalf("err = %v, want refused with %q", err, tc.refused)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("order %v (err %v), want %v", got, err, tc.want)
			}
		})
	}
}

func TestRestartRequestAndCancel(t *testing.T) {
	st := &restartStore{view: threeNodes("node2")}
	c := Controller{Actor: alice, Cluster: "main", Now: func() time.Time { return t0 }}
	p, err := c.Restart(context.Background(), st, nil, true, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Order, []string{"node2"}) || p.Actor != alice || len(st.records) != 1 {
		t.Fatalf("plan %+v, %d records", p, len(st.records))
	}
	st.view.Restart, st.view.RestartRevision = &p, 5
	if _, err := c.Restart(context.Background(), st, nil, false, time.Time{}); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "still in progress") {
		t.Fatalf("second restart: err = %v, want refused while one is in progress", err)
	}
	if _, err := c.Restart(context.Background(), &restartStore{view: threeNodes()}, nil, false, t0.Add(-time.Hour)); !errors.Is(err, ErrRefused) {
		t.Fatalf("restart scheduled in the past: err = %v", err)
	}
	busy := &restartStore{view: threeNodes()}
	busy.view.Request = &dcs.Request{Kind: decision.RequestSwitchover, From: "node1", Created: t0}
	if _, err := c.Restart(context.Background(), busy, nil, false, time.Time{}); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "still pending") {
		t.Fatalf("restart while a switchover is pending: err = %v", err)
	}
	if _, err := c.CancelRestart(context.Background(), st); err != nil || st.stored[len(st.stored)-1] != nil {
		t.Fatalf("cancel: err %v, stored %v", err, st.stored)
	}
}

// TestNextRestartStep walks a three-node plan through every turn: one
// member at a time, a standby's turn over only once it restarted and
// streams again, the leader's a switchover ending when it streams from the
// new leader.
func TestNextRestartStep(t *testing.T) {
	plan := dcs.RestartPlan{ID: "r1", Order: []string{"node2", "node3", "node1"}}
	at := func(mutate func(v *dcs.View, p *dcs.RestartPlan)) dcs.View {
		v := threeNodes()
		p := plan
		mutate(&v, &p)
		v.Restart = &p
		return v
	}
	restarted := func(v *dcs.View, n string) {
		m := v.Members[n]
		m.Restarted = "r1"
		v.Members[n] = m
	}
	both := []string{"node2", "node3"}
	for _, tc := range []struct {
		name      string
		view      dcs.View
		streaming []string
		now       time.Time
		want      RestartStep
	}{
		{"scheduled later", at(func(_ *dcs.View, p *dcs.RestartPlan) { p.At = t0.Add(time.Hour) }), both, t0, RestartStep{Kind: RestartWait}},
		{"first standby's turn", at(func(*dcs.View, *dcs.RestartPlan) {}), both, t0, RestartStep{Kind: RestartStartTurn, Node: "node2"}},
		{"scheduled time reached", at(func(_ *dcs.View, p *dcs.RestartPlan) { p.At = t0 }), both, t0, RestartStep{Kind: RestartStartTurn, Node: "node2"}},
		{"turn under way: not restarted yet", at(func(_ *dcs.View, p *dcs.RestartPlan) { p.Current, p.Phase = "node2", dcs.RestartPhaseRestart }),
			[]string{"node3"}, t0, RestartStep{Kind: RestartWait, Node: "node2"}},
		{"restarted, not streaming: the next waits", at(func(v *dcs.View, p *dcs.RestartPlan) {
			p.Current, p.Phase = "node2", dcs.RestartPhaseRestart
			restarted(v, "node2")
		}), []string{"node3"}, t0, RestartStep{Kind: RestartWait, Node: "node2"}},
		{"restarted and streaming: turn over", at(func(v *dcs.View, p *dcs.RestartPlan) {
			p.Current, p.Phase = "node2", dcs.RestartPhaseRestart
			restarted(v, "node2")
		}), both, t0, RestartStep{Kind: RestartFinishTurn, Node: "node2"}},
		{"second standby after the first", at(func(_ *dcs.View, p *dcs.RestartPlan) { p.Done = []string{"node2"} }), both, t0, RestartStep{Kind: RestartStartTurn, Node: "node3"}},
		{"leader last, by a switchover", at(func(_ *dcs.View, p *dcs.RestartPlan) { p.Done = []string{"node2", "node3"} }), both, t0, RestartStep{Kind: RestartSwitchover, Node: "node1"}},
		{"no standby to hand over to", at(func(_ *dcs.View, p *dcs.RestartPlan) { p.Done = []string{"node2", "node3"} }), nil, t0, RestartStep{Kind: RestartWait, Node: "node1"}},
		{"switchover under way", at(func(v *dcs.View, p *dcs.RestartPlan) {
			p.Done, p.Current, p.Phase, p.TurnStarted = []string{"node2", "node3"}, "node1", dcs.RestartPhaseSwitchover, t0
			v.Request = &dcs.Request{Kind: decision.RequestSwitchover, From: "node1", Created: t0}
		}), both, t0.Add(time.Second), RestartStep{Kind: RestartWait, Node: "node1"}},
		{"switchover lost: asked again", at(func(_ *dcs.View, p *dcs.RestartPlan) {
			p.Done, p.Current, p.Phase, p.TurnStarted = []string{"node2", "node3"}, "node1", dcs.RestartPhaseSwitchover, t0
		}), both, t0.Add(2 * decision.RequestTimeout), RestartStep{Kind: RestartSwitchover, Node: "node1"}},
		{"old leader streams from the new one: turn over", at(func(v *dcs.View, p *dcs.RestartPlan) {
			p.Done, p.Current, p.Phase = []string{"node2", "node3"}, "node1", dcs.RestartPhaseSwitchover
			v.Leader = "node2"
			v.Members["node1"] = member("node1", decision.RoleStandby, false, "node2")
		}), []string{"node1", "node3"}, t0, RestartStep{Kind: RestartFinishTurn, Node: "node1"}},
		{"every turn done", at(func(_ *dcs.View, p *dcs.RestartPlan) { p.Done = []string{"node2", "node3", "node1"} }), both, t0, RestartStep{Kind: RestartFinish}},
		{"a member without its agent waits", at(func(v *dcs.View, _ *dcs.RestartPlan) { delete(v.Members, "node2") }), []string{"node3"}, t0, RestartStep{Kind: RestartWait, Node: "node2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := NextRestartStep(tc.view, tc.streaming, tc.now)
			if got.Kind != tc.want.Kind || got.Node != tc.want.Node || got.Reason == "" {
				t.Fatalf("step %+v, want %s %s", got, tc.want.Kind, tc.want.Node)
			}
		})
	}
}

func TestAdvanced(t *testing.T) {
	p := dcs.RestartPlan{ID: "r1", Order: []string{"node2", "node1"}}
	next := Advanced(p, RestartStep{Kind: RestartStartTurn, Node: "node2"}, t0)
	if next.Current != "node2" || next.Phase != dcs.RestartPhaseRestart || !next.TurnStarted.Equal(t0) {
		t.Fatalf("start turn: %+v", next)
	}
	next = Advanced(*next, RestartStep{Kind: RestartFinishTurn, Node: "node2"}, t0)
	if next.Current != "" || !slices.Equal(next.Done, []string{"node2"}) {
		t.Fatalf("finish turn: %+v", next)
	}
	if next = Advanced(*next, RestartStep{Kind: RestartSwitchover, Node: "node1"}, t0); next.Phase != dcs.RestartPhaseSwitchover {
		t.Fatalf("switchover: %+v", next)
	}
	if Advanced(*next, RestartStep{Kind: RestartFinish}, t0) != nil {
		t.Fatal("a finished plan is removed")
	}
}
