// Package timeline records what a failover did, step by step, with the time
// and the evidence of each step, so that an operator reads what happened
// instead of lining up logs by hand. Records go to the agent's log as JSON
// lines (one per step, as they happen) and, whole, into the DCS history.
package timeline

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
)

// Step is one step of a procedure.
type Step struct {
	Name     string    `json:"name"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	OK       bool      `json:"ok"`
	Evidence string    `json:"evidence,omitempty"`
	Error    string    `json:"error,omitempty"`
}

// Duration is how long the step took.
func (s Step) Duration() time.Duration { return s.End.Sub(s.Start) }

// Record is one whole procedure (failover, switchover, promotion).
type Record struct {
	ID      string    `json:"id"`
	Kind    string    `json:"kind"`
	Cluster string    `json:"cluster"`
	Node    string    `json:"node"`
	From    string    `json:"from,omitempty"` // the primary being replaced
	Reason  string    `json:"reason,omitempty"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end,omitzero"`
	OK      bool      `json:"ok"`
	Steps   []Step    `json:"steps"`
}

// StepLine is the JSON line written for each finished step; `vigil analyze`
// reads these lines back.
type StepLine struct {
	Time     time.Time `json:"time"`
	Msg      string    `json:"msg"`
	ID       string    `json:"failover_id"`
	Kind     string    `json:"kind"`
	Cluster  string    `json:"cluster"`
	Node     string    `json:"node"`
	Step     string    `json:"step"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	OK       bool      `json:"ok"`
	Evidence string    `json:"evidence,omitempty"`
	Error    string    `json:"error,omitempty"`
}

// StepLineMsg marks step lines among other log lines.
const StepLineMsg = "vigil step"

// Recorder builds a Record as the steps run.
type Recorder struct {
	mu  sync.Mutex
	rec Record
	out io.Writer
	log *slog.Logger
	now func() time.Time
}

// New starts a record. out receives one JSON line per step (nil: none).
func New(kind, cluster, node, from string, out io.Writer, log *slog.Logger) *Recorder {
	return newRecorder(kind, cluster, node, from, out, log, time.Now)
}

func newRecorder(kind, cluster, node, from string, out io.Writer, log *slog.Logger, now func() time.Time) *Recorder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	start := now()
	return &Recorder{
		rec: Record{
			ID:      fmt.Sprintf("%s-%s-%s", kind, node, start.UTC().Format("20060102T150405.000Z")),
			Kind:    kind,
			Cluster: cluster,
			Node:    node,
			From:    from,
			Start:   start,
		},
		out: out,
		log: log,
		now: now,
	}
}

// Run times f as the step called name. f returns its evidence; an error
// marks the step failed and is returned.
func (r *Recorder) Run(name string, f func() (evidence string, err error)) error {
	start := r.now()
	evidence, err := f()
	r.Add(Step{Name: name, Start: start, End: r.now(), OK: err == nil, Evidence: evidence, Error: errString(err)})
	return err
}

// Add records a step that was timed elsewhere.
func (r *Recorder) Add(s Step) {
	r.mu.Lock()
	r.rec.Steps = append(r.rec.Steps, s)
	rec := r.rec
	r.mu.Unlock()

	attrs := []any{"failover_id", rec.ID, "step", s.Name, "ok", s.OK, "ms", s.Duration().Milliseconds()}
	if s.Evidence != "" {
		attrs = append(attrs, "evidence", s.Evidence)
	}
	if s.Error != "" {
		attrs = append(attrs, "error", s.Error)
		r.log.Warn(rec.Kind+" step failed", attrs...)
	} else {
		r.log.Info(rec.Kind+" step", attrs...)
	}
	if r.out != nil {
		line := StepLine{Time: s.End, Msg: StepLineMsg, ID: rec.ID, Kind: rec.Kind, Cluster: rec.Cluster, Node: rec.Node,
			Step: s.Name, Start: s.Start, End: s.End, OK: s.OK, Evidence: s.Evidence, Error: s.Error}
		if data, err := json.Marshal(line); err == nil {
			r.out.Write(append(data, '\n'))
		}
	}
}

// Finish closes the record.
func (r *Recorder) Finish(ok bool, reason string) Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rec.End = r.now()
	r.rec.OK = ok
	if reason != "" {
		r.rec.Reason = reason
	}
	return r.rec
}

// Record returns a copy of the record so far.
func (r *Recorder) Record() Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := r.rec
	rec.Steps = append([]Step(nil), r.rec.Steps...)
	return rec
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Format renders a record for a terminal: one line per step with its offset
// from the start and its duration in milliseconds.
func Format(rec Record) string {
	s := fmt.Sprintf("%s %s on %s (%s)", rec.Kind, okWord(rec.OK), rec.Node, rec.ID)
	if rec.From != "" {
		s += fmt.Sprintf(", replacing %s", rec.From)
	}
	s += "\n"
	for _, st := range rec.Steps {
		mark := "ok  "
		if !st.OK {
			mark = "FAIL"
		}
		s += fmt.Sprintf("  +%6dms %6dms  %s %-22s %s", st.Start.Sub(rec.Start).Milliseconds(), st.Duration().Milliseconds(), mark, st.Name, st.Evidence)
		if st.Error != "" {
			s += "  error: " + st.Error
		}
		s += "\n"
	}
	if !rec.End.IsZero() {
		s += fmt.Sprintf("  total %dms\n", rec.End.Sub(rec.Start).Milliseconds())
	}
	return s
}

func okWord(ok bool) string {
	if ok {
		return "succeeded"
	}
	return "failed"
}
