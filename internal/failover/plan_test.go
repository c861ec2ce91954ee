package failover

import (
	"slices"
	"testing"
)

// TestPlanRoutesOnlyAfterTheGatesWrite checks, over every plan the code
// defines, the rule "no route step before the readiness gate's write
// committed". The legacy order is the benchmark baseline and must be the
// only plan that breaks it.
func TestPlanRoutesOnlyAfterTheGatesWrite(t *testing.T) {
	violators := 0
	for _, p := range All() {
		t.Run(p.Name, func(t *testing.T) {
			check := []Plan{p, p.From(StepPromote), p.Without(StepRoutesUp)}
			for _, q := range check {
				if q.RoutesBeforeCommit() != (p.Name == Legacy().Name && q.Has(StepRoutesUp)) {
					t.Errorf("plan %s %v: routes before commit = %v", p.Name, q.Names(), q.RoutesBeforeCommit())
				}
			}
			if p.Name == Legacy().Name {
				return
			}
			gate, routes := slices.Index(p.Names(), StepReadinessGate), slices.Index(p.Names(), StepRoutesUp)
			if gate < 0 || routes < 0 || routes < gate {
				t.Errorf("plan %s %v: the routes step must follow the readiness gate", p.Name, p.Names())
			}
			if !p.Steps[gate].Fatal {
				t.Errorf("plan %s: a failed readiness gate must stop the plan before its routes", p.Name)
			}
		})
		if p.RoutesBeforeCommit() {
			violators++
		}
	}
	if violators != 1 || !Legacy().RoutesBeforeCommit() {
		t.Errorf("%d plans route before a committed write; want exactly one, the legacy order", violators)
	}
}

func TestPlanNamesAreUniqueAndKnown(t *testing.T) {
	known := []string{StepIsolationGuard, StepAcquireLeader, StepFence, StepPromote, StepReadinessGate,
		StepSynchronous, StepCheckpoint, StepPublish, StepRoutesUp, StepRoutesProbe, StepStandbysFollow, StepLivenessCheck}
	names := map[string]bool{}
	for _, p := range All() {
		if names[p.Name] {
			t.Errorf("two plans are called %s", p.Name)
		}
		names[p.Name] = true
		seen := map[string]bool{}
		for _, s := range p.Steps {
			if !slices.Contains(known, s.Name) {
				t.Errorf("plan %s: unknown step %q", p.Name, s.Name)
			}
			if seen[s.Name] {
				t.Errorf("plan %s runs %s twice", p.Name, s.Name)
			}
			seen[s.Name] = true
		}
	}
}

func TestPlanFromAndWithout(t *testing.T) {
	p := Agent().From(StepPromote).WithoutRoutes()
	want := []string{StepPromote, StepReadinessGate, StepPublish, StepStandbysFollow, StepCheckpoint}
	if !slices.Equal(p.Names(), want) {
		t.Errorf("got %v, want %v", p.Names(), want)
	}
	if !Agent().From("nothing").IsZero() {
		t.Error("From an unknown step should be empty")
	}
	// A companion whose step is left out, or that a plan starts from,
	// runs on its own: never alongside a step it was not planned beside.
	for _, q := range []Plan{Agent().Without(StepPublish), Agent().From(StepRoutesUp), Pgpool()} {
		if g := q.Groups(); slices.ContainsFunc(g, func(g []Spec) bool {
			return slices.ContainsFunc(g, func(s Spec) bool { return s.Name == StepRoutesUp }) && len(g) > 1
		}) {
			t.Errorf("plan %s %v: routes_up runs alongside another step: %v", q.Name, q.Names(), g)
		}
	}
}

// TestCriticalPathHoldsOnlyPromotionAndTheGate: after the leader key and
// the fence, nothing but the promotion and the readiness gate's write
// comes before the routes; the synchronous setting is made before the
// promotion (never a round trip after the gate), the duplicate-address
// probe runs alongside the promotion, the publication alongside the
// routes, and the CHECKPOINT after them.
func TestCriticalPathHoldsOnlyPromotionAndTheGate(t *testing.T) {
	for _, p := range []Plan{Agent(), Pgpool()} {
		t.Run(p.Name, func(t *testing.T) {
			var path []string
			for _, g := range p.Groups() {
				if g[0].Name == StepIsolationGuard || g[0].Name == StepAcquireLeader || g[0].Name == StepFence || g[0].Name == StepSynchronous {
					continue
				}
				if slices.ContainsFunc(g, func(s Spec) bool { return s.Name == StepRoutesUp }) {
					break
				}
				path = append(path, g[0].Name)
			}
			if want := []string{StepPromote, StepReadinessGate}; !slices.Equal(path, want) {
				t.Errorf("steps between the fence and the routes: %v, want %v", path, want)
			}
			for _, order := range [][2]string{{StepSynchronous, StepPromote}, {StepRoutesUp, StepCheckpoint}, {StepFence, StepSynchronous}} {
				if !p.Before(order[0], order[1]) {
					t.Errorf("%s must end before %s starts: %v", order[0], order[1], p.Names())
				}
			}
			if p.Before(StepReadinessGate, StepSynchronous) || p.Has(StepSyncToAsync) {
				t.Errorf("a synchronous round trip after the gate: %v", p.Names())
			}
		})
	}
	a := Agent()
	if a.group(StepRoutesProbe) != a.group(StepPromote) || a.group(StepPublish) != a.group(StepRoutesUp) {
		t.Errorf("groups %v: the probe runs alongside the promotion, the publication alongside the routes", a.Groups())
	}
}
