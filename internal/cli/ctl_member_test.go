package cli

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/dcs"
)

// TestCtlMemberCommands: `vigil ctl member` against a real etcd member on
// loopback. add prints the new member's configuration and refuses a name
// or peer URL already present (exit 2); list shows both members; the last
// voting member's removal is refused with exit 2; the learner that never
// started is removed by its peer URL.
func TestCtlMemberCommands(t *testing.T) {
	peer, client := loopbackURL(t), loopbackURL(t)
	m, err := dcs.StartMember(dcs.MemberConfig{Name: "node1", DataDir: t.TempDir(), PeerURL: peer, ClientURL: client,
		InitialCluster: map[string]string{"node1": peer}, ClusterToken: "test", TickMs: 10, ElectionMs: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	newPeer := loopbackURL(t)
	ctl := []string{"--endpoints", client, "--cluster", "main", "member"}
	runCLICases(t, "ctl", []cliCase{
		{"add", append(ctl, "add", "node2", "--peer-url", newPeer), ExitOK, []string{
			"added etcd member node2", "as a learner",
			"    peer_url: " + newPeer + "\n    initial_cluster_state: existing\n    initial_cluster:\n      node1: " + peer + "\n      node2: " + newPeer + "\n",
		}, ""},
		{"add the same peer URL", append(ctl, "add", "node3", "--peer-url", newPeer), ExitUsage, nil, "refused: peer URL " + newPeer + " already belongs to member"},
		{"add a name present", append(ctl, "add", "node1", "--peer-url", loopbackURL(t)), ExitUsage, nil, "refused: a member named node1 is already present"},
		{"list", append(ctl, "list"), ExitOK, []string{"NAME", "node1", peer, client, "-", newPeer}, ""},
		{"remove the last voter", append(ctl, "remove", "node1"), ExitUsage, nil, "refused: node1 is the last voting member"},
		{"remove the learner by peer URL", append(ctl, "remove", newPeer), ExitOK, []string{"removed etcd member", fmt.Sprintf("not started, %s", newPeer)}, ""},
		{"remove it again", append(ctl, "remove", newPeer), ExitUsage, nil, "refused: no etcd member " + newPeer + " (members: node1)"},
	})
}
