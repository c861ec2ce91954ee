package dcsbench

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/pgctl"
	"github.com/vigil-ha/vigil/internal/rejoin"
	"github.com/vigil-ha/vigil/internal/testbin"
)

// TestTwentyClustersOnOneEtcd runs the benchmark small: 20 clusters of 3
// real agents against a real 3-member etcd (three vigil witness processes),
// five primaries crashed with their hosts. Every crash must end in a
// failover and every cluster with exactly one primary that its leader key
// and writable-primary record name. The load figures are printed, not
// judged: the benchmark measures them (BENCHMARKS.md).
func TestTwentyClustersOnOneEtcd(t *testing.T) {
	bin, remove, err := testbin.Build()
	if err != nil {
		t.Fatal(err)
	}
	defer remove()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const crashes = 5
	rep, err := Run(ctx, Options{Clusters: 20, Members: 3, Duration: 20 * time.Second, Crashes: crashes, Dir: t.TempDir(), Binary: bin, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + Summary(rep))
	if len(rep.CrashesNotInjected) > 0 {
		t.Fatalf("crashes not injected: %v", rep.CrashesNotInjected)
	}
	if len(rep.Failovers) != crashes {
		t.Fatalf("%d failovers recorded for %d crashes", len(rep.Failovers), crashes)
	}
	for _, f := range rep.Failovers {
		if !f.OK {
			t.Errorf("%s: no member replaced crashed primary %s", f.Cluster, f.Crashed)
		} else if f.NewPrimary == f.Crashed {
			t.Errorf("%s: the crashed primary %s counted as its own replacement", f.Cluster, f.Crashed)
		} else if f.LeaderS == 0 {
			t.Errorf("%s: %s published itself writable, but no other node's leader key was seen", f.Cluster, f.NewPrimary)
		}
	}
	for _, w := range rep.Wrong {
		t.Errorf("%s ended in a wrong state: %s", w.Cluster, w.Problem)
	}
	for _, v := range rep.TwoPrimaries {
		t.Errorf("two primaries at once: %s", v)
	}
	if rep.Etcd.RequestsPerS <= 0 || rep.Agents.CPUCores <= 0 {
		t.Errorf("nothing measured: etcd %+v, agents %+v", rep.Etcd, rep.Agents)
	}
	if t.Failed() {
		t.FailNow()
	}
}

// TestRefusesMoreThanTheMachineHolds: a fleet beyond the machine is
// refused before anything starts.
func TestRefusesMoreThanTheMachineHolds(t *testing.T) {
	dir := t.TempDir()
	_, err := Run(context.Background(), Options{Clusters: 1_000_000, Dir: dir, Binary: "/nonexistent/vigil"})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a million clusters: %v, want %v", err, ErrTooLarge)
	}
	t.Log(err)
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Fatalf("a refused run left %d files in its directory", len(entries))
	}
	if err := EstimateFor(20, 3, 3).Check(); err != nil {
		t.Fatalf("20 clusters, the size the CI test runs: %v", err)
	}
}

// TestModelFailsOver checks the database model alone: a crashed primary,
// a promoted standby on a new timeline, the old primary rejoined behind it.
func TestModelFailsOver(t *testing.T) {
	ctx := context.Background()
	c := newDBCluster([]string{"a", "b", "c"})
	if p := c.primaries(); len(p) != 1 || p[0] != "a" {
		t.Fatalf("primaries at start %v", p)
	}
	a, b := c.handle("a"), c.handle("b")
	if r := a.ProbeWrite(ctx); !r.Writable() {
		t.Fatalf("write on the primary: %+v", r)
	}
	obs, err := b.Observe(ctx)
	if err != nil || obs.WALReceiver == nil || obs.ReceivedLSN == 0 {
		t.Fatalf("standby b: %+v, %v", obs, err)
	}
	c.crash("a")
	if _, err := a.Observe(ctx); err == nil {
		t.Fatal("a crashed server answered")
	}
	if obs, _ := b.Observe(ctx); obs.WALReceiver != nil {
		t.Fatal("standby b still streams from a crashed primary")
	}
	if err := b.Promote(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	if p := c.primaries(); len(p) != 1 || p[0] != "b" {
		t.Fatalf("primaries after the promotion %v", p)
	}
	if r := b.ProbeWrite(ctx); !r.Writable() {
		t.Fatalf("write on the new primary: %+v", r)
	}
	if _, err := a.Rejoin(ctx, database.Upstream{Host: "b", Port: port}, rejoin.Options{}, nil); err != nil {
		t.Fatal(err)
	}
	obs, err = a.Observe(ctx)
	if err != nil || !obs.InRecovery || obs.Timeline != 2 || obs.WALReceiver == nil {
		t.Fatalf("rejoined a: %+v, %v", obs, err)
	}
	if v := c.violations(); len(v) > 0 {
		t.Fatalf("violations in a clean failover: %v", v)
	}
	// Starting the old primary as a primary again is what the model
	// reports as two primaries.
	if err := a.Stop(ctx, pgctl.Fast); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.servers["a"].standbySignal = false
	c.mu.Unlock()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if v := c.violations(); len(v) != 1 {
		t.Fatalf("a second primary started, violations %v", v)
	}
}

// TestPrimaryRecordChanges: the watch's reading of the writable-primary
// record ends a crash's failover only with another node's record, and
// counts every change no crash explains.
func TestPrimaryRecordChanges(t *testing.T) {
	put := func(node string) *clientv3.Event {
		return &clientv3.Event{Type: clientv3.EventTypePut, Kv: &mvccpb.KeyValue{Value: []byte(`{"node":"` + node + `"}`)}}
	}
	del := &clientv3.Event{Type: clientv3.EventTypeDelete, Kv: &mvccpb.KeyValue{}}
	c := &cluster{name: "c"}
	start := time.Now()
	c.notePrimary(put("node1"), start)
	if c.primary != "node1" || len(c.unplanned) != 0 {
		t.Fatalf("first record: primary %q, unplanned %v", c.primary, c.unplanned)
	}
	c.crash = &crash{f: Failover{Crashed: "node1", At: start}, done: make(chan struct{})}
	c.notePrimary(del, start.Add(3*time.Second))
	c.notePrimary(put("node1"), start.Add(3*time.Second))
	if c.crash.f.OK {
		t.Fatal("the crashed node's own record ended its failover")
	}
	c.notePrimary(put("node2"), start.Add(4*time.Second))
	if !c.crash.f.OK || c.crash.f.NewPrimary != "node2" || c.crash.f.S != 4 {
		t.Fatalf("failover after the crash: %+v", c.crash.f)
	}
	if len(c.unplanned) != 0 {
		t.Fatalf("a crash's failover counted as unplanned: %v", c.unplanned)
	}
	c.notePrimary(del, start.Add(10*time.Second))
	c.notePrimary(put("node3"), start.Add(11*time.Second))
	if len(c.unplanned) != 1 {
		t.Fatalf("a lost lease without a crash: unplanned %v, want one entry", c.unplanned)
	}
	c.notePrimary(put("node1"), start.Add(12*time.Second))
	if len(c.unplanned) != 2 {
		t.Fatalf("a record replaced by another node's: unplanned %v, want two entries", c.unplanned)
	}
}

// TestEtcdThatCannotStart: members that exit at once are reported as
// such, after the retries, and leave no process behind.
func TestEtcdThatCannotStart(t *testing.T) {
	_, err := startEtcd(context.Background(), "/bin/false", t.TempDir(), 3)
	if !errors.Is(err, errMemberExited) {
		t.Fatalf("members that exit at once: %v, want %v", err, errMemberExited)
	}
}
