package control

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
	"github.com/vigil-ha/vigil/internal/timeline"
)

// TestReinitRequests: a reinit is asked for a live non-leader, streaming
// or not, while a primary is writable; the leader, a primary, an unknown
// node, a pending request and a paused cluster are refused, saying why.
func TestReinitRequests(t *testing.T) {
	with := func(edit func(v *dcs.View)) func() dcs.View {
		return func() dcs.View { v := healthy(); edit(&v); return v }
	}
	tests := []struct {
		name    string
		view    func() dcs.View
		node    string
		refused string // substring of the refusal; "" means accepted
	}{
		{"a streaming standby (damage streaming does not show)", healthy, "node3", ""},
		{"a stopped standby", with(func(v *dcs.View) { v.Members["node3"] = member("node3", decision.RoleStopped, false, "") }), "node3", ""},
		{"a standby whose server does not answer", with(func(v *dcs.View) { v.Members["node3"] = member("node3", decision.RoleUnknown, false, "") }), "node3", ""},
		{"no node named", healthy, "", "name the node to rebuild"},
		{"the leader", healthy, "node1", "node1 is the leader: a reinit rebuilds a standby from the primary"},
		{"a primary without the key", with(func(v *dcs.View) { v.Members["node2"] = member("node2", decision.RolePrimary, true, "") }), "node2",
			"node2 runs a primary without the leader key"},
		{"an unknown node", healthy, "node9", "node9 is not a live member (members: node1, node2, node3)"},
		{"another request pending", with(func(v *dcs.View) {
			v.Request, v.RequestRevision = &dcs.Request{Kind: decision.RequestRejoin, To: "node2", Created: t0.Add(-time.Second)}, 7
		}), "node3", "a rejoin to node2 requested at"},
		{"the cluster paused", with(func(v *dcs.View) { v.Config.Paused = true }), "node3", "the cluster is paused (maintenance mode)"},
		{"no writable primary to copy from", with(func(v *dcs.View) { v.Members["node1"] = member("node1", decision.RolePrimary, false, "") }), "node3",
			"there is no writable primary to copy node3 from"},
		{"no leader at all", with(func(v *dcs.View) { v.Leader = ""; delete(v.Members, "node1") }), "node3",
			"there is no writable primary to copy node3 from"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &fakeStore{view: tt.view()}
			c := Controller{Store: store, Now: func() time.Time { return t0 }}.As(alice)
			r, err := c.Reinit(context.Background(), tt.node)
			if tt.refused == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				want := dcs.Request{Kind: decision.RequestReinit, To: tt.node, Created: t0, Actor: alice}
				if r != want || store.stored == nil || *store.stored != r {
					t.Errorf("returned %+v, stored %+v, want %+v", r, store.stored, want)
				}
				return
			}
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tt.refused) || !strings.HasPrefix(err.Error(), "reinit: ") {
				t.Errorf("err = %v, want a reinit refusal containing %q", err, tt.refused)
			}
			if store.stored != nil {
				t.Errorf("a refused request was stored: %+v", store.stored)
			}
		})
	}
	// A DCS that does not answer is no refusal: retrying may help.
	store := &fakeStore{err: errors.New("etcdserver: request timed out")}
	if _, err := (Controller{Store: store}).Reinit(context.Background(), "node3"); err == nil || errors.Is(err, ErrRefused) {
		t.Errorf("err = %v, want a DCS error that is not a refusal", err)
	}
}

// TestCheckReinit: `ctl reinit` is done only once the node's agent has
// written a successful reinit record and published, after it, a standby of
// the leader; a node that streams without a record is not done (its
// damage may not show), and a request gone without a record is reported.
func TestCheckReinit(t *testing.T) {
	req := dcs.Request{Kind: decision.RequestReinit, To: "node3", Created: t0}
	recEnd := t0.Add(5 * time.Second)
	ok := timeline.Record{Kind: "reinit", Node: "node3", Start: t0.Add(time.Second), End: recEnd, OK: true,
		Steps: []timeline.Step{{Name: "reinit_basebackup", OK: true}, {Name: "reinit_wait_streaming", OK: true}}}
	failed := timeline.Record{Kind: "reinit", Node: "node3", Start: t0.Add(time.Second), End: recEnd,
		Steps: []timeline.Step{{Name: "reinit_basebackup", OK: true}, {Name: "reinit_wait_streaming", Error: "no WAL receiver after 1m0s"}}}
	rejoined := ok
	rejoined.Kind = "rejoin"

	view := func(pending bool, node3 dcs.Member, edit ...func(*dcs.View)) dcs.View {
		v := dcs.View{Leader: "node1", Members: map[string]dcs.Member{"node1": member("node1", decision.RolePrimary, true, ""), "node3": node3}}
		if pending {
			r := req
			v.Request = &r
		}
		for _, e := range edit {
			e(&v)
		}
		return v
	}
	node3 := func(role decision.Role, upstream string, updated time.Time) dcs.Member {
		m := member("node3", role, false, upstream)
		m.UpdatedAt = updated
		return m
	}
	stopped := node3(decision.RoleStopped, "", recEnd.Add(time.Second))
	streamingStale := node3(decision.RoleStandby, "node1", recEnd.Add(-time.Second))
	streamingFresh := node3(decision.RoleStandby, "node1", recEnd.Add(300*time.Millisecond))
	paused := func(v *dcs.View) { v.Config.Paused = true }

	tests := []struct {
		name     string
		v        dcs.View
		records  []timeline.Record
		done     bool
		finished bool
		failed   string // substring; "" for none
		waiting  string // substring of Waiting, when it matters
	}{
		{"request pending, streaming as before the reinit: not done", view(true, streamingStale), nil, false, false, "", "has not finished the reinit"},
		{"request pending while paused", view(true, stopped, paused), nil, false, false, "", "the cluster is paused"},
		{"record written and state published, request not yet cleared", view(true, streamingFresh), []timeline.Record{ok}, true, false, "", ""},
		{"request cleared, state from before the reinit finished", view(false, streamingStale), []timeline.Record{ok}, false, true, "", "has not published its state since the reinit finished"},
		{"request cleared, state published after the reinit", view(false, streamingFresh), []timeline.Record{ok}, true, true, "", ""},
		{"a rejoin record is not a reinit's", view(false, streamingFresh), []timeline.Record{rejoined}, false, true, "", "no reinit record"},
		{"reinit failed, request not yet cleared", view(true, stopped), []timeline.Record{failed}, false, false, "", "reinit failed"},
		{"reinit failed", view(false, stopped), []timeline.Record{failed}, false, true, "reinit of node3 failed: step reinit_wait_streaming: no WAL receiver", ""},
		{"request gone without a record, node streaming: not done", view(false, streamingFresh), nil, false, true, "", "expired unanswered, was refused"},
		{"request gone without a record while paused", view(false, stopped, paused), nil, false, true, "", "the cluster is paused"},
		{"request gone without a record, node now the leader", view(false, stopped, func(v *dcs.View) { v.Leader = "node3" }), nil, false, true, "", "node3 is the leader now"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := CheckReinit(tc.v, req, tc.records)
			if p.Done != tc.done || p.Finished != tc.finished {
				t.Errorf("done %v finished %v, want %v %v (%+v)", p.Done, p.Finished, tc.done, tc.finished, p)
			}
			if (tc.failed == "") != (p.Failed == "") || !strings.Contains(p.Failed, tc.failed) {
				t.Errorf("failed %q, want %q", p.Failed, tc.failed)
			}
			if !p.Done && p.Failed == "" && !strings.Contains(p.Waiting, tc.waiting) {
				t.Errorf("waiting %q, want it to contain %q", p.Waiting, tc.waiting)
			}
			if !p.Done && p.Failed == "" && p.Waiting == "" {
				t.Error("waiting without saying for what")
			}
		})
	}
}
