package event

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2023, 9, 19, 7, 12, 1, 0, time.UTC)

func TestHistogramCountsExactlyAtMillisecondResolution(t *testing.T) {
	h := NewHistogram(DefaultBuckets)
	for i := 0; i < 100; i++ {
		h.Add(t0.Add(time.Duration(i)*10*time.Millisecond), 1)
	}
	tests := []struct {
		from, to time.Duration
		want     int64
	}{
		{0, 990 * time.Millisecond, 100},
		{0, 0, 1},
		{5 * time.Millisecond, 25 * time.Millisecond, 2},
		{-time.Second, -time.Millisecond, 0},
		{500 * time.Millisecond, time.Hour, 50},
	}
	for _, tt := range tests {
		if got := h.Count(t0.Add(tt.from), t0.Add(tt.to)); got != tt.want {
			t.Errorf("Count(+%s, +%s) = %d, want %d", tt.from, tt.to, got, tt.want)
		}
	}
	if h.Resolution() != time.Millisecond || h.Total() != 100 {
		t.Errorf("resolution %s total %d", h.Resolution(), h.Total())
	}
}

func TestHistogramStaysBoundedAndKeepsTotals(t *testing.T) {
	h := NewHistogram(64)
	// A day of errors, one a second: far more buckets than allowed.
	for i := 0; i < 86400; i++ {
		h.Add(t0.Add(time.Duration(i)*time.Second), 1)
	}
	if n := len(h.buckets); n > 64 {
		t.Fatalf("%d buckets, limit 64", n)
	}
	if h.Total() != 86400 {
		t.Errorf("total %d, want 86400", h.Total())
	}
	// Counts over a window are exact up to one bucket at each end.
	got := h.Count(t0.Add(6*time.Hour), t0.Add(12*time.Hour))
	slack := int64(2 * h.Resolution() / time.Second)
	if want := int64(6*3600 + 1); got < want-slack || got > want+slack {
		t.Errorf("6 h window: %d, want %d ± %d (resolution %s)", got, want, slack, h.Resolution())
	}
}

func TestHistogramMergeMovesBuckets(t *testing.T) {
	a, b := NewHistogram(DefaultBuckets), NewHistogram(DefaultBuckets)
	b.Add(t0, 3)
	a.Merge(b, func(t time.Time) time.Time { return t.Add(-8 * time.Hour) })
	if a.Count(t0.Add(-8*time.Hour), t0.Add(-8*time.Hour)) != 3 || a.Count(t0, t0) != 0 {
		t.Errorf("merge did not move the bucket: %v", a.Buckets())
	}
}

func TestSinkBounds(t *testing.T) {
	s := NewSink("f.log", "f.log", "stderr")
	for i := 0; i < MaxPerKind+5; i++ {
		s.Add(Event{Time: t0, Kind: CheckpointComplete, Text: strings.Repeat("x", 1000)})
	}
	// A flood of one kind does not crowd out a rare one.
	s.Add(Event{Time: t0, Kind: PromoteReceived})
	if len(s.Events) != MaxPerKind+1 || s.Dropped != 5 || s.Events[MaxPerKind].Kind != PromoteReceived {
		t.Errorf("events %d dropped %d", len(s.Events), s.Dropped)
	}
	for k := 0; len(s.Events) < MaxEvents; k++ {
		s.Add(Event{Time: t0, Kind: Kind(rune('a' + k%26))})
	}
	s.Add(Event{Time: t0, Kind: Ready})
	if len(s.Events) != MaxEvents || s.Dropped != 6 {
		t.Errorf("total bound: events %d dropped %d", len(s.Events), s.Dropped)
	}
	if len(s.Events[0].Text) > MaxText+len("…") {
		t.Errorf("text not cut: %d bytes", len(s.Events[0].Text))
	}
	for i := 0; i < 10; i++ {
		s.ClientError(ReadOnlyError, t0.Add(time.Duration(i)*time.Second), time.Second, int64(i+1), "ERROR: x", "INSERT")
	}
	st := s.Errors[ReadOnlyError]
	if st.Count != 10 || len(st.Samples) != MaxSamples || st.First.Line != 1 || st.Last.Line != 10 || st.Commands["INSERT"] != 10 {
		t.Errorf("stats %+v", st)
	}
	s.AttachStatement(ReadOnlyError, 1, "insert into t values (1)")
	if !strings.Contains(st.Samples[0].Text, "STATEMENT: insert") || st.First.Attrs["statement"] == "" {
		t.Errorf("statement not attached: %+v", st.Samples[0])
	}
	for i := 0; i < MaxWarnings+3; i++ {
		s.Warnf("w%d", i)
	}
	if len(s.Warnings) != MaxWarnings {
		t.Errorf("%d warnings", len(s.Warnings))
	}
}

func TestSinkSinceUntil(t *testing.T) {
	s := NewSink("f", "f", "stderr")
	s.Since, s.Until = t0, t0.Add(time.Minute)
	s.Add(Event{Time: t0.Add(-time.Second), Kind: Ready})
	s.Add(Event{Time: t0.Add(time.Second), Kind: Ready})
	s.Add(Event{Time: t0.Add(2 * time.Minute), Kind: Ready})
	if len(s.Events) != 1 {
		t.Errorf("kept %d events, want 1", len(s.Events))
	}
	// A floating file is bounded loosely: its zone is not known yet.
	f := NewSink("f", "f", "kingbase")
	f.Floating = true
	f.Since = t0
	f.Add(Event{Time: t0.Add(-8 * time.Hour), Kind: Ready})
	if len(f.Events) != 1 {
		t.Errorf("floating file dropped an event 8 h before --since")
	}
}

func TestCutKeepsUTF8(t *testing.T) {
	s := strings.Repeat("只读", 200)
	c := Cut(s)
	if !strings.HasSuffix(c, "…") || len(c) > MaxText+len("…") {
		t.Errorf("cut to %d bytes", len(c))
	}
	for _, r := range strings.TrimSuffix(c, "…") {
		if r == '\uFFFD' {
			t.Fatal("cut inside a character")
		}
	}
}
