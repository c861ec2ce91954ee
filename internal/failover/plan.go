// Package failover is Vigil's one failover procedure: the ordered steps as
// data (a Plan), one runner that records each step (Run), and one readiness
// gate (Gate) that repeats a real write until one commits.
//
// The agent's failover, its promotion after an interrupted attempt and the
// switchover's target side, and `vigil failover-command` for Pgpool-II all
// run a Plan through Run; the seed's legacy order, kept as the benchmark
// baseline, is one more Plan value (Legacy). The rule "no route before the
// gate's write committed" is a property of a plan (RoutesBeforeCommit),
// checked over every plan of this package by its tests.
package failover

import "slices"

// Step names, written once: they are the names of the steps in the step
// log, the history and `vigil analyze`.
const (
	StepIsolationGuard = "isolation_guard"
	StepAcquireLeader  = "acquire_leader"
	StepFence          = "fence_old_primary"
	StepPromote        = "promote"
	StepReadinessGate  = "readiness_gate"
	StepSyncToAsync    = "sync_to_async"
	StepSynchronous    = "synchronous_replication"
	StepCheckpoint     = "checkpoint"
	StepPublish        = "publish_writable"
	StepRoutesUp       = "routes_up"
	StepStandbysFollow = "standbys_follow"
	// StepLivenessCheck is the legacy order's readiness: a query answered
	// ("select 33333"), which a read-only server answers too.
	StepLivenessCheck = "liveness_check"
)

// How a step is carried out, when a plan does a step the same name
// differently: the legacy order requests a promotion without waiting, and
// brings routes up whether or not this node may write.
const (
	DoRequestPromote = "request_promote"
	DoForceRoutesUp  = "force_routes_up"
)

// Spec is one step of a plan.
type Spec struct {
	// Name is the step's recorded name (one of the Step constants).
	Name string `json:"name"`
	// Do names the implementation when it is not Name's usual one.
	Do string `json:"do,omitempty"`
	// Fatal: a failure of this step ends the plan.
	Fatal bool `json:"fatal"`
}

// Key is what the runner looks the step's implementation up by.
func (s Spec) Key() string {
	if s.Do != "" {
		return s.Do
	}
	return s.Name
}

// Plan is an ordered list of steps.
type Plan struct {
	Name  string `json:"name"`
	Steps []Spec `json:"steps"`
}

// Names are the plan's step names in order.
func (p Plan) Names() []string {
	names := make([]string, len(p.Steps))
	for i, s := range p.Steps {
		names[i] = s.Name
	}
	return names
}

// Has reports whether the plan has a step called name.
func (p Plan) Has(name string) bool { return p.index(name) >= 0 }

func (p Plan) index(name string) int {
	return slices.IndexFunc(p.Steps, func(s Spec) bool { return s.Name == name })
}

// Without is the plan without the steps called names.
func (p Plan) Without(names ...string) Plan {
	q := Plan{Name: p.Name}
	for _, s := range p.Steps {
		if !slices.Contains(names, s.Name) {
			q.Steps = append(q.Steps, s)
		}
	}
	return q
}

// From is the plan from the step called name on (empty when it has none).
func (p Plan) From(name string) Plan {
	i := p.index(name)
	if i < 0 {
		return Plan{Name: p.Name}
	}
	return Plan{Name: p.Name, Steps: slices.Clone(p.Steps[i:])}
}

// RoutesBeforeCommit reports whether the plan can send clients to the node
// before a write committed there: a routes step before the readiness gate,
// or routes without any gate. Only the legacy order does.
func (p Plan) RoutesBeforeCommit() bool {
	gate := p.index(StepReadinessGate)
	for i, s := range p.Steps {
		if s.Name == StepRoutesUp && (gate < 0 || i < gate) {
			return true
		}
	}
	return false
}

// IsZero reports a plan with no steps (an Options field left unset).
func (p Plan) IsZero() bool { return len(p.Steps) == 0 }

func fatal(name string) Spec { return Spec{Name: name, Fatal: true} }
func best(name string) Spec  { return Spec{Name: name} }

// Agent is the agent's failover: the seed's steps with their order and
// checks fixed. The routes come last, after a real write has committed and
// the writable primary is published. A switchover's target runs it whole
// (its fence step finds the clean handover); a leader still in recovery
// after an interrupted attempt runs it from StepPromote on.
func Agent() Plan {
	return Plan{Name: "vigil", Steps: []Spec{
		fatal(StepIsolationGuard),
		fatal(StepAcquireLeader),
		fatal(StepFence),
		fatal(StepPromote),
		fatal(StepReadinessGate),
		best(StepSynchronous),
		best(StepCheckpoint),
		fatal(StepPublish),
		fatal(StepRoutesUp),
		best(StepStandbysFollow),
	}}
}

// Pgpool is `vigil failover-command`: Pgpool-II decides that a failover
// happens and which node is promoted; the trusted-IP guard and that
// decision come before the plan. The VIP is the last step.
func Pgpool() Plan {
	p := Agent().From(StepFence).Without(StepPublish, StepStandbysFollow)
	p.Name = "pgpool"
	return p
}

// Legacy is failover_stream.sh's order, kept only as the benchmark
// baseline: routes first, a promotion requested and not waited for, and a
// query answered taken as ready although writes may still be refused.
func Legacy() Plan {
	return Plan{Name: "legacy", Steps: []Spec{
		fatal(StepIsolationGuard),
		fatal(StepAcquireLeader),
		fatal(StepFence),
		{Name: StepRoutesUp, Do: DoForceRoutesUp, Fatal: true},
		{Name: StepPromote, Do: DoRequestPromote, Fatal: true},
		fatal(StepLivenessCheck),
		best(StepCheckpoint),
	}}
}

// All are the plans the code defines.
func All() []Plan { return []Plan{Agent(), Pgpool(), Legacy()} }
