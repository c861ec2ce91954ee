package check

import (
	"math"
	"slices"
	"sort"
	"time"

	"github.com/vigil-ha/vigil/internal/chaos/history"
)

// Stats summarise one measure in seconds: nearest-rank percentiles, all
// zero when N is (JSON has no NaN).
type Stats struct {
	N      int     `json:"n"`
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	P95    float64 `json:"p95"`
	Max    float64 `json:"max"`
}

func summarise(v []float64) Stats {
	if len(v) == 0 {
		return Stats{}
	}
	v = slices.Clone(v)
	slices.Sort(v)
	rank := func(p float64) float64 { return v[max(0, int(math.Ceil(p*float64(len(v))))-1)] }
	return Stats{N: len(v), Min: v[0], Median: rank(0.5), P95: rank(0.95), Max: v[len(v)-1]}
}

// FaultStats are the figures of one fault type.
//
// Time to recover is given twice. RecoveryS runs from the heal to the
// recovery: it is what the recovery bound applies to, and zero when the
// cluster was already whole at the heal. FromInjectedS runs from the
// injection: it is the whole disruption, and the figure to quote for faults
// that remove the primary, since the cluster fails over while the fault
// still holds. WriteOutageS is the longest time without an acknowledged
// write that began within each fault's window.
type FaultStats struct {
	Injected  int `json:"injected"`
	Recovered int `json:"recovered"`
	Late      int `json:"recovered_late"` // recovered, but beyond the bound
	// RecoverySeconds lists RecoveryS's samples in step order.
	RecoverySeconds []float64               `json:"recovery_seconds"`
	RecoveryS       Stats                   `json:"recovery_s"`
	FromInjectedS   Stats                   `json:"recovery_from_injected_s"`
	WriteOutageS    Stats                   `json:"write_outage_s"`
	Errors          map[history.Outcome]int `json:"errors"`
	Violations      int                     `json:"violations"`
}

// StepStats are the figures of one injected fault. Its window runs from
// the injection to the recovery (to the deadline when there was none).
type StepStats struct {
	Step          int                     `json:"step"`
	Type          string                  `json:"type"`
	Target        string                  `json:"target"`
	Injected      time.Time               `json:"injected"`
	Healed        time.Time               `json:"healed"`
	Recovered     time.Time               `json:"recovered"`
	WindowEnd     time.Time               `json:"window_end"`
	PrimaryBefore string                  `json:"primary_before,omitempty"`
	PrimaryAfter  string                  `json:"primary_after,omitempty"`
	RecoveryS     *float64                `json:"recovery_s"` // nil when not recovered
	FromInjectedS *float64                `json:"recovery_from_injected_s"`
	WriteOutageS  float64                 `json:"write_outage_s"`
	Errors        map[history.Outcome]int `json:"errors"`
}

// stats measures every fault and counts the writes: errors go to the
// latest fault whose window holds them, so the per-type counts add up.
func (c *checker) stats() (map[string]FaultStats, []StepStats, map[history.Outcome]int, map[history.Outcome]int) {
	writes, between := map[history.Outcome]int{}, map[history.Outcome]int{}
	steps := make([]StepStats, len(c.faults))
	for i, f := range c.faults {
		steps[i] = StepStats{Step: f.Step, Type: f.Type, Target: f.Target, Injected: f.Injected, Healed: f.Healed,
			Recovered: f.Recovered, WindowEnd: c.ends[i], PrimaryBefore: f.PrimaryBefore, PrimaryAfter: f.PrimaryAfter,
			Errors: map[history.Outcome]int{}}
		if !f.Recovered.IsZero() && !f.Healed.IsZero() {
			heal := max(0, f.Recovered.Sub(f.Healed).Seconds())
			inj := max(0, f.Recovered.Sub(f.Injected).Seconds())
			steps[i].RecoveryS, steps[i].FromInjectedS = &heal, &inj
		}
	}
	var okEnds []time.Time
	for _, w := range c.h.Writes {
		writes[w.Outcome]++
		if w.Outcome == history.OK {
			okEnds = append(okEnds, w.End)
			continue
		}
		if i := c.window(w.End); i >= 0 {
			steps[i].Errors[w.Outcome]++
		} else {
			between[w.Outcome]++
		}
	}
	slices.SortFunc(okEnds, time.Time.Compare)
	for i := range steps {
		steps[i].WriteOutageS = outage(okEnds, steps[i].Injected, steps[i].WindowEnd).Seconds()
	}
	return byType(steps, c), steps, writes, between
}

func byType(steps []StepStats, c *checker) map[string]FaultStats {
	type samples struct{ heal, inj, outage []float64 }
	out, raw := map[string]FaultStats{}, map[string]*samples{}
	for i, s := range steps {
		fs := out[s.Type]
		if fs.Errors == nil {
			fs.Errors, fs.RecoverySeconds, raw[s.Type] = map[history.Outcome]int{}, []float64{}, &samples{}
		}
		r := raw[s.Type]
		fs.Injected++
		if s.RecoveryS != nil {
			fs.Recovered++
			if s.Recovered.After(s.Healed.Add(c.bound(c.faults[i]))) {
				fs.Late++
			}
			r.heal, r.inj = append(r.heal, *s.RecoveryS), append(r.inj, *s.FromInjectedS)
		}
		r.outage = append(r.outage, s.WriteOutageS)
		for k, n := range s.Errors {
			fs.Errors[k] += n
		}
		out[s.Type] = fs
	}
	for t, fs := range out {
		r := raw[t]
		fs.RecoverySeconds = append(fs.RecoverySeconds, r.heal...)
		fs.RecoveryS, fs.FromInjectedS, fs.WriteOutageS = summarise(r.heal), summarise(r.inj), summarise(r.outage)
		out[t] = fs
	}
	return out
}

// outage is the longest gap between acknowledgements (acks, sorted) that
// begins within [from, to]: counted from the injection, and running on to
// the first acknowledgement after the window, so that writes that resume
// late count in full.
func outage(acks []time.Time, from, to time.Time) time.Duration {
	k := sort.Search(len(acks), func(i int) bool { return acks[i].After(from) })
	prev, longest := from, time.Duration(0)
	for ; k < len(acks) && !acks[k].After(to); k++ {
		longest = max(longest, acks[k].Sub(prev))
		prev = acks[k]
	}
	next := to
	if k < len(acks) {
		next = acks[k]
	}
	return max(longest, next.Sub(prev))
}
