package e2e

import (
	"encoding/json"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/decision"
)

// TestKilledPostmasterReleasesTheKeyAtOnce: kill -9 of a healthy
// primary's postmaster. Its agent waits on the postmaster process, not
// only on its loop: the decision that gives the leader key up is made in
// a loop run the postmaster's exit started (its log line says so), and a
// standby takes over. The loop interval is 25 s here and the kill comes
// just after a loop published its member record (so after that loop's
// decision): the next loop tick is far away, and only the exit can start
// the loop run that releases the key.
func TestKilledPostmasterReleasesTheKeyAtOnce(t *testing.T) {
	c := newCluster(t, clusterOptions{nodes: 3, edit: func(_ string, cfg map[string]any) {
		timing := cfg["timing"].(map[string]any)
		timing["lease_ttl"], timing["loop_interval"], timing["dcs_timeout"] = "60s", "25s", "1s"
	}})
	ctx := testCtx(t, 5*time.Minute)
	s := c.startAgents(ctx)
	checker := c.startSplitBrainChecker()
	checker.waitCommits(t, "node1")
	offset := logOffsets(t, c, []string{"node1"})["node1"]

	// Wait for a loop of node1 to publish its member record: its decision
	// is made, the next loop is a loop interval away.
	before, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for {
		v, err := s.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v.Members["node1"].UpdatedAt.After(before.Members["node1"].UpdatedAt) {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("node1's agent never published its member record again")
		}
		time.Sleep(20 * time.Millisecond)
	}
	postmaster := c.serverTree(ctx, "node1")[0]
	if err := syscall.Kill(postmaster, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 the postmaster %d: %v", postmaster, err)
	}
	p := c.waitWritablePrimary(ctx, s, "node1")
	t.Logf("%s is the writable primary after node1's postmaster was killed", p)
	checker.finish(t)

	var release []string
	for _, line := range logLinesSince(t, c, "node1", offset) {
		var l struct {
			Msg     string   `json:"msg"`
			Actions []string `json:"actions"`
			WokenBy string   `json:"woken_by"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "decision" && slices.Contains(l.Actions, string(decision.ReleaseLeader)) {
			release = append(release, line)
			if l.WokenBy != "postmaster exited" {
				t.Errorf("node1 released the key in a loop run not started by the postmaster's exit: %s", line)
			}
		}
	}
	if len(release) == 0 {
		t.Fatalf("node1's agent logged no decision to release the leader key after its postmaster died:\n%s",
			strings.Join(logLinesSince(t, c, "node1", offset), "\n"))
	}
}
