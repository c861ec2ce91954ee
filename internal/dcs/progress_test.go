package dcs

import (
	"testing"
	"time"
)

// TestProgressIsReadLivesThroughKeepAliveAndGoes: a procedure's progress
// is in the snapshot, survives longer than its lease while it is kept
// alive, goes at Done, and lapses when its writer stops (an agent that
// died mid-procedure).
func TestProgressIsReadLivesThroughKeepAliveAndGoes(t *testing.T) {
	_, urls := startCluster(t, 1)
	ctx := ctxT(t)
	s := openStore(t, urls, time.Second)
	w := s.Progress("node2")
	if err := w.Put(ctx, []byte(`{"kind":"failover","running":"promote"}`)); err != nil {
		t.Fatal(err)
	}
	progress := func() string {
		t.Helper()
		v, err := s.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return string(v.Progress["node2"])
	}
	if got := progress(); got != `{"kind":"failover","running":"promote"}` {
		t.Fatalf("progress read back: %q", got)
	}
	lease := progressTTLs * time.Second
	for end := time.Now().Add(lease + time.Second); time.Now().Before(end); time.Sleep(lease / 4) {
		if err := w.KeepAlive(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if progress() == "" {
		t.Fatal("progress kept alive lapsed")
	}
	if err := w.Done(ctx); err != nil {
		t.Fatal(err)
	}
	if got := progress(); got != "" {
		t.Fatalf("progress after Done: %q", got)
	}

	dead := s.Progress("node3")
	if err := dead.Put(ctx, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(lease + 10*time.Second)
	for {
		v, err := s.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := v.Progress["node3"]; !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the progress of a writer that stopped never lapsed")
		}
		time.Sleep(200 * time.Millisecond)
	}
}
