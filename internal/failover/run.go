package failover

import (
	"context"
	"fmt"
)

// Recorder records a step with its time and evidence
// (*timeline.Recorder is one).
type Recorder interface {
	Run(name string, f func() (evidence string, err error)) error
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

// Run runs the plan's steps in order, each recorded by rec. A fatal step's
// failure ends the plan; a best-effort step's failure is recorded and the
// plan goes on. A step without an implementation fails.
func Run(ctx context.Context, plan Plan, rec Recorder, steps Steps) Result {
	var res Result
	for _, s := range plan.Steps {
		do := steps[s.Key()]
		if do == nil {
			do = func(context.Context) (string, error) {
				return "", fmt.Errorf("plan %s: no implementation of step %s", plan.Name, s.Key())
			}
		}
		err := rec.Run(s.Name, func() (string, error) { return do(ctx) })
		res.Ran = append(res.Ran, s.Name)
		if err != nil && s.Fatal {
			res.Failed, res.Err = s.Name, err
			return res
		}
	}
	return res
}
