package dcs

import (
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestRepeatLimiterHoldsBackRaftDrops(t *testing.T) {
	obs, logs := observer.New(zapcore.WarnLevel)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	lg := zap.New(newRepeatLimiter(obs, 30*time.Second, func() time.Time { return now })).With(zap.String("etcd_member", "node1"))
	drop := func(peer string) {
		lg.Warn("dropped internal Raft message since sending buffer is full", zap.String("remote-peer-id", peer))
	}
	// 20 a second for 40 s towards one peer, and one towards another.
	for i := 0; i < 800; i++ {
		drop("a")
		now = now.Add(50 * time.Millisecond)
	}
	drop("b")
	lg.Warn("prober detected unhealthy status", zap.String("remote-peer-id", "a"))
	lg.Warn("prober detected unhealthy status", zap.String("remote-peer-id", "a"))
	lg.Warn("apply request took too long")
	lg.Warn("apply request took too long")
	lg.Info("below the level")

	var got []string
	held := map[int]int64{}
	for i, e := range logs.All() {
		got = append(got, e.Message)
		if v, ok := e.ContextMap()["repeats_held_back"]; ok {
			held[i] = v.(int64)
		}
		if e.ContextMap()["etcd_member"] != "node1" {
			t.Errorf("entry %d lost the logger's fields: %v", i, e.ContextMap())
		}
	}
	if len(got) != 6 {
		t.Fatalf("%d entries, want 6 (first drop to a, one 30 s later, the drop to b, one probe, both other warnings): %v", len(got), got)
	}
	if len(held) != 1 || held[1] != 599 {
		t.Errorf("held-back counts %v, want entry 1 to say 599", held)
	}
}
