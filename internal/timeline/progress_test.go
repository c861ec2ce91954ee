package timeline

import (
	"errors"
	"testing"
	"time"
)

// TestProgressFollowsTheRecordStepByStep: after every step event the
// progress names the step running now (the innermost of nested steps)
// and the steps ended so far, and the last report is the finished record.
func TestProgressFollowsTheRecordStepByStep(t *testing.T) {
	var reports []Progress
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { now = now.Add(time.Millisecond); return now }
	r := newRecorder("failover", "c", "node2", "node1", nil, nil, clock, ProgressObserver(func(p Progress) { reports = append(reports, p) }))
	_ = r.Run("promote", func() (string, error) { return "left recovery", nil })
	_ = r.Run("readiness_gate", func() (string, error) {
		_ = r.Run("sync_to_async", func() (string, error) { return "cleared", nil })
		return "", errors.New("no commit")
	})
	r.Note(Note{What: "sql", Text: "select 1"})
	r.Finish(false, "gate failed")

	type want struct {
		running string
		ended   int
	}
	wants := []want{{"", 0}, {"promote", 0}, {"", 1}, {"readiness_gate", 1}, {"sync_to_async", 1}, {"readiness_gate", 2}, {"", 3}, {"", 3}}
	if len(reports) != len(wants) {
		t.Fatalf("%d reports, want %d (a note is not reported): %+v", len(reports), len(wants), reports)
	}
	for i, w := range wants {
		if got := reports[i]; got.Running != w.running || len(got.Steps) != w.ended || (got.Running == "") != got.RunningSince.IsZero() {
			t.Errorf("report %d: running %q since %v with %d steps ended, want %q with %d", i, got.Running, got.RunningSince, len(got.Steps), w.running, w.ended)
		}
	}
	last := reports[len(reports)-1]
	if last.End.IsZero() || last.OK || last.Node != "node2" || last.Steps[2].Name != "readiness_gate" || last.Steps[2].OK {
		t.Errorf("last report is not the finished record: %+v", last)
	}
	// A report is a copy: later steps do not change it.
	if len(reports[2].Steps) != 1 || reports[2].Steps[0].Name != "promote" {
		t.Errorf("an earlier report changed: %+v", reports[2])
	}
}
