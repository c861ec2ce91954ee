package failover

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/internal/timeline"
)

// Recorder records a step with its time and evidence
// (*timeline.Recorder is one). Run times a step on the caller's goroutine;
// Add records a companion step, timed on its own goroutine.
type Recorder interface {
	Run(name string, f func() (evidence string, err error)) error
	Add(s timeline.Step)
}

// StepFunc carries out one step and returns its evidence.
type StepFunc func(ctx context.Context) (evidence string, err error)

// Do is a step that does f and, when f succeeds, gives evidence.
func Do(f func(ctx context.Context) error, evidence string) StepFunc {
	return func(ctx context.Context) (string, error) {
		if err := f(ctx); err != nil {
			return "", err
		}
		return evidence, nil
	}
}

// Steps are a procedure's implementations of the plan's steps, by Spec.Key.
// A step that does part of its work as a step of its own (the gate clearing
// the synchronous standbys) records that part through the same Recorder,
// inside its own step.
type Steps map[string]StepFunc

// Result is how a plan ended.
type Result struct {
	// Ran are the names of the steps that ran, in order.
	Ran []string
	// Failed is the fatal step that stopped the plan ("" when none did);
	// Err is its error.
	Failed string
	Err    error
}

// OK reports that no fatal step failed.
func (r Result) OK() bool { return r.Failed == "" }

// Run runs the plan's steps in order, each recorded by rec; a step's
// companions (Spec.Alongside) run at the same time as it and are recorded
// when they end, after it. A fatal step's failure ends the plan once its
// group has ended; a best-effort step's failure is recorded and the plan
// goes on. A step without an implementation fails.
func Run(ctx context.Context, plan Plan, rec Recorder, steps Steps) Result {
	var res Result
	impl := func(s Spec) StepFunc {
		if do := steps[s.Key()]; do != nil {
			return do
		}
		return func(context.Context) (string, error) {
			return "", fmt.Errorf("plan %s: no implementation of step %s", plan.Name, s.Key())
		}
	}
	for _, group := range plan.Groups() {
		head, companions := group[0], group[1:]
		var wg sync.WaitGroup
		done := make([]timeline.Step, len(companions))
		errs := make([]error, len(companions))
		for i, c := range companions {
			do := impl(c)
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				evidence, err := do(ctx)
				errs[i] = err
				done[i] = timeline.Step{Name: c.Name, Start: start, End: time.Now(), OK: err == nil, Evidence: evidence}
				if err != nil {
					done[i].Error = err.Error()
				}
			}()
		}
		do := impl(head)
		err := rec.Run(head.Name, func() (string, error) { return do(ctx) })
		wg.Wait()
		res.Ran = append(res.Ran, head.Name)
		if err != nil && head.Fatal {
			res.Failed, res.Err = head.Name, err
		}
		for i, c := range companions {
			rec.Add(done[i])
			res.Ran = append(res.Ran, c.Name)
			if errs[i] != nil && c.Fatal && res.Failed == "" {
				res.Failed, res.Err = c.Name, errs[i]
			}
		}
		if res.Failed != "" {
			return res
		}
	}
	return res
}
