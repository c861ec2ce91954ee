package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
)

func TestTopologyNestsCascadesAndListsTheDetached(t *testing.T) {
	member := func(role decision.Role, upstream string) dcs.Member {
		return dcs.Member{Member: decision.Member{Role: role, Timeline: 3, Upstream: upstream}}
	}
	v := dcs.View{Leader: "node2", Primary: &dcs.Primary{Node: "node2"}, Members: map[string]dcs.Member{
		"node1": member(decision.RoleStandby, "node2"),
		"node2": member(decision.RolePrimary, ""),
		"node3": member(decision.RoleStandby, "node1"), // cascade: node2 -> node1 -> node3
		"node4": member(decision.RoleStandby, "node3"), // and one level deeper
		"node5": member(decision.RoleStandby, "node2"),
		"node6": member(decision.RoleStopped, ""),
		"node7": member(decision.RoleStandby, "node6"), // hangs from a stopped member
		"node8": member(decision.RoleStandby, ""),
		"node9": member(decision.RoleStandby, "gone"),
		"nodeA": member(decision.RoleStandby, "nodeB"), // a circle
		"nodeB": member(decision.RoleStandby, "nodeA"),
		"nodeC": member(decision.RolePrimary, ""),
	}}
	topo := buildTopology(buildList("prod", v))

	got := topologyText(topo)
	want := `cluster prod
node2* primary tl 3
├── node1 standby tl 3 lag 0B
│   └── node3 standby tl 3 lag 0B
│       └── node4 standby tl 3 lag 0B
└── node5 standby tl 3 lag 0B
not streaming from the primary's tree:
  node6 stopped tl 3: server stopped
  └── node7 standby tl 3 lag 0B
  node8 standby tl 3 lag 0B: upstream unknown: its primary_conninfo names no member
  node9 standby tl 3 lag 0B: upstream gone is not a live member
  nodeC primary tl 3: runs a primary without the leader key
  nodeA standby tl 3 lag 0B: streams from nodeB, in a circle of standbys that never reaches the primary
  └── nodeB standby tl 3 lag 0B
`
	if got != want {
		t.Errorf("topology:\n%s\nwant:\n%s", got, want)
	}

	// The JSON form has the same tree.
	raw, err := json.Marshal(topo)
	if err != nil {
		t.Fatal(err)
	}
	var back topology
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if topologyText(back) != want {
		t.Errorf("JSON round trip:\n%s", raw)
	}
	if back.Primary.Standbys[0].Standbys[0].Name != "node3" || !strings.Contains(string(raw), `"reason":"server stopped"`) {
		t.Errorf("JSON: %s", raw)
	}
}

func TestTopologyWithoutALeader(t *testing.T) {
	v := dcs.View{Members: map[string]dcs.Member{
		"node1": {Member: decision.Member{Role: decision.RoleStandby, Upstream: "node2"}},
		"node2": {Member: decision.Member{Role: decision.RoleStopped}},
	}}
	got := topologyText(buildTopology(buildList("prod", v)))
	want := `cluster prod
no primary: nobody holds the leader key
not streaming from the primary's tree:
  node2 stopped tl 0: server stopped
  └── node1 standby tl 0 lag 0B
`
	if got != want {
		t.Errorf("topology:\n%s\nwant:\n%s", got, want)
	}
}

func topologyText(t topology) string {
	var b strings.Builder
	printTopology(&b, t)
	return b.String()
}
