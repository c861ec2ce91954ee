package dcs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/lab/labtest"
)

func voter(id uint64, name string, healthy bool) EtcdMember {
	return EtcdMember{ID: id, Name: name, PeerURLs: []string{fmt.Sprintf("https://198.18.0.%d:2380", 10+id)}, Healthy: healthy}
}

func TestCheckAdd(t *testing.T) {
	three := []EtcdMember{voter(1, "node1", true), voter(2, "node2", true), voter(3, "node3", false)}
	learner := voter(4, "node4", false)
	learner.Learner = true
	unstarted := EtcdMember{ID: 0x5a, PeerURLs: []string{"https://198.18.0.15:2380"}, Learner: true}
	tests := []struct {
		name    string
		members []EtcdMember
		add     string
		peer    string
		want    string // "" accepts
	}{
		{"new name and URL", three, "node4", "https://198.18.0.14:2380", ""},
		{"name present", three, "node2", "https://198.18.0.14:2380", "refused: a member named node2 is already present (ID 2, peer URL https://198.18.0.12:2380)"},
		{"peer URL present", three, "node9", "https://198.18.0.13:2380", "refused: peer URL https://198.18.0.13:2380 already belongs to member node3"},
		{"a learner still joining", append(three, learner), "node5", "https://198.18.0.15:2380", "refused: member node4 is still a learner: let it catch up and be promoted before adding another (one member at a time)"},
		{"a member added, never started", append(three, unstarted), "node6", "https://198.18.0.16:2380", "refused: member 5a (not started, https://198.18.0.15:2380) was added but has not started: start it, or remove it, before adding another"},
		{"name present while another joins", append(three, unstarted), "node1", "https://198.18.0.16:2380", "refused: a member named node1 is already present (ID 1, peer URL https://198.18.0.11:2380)"},
		{"no name", three, "", "https://198.18.0.14:2380", "refused: a new member needs a name and a peer URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckAdd(tt.members, tt.add, tt.peer)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || err.Error() != tt.want):
				t.Fatalf("error %v, want %q", err, tt.want)
			case tt.want != "" && !errors.Is(err, ErrMembershipRefused):
				t.Fatalf("error %v is not ErrMembershipRefused", err)
			}
		})
	}
}

func TestCheckRemove(t *testing.T) {
	healthy := func(n int) []EtcdMember {
		var ms []EtcdMember
		for i := 1; i <= n; i++ {
			ms = append(ms, voter(uint64(i), fmt.Sprintf("node%d", i), true))
		}
		return ms
	}
	withDead := func(ms []EtcdMember, dead ...int) []EtcdMember {
		out := append([]EtcdMember(nil), ms...)
		for _, d := range dead {
			out[d-1].Healthy = false
		}
		return out
	}
	learner := voter(6, "node6", false)
	learner.Learner = true
	tests := []struct {
		name    string
		members []EtcdMember
		remove  string
		leader  string
		want    string // "" accepts
	}{
		{"five healthy, shrink to four", healthy(5), "node5", "node1", ""},
		{"three healthy, shrink to two", healthy(3), "node3", "node1", ""},
		{"the dead member of three", withDead(healthy(3), 3), "node3", "node1", ""},
		{"a healthy member of three with one dead", withDead(healthy(3), 3), "node2", "node1",
			"refused: removing node2 leaves 2 voting members, of which 2 must be healthy for a quorum, and only 1 are (node1)"},
		{"five with two dead, remove a healthy one", withDead(healthy(5), 4, 5), "node3", "node1",
			"refused: removing node3 leaves 4 voting members, of which 3 must be healthy for a quorum, and only 2 are (node1, node2)"},
		{"five with two dead, remove a dead one", withDead(healthy(5), 4, 5), "node5", "node1", ""},
		{"the last member", healthy(1), "node1", "", "refused: node1 is the last voting member: a cluster without members holds nothing"},
		{"the last voter beside a learner", append(healthy(1), learner), "node1", "",
			"refused: node1 is the last voting member: a cluster without members holds nothing"},
		{"a learner", append(withDead(healthy(3), 2, 3), learner), "node6", "node1", ""},
		{"the holder of the leader key", healthy(5), "node2", "node2",
			"refused: node2 holds the leader key (its database is the primary): its agent would stop and leave the primary unmanaged; move the primary first with `vigil ctl switchover`"},
		{"by ID", healthy(3), "3", "node1", ""},
		{"by peer URL", healthy(3), "https://198.18.0.13:2380", "node1", ""},
		{"unknown", healthy(2), "node9", "node1", "refused: no etcd member node9 (members: node1, node2)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := CheckRemove(tt.members, tt.remove, tt.leader)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want == "" && !m.matches(tt.remove):
				t.Fatalf("found %+v for %s", m, tt.remove)
			case tt.want != "" && (err == nil || err.Error() != tt.want):
				t.Fatalf("error %v, want %q", err, tt.want)
			case tt.want != "" && !errors.Is(err, ErrMembershipRefused):
				t.Fatalf("error %v is not ErrMembershipRefused", err)
			}
		})
	}
}

// startJoining starts the member added as a, configured as the new node's
// agent configures it, and promotes it once it has caught up.
func startJoining(ctx context.Context, t *testing.T, a AddedMember, clientURL, dataDir string) *EmbeddedMember {
	t.Helper()
	m, err := StartMember(MemberConfig{
		Name: a.Name, DataDir: dataDir, PeerURL: a.PeerURLs[0], ClientURL: clientURL,
		InitialCluster: a.InitialCluster, ClusterToken: "test", JoinExisting: true, TickMs: 10, ElectionMs: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(5 * time.Second) })
	if err := m.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.PromoteWhenCaughtUp(ctx, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	return m
}

// checkVoters waits until the members are exactly want, each a healthy
// voting member, and returns them.
func checkVoters(ctx context.Context, t *testing.T, s *Store, want ...string) []EtcdMember {
	t.Helper()
	var ms []EtcdMember
	var last error
	defer func() {
		if t.Failed() {
			t.Logf("last member list: %+v, %v", ms, last)
		}
	}()
	labtest.WaitFor(t, ctx, fmt.Sprintf("healthy voting members %v", want), func() bool {
		if ms, last = s.EtcdMembers(ctx); last != nil {
			return false
		}
		var got []string
		for _, m := range ms {
			if !m.Learner && m.Healthy {
				got = append(got, m.Name)
			}
		}
		return len(ms) == len(want) && strings.Join(got, ",") == strings.Join(want, ",")
	})
	return ms
}

// TestMembershipGrowsAndShrinks: real members on loopback. A cluster of
// three grows to five, each new member joining as a learner started with
// the initial cluster AddEtcdMember returned and promoting itself once
// caught up; a name or peer URL already present is refused; it shrinks
// back, the etcd leader included, each removed member's server stopping on
// its own (Removed) and refusing to start again from its data directory;
// a removal that would cost the quorum, and of the last member, is refused.
func TestMembershipGrowsAndShrinks(t *testing.T) {
	members, urls := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := openStore(t, urls, 2*time.Second)
	if err := s.SetPaused(ctx, false); err != nil {
		t.Fatal(err)
	}

	joined := map[string]*EmbeddedMember{}
	dirs := map[string]string{}
	for _, name := range []string{"m4", "m5"} {
		peer := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
		a, err := s.AddEtcdMember(ctx, name, peer)
		if err != nil {
			t.Fatal(err)
		}
		if len(a.InitialCluster) != len(joined)+4 || a.InitialCluster[name] != peer || a.InitialCluster["m1"] == "" || !a.Learner {
			t.Fatalf("added %+v", a)
		}
		// A second add of the same name, or of the same peer URL, while
		// the first has not even started.
		if _, err := s.AddEtcdMember(ctx, name, fmt.Sprintf("http://127.0.0.1:%d", freePort(t))); !errors.Is(err, ErrMembershipRefused) {
			t.Fatalf("second add of %s: %v", name, err)
		}
		if _, err := s.AddEtcdMember(ctx, "other", peer); !errors.Is(err, ErrMembershipRefused) || !strings.Contains(err.Error(), "peer URL "+peer+" already belongs") {
			t.Fatalf("add of a present peer URL: %v", err)
		}
		dirs[name] = t.TempDir()
		joined[name] = startJoining(ctx, t, a, fmt.Sprintf("http://127.0.0.1:%d", freePort(t)), dirs[name])
		if _, err := s.AddEtcdMember(ctx, name, fmt.Sprintf("http://127.0.0.1:%d", freePort(t))); !errors.Is(err, ErrMembershipRefused) ||
			!strings.Contains(err.Error(), "a member named "+name+" is already present") {
			t.Fatalf("add of %s once started: %v", name, err)
		}
	}
	checkVoters(ctx, t, s, "m1", "m2", "m3", "m4", "m5")
	// The new members serve the cluster's data.
	s5 := openStore(t, []string{joined["m5"].ClientURL()}, 2*time.Second)
	if v, err := s5.Snapshot(ctx); err != nil || v.Revision == 0 {
		t.Fatalf("read through m5: %+v %v", v, err)
	}

	// Shrink: the etcd leader first (leadership moves away before), then
	// the two that joined.
	ms := checkVoters(ctx, t, s, "m1", "m2", "m3", "m4", "m5")
	var leader string
	for _, m := range ms {
		if m.Leader {
			leader = m.Name
		}
	}
	if leader == "" {
		t.Fatalf("no etcd leader in %+v", ms)
	}
	byName := map[string]*EmbeddedMember{"m1": members[0], "m2": members[1], "m3": members[2], "m4": joined["m4"], "m5": joined["m5"]}
	removed := []string{leader}
	for _, n := range []string{"m4", "m5"} {
		if n != leader && len(removed) < 2 {
			removed = append(removed, n)
		}
	}
	var left []string
	for _, n := range []string{"m1", "m2", "m3", "m4", "m5"} {
		if n != removed[0] && n != removed[1] {
			left = append(left, n)
		}
	}
	// The store must reach the cluster through a member that stays.
	s = openStore(t, []string{byName[left[0]].ClientURL()}, 2*time.Second)
	for _, n := range removed {
		got, err := s.RemoveEtcdMember(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		if got.Name != n {
			t.Fatalf("removed %+v, want %s", got, n)
		}
		select {
		case <-byName[n].Removed():
		case <-ctx.Done():
			t.Fatalf("%s's server did not stop after its removal", n)
		}
	}
	checkVoters(ctx, t, s, left...)
	for _, n := range removed {
		byName[n].Close(5 * time.Second)
	}
	// A removed member's data directory does not start again.
	if dir, ok := dirs[removed[1]]; ok {
		_, err := StartMember(MemberConfig{Name: removed[1], DataDir: dir, PeerURL: "http://127.0.0.1:1", ClientURL: "http://127.0.0.1:2",
			InitialCluster: map[string]string{removed[1]: "http://127.0.0.1:1"}, ClusterToken: "test"})
		if !errors.Is(err, ErrMemberRemoved) {
			t.Fatalf("restart of a removed member: %v", err)
		}
	}

	// Three left; one dies: removing a healthy one would leave two voters
	// with one healthy, refused; the dead one may go, and then one more,
	// but not the last.
	byName[left[2]].Close(5 * time.Second)
	if _, err := s.RemoveEtcdMember(ctx, left[1]); !errors.Is(err, ErrMembershipRefused) ||
		!strings.Contains(err.Error(), "leaves 2 voting members, of which 2 must be healthy for a quorum, and only 1 are ("+left[0]+")") {
		t.Fatalf("removal that costs the quorum: %v", err)
	}
	// The etcd leader's node holds the database leader key: leadership
	// moves off it before the removal, which stalls the etcd leader.
	var holder string
	labtest.WaitFor(t, ctx, "an etcd leader among the members left", func() bool {
		ms, err := s.EtcdMembers(ctx)
		for _, m := range ms {
			if err == nil && m.Leader && m.Healthy {
				holder = m.Name
			}
		}
		return holder != ""
	})
	if _, err := s.client.Put(ctx, s.key("leader"), holder); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RemoveEtcdMember(ctx, left[2]); err != nil {
		t.Fatal(err)
	}
	for _, m := range checkVoters(ctx, t, s, left[:2]...) {
		if m.Leader && m.Name == holder {
			t.Fatalf("etcd leadership stayed on %s, the node holding the leader key, through a removal", holder)
		}
	}
	if _, err := s.client.Delete(ctx, s.key("leader")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RemoveEtcdMember(ctx, left[1]); err != nil {
		t.Fatal(err)
	}
	select {
	case <-byName[left[1]].Removed():
	case <-ctx.Done():
		t.Fatalf("%s's server did not stop after its removal", left[1])
	}
	if _, err := s.RemoveEtcdMember(ctx, left[0]); !errors.Is(err, ErrMembershipRefused) || !strings.Contains(err.Error(), "is the last voting member") {
		t.Fatalf("removal of the last member: %v", err)
	}
	select {
	case <-byName[left[0]].Removed():
		t.Fatalf("the last member %s stopped", left[0])
	default:
	}
	checkVoters(ctx, t, s, left[0])
}
