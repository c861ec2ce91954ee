// Package timeline records what a procedure did, step by step, with the
// time and the evidence of each step, so that an operator reads what
// happened instead of lining up logs by hand. Step is the one record of a
// step, whichever procedure ran it: failover, switchover, promotion,
// rejoin, the Pgpool-II commands, the demo's report.
//
// A Recorder builds a Record and tells its observers as it goes: the JSON
// step lines (one per step, as they happen, which `vigil analyze` reads),
// the agent's log, and renderings for people such as the Pgpool command's
// failover_stream.sh-shaped log. The whole record goes into the DCS history.
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

// Record is one whole procedure (failover, switchover, promotion, rejoin).
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
	// RequestedBy and RequestedFrom name the operator who asked for the
	// procedure (the audit trail); empty for what the agents decided.
	RequestedBy   string `json:"requested_by,omitempty"`
	RequestedFrom string `json:"requested_from,omitempty"`
}

// Note is something a step reports on its way, before its outcome: a
// command it ran, a statement it sent, a wait it is in. Notes are for
// observers only (a rendering for people words them); the record keeps
// each step's evidence.
type Note struct {
	At time.Time
	// Step is the step running when the note was made ("" outside steps).
	Step string
	// What the note is about, in the procedure's own vocabulary, and
	// Value its value (a decision's case, a network interface).
	What  string
	Value string
	Host  string
	// Argv, Exit and Text (its output) describe a command that ran.
	Argv []string
	Exit int
	Text string
	// Err says what went wrong ("" when nothing did).
	Err string
}

// EventType says what happened to a record.
type EventType int

// Event types, in the order they happen to a record.
const (
	Began EventType = iota
	StepBegan
	Noted
	StepEnded
	Finished
)

// Event is what an observer is told. Record is the record's header (its
// steps are filled in only for Finished); Step is the step that began
// (name and start) or ended; Note is set for Noted.
type Event struct {
	Type   EventType
	Record Record
	Step   Step
	Note   Note
}

// Observer follows records as they are written. Observe is called in
// order, one event at a time, and must not call back into the Recorder.
type Observer interface {
	Observe(e Event)
}

// ObserverFunc is an Observer.
type ObserverFunc func(Event)

// Observe implements Observer.
func (f ObserverFunc) Observe(e Event) { f(e) }

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

// Recorder builds a Record as the steps run. Its steps and notes come
// from one goroutine, the procedure's (steps may nest, not overlap):
// observers see events in that order, and a note belongs to the innermost
// running step. Other goroutines may read the Record.
type Recorder struct {
	mu      sync.Mutex
	rec     Record
	running []string // the steps running, innermost last
	obs     []Observer
	now     func() time.Time
}

// New starts a record. out receives one JSON line per step (nil: none),
// log one line per step; obs observe the record from its start.
func New(kind, cluster, node, from string, out io.Writer, log *slog.Logger, obs ...Observer) *Recorder {
	return newRecorder(kind, cluster, node, from, out, log, time.Now, obs...)
}

func newRecorder(kind, cluster, node, from string, out io.Writer, log *slog.Logger, now func() time.Time, obs ...Observer) *Recorder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	start := now()
	r := &Recorder{
		rec: Record{
			ID:      fmt.Sprintf("%s-%s-%s", kind, node, start.UTC().Format("20060102T150405.000Z")),
			Kind:    kind,
			Cluster: cluster,
			Node:    node,
			From:    from,
			Start:   start,
		},
		now: now,
	}
	r.obs = append(r.obs, logSteps{log})
	if out != nil {
		r.obs = append(r.obs, stepLines{out})
	}
	r.obs = append(r.obs, obs...)
	r.tell(Event{Type: Began, Record: r.header()})
	return r
}

// header is the record without its steps.
func (r *Recorder) header() Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.rec
	h.Steps = nil
	return h
}

func (r *Recorder) tell(e Event) {
	for _, o := range r.obs {
		o.Observe(e)
	}
}

// Run times f as the step called name. f returns its evidence; an error
// marks the step failed and is returned. Notes made while f runs belong to
// this step (or to a step f runs in turn).
func (r *Recorder) Run(name string, f func() (evidence string, err error)) error {
	start := r.now()
	r.mu.Lock()
	r.running = append(r.running, name)
	r.mu.Unlock()
	r.tell(Event{Type: StepBegan, Record: r.header(), Step: Step{Name: name, Start: start}})
	evidence, err := f()
	r.mu.Lock()
	r.running = r.running[:len(r.running)-1]
	r.mu.Unlock()
	r.Add(Step{Name: name, Start: start, End: r.now(), OK: err == nil, Evidence: evidence, Error: errString(err)})
	return err
}

// Add records a step that was timed elsewhere.
func (r *Recorder) Add(s Step) {
	r.mu.Lock()
	r.rec.Steps = append(r.rec.Steps, s)
	r.mu.Unlock()
	r.tell(Event{Type: StepEnded, Record: r.header(), Step: s})
}

// Note tells the observers what the running step is doing.
func (r *Recorder) Note(n Note) {
	n.At = r.now()
	r.mu.Lock()
	if len(r.running) > 0 {
		n.Step = r.running[len(r.running)-1]
	}
	r.mu.Unlock()
	r.tell(Event{Type: Noted, Record: r.header(), Note: n})
}

// Finish closes the record.
func (r *Recorder) Finish(ok bool, reason string) Record {
	r.mu.Lock()
	r.rec.End = r.now()
	r.rec.OK = ok
	if reason != "" {
		r.rec.Reason = reason
	}
	rec := r.rec
	rec.Steps = append([]Step(nil), r.rec.Steps...)
	r.mu.Unlock()
	r.tell(Event{Type: Finished, Record: rec})
	return rec
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

// logSteps writes one log line per finished step.
type logSteps struct{ log *slog.Logger }

func (l logSteps) Observe(e Event) {
	if e.Type != StepEnded {
		return
	}
	s := e.Step
	attrs := []any{"failover_id", e.Record.ID, "step", s.Name, "ok", s.OK, "ms", s.Duration().Milliseconds()}
	if s.Evidence != "" {
		attrs = append(attrs, "evidence", s.Evidence)
	}
	if s.Error != "" {
		attrs = append(attrs, "error", s.Error)
		l.log.Warn(e.Record.Kind+" step failed", attrs...)
	} else {
		l.log.Info(e.Record.Kind+" step", attrs...)
	}
}

// stepLines writes the JSON step line of each finished step.
type stepLines struct{ out io.Writer }

func (w stepLines) Observe(e Event) {
	if e.Type != StepEnded {
		return
	}
	rec, s := e.Record, e.Step
	line := StepLine{Time: s.End, Msg: StepLineMsg, ID: rec.ID, Kind: rec.Kind, Cluster: rec.Cluster, Node: rec.Node,
		Step: s.Name, Start: s.Start, End: s.End, OK: s.OK, Evidence: s.Evidence, Error: s.Error}
	if data, err := json.Marshal(line); err == nil {
		// A step log that cannot be written must not stop the procedure;
		// the record and the agent's log have the step too.
		_, _ = w.out.Write(append(data, '\n'))
	}
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
