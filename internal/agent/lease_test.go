package agent

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
)

// fakeLeaderStore is an in-memory leader key whose renewals can be made
// to fail, the way an unreachable etcd or an expired lease does.
type fakeLeaderStore struct {
	mu       sync.Mutex
	holder   string
	renewErr error
	renewals int
}

func (f *fakeLeaderStore) AcquireLeader(_ context.Context, name string) (bool, time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.holder != "" {
		return false, time.Time{}, nil
	}
	f.holder = name
	return true, time.Now(), nil
}

func (f *fakeLeaderStore) RenewLeader(_ context.Context, name string) (time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.renewals++
	if f.renewErr != nil {
		return time.Time{}, f.renewErr
	}
	if f.holder != name {
		return time.Time{}, dcs.ErrNotLeader
	}
	return time.Now(), nil
}

func (f *fakeLeaderStore) ReleaseLeader(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.holder = ""
	return nil
}

func (f *fakeLeaderStore) set(fn func(*fakeLeaderStore)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

type lostCall struct {
	reason    string
	notLeader bool
	at        time.Time
}

func TestLeaseKeeperGivesUpOnlyWhenItMust(t *testing.T) {
	cfg := decision.Config{LeaseTTL: 600 * time.Millisecond, LoopInterval: 50 * time.Millisecond, DCSTimeout: 50 * time.Millisecond}
	tests := []struct {
		name          string
		fault         func(*fakeLeaderStore)
		failsafeHolds bool
		wantLost      bool
		wantNotLeader bool
	}{
		{"healthy DCS: renews, never gives up", func(*fakeLeaderStore) {}, false, false, false},
		{"DCS unreachable: gives up after DemoteAfter", func(f *fakeLeaderStore) { f.renewErr = errors.New("etcd unreachable") }, false, true, false},
		{"DCS unreachable, failsafe mode off: its verdict is not asked", func(f *fakeLeaderStore) { f.renewErr = errors.New("etcd unreachable") }, true, true, false},
		{"DCS unreachable, failsafe holds: keeps the role", func(f *fakeLeaderStore) { f.renewErr = errors.New("etcd unreachable") }, true, false, false},
		{"key taken by another node: gives up at once, as not leader", func(f *fakeLeaderStore) { f.holder = "node2" }, false, true, true},
		{"key taken, failsafe holds: still gives up (the DCS answered)", func(f *fakeLeaderStore) { f.holder = "node2" }, true, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &fakeLeaderStore{}
			lost := make(chan lostCall, 1)
			cfg := cfg
			cfg.Failsafe = !strings.Contains(tt.name, "failsafe mode off")
			k := newLeaseKeeper(store, "node1", cfg, slog.New(slog.DiscardHandler),
				func(reason string, notLeader bool) { lost <- lostCall{reason, notLeader, time.Now()} },
				func(context.Context) bool { return tt.failsafeHolds })
			if err := k.acquire(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer k.release(context.Background())
			faultAt := time.Now()
			store.set(tt.fault)
			select {
			case c := <-lost:
				if !tt.wantLost {
					t.Fatalf("gave up: %s", c.reason)
				}
				if c.notLeader != tt.wantNotLeader {
					t.Errorf("notLeader = %v, want %v (%s)", c.notLeader, tt.wantNotLeader, c.reason)
				}
				if !tt.wantNotLeader && c.at.Sub(faultAt) < cfg.DemoteAfter()-cfg.LoopInterval {
					t.Errorf("gave up %s after the last renewal could have succeeded, before DemoteAfter %s", c.at.Sub(faultAt), cfg.DemoteAfter())
				}
				if k.holding() {
					t.Error("still claims to hold the key after giving up")
				}
			case <-time.After(2 * cfg.LeaseTTL):
				if tt.wantLost {
					t.Fatal("never gave up")
				}
				if !k.holding() {
					t.Error("lost the key without a reason")
				}
			}
		})
	}
}

func TestLeaseKeeperAcquireIsAtomicAndIdempotent(t *testing.T) {
	cfg := decision.Config{LeaseTTL: 600 * time.Millisecond, LoopInterval: 50 * time.Millisecond, DCSTimeout: 50 * time.Millisecond}
	store := &fakeLeaderStore{holder: "node2"}
	k := newLeaseKeeper(store, "node1", cfg, slog.New(slog.DiscardHandler), func(string, bool) {}, nil)
	if err := k.acquire(context.Background()); !errors.Is(err, errKeyTaken) {
		t.Fatalf("acquire of a held key = %v, want errKeyTaken", err)
	}
	store.set(func(f *fakeLeaderStore) { f.holder = "" })
	for i := range 3 {
		if err := k.acquire(context.Background()); err != nil {
			t.Fatalf("acquire %d: %v", i, err)
		}
	}
	k.release(context.Background())
	if store.holder != "" || k.holding() {
		t.Errorf("after release: holder %q, holding %v", store.holder, k.holding())
	}
}
