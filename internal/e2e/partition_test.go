package e2e

import (
	"fmt"
	"os/exec"
	"testing"
	"time"
)

// TestPartitionedPrimaryDemotesItself cuts the primary's link (netns mode):
// it must stop its server before a standby takes over, and after the link
// returns there must still be exactly one writable primary.
func TestPartitionedPrimaryDemotesItself(t *testing.T) {
	c := newCluster(t, clusterOptions{nodes: 3, netns: true})
	ctx := testCtx(t, 6*time.Minute)
	for _, n := range []string{"node1", "node2", "node3"} {
		c.startAgent(n)
	}
	s := c.store()
	if p := c.waitWritablePrimary(ctx, s); p != "node1" {
		t.Fatalf("initial primary = %s", p)
	}
	checker := c.startSplitBrainChecker()
	checker.waitCommits(t, "node1")
	n1, _ := c.lab.Node("node1")
	if n1.Link == "" {
		t.Fatal("netns lab node has no host link")
	}
	setLink(t, n1.Link, "down")
	t.Cleanup(func() { exec.Command("ip", "link", "set", n1.Link, "up").Run() })
	cutAt := time.Now()

	// node1's server stops (seen through the file system, which the
	// partition does not cut) ...
	var stoppedAt time.Time
	stopped := make(chan time.Time, 1)
	go func() {
		ctl := c.lab.Ctl(n1)
		for ctx.Err() == nil {
			if running, _, err := ctl.Status(ctx); err == nil && !running {
				stopped <- time.Now()
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	// ... and a standby becomes the writable primary.
	newPrimary := c.waitWritablePrimary(ctx, s, "node1")
	writableAt := time.Now()
	select {
	case stoppedAt = <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("the partitioned primary never stopped its server")
	}
	t.Logf("link cut; node1 stopped after %s, %s writable after %s",
		stoppedAt.Sub(cutAt).Round(time.Millisecond), newPrimary, writableAt.Sub(cutAt).Round(time.Millisecond))
	if !stoppedAt.Before(writableAt) {
		t.Errorf("node1 stopped at +%s, after %s became writable at +%s", stoppedAt.Sub(cutAt), newPrimary, writableAt.Sub(cutAt))
	}

	setLink(t, n1.Link, "up")
	time.Sleep(4 * testTTL)
	if r := c.server("node1").ProbeWrite(ctx); r.Writable() {
		t.Errorf("node1 writable after the link returned: %v", r)
	}
	if p := c.waitWritablePrimary(ctx, s); p != newPrimary {
		t.Errorf("primary after the link returned = %s, want %s", p, newPrimary)
	}
	checker.finish(t)
}

func setLink(t *testing.T, link, state string) {
	t.Helper()
	if out, err := exec.Command("ip", "link", "set", link, state).CombinedOutput(); err != nil {
		t.Fatalf("ip link set %s %s: %v: %s", link, state, err, out)
	}
}

// TestAgentWithoutDCS: etcd is unreachable from the start. The agents keep
// retrying and say so; the standby never promotes and the primary, holding
// no leader key, is stopped.
func TestAgentWithoutDCS(t *testing.T) {
	closed := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	c := newCluster(t, clusterOptions{nodes: 2, endpoints: []string{closed}})
	ctx := testCtx(t, 3*time.Minute)
	c.startAgent("node1")
	c.startAgent("node2")
	n1, _ := c.lab.Node("node1")
	if err := eventually(ctx, 30*time.Second, func() error {
		if running, _, err := c.lab.Ctl(n1).Status(ctx); err != nil || running {
			return fmt.Errorf("node1 running=%v err=%v", running, err)
		}
		return nil
	}); err != nil {
		t.Errorf("the primary without a leader key kept running: %v", err)
	}
	deadline := time.Now().Add(3 * testTTL)
	for time.Now().Before(deadline) {
		if v, err := c.queryOn(ctx, "node2", "select pg_is_in_recovery()::text"); err != nil || v != "true" {
			t.Fatalf("node2 in recovery = %q (%v), want true: no promotion without the DCS", v, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.stopAll()
	logs := readFile(t, c.dir+"/node2.agent.log")
	if !containsAll(logs, "DCS unreachable: no promotion without the DCS") {
		t.Errorf("node2's log does not say why it does not promote:\n%s", tail(logs, 20))
	}
	if !containsAll(readFile(t, c.dir+"/node1.agent.log"), "a primary without the key must not run") {
		t.Error("node1's log does not say why its server was stopped")
	}
}
