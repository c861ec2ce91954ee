package check

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/vigil-ha/vigil/internal/chaos/history"
)

// checker holds a history and what every rule needs of it: the faults in
// injection order with the end of their windows.
type checker struct {
	h        history.History
	o        Options
	faults   []history.Fault // by Injected
	ends     []time.Time     // ends[i]: end of faults[i]'s window
	horizon  time.Time       // the last moment the history knows of
	warnings []string
}

func newChecker(h history.History, o Options) *checker {
	c := &checker{h: h, o: o, faults: slices.Clone(h.Faults)}
	slices.SortStableFunc(c.faults, func(a, b history.Fault) int {
		return cmp.Or(a.Injected.Compare(b.Injected), cmp.Compare(a.Step, b.Step))
	})
	c.horizon = latest(h.Run.Ended, h.Final.At)
	for _, w := range h.Writes {
		c.horizon = latest(c.horizon, w.End)
	}
	for _, f := range c.faults {
		c.horizon = latest(c.horizon, f.Injected, f.Healed, f.Recovered)
	}
	for _, f := range c.faults {
		c.ends = append(c.ends, c.windowEnd(f))
	}
	return c
}

// bound is how long after its heal a fault may take to be recovered from.
func (c *checker) bound(f history.Fault) time.Duration {
	return cmp.Or(time.Duration(f.RecoveryBound), c.o.RecoveryBound, DefaultRecoveryBound)
}

// windowEnd is when a fault stopped affecting the cluster: its recovery;
// without one, its deadline; never healed (an interrupted run), the end of
// the history.
func (c *checker) windowEnd(f history.Fault) time.Time {
	switch {
	case !f.Recovered.IsZero():
		return latest(f.Recovered, f.Injected)
	case !f.Healed.IsZero():
		return f.Healed.Add(c.bound(f))
	default:
		return latest(c.horizon, f.Injected)
	}
}

// inEffect attributes an event at t to the fault whose window holds t (the
// latest injected when windows overlap), else to the last fault injected
// before t (its settle period), else to none (0).
func (c *checker) inEffect(t time.Time) int {
	if i := c.window(t); i >= 0 {
		return c.faults[i].Step
	}
	step := 0
	for _, f := range c.faults {
		if f.Injected.After(t) {
			break
		}
		step = f.Step
	}
	return step
}

// window returns the index of the latest-injected fault whose window holds
// t, or -1.
func (c *checker) window(t time.Time) int {
	found := -1
	for i, f := range c.faults {
		if f.Injected.After(t) {
			break
		}
		if !t.After(c.ends[i]) {
			found = i
		}
	}
	return found
}

// causedBy attributes a loss of a write acknowledged at t to the first
// fault still in effect at or after t that changed the primary (the
// failover that dropped it), else to the first fault in effect at or
// after t.
func (c *checker) causedBy(t time.Time) int {
	first := 0
	for i, f := range c.faults {
		if c.ends[i].Before(t) {
			continue
		}
		if f.PrimaryBefore != f.PrimaryAfter {
			return f.Step
		}
		if first == 0 {
			first = f.Step
		}
	}
	return first
}

// faultType names the type of a step, "" for none.
func (c *checker) faultType(step int) string {
	for _, f := range c.faults {
		if f.Step == step {
			return f.Type
		}
	}
	return ""
}

func (c *checker) violation(k Kind, step int, at time.Time, writes []int64, format string, args ...any) Violation {
	return Violation{Kind: k, Message: fmt.Sprintf(format, args...), Step: step, Fault: c.faultType(step),
		Seed: c.h.Run.Seed, At: at, Writes: writes}
}

func (c *checker) warn(format string, args ...any) {
	c.warnings = append(c.warnings, fmt.Sprintf(format, args...))
}

func latest(ts ...time.Time) time.Time {
	var out time.Time
	for _, t := range ts {
		if t.After(out) {
			out = t
		}
	}
	return out
}
