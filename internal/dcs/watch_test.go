package dcs

import (
	"testing"
	"time"
)

// TestWatchLeadershipSeesEveryWayTheKeyChanges: a watcher hears of the
// leader key being taken, of its lease expiring (nobody deletes it: etcd
// does, when the lease runs out), of a release and of a request; and not
// of a member's routine publication, which would wake every agent at
// every other agent's loop.
func TestWatchLeadershipSeesEveryWayTheKeyChanges(t *testing.T) {
	_, urls := startCluster(t, 1)
	ctx := ctxT(t)
	a := openStore(t, urls, 2*time.Second)
	watcher := openStore(t, urls, 2*time.Second)
	changes := watcher.WatchLeadership(ctx)

	// The watch is set up asynchronously: wait until it reports a change
	// made for that purpose before counting on it.
	if err := a.SetRequest(ctx, Request{Kind: "switchover", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	heard := func(what string) {
		t.Helper()
		select {
		case <-changes:
		case <-time.After(30 * time.Second):
			t.Fatalf("no change reported after %s", what)
		}
	}
	heard("a request")
	quiet := func(what string) {
		t.Helper()
		select {
		case <-changes:
			t.Fatalf("a change reported after %s", what)
		case <-time.After(500 * time.Millisecond):
		}
	}
	if err := a.PublishMember(ctx, Member{}); err != nil {
		t.Fatal(err)
	}
	quiet("a member's publication")

	if ok, _, err := a.AcquireLeader(ctx, "a"); err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	heard("the key was taken")
	// No renewal: the lease expires and etcd deletes the key.
	heard("the lease expired")
	if v, err := watcher.Snapshot(ctx); err != nil || v.Leader != "" {
		t.Fatalf("after the expiry report: leader %q, %v", v.Leader, err)
	}

	if ok, _, err := a.AcquireLeader(ctx, "a"); err != nil || !ok {
		t.Fatalf("acquire again: %v %v", ok, err)
	}
	heard("the key was taken again")
	if err := a.ReleaseLeader(ctx); err != nil {
		t.Fatal(err)
	}
	heard("the key was released")
}
