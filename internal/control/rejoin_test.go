package control

import (
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
	"github.com/vigil-ha/vigil/internal/timeline"
)

// TestCheckRejoin: the outcome of `ctl rejoin` does not depend on whether
// the request is cleared before or after the node's new state is
// published, and a stale state never counts.
func TestCheckRejoin(t *testing.T) {
	req := dcs.Request{Kind: decision.RequestRejoin, To: "node1", Created: t0}
	recEnd := t0.Add(5 * time.Second)
	ok := timeline.Record{Kind: "rejoin", Node: "node1", Start: t0.Add(time.Second), End: recEnd, OK: true,
		Steps: []timeline.Step{{Name: "rejoin_rewind", OK: true}, {Name: "rejoin_stream", OK: true}}}
	failed := timeline.Record{Kind: "rejoin", Node: "node1", Start: t0.Add(time.Second), End: recEnd, OK: false,
		Steps: []timeline.Step{{Name: "rejoin_rewind", OK: true}, {Name: "rejoin_stream", Error: "no WAL receiver after 60s"}}}
	other := timeline.Record{Kind: "failover", Node: "node3", Start: t0, End: recEnd, OK: true}

	// view: node2 leads on timeline 2; node1 as given.
	view := func(pending bool, node1 dcs.Member) dcs.View {
		leader := member("node2", decision.RolePrimary, true, "")
		leader.Timeline = 2
		v := dcs.View{Leader: "node2", Members: map[string]dcs.Member{"node1": node1, "node2": leader}}
		if pending {
			r := req
			v.Request = &r
		}
		return v
	}
	node1 := func(role decision.Role, upstream string, tl uint32, updated time.Time) dcs.Member {
		m := member("node1", role, false, upstream)
		m.Timeline, m.UpdatedAt = tl, updated
		return m
	}
	stopped := node1(decision.RoleStopped, "", 1, t0)
	streamingStale := node1(decision.RoleStandby, "node2", 2, recEnd.Add(-time.Second))
	streamingFresh := node1(decision.RoleStandby, "node2", 2, recEnd.Add(300*time.Millisecond))

	tests := []struct {
		name     string
		v        dcs.View
		records  []timeline.Record
		done     bool
		finished bool
		failed   string // substring; "" for none
	}{
		{"request pending, nothing done yet", view(true, stopped), nil, false, false, ""},
		{"state published before the request is cleared", view(true, streamingFresh), []timeline.Record{ok}, true, false, ""},
		{"request pending, state from before the rejoin finished", view(true, streamingStale), []timeline.Record{ok}, false, false, ""},
		{"request cleared before the state is published", view(false, stopped), []timeline.Record{ok}, false, true, ""},
		{"request cleared, state from before the rejoin finished", view(false, streamingStale), []timeline.Record{other, ok}, false, true, ""},
		{"request cleared, state published after the rejoin", view(false, streamingFresh), []timeline.Record{other, ok}, true, true, ""},
		{"request cleared, standby on an old timeline", view(false, node1(decision.RoleStandby, "node2", 1, recEnd.Add(time.Second))), []timeline.Record{ok}, false, true, ""},
		{"request cleared, standby of another node", view(false, node1(decision.RoleStandby, "node3", 2, recEnd.Add(time.Second))), []timeline.Record{ok}, false, true, ""},
		{"request cleared, agent gone", view(false, dcs.Member{}), []timeline.Record{ok}, false, true, ""},
		{"rejoin failed", view(false, streamingFresh), []timeline.Record{failed}, false, true, "step rejoin_stream: no WAL receiver"},
		{"an earlier automatic attempt failed, the request still stands", view(true, stopped), []timeline.Record{failed}, false, false, ""},
		{"no record: the agent found it streaming already", view(false, streamingStale), nil, true, true, ""},
		{"no record, not streaming", view(false, stopped), nil, false, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.v.Members["node1"].Name == "" {
				delete(tc.v.Members, "node1")
			}
			p := CheckRejoin(tc.v, req, tc.records)
			if p.Done != tc.done || p.Finished != tc.finished {
				t.Errorf("done %v finished %v, want %v %v (%+v)", p.Done, p.Finished, tc.done, tc.finished, p)
			}
			if (tc.failed == "") != (p.Failed == "") || !strings.Contains(p.Failed, tc.failed) {
				t.Errorf("failed %q, want %q", p.Failed, tc.failed)
			}
			if !p.Done && p.Failed == "" && p.Waiting == "" {
				t.Error("waiting without saying for what")
			}
		})
	}

	// A newer request (made after this one expired) is not this one.
	newer := view(true, stopped)
	newer.Request.Created = t0.Add(2 * time.Minute)
	if p := CheckRejoin(newer, req, nil); !p.Finished {
		t.Errorf("a newer request taken for ours: %+v", p)
	}
}
