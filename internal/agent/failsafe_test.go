package agent

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/clock"
	"github.com/vigil-ha/vigil/internal/decision"
)

func failsafeAgent(store *fakeLeaderStore, failsafe bool) *Agent {
	cfg := decision.Config{LeaseTTL: 3 * time.Second, LoopInterval: 500 * time.Millisecond, DCSTimeout: 500 * time.Millisecond, Failsafe: failsafe}
	a := &Agent{o: Options{Node: "node2", Decision: cfg}, log: slog.New(slog.DiscardHandler), clock: clock.Real{}, failsafeAcks: map[string]time.Time{}}
	a.lease = newLeaseKeeper(store, "node2", cfg, a.log, func(string, bool) {}, nil)
	return a
}

// A promise and a take of the leader key exclude each other: a member that
// promised a failsafe leader cannot take the key, and one that holds it
// cannot promise.
func TestFailsafePromiseAndTakingTheKeyExcludeEachOther(t *testing.T) {
	ctx := context.Background()

	if _, err := failsafeAgent(&fakeLeaderStore{}, false).ConfirmFailsafe("node1"); !errors.Is(err, ErrWillPromote) {
		t.Errorf("failsafe off: ConfirmFailsafe = %v, want a refusal", err)
	}

	a := failsafeAgent(&fakeLeaderStore{}, true)
	a.status.Leader = "node3"
	if _, err := a.ConfirmFailsafe("node1"); !errors.Is(err, ErrWillPromote) {
		t.Errorf("another leader in the DCS: ConfirmFailsafe = %v, want a refusal", err)
	}

	a = failsafeAgent(&fakeLeaderStore{}, true)
	if err := a.acquireLeader(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ConfirmFailsafe("node1"); !errors.Is(err, ErrWillPromote) {
		t.Errorf("holding the key: ConfirmFailsafe = %v, want a refusal", err)
	}
	a.lease.release(ctx)

	a = failsafeAgent(&fakeLeaderStore{}, true)
	promise, err := a.ConfirmFailsafe("node1")
	if err != nil || promise != a.o.Decision.FailsafePromise() {
		t.Fatalf("ConfirmFailsafe = %s, %v; want the promise", promise, err)
	}
	if err := a.acquireLeader(ctx); err == nil || a.lease.holding() {
		t.Errorf("took the key while it promised not to")
	}
	a.mu.Lock()
	a.promisedUntil = time.Now().Add(-time.Millisecond)
	a.mu.Unlock()
	if err := a.acquireLeader(ctx); err != nil {
		t.Errorf("the promise expired but the key cannot be taken: %v", err)
	}
	a.lease.release(ctx)
}
