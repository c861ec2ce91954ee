package e2e

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/proc"
)

// serverTree lists the postmaster of node and all its children.
func (c *cluster) serverTree(ctx context.Context, node string) []int {
	c.t.Helper()
	_, pid, err := c.server(node).Ctl.Status(ctx)
	if err != nil || pid == 0 {
		c.t.Fatalf("postmaster of %s: pid %d, %v", node, pid, err)
	}
	tree, err := proc.Tree(pid)
	if err != nil || len(tree) < 2 {
		c.t.Fatalf("processes of %s: %v, %v", node, tree, err)
	}
	return tree
}

// TestHungPrimaryIsReplacedWithinTheLease freezes every process of the
// primary's PostgreSQL (a dead SAN, a kernel stuck in D state). Its agent
// must end the server (an immediate shutdown cannot: SIGKILL does) and give
// the key up, a standby must take over within about one lease, and the
// former primary must never run as a primary again on its own: giving the
// key up for a failed server means staying down until rejoined.
func TestHungPrimaryIsReplacedWithinTheLease(t *testing.T) {
	c := newCluster(t, clusterOptions{nodes: 3})
	ctx := testCtx(t, 5*time.Minute)
	s := c.startAgents(ctx)
	checker := c.startSplitBrainChecker()
	checker.waitCommits(t, "node1")

	tree := c.serverTree(ctx, "node1")
	hungAt := time.Now()
	for _, pid := range tree {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatalf("SIGSTOP %d: %v", pid, err)
		}
	}
	t.Cleanup(func() {
		for _, pid := range proc.Alive(tree) {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	})

	p := c.waitWritablePrimary(ctx, s, "node1")
	took := time.Since(hungAt)
	t.Logf("%s writable %s after node1's server hung", p, took.Round(time.Millisecond))
	// The bound of the issue: lease TTL plus a few seconds (the old agent
	// waited 30 s per stop attempt and kept renewing the key meanwhile).
	if bound := testTTL + 8*time.Second; took > bound {
		t.Errorf("failover after a hung primary took %s, want under %s", took.Round(time.Millisecond), bound)
	}
	if left := proc.Alive(tree); len(left) > 0 {
		t.Errorf("processes of the hung server survive: %v", left)
	}

	// Several leases later node1 still is not a primary: its agent gave the
	// key up because its server failed, so it waits to be rejoined.
	time.Sleep(4 * testTTL)
	if r := c.server("node1").ProbeWrite(ctx); r.Writable() {
		t.Errorf("the hung primary came back as a writable primary: %v", r)
	}
	if running, _, _ := c.server("node1").Ctl.Status(ctx); running {
		t.Errorf("node1's server runs again without a rejoin")
	}
	if got := c.waitWritablePrimary(ctx, s); got != p {
		t.Errorf("primary = %s, want %s", got, p)
	}
	checker.finish(t)
}

// TestFrozenAgentKeepsItsPrimary pauses the primary's agent for longer than
// the lease TTL while PostgreSQL keeps serving. The standbys must not
// promote (their upstream is alive), and the resumed agent must take the
// free key back instead of stopping a healthy primary: same server process,
// no failover.
func TestFrozenAgentKeepsItsPrimary(t *testing.T) {
	c := newCluster(t, clusterOptions{nodes: 3})
	ctx := testCtx(t, 5*time.Minute)
	s := c.startAgents(ctx)
	checker := c.startSplitBrainChecker()
	checker.waitCommits(t, "node1")
	postmaster := c.serverTree(ctx, "node1")[0]

	c.signalAgent("node1", syscall.SIGSTOP)
	time.Sleep(2*testTTL + time.Second)
	// The lease must really have lapsed, or this test proves nothing.
	if leader, err := leaderKey(ctx, s); err != nil || leader == "node1" {
		t.Fatalf("leader key while node1's agent is frozen = %q (%v), want it expired", leader, err)
	}
	c.signalAgent("node1", syscall.SIGCONT)

	if err := eventually(ctx, 4*testTTL, func() error {
		leader, err := leaderKey(ctx, s)
		if err != nil || leader != "node1" {
			return fmt.Errorf("leader key = %q (%v), want node1", leader, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * testTTL)
	if p := c.waitWritablePrimary(ctx, s); p != "node1" {
		t.Errorf("primary after the agent resumed = %s, want node1", p)
	}
	if got := c.serverTree(ctx, "node1")[0]; got != postmaster {
		t.Errorf("node1's postmaster changed from %d to %d: the healthy primary was stopped", postmaster, got)
	}
	if hist, err := s.History(ctx); err != nil || len(hist) != 0 {
		t.Errorf("failover history holds %d records (%v), want none", len(hist), err)
	}
	checker.finish(t)
}

// leaderKey reads who holds the leader key ("" when free).
func leaderKey(ctx context.Context, s *dcs.Store) (string, error) {
	v, err := s.Snapshot(ctx)
	return v.Leader, err
}
