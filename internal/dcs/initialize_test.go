package dcs

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// Exactly one of many agents racing for the initialize key wins it; the
// key of a winner that stops renewing expires, and the next winner makes
// it permanent with the system identifier.
func TestInitializeKeyIsExclusiveExpiresAndFinishes(t *testing.T) {
	_, urls := startCluster(t, 1)
	ctx := ctxT(t)
	stores := make([]*Store, 5)
	for i := range stores {
		stores[i] = openStore(t, urls, time.Second)
	}
	var mu sync.Mutex
	var winners []int
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := s.AcquireInitialize(ctx, "n", time.Now())
			if err != nil {
				t.Errorf("store %d: %v", i, err)
			}
			if ok {
				mu.Lock()
				winners = append(winners, i)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("winners %v, want exactly one", winners)
	}
	first := stores[winners[0]]
	if err := first.RenewInitialize(ctx); err != nil {
		t.Fatalf("renew: %v", err)
	}

	// The winner dies (stops renewing): the key goes, another may win.
	other := stores[(winners[0]+1)%len(stores)]
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok, err := other.AcquireInitialize(ctx, "m", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the initialize key of a winner that stopped renewing never expired")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := first.FinishInitialize(ctx, Initialize{Node: "n", SystemID: "1"}); !errors.Is(err, ErrNotInitializer) {
		t.Fatalf("finish by the expired winner: %v, want ErrNotInitializer", err)
	}
	if err := other.FinishInitialize(ctx, Initialize{Node: "m", SystemID: "42"}); err != nil {
		t.Fatal(err)
	}
	// Permanent: it outlives the lease TTL, and nobody takes it.
	time.Sleep(2500 * time.Millisecond)
	v, err := first.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.Initialize == nil || v.Initialize.Node != "m" || v.Initialize.SystemID != "42" {
		t.Fatalf("initialize key %+v, want node m, system 42", v.Initialize)
	}
	if ok, err := first.AcquireInitialize(context.Background(), "n", time.Now()); err != nil || ok {
		t.Fatalf("a finished initialize key was taken again: %v %v", ok, err)
	}
}
