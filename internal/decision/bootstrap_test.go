package decision

import (
	"slices"
	"strings"
	"testing"
)

// emptyInput: node3's data directory holds nothing, in a cluster where
// nobody ever created anything (no leader, no initialize key, no member
// with data).
func emptyInput() Input {
	return Input{
		Now: t0, Config: cfg(), TrustedReachable: true,
		Self: Local{Name: "node3", Priority: 100, NoData: true},
		Cluster: Cluster{Reachable: true, Members: members(
			Member{Name: "node1", Role: RoleStopped, Priority: 100},
			Member{Name: "node2", Role: RoleStopped, Priority: 100})},
	}
}

func TestDecideWithoutData(t *testing.T) {
	tests := []struct {
		name       string
		in         func() Input
		want       []ActionKind
		wantTarget string
		wantReason string
	}{
		{
			name:       "nothing exists anywhere: bootstrap (the initialize key decides who)",
			in:         emptyInput,
			want:       []ActionKind{Bootstrap},
			wantReason: "never created",
		},
		{
			name: "another node holds the initialize key: wait, never a second initdb",
			in: func() Input {
				in := emptyInput()
				in.Cluster.Initialize = "node1"
				return in
			},
			wantReason: "node1 is creating the cluster",
		},
		{
			name: "the cluster was initialized but has no leader now: wait to clone",
			in: func() Input {
				in := emptyInput()
				in.Cluster.Initialize, in.Cluster.InitializedSystemID = "node1", "7"
				return in
			},
			wantReason: "waiting for a writable leader",
		},
		{
			name: "a cluster that had a leader (made before the initialize key) is never bootstrapped again",
			in: func() Input {
				in := emptyInput()
				in.Cluster.LastLeaderTimeline, in.Cluster.LastLeader = 1, "node1"
				return in
			},
			wantReason: "had a leader",
		},
		{
			name: "a member holds data: the cluster exists, wait",
			in: func() Input {
				in := emptyInput()
				in.Cluster.Members["node1"] = Member{Name: "node1", Role: RoleStopped, SystemID: "7"}
				return in
			},
			wantReason: "node1 holds the cluster's data",
		},
		{
			name: "a writable leader: clone it",
			in: func() Input {
				in := leaderInput()
				in.HoldsLeader = false
				in.Self = Local{Name: "node3", Priority: 100, NoData: true}
				return in
			},
			want:       []ActionKind{Clone},
			wantTarget: "node1",
			wantReason: "cloning the writable leader node1",
		},
		{
			name: "a leader that is not writable yet: wait",
			in: func() Input {
				in := leaderInput()
				in.HoldsLeader = false
				in.Self = Local{Name: "node3", Priority: 100, NoData: true}
				m := in.Cluster.Members["node1"]
				m.Writable = false
				in.Cluster.Members["node1"] = m
				return in
			},
			wantReason: "waiting until the leader node1 is writable",
		},
		{
			name: "the leader's data directory vanished: routes, server and key go",
			in: func() Input {
				in := leaderInput()
				in.Self = Local{Name: "node1", Priority: 100, NoData: true}
				return in
			},
			want:       []ActionKind{WithdrawWritable, Demote, ReleaseLeader},
			wantReason: "giving up the primary role",
		},
		{
			name: "paused: nothing is built",
			in: func() Input {
				in := emptyInput()
				in.Cluster.Paused = true
				return in
			},
			wantReason: "paused",
		},
		{
			name: "no trusted IP answers: a node that may be cut off builds nothing",
			in: func() Input {
				in := emptyInput()
				in.TrustedReachable = false
				return in
			},
			wantReason: "no trusted IP",
		},
		{
			name: "no DCS: nothing is built",
			in: func() Input {
				in := emptyInput()
				in.Cluster = Cluster{}
				return in
			},
			wantReason: "DCS unreachable",
		},
		{
			name: "a request to promote this empty node is no reason to: it has nothing",
			in: func() Input {
				in := emptyInput()
				in.Cluster.Initialize, in.Cluster.InitializedSystemID = "node1", "7"
				in.Cluster.LastLeaderTimeline = 1
				in.Cluster.Request = &Request{Kind: RequestFailover, To: "node3", Created: t0}
				return in
			},
			wantReason: "waiting for a writable leader",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := Decide(tt.in())
			if got := kinds(out); !slices.Equal(got, tt.want) {
				t.Fatalf("actions = %v, want %v (reason %q)", got, tt.want, out.Reason)
			}
			if tt.wantTarget != "" && out.Actions[len(out.Actions)-1].Target != tt.wantTarget {
				t.Errorf("target = %q, want %q", out.Actions[len(out.Actions)-1].Target, tt.wantTarget)
			}
			if !strings.Contains(out.Reason, tt.wantReason) {
				t.Errorf("reason %q lacks %q", out.Reason, tt.wantReason)
			}
		})
	}
}

// An empty node is never a failover candidate: the other standbys do not
// count it, since it publishes no running standby.
func TestEmptyNodeIsNoCandidate(t *testing.T) {
	in := orphanInput(standbyLocal("node2", 0x5000000),
		Member{Name: "node3", Role: RoleStopped, Priority: 1000})
	in.Self.Upstream = ""
	out := Decide(in)
	if !out.Has(Failover) {
		t.Fatalf("node2 should fail over past the empty node3: %v %q", kinds(out), out.Reason)
	}
}

func TestForeignSystemRefused(t *testing.T) {
	tests := []struct {
		name string
		self Local
		want []ActionKind
	}{
		{"stopped server of another system: untouched", Local{Name: "node3", Priority: 100, SystemID: "99", Timeline: 1}, nil},
		{"standby-configured server of another system: not started", Local{Name: "node3", Priority: 100, SystemID: "99", Timeline: 1, StandbyConfigured: true}, nil},
		{"running primary of another system: stopped", primaryLocalWith("node3", "99"), []ActionKind{WithdrawWritable, Demote}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := leaderInput()
			in.HoldsLeader = false
			in.Cluster.Initialize, in.Cluster.InitializedSystemID = "node1", "7"
			in.Config.AutoRejoin = true
			in.Self = tt.self
			out := Decide(in)
			if got := kinds(out); !slices.Equal(got, tt.want) {
				t.Fatalf("actions = %v, want %v (reason %q)", got, tt.want, out.Reason)
			}
			if !strings.Contains(out.Reason, "refused: the data directory holds system 99") {
				t.Errorf("reason %q does not name the refusal", out.Reason)
			}
		})
	}
}

func primaryLocalWith(name, systemID string) Local {
	l := primaryLocal(name)
	l.SystemID = systemID
	return l
}
