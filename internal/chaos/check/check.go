// Package check judges a chaos campaign's history: it finds the violations
// of Vigil's promises (split brain, lost acknowledged writes, read-only
// errors, faults not recovered from, a cluster not whole at the end,
// panics, leaks) and measures, per fault type, how quickly the cluster
// recovered and what the client saw. Check is pure, so it can be tested on
// crafted histories and rerun on a saved directory; the report functions
// render its Result as text, JSON and an HTML timeline.
package check

import (
	"cmp"
	"slices"
	"time"

	"github.com/vigil-ha/vigil/internal/chaos/history"
)

// DefaultRecoveryBound is the recovery bound of a fault that records none,
// when Options give none either (a history written by an early runner).
const DefaultRecoveryBound = 60 * time.Second

// Options tune the judgement; the zero value judges by the history alone.
type Options struct {
	// RecoveryBound applies to faults whose RecoveryBound is zero.
	RecoveryBound time.Duration
	// MaxLag, when positive, replaces the run's maximum_lag_on_failover
	// (bytes) as the loss allowed per failover in sync mode off.
	MaxLag int64
}

// Kind names a violation.
type Kind string

const (
	SplitBrain     Kind = "split-brain"       // two servers acknowledged writes at the same time
	LostWrite      Kind = "lost-write"        // sync on/strict: an acknowledged write is not on the final primary
	LossBeyondLag  Kind = "loss-beyond-bound" // sync off: more lost than maximum_lag_on_failover, or loss not measurable
	ReadOnlyError  Kind = "read-only"         // the client was routed to a server that refused writes
	NotRecovered   Kind = "not-recovered"     // a fault not recovered from within its bound
	NoPrimary      Kind = "no-primary"        // no writable primary at the end
	NotStreaming   Kind = "not-streaming"     // a standby not streaming at the end
	AgentPanic     Kind = "panic"             // an agent panicked
	ResourceLeaked Kind = "leak"              // a process, namespace or address left behind
)

// Violation is one broken promise.
type Violation struct {
	Kind    Kind   `json:"kind"`
	Message string `json:"message"`
	// Step is the fault that reproduces it with Seed (0 when none does,
	// e.g. a leak); Fault is that step's type.
	Step  int       `json:"step,omitempty"`
	Fault string    `json:"fault,omitempty"`
	Seed  int64     `json:"seed"`
	At    time.Time `json:"at"`
	// Writes are the ids of the writes involved, ascending.
	Writes []int64 `json:"writes,omitempty"`
}

// Lost is an acknowledged write missing from the final primary.
type Lost struct {
	ID       int64  `json:"id"`
	Timeline uint32 `json:"timeline"`
	LSN      string `json:"lsn,omitempty"`
	// Bytes is its LSN minus the fork of the timeline that followed its
	// own; -1 when that cannot be measured, and Unmeasured says why.
	Bytes       int64     `json:"loss_bytes"`
	Unmeasured  string    `json:"unmeasured,omitempty"`
	WithinBound bool      `json:"within_bound"`
	Step        int       `json:"step,omitempty"`
	Acked       time.Time `json:"acked"`
}

// Result is the judgement of one history.
type Result struct {
	Violations []Violation `json:"violations"`
	// Faults holds the figures per fault type; Steps per injected fault.
	Faults map[string]FaultStats `json:"faults"`
	Steps  []StepStats           `json:"steps"`
	// Lost lists every acknowledged write missing from the final primary,
	// within the bound or not.
	Lost []Lost `json:"lost_writes"`
	// Writes counts the attempts by outcome; Between the failures seen
	// outside every fault's window (a settled cluster should show none).
	Writes  map[history.Outcome]int `json:"writes"`
	Between map[history.Outcome]int `json:"errors_between_faults"`
	// Warnings are flaws of the history itself that limit the judgement.
	Warnings []string `json:"warnings"`
}

// Passed reports a run without violation.
func (r Result) Passed() bool { return len(r.Violations) == 0 }

// Check judges h. It does no I/O.
func Check(h history.History, o Options) Result {
	c := newChecker(h, o)
	r := Result{Violations: []Violation{}, Lost: []Lost{}, Warnings: []string{}}
	r.Violations = append(r.Violations, c.splitBrain()...)
	lost, vs := c.losses()
	r.Lost = append(r.Lost, lost...)
	r.Violations = append(r.Violations, vs...)
	r.Violations = append(r.Violations, c.readOnly()...)
	r.Violations = append(r.Violations, c.recovery()...)
	r.Violations = append(r.Violations, c.final()...)
	r.Faults, r.Steps, r.Writes, r.Between = c.stats()
	for _, v := range r.Violations {
		if fs, ok := r.Faults[v.Fault]; ok {
			fs.Violations++
			r.Faults[v.Fault] = fs
		}
	}
	r.Warnings = append(r.Warnings, c.warnings...)
	slices.SortStableFunc(r.Violations, func(a, b Violation) int {
		return cmp.Or(a.At.Compare(b.At), cmp.Compare(a.Step, b.Step), cmp.Compare(a.Kind, b.Kind))
	})
	return r
}

// readOnly reports every read-only refusal, one violation per fault: the
// VIP and a /primary-checked route must only ever lead to a writable server.
func (c *checker) readOnly() []Violation {
	byStep := map[int][]history.Write{}
	var steps []int
	for _, w := range c.h.Writes {
		if w.Outcome != history.ReadOnly {
			continue
		}
		s := c.inEffect(w.End)
		if _, ok := byStep[s]; !ok {
			steps = append(steps, s)
		}
		byStep[s] = append(byStep[s], w)
	}
	var out []Violation
	for _, s := range steps {
		ws := byStep[s]
		routes := map[history.Route]int{}
		for _, w := range ws {
			routes[w.Route]++
		}
		out = append(out, c.violation(ReadOnlyError, s, ws[0].End, ids(ws),
			"%d write(s) refused as read-only (%d through the VIP, %d through /primary-checked routes), first: %s",
			len(ws), routes[history.RouteVIP], routes[history.RouteDirect], ws[0].Error))
	}
	return out
}

func ids(ws []history.Write) []int64 {
	out := make([]int64, len(ws))
	for i, w := range ws {
		out[i] = w.ID
	}
	slices.Sort(out)
	return out
}
