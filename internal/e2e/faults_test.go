package e2e

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
		// A backend of a client connection may have exited since the
		// listing: it needs no stopping.
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil && !errors.Is(err, syscall.ESRCH) {
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
	// The lease must really lapse, or this test proves nothing; then the
	// standbys get a whole TTL more to (wrongly) take over.
	if err := eventually(ctx, 3*testTTL, func() error {
		if leader, err := leaderKey(ctx, s); err != nil || leader == "node1" {
			return fmt.Errorf("leader key while node1's agent is frozen = %q (%v), want it expired", leader, err)
		}
		return nil
	}); err != nil {
		c.signalAgent("node1", syscall.SIGCONT)
		t.Fatal(err)
	}
	time.Sleep(testTTL)
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

// TestFailsafeKeepsWritesThroughAnEtcdOutage stops the cluster's only
// (external) etcd. With dcs.failsafe the primary keeps accepting writes
// while both standbys' agents confirm they will not promote; once one of
// them stops answering (its agent is killed) the primary demotes as it
// would without failsafe.
func TestFailsafeKeepsWritesThroughAnEtcdOutage(t *testing.T) {
	peer := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	client := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	etcd, err := dcs.StartMember(dcs.MemberConfig{Name: "etcd1", DataDir: t.TempDir(), PeerURL: peer, ClientURL: client,
		InitialCluster: map[string]string{"etcd1": peer}, ClusterToken: "e2e-failsafe"})
	if err != nil {
		t.Fatal(err)
	}
	stopEtcd := sync.OnceFunc(func() { etcd.Close(5 * time.Second) })
	t.Cleanup(stopEtcd)
	ctx := testCtx(t, 5*time.Minute)
	if err := etcd.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, clusterOptions{nodes: 3, endpoints: []string{client}, api: true,
		edit: func(_ string, cfg map[string]any) { cfg["dcs"].(map[string]any)["failsafe"] = true }})
	c.startAgents(ctx)
	checker := c.startSplitBrainChecker()
	checker.waitCommits(t, "node1")
	postmaster := c.serverTree(ctx, "node1")[0]

	stopEtcd()
	outage := time.Now()
	// Far past the lease: without failsafe node1 would have stopped after
	// lease_ttl/2.
	deadline := outage.Add(4 * testTTL)
	for time.Now().Before(deadline) {
		if r := c.server("node1").ProbeWrite(ctx); !r.Writable() {
			t.Fatalf("node1 stopped accepting writes %s into the etcd outage: %v", time.Since(outage).Round(time.Millisecond), r)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := c.serverTree(ctx, "node1")[0]; got != postmaster {
		t.Errorf("node1's postmaster changed from %d to %d during the outage", postmaster, got)
	}
	for _, n := range []string{"node2", "node3"} {
		if v, err := c.queryOn(ctx, n, "select pg_is_in_recovery()::text"); err != nil || v != "true" {
			t.Errorf("%s in recovery = %q (%v), want true", n, v, err)
		}
	}

	// node3 stops answering: node1 can no longer be sure nobody promotes.
	c.killAgent("node3")
	n1, _ := c.lab.Node("node1")
	if err := eventually(ctx, 3*testTTL, func() error {
		if running, _, err := c.lab.Ctl(n1).Status(ctx); err != nil || running {
			return fmt.Errorf("node1 running=%v err=%v", running, err)
		}
		return nil
	}); err != nil {
		t.Errorf("node1 kept its primary although node3 stopped confirming: %v", err)
	}
	checker.finish(t)
	c.stopAll()
	if logs := readFile(t, c.dir+"/node2.agent.log"); !containsAll(logs, "promised the leader not to promote") {
		t.Errorf("node2's log does not show its failsafe promise:\n%s", tail(logs, 20))
	}
}
