package timeline

import (
	"sync"
	"time"
)

// Progress is a record under way: the steps ended so far and the step
// running now. A finished record has End set and nothing running.
type Progress struct {
	Record
	// Running is the innermost step under way ("" between steps), since
	// RunningSince.
	Running      string    `json:"running,omitempty"`
	RunningSince time.Time `json:"running_since,omitzero"`
}

// ProgressObserver reports the record's progress after each of its
// events but notes: the record began, a step began or ended, the record
// finished. report runs on the procedure's goroutine and must not block
// (hand the value to another goroutine).
func ProgressObserver(report func(Progress)) Observer {
	return &progressObserver{report: report}
}

type progressObserver struct {
	mu      sync.Mutex
	p       Progress
	running []Step
	report  func(Progress)
}

func (o *progressObserver) Observe(e Event) {
	o.mu.Lock()
	switch e.Type {
	case Began:
		o.p.Record = e.Record
	case StepBegan:
		o.running = append(o.running, e.Step)
	case StepEnded:
		o.p.Steps = append(o.p.Steps, e.Step)
		// Steps nest: the one that ended is the innermost of that name.
		for i := len(o.running) - 1; i >= 0; i-- {
			if o.running[i].Name == e.Step.Name {
				o.running = append(o.running[:i], o.running[i+1:]...)
				break
			}
		}
	case Finished:
		o.p.Record, o.running = e.Record, nil
	default:
		o.mu.Unlock()
		return
	}
	o.p.Running, o.p.RunningSince = "", time.Time{}
	if n := len(o.running); n > 0 {
		o.p.Running, o.p.RunningSince = o.running[n-1].Name, o.running[n-1].Start
	}
	p := o.p
	p.Steps = append([]Step(nil), o.p.Steps...)
	o.mu.Unlock()
	o.report(p)
}
