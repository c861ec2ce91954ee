package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/demo"
)

// demoDir is a lab directory the postgres account can reach.
func demoDir(t *testing.T) string {
	t.Helper()
	parent, err := os.MkdirTemp("", "vigil-demo-test-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(parent, 0o755)
	t.Cleanup(func() { os.RemoveAll(parent) })
	return filepath.Join(parent, "lab")
}

// TestSeedScenarioThroughTheVIP is the seed incident, end to end, twice on
// the same machine: a client in its own namespace writes through the VIP,
// the standbys are 96 MB behind on replay, the primary node crashes.
// With Vigil's order the client sees no read-only error, loses no
// acknowledged write (synchronous mode), and reaches the new primary
// through the VIP, which is on exactly one host. With the legacy order
// (failover_stream.sh: VIP first, "select 33333" as readiness), the same
// client sees read-only errors.
func TestSeedScenarioThroughTheVIP(t *testing.T) {
	ctx := testCtx(t, 8*time.Minute)
	run := func(legacy bool) demo.Result {
		t.Helper()
		res, err := demo.Run(ctx, demo.Options{Dir: demoDir(t), Binary: vigilBin, Scenario: demo.NodeCrash, SyncMode: "on", LagMB: 96, Rate: 100, Legacy: legacy})
		if err != nil {
			t.Fatalf("legacy=%v: %v", legacy, err)
		}
		t.Logf("legacy=%v:%s", legacy, demo.Format(res))
		return res
	}

	vigil := run(false)
	if vigil.ReadOnlyErrors != 0 || vigil.OtherErrors != 0 {
		t.Errorf("Vigil order: %d read-only and %d other errors through the VIP, want 0", vigil.ReadOnlyErrors, vigil.OtherErrors)
	}
	if vigil.AckedWritesLost != 0 || vigil.AckedWrites < 100 {
		t.Errorf("Vigil order: %d of %d acknowledged writes lost", vigil.AckedWritesLost, vigil.AckedWrites)
	}
	if vigil.VIPHolder != vigil.NewPrimary || vigil.NewPrimary == vigil.OldLeader {
		t.Errorf("VIP on %q, new primary %q (old %q): want the VIP on the new primary only", vigil.VIPHolder, vigil.NewPrimary, vigil.OldLeader)
	}
	if vigil.WriteOutageS <= 0 {
		t.Errorf("no write committed through the VIP after the failover")
	}
	if vigil.ReplayBacklogBytes < 64<<20 {
		t.Errorf("replay backlog at the crash %d bytes: the scenario did not reproduce the seed's load", vigil.ReplayBacklogBytes)
	}
	var gate, routes int = -1, -1
	for i, s := range vigil.Steps {
		switch s.Name {
		case "readiness_gate":
			gate = i
		case "routes_up":
			routes = i
		}
	}
	if gate < 0 || routes < gate {
		t.Errorf("steps %v: the VIP must come up after the readiness gate", vigil.Steps)
	}

	legacy := run(true)
	if legacy.ReadOnlyErrors == 0 {
		t.Errorf("legacy order: no read-only error through the VIP; the baseline did not reproduce the seed")
	}
}

// TestPartitionedPrimaryDropsTheVIPFirst: a poller records which hosts hold
// the VIP while the primary's link is cut; the old holder must drop it
// before any other host adds it.
func TestPartitionedPrimaryDropsTheVIPFirst(t *testing.T) {
	c := newCluster(t, clusterOptions{nodes: 3, netns: true, vip: 100})
	ctx := testCtx(t, 5*time.Minute)
	for _, n := range []string{"node1", "node2", "node3"} {
		c.startAgent(n)
	}
	s := c.store()
	if p := c.waitWritablePrimary(ctx, s); p != "node1" {
		t.Fatalf("initial primary = %s", p)
	}
	vip := c.VIP()
	holds := func(node string) bool {
		n, _ := c.lab.Node(node)
		out, err := exec.Command("ip", "-n", n.Netns, "-o", "addr", "show", "dev", "eth0").Output()
		return err == nil && strings.Contains(string(out), " "+vip+"/")
	}
	if err := eventually(ctx, 20*time.Second, func() error {
		if !holds("node1") {
			return fmt.Errorf("node1 does not hold the VIP")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	type sample struct {
		at      time.Time
		holders []string
	}
	var mu sync.Mutex
	var samples []sample
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			var h []string
			for _, n := range []string{"node1", "node2", "node3"} {
				if holds(n) {
					h = append(h, n)
				}
			}
			mu.Lock()
			samples = append(samples, sample{time.Now(), h})
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
	}()
	n1, _ := c.lab.Node("node1")
	setLink(t, n1.Link, "down")
	t.Cleanup(func() { exec.Command("ip", "link", "set", n1.Link, "up").Run() })
	newPrimary := c.waitWritablePrimary(ctx, s, "node1")
	if err := eventually(ctx, 20*time.Second, func() error {
		if !holds(newPrimary) {
			return fmt.Errorf("%s does not hold the VIP", newPrimary)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	close(stop)
	<-done

	var oldGone, newUp time.Time
	for _, smp := range samples {
		if len(smp.holders) > 1 {
			t.Fatalf("at %s the VIP was on %v at once", smp.at.Format("15:04:05.000"), smp.holders)
		}
		if oldGone.IsZero() && !contains(smp.holders, "node1") {
			oldGone = smp.at
		}
		if newUp.IsZero() && contains(smp.holders, newPrimary) {
			newUp = smp.at
		}
	}
	if oldGone.IsZero() || newUp.IsZero() || !oldGone.Before(newUp) {
		t.Errorf("node1 dropped the VIP at %v, %s added it at %v: want the drop first", oldGone, newPrimary, newUp)
	}
	t.Logf("%d samples; node1 dropped the VIP %s before %s added it", len(samples), newUp.Sub(oldGone).Round(time.Millisecond), newPrimary)
}

// TestSIGTERMReleasesVIPAndLeaderKey: a clean agent shutdown on the primary
// takes the VIP away, releases the leader key at once (no wait for the
// TTL), and a standby takes over.
func TestSIGTERMReleasesVIPAndLeaderKey(t *testing.T) {
	c := newCluster(t, clusterOptions{nodes: 3, netns: true, vip: 100})
	ctx := testCtx(t, 5*time.Minute)
	for _, n := range []string{"node1", "node2", "node3"} {
		c.startAgent(n)
	}
	s := c.store()
	if p := c.waitWritablePrimary(ctx, s); p != "node1" {
		t.Fatalf("initial primary = %s", p)
	}
	n1, _ := c.lab.Node("node1")
	holds := func() bool {
		out, err := exec.Command("ip", "-n", n1.Netns, "-o", "addr", "show", "dev", "eth0").Output()
		return err == nil && strings.Contains(string(out), " "+c.VIP()+"/")
	}
	if err := eventually(ctx, 20*time.Second, func() error {
		if !holds() {
			return fmt.Errorf("node1 does not hold the VIP")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.StopAgent("node1", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	stoppedAt := time.Now()
	if holds() {
		t.Error("the VIP is still on node1 after its agent exited")
	}
	v, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.Leader == "node1" {
		t.Errorf("leader key still names node1 after a clean shutdown")
	}
	if _, ok := v.Members["node1"]; ok {
		t.Errorf("member key of node1 still present after a clean shutdown")
	}
	p := c.waitWritablePrimary(ctx, s, "node1")
	t.Logf("%s took over %s after node1's agent exited (TTL %s)", p, time.Since(stoppedAt).Round(time.Millisecond), testTTL)
}
