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
		StepSynchronous, StepCheckpoint, StepPublish, StepRoutesUp, StepStandbysFollow, StepLivenessCheck}
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
	p := Agent().From(StepPromote).Without(StepRoutesUp)
	want := []string{StepPromote, StepReadinessGate, StepSynchronous, StepCheckpoint, StepPublish, StepStandbysFollow}
	if !slices.Equal(p.Names(), want) {
		t.Errorf("got %v, want %v", p.Names(), want)
	}
	if !Agent().From("nothing").IsZero() {
		t.Error("From an unknown step should be empty")
	}
}
