package steplog

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/analyze/clock"
	"github.com/vigil-ha/vigil/internal/analyze/event"
	"github.com/vigil-ha/vigil/internal/analyze/input"
	"github.com/vigil-ha/vigil/internal/timeline"
)

func parse(t testing.TB, data []byte) *event.Sink {
	t.Helper()
	s := event.NewSink("node2.steps.jsonl", "node2.steps.jsonl", Format)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := Parse(ctx, input.NewLines(bytes.NewReader(data), 0), s, clock.NewResolver(nil, time.UTC)); err != nil {
		t.Fatal(err)
	}
	return s
}

// record writes step lines the way the agent does, through the real
// recorder.
func writeSteps(t *testing.T, steps []timeline.Step) []byte {
	t.Helper()
	var b bytes.Buffer
	r := timeline.New("failover", "main", "node2", "node1", &b, nil)
	for _, s := range steps {
		r.Add(s)
	}
	return b.Bytes()
}

func TestStepsBecomeMilestones(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	data := writeSteps(t, []timeline.Step{
		{Name: stepIsolationGuard, Start: at(0), End: at(1), OK: true, Evidence: "DCS reachable, trusted 198.19.92.1:1 answered"},
		{Name: "acquire_leader", Start: at(1), End: at(5), OK: true},
		{Name: stepFence, Start: at(5), End: at(5), OK: true},
		{Name: stepPromote, Start: at(5), End: at(1243), OK: true, Evidence: "left recovery: timeline 1 -> 2, WAL 0/C059F28 (replay backlog before: 134346824 bytes)"},
		{Name: stepReadinessGate, Start: at(1243), End: at(1251), OK: true, Evidence: "write committed on node2"},
		{Name: stepCheckpoint, Start: at(1251), End: at(1300), OK: true},
		{Name: stepPublish, Start: at(1300), End: at(1302), OK: true},
		{Name: stepRoutesUp, Start: at(1302), End: at(1800), OK: true, Evidence: "routes up: vip 198.19.92.100/24"},
		{Name: "standbys_follow", Start: at(1800), End: at(1801), OK: false, Error: "boom"},
	})
	if Sniff(data) != 100 {
		t.Errorf("sniff = %d", Sniff(data))
	}
	s := parse(t, data)
	want := []struct {
		kind event.Kind
		ms   int
	}{
		{event.FailoverStart, 0}, {event.TrustedPingOK, 1}, {event.Step, 5}, {event.OldPrimaryStop, 5},
		{event.PromoteRequested, 5}, {event.Promoted, 1243}, {event.WriteCommitted, 1251}, {event.CheckpointDone, 1300},
		{event.RouteUp, 1302}, {event.RouteUp, 1800}, {event.StepFailed, 1801}, {event.FailoverEnd, 1801},
	}
	if len(s.Events) != len(want) {
		for _, e := range s.Events {
			t.Logf("%s %s", e.Time.Format(time.StampMilli), e.Kind)
		}
		t.Fatalf("%d events, want %d", len(s.Events), len(want))
	}
	for i, w := range want {
		if e := s.Events[i]; e.Kind != w.kind || !e.Time.Equal(at(w.ms)) {
			t.Errorf("event %d = %s at +%s, want %s at +%dms", i, e.Kind, e.Time.Sub(t0), w.kind, w.ms)
		}
	}
	if got := s.Events[5].Attrs["replay_backlog_bytes"]; got != "134346824" {
		t.Errorf("backlog attr = %q", got)
	}
	if s.Unparsed != 0 || s.Floating {
		t.Errorf("unparsed %d floating %v", s.Unparsed, s.Floating)
	}
}

func TestLegacyOrderAndAgentLog(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	data := writeSteps(t, []timeline.Step{
		{Name: stepRoutesUp, Start: t0, End: t0.Add(time.Millisecond), OK: true, Evidence: "legacy order: routes up before the promotion"},
		{Name: stepPromote, Start: t0.Add(time.Millisecond), End: t0.Add(20 * time.Millisecond), OK: true, Evidence: "promote requested (not waited for)"},
		{Name: stepLiveness, Start: t0.Add(20 * time.Millisecond), End: t0.Add(25 * time.Millisecond), OK: true, Evidence: "select 33333 answered: declared ready"},
	})
	// The same kind of step in an agent's JSON log, and lines that are not
	// steps at all.
	data = append(data, []byte(`{"time":"2025-03-01T10:00:01Z","level":"WARN","msg":"starting failover","replacing":"node1","reason":"leader lease expired"}
{"time":"2025-03-01T10:00:02Z","level":"INFO","msg":"failover step","failover_id":"failover-node3-x","step":"checkpoint","ok":true,"ms":40}
{"time":"2025-03-01T10:00:03Z","level":"INFO","msg":"routine"}
not json
{"truncated":
`)...)
	s := parse(t, data)
	var kinds []string
	for _, e := range s.Events {
		kinds = append(kinds, string(e.Kind))
	}
	want := "failover_start,route_up,promote_requested,promoted,liveness_check_ok,failure_detected,failover_start,checkpoint_done,failover_end,failover_end"
	if got := strings.Join(kinds, ","); got != want {
		t.Errorf("kinds = %s\nwant   %s", got, want)
	}
	if s.Unparsed != 2 {
		t.Errorf("unparsed = %d, want 2 (not json, truncated)", s.Unparsed)
	}
	for _, e := range s.Events {
		if e.Kind == event.CheckpointDone && !e.Time.Equal(time.Date(2025, 3, 1, 10, 0, 2, 0, time.UTC)) {
			t.Errorf("agent log step at %s", e.Time)
		}
	}
}

func TestContextCancels(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	data := bytes.Repeat([]byte("{}\n"), 10000)
	err := Parse(ctx, input.NewLinesContext(ctx, bytes.NewReader(data), 0), event.NewSink("x", "x", Format), clock.NewResolver(nil, time.UTC))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"time":"2025-03-01T10:00:00Z","msg":"vigil step","failover_id":"a","kind":"failover","step":"promote","start":"2025-03-01T10:00:00Z","end":"2025-03-01T10:00:01Z","ok":true,"evidence":"replay backlog before: 12 bytes"}` + "\n"))
	f.Add([]byte(`{"time":"2025-03-01T10:00:02Z","msg":"failover step","failover_id":"x","step":"checkpoint","ok":false,"ms":-40}`))
	f.Add([]byte("{\n}\n{\"time\":1}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := parse(t, data)
		for _, e := range s.Events {
			if e.Time.IsZero() || e.Line < 1 {
				t.Fatalf("event without a time or line: %+v", e)
			}
		}
	})
}
