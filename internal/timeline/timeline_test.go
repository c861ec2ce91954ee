package timeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRecorderWritesOneLinePerStepAndAWholeRecord(t *testing.T) {
	clock := time.Date(2026, 11, 25, 15, 12, 0, 0, time.UTC)
	now := func() time.Time { clock = clock.Add(10 * time.Millisecond); return clock }
	var out bytes.Buffer
	r := newRecorder("failover", "main", "node2", "node1", &out, nil, now)
	if err := r.Run("promote", func() (string, error) { return "left recovery on timeline 2", nil }); err != nil {
		t.Fatal(err)
	}
	gateErr := errors.New("read-only")
	if err := r.Run("readiness_gate", func() (string, error) { return "3 refused", gateErr }); !errors.Is(err, gateErr) {
		t.Fatalf("Run returned %v", err)
	}
	rec := r.Finish(false, "gate failed")

	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines: %q", len(lines), out.String())
	}
	var l StepLine
	if err := json.Unmarshal([]byte(lines[1]), &l); err != nil {
		t.Fatal(err)
	}
	if l.Msg != StepLineMsg || l.Step != "readiness_gate" || l.OK || l.Error != "read-only" || l.Node != "node2" || l.ID != rec.ID {
		t.Errorf("line = %+v", l)
	}
	if len(rec.Steps) != 2 || !rec.Steps[0].OK || rec.Steps[1].OK || rec.OK || rec.Reason != "gate failed" || rec.From != "node1" {
		t.Errorf("record = %+v", rec)
	}
	if d := rec.Steps[0].Duration(); d != 10*time.Millisecond {
		t.Errorf("duration = %s", d)
	}
	text := Format(rec)
	for _, want := range []string{"failover failed on node2", "replacing node1", "promote", "FAIL readiness_gate", "error: read-only", "total"} {
		if !strings.Contains(text, want) {
			t.Errorf("Format lacks %q:\n%s", want, text)
		}
	}
}
