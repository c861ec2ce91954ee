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

// TestObserversFollowTheRecord: observers see the record open, each step
// begin and end (an inner step ending first), the notes made inside the
// innermost running step, and the whole record at the end.
func TestObserversFollowTheRecord(t *testing.T) {
	clock := time.Date(2026, 11, 25, 15, 12, 0, 0, time.UTC)
	now := func() time.Time { clock = clock.Add(time.Millisecond); return clock }
	var seen []string
	obs := ObserverFunc(func(e Event) {
		switch e.Type {
		case Began:
			seen = append(seen, "began "+e.Record.Kind)
		case StepBegan:
			seen = append(seen, "begin "+e.Step.Name)
		case Noted:
			seen = append(seen, "note "+e.Note.What+" in "+e.Note.Step)
		case StepEnded:
			seen = append(seen, "end "+e.Step.Name+" "+e.Step.Evidence)
		case Finished:
			seen = append(seen, "finished with "+e.Record.Steps[len(e.Record.Steps)-1].Name)
		}
	})
	r := newRecorder("failover", "main", "node2", "node1", nil, nil, now, obs)
	r.Note(Note{What: "call"})
	_ = r.Run("readiness_gate", func() (string, error) {
		r.Note(Note{What: "waiting"})
		_ = r.Run("sync_to_async", func() (string, error) {
			r.Note(Note{What: "sql"})
			return "cleared", nil
		})
		r.Note(Note{What: "waiting"})
		return "committed", nil
	})
	r.Finish(true, "")
	want := []string{
		"began failover", "note call in ",
		"begin readiness_gate", "note waiting in readiness_gate",
		"begin sync_to_async", "note sql in sync_to_async", "end sync_to_async cleared",
		"note waiting in readiness_gate", "end readiness_gate committed",
		"finished with readiness_gate",
	}
	if strings.Join(seen, "\n") != strings.Join(want, "\n") {
		t.Errorf("observed:\n%s\nwant:\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
	}
}
