package chaos

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Step is one fault of the schedule.
type Step struct {
	N    int    `json:"step"` // 1, 2, …
	Type string `json:"type"`
	// Role is which node it hits; Pick chooses among several candidates
	// (index modulo their number, in node order).
	Role Role `json:"role"`
	Pick int  `json:"pick"`
	// Hold is how long the fault stays before it is healed.
	Hold time.Duration `json:"hold"`
	// Param: packet-loss percent, latency milliseconds per direction.
	Param int `json:"param,omitempty"`
	// Flaps are the cut and pause lengths of flapping, alternating.
	Flaps []time.Duration `json:"flaps,omitempty"`
}

// Plan is a validated campaign schedule.
type Plan struct {
	Seed     int64
	Duration time.Duration
	Types    []string
	LeaseTTL time.Duration
	Steps    []Step
	// Spare continues the schedule for when the steps take less than their
	// estimated cost (a fault recovered before its settle allowance ran
	// out): the runner goes on with them while the duration lasts, so that
	// a campaign of 30 minutes injects faults for 30 minutes.
	Spare []Step
}

// NewPlan validates the request and draws the schedule: one fault of each
// requested type first, in an order drawn from the seed, then more drawn
// at random while the duration's budget lasts. The same arguments always
// give the same schedule.
func NewPlan(seed int64, duration time.Duration, types []string, ttl time.Duration) (Plan, error) {
	p := Plan{Seed: seed, Duration: duration, Types: types, LeaseTTL: ttl}
	if len(types) == 0 {
		return p, fmt.Errorf("no fault types requested")
	}
	if ttl <= 0 {
		return p, fmt.Errorf("lease_ttl %s: must be positive", ttl)
	}
	for _, t := range types {
		if _, ok := lookup(t); !ok {
			return p, fmt.Errorf("unknown fault %q", t)
		}
	}
	if need := MinDuration(types, ttl); duration < need {
		return p, fmt.Errorf("--duration %s is too short for one fault of each of the %d requested types: they need at least %s (lengthen --duration or request fewer types with --faults)",
			duration, len(types), need.Round(time.Second))
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x76696769_6c636861)) // "vigilcha"
	var used time.Duration
	for _, i := range rng.Perm(len(types)) {
		p.Steps = append(p.Steps, p.draw(rng, types[i], len(p.Steps)+1))
		used += cost(types[i], ttl)
	}
	for {
		t := types[rng.IntN(len(types))]
		if used+cost(t, ttl) > duration {
			break
		}
		p.Steps = append(p.Steps, p.draw(rng, t, len(p.Steps)+1))
		used += cost(t, ttl)
	}
	// A step takes at least its hold and the gap after it, a few seconds,
	// while its cost adds a settle allowance of 12 s: ten times the
	// duration's worth of costs is more than can run.
	for spare := time.Duration(0); spare < 10*duration; {
		t := types[rng.IntN(len(types))]
		p.Spare = append(p.Spare, p.draw(rng, t, len(p.Steps)+len(p.Spare)+1))
		spare += cost(t, ttl)
	}
	return p, nil
}

func (p Plan) draw(rng *rand.Rand, name string, n int) Step {
	f, _ := lookup(name)
	s := Step{N: n, Type: name, Role: f.roles[rng.IntN(len(f.roles))], Pick: rng.IntN(1 << 16), Hold: f.hold(p.LeaseTTL)}
	switch name {
	case PacketLoss:
		s.Param = 20 + rng.IntN(21)
	case Latency:
		s.Param = 50 + rng.IntN(151)
	case Flapping:
		for range flapCycles * 2 {
			s.Flaps = append(s.Flaps, time.Second+time.Duration(rng.IntN(3000))*time.Millisecond)
		}
	}
	return s
}

// Budget is the time the schedule expects to take, from its costs.
func (p Plan) Budget() time.Duration {
	var d time.Duration
	for _, s := range p.Steps {
		d += cost(s.Type, p.LeaseTTL)
	}
	return d
}
