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
	// StepRoutesProbe checks, while the server promotes, that no other
	// host answers for the routes' addresses, so that routes_up after the
	// gate has no probe left to wait for.
	StepRoutesProbe    = "routes_probe"
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
	// Alongside: the step runs at the same time as the step before it
	// (and that step's other companions); the plan goes on when all of
	// them have ended. A fatal companion's failure ends the plan then.
	Alongside bool `json:"alongside,omitempty"`
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

// Without is the plan without the steps called names. A companion whose
// step was left out takes its place, so that it never runs alongside a
// step it was not planned beside.
func (p Plan) Without(names ...string) Plan {
	q := Plan{Name: p.Name}
	headGone := false
	for _, s := range p.Steps {
		if slices.Contains(names, s.Name) {
			headGone = headGone || !s.Alongside
			continue
		}
		if !s.Alongside || headGone {
			s.Alongside, headGone = false, false
		}
		q.Steps = append(q.Steps, s)
	}
	return q
}

// WithoutRoutes is the plan for a node with no routes: no probe, no
// routes step.
func (p Plan) WithoutRoutes() Plan { return p.Without(StepRoutesUp, StepRoutesProbe) }

// From is the plan from the step called name on (empty when it has none).
func (p Plan) From(name string) Plan {
	i := p.index(name)
	if i < 0 {
		return Plan{Name: p.Name}
	}
	q := Plan{Name: p.Name, Steps: slices.Clone(p.Steps[i:])}
	q.Steps[0].Alongside = false
	return q
}

// Groups are the plan's steps as they run: each group is a step and the
// companions that run alongside it.
func (p Plan) Groups() [][]Spec {
	var gs [][]Spec
	for _, s := range p.Steps {
		if s.Alongside && len(gs) > 0 {
			gs[len(gs)-1] = append(gs[len(gs)-1], s)
			continue
		}
		gs = append(gs, []Spec{s})
	}
	return gs
}

// group is the index of the group the step called name runs in (-1: none).
func (p Plan) group(name string) int {
	for i, g := range p.Groups() {
		if slices.ContainsFunc(g, func(s Spec) bool { return s.Name == name }) {
			return i
		}
	}
	return -1
}

// RoutesBeforeCommit reports whether the plan can send clients to the node
// before a write committed there: a routes step before the readiness gate
// or alongside it, or routes without any gate. Only the legacy order does.
func (p Plan) RoutesBeforeCommit() bool {
	routes := p.group(StepRoutesUp)
	if routes < 0 {
		return false
	}
	gate := p.group(StepReadinessGate)
	return gate < 0 || routes <= gate
}

// Before reports whether the step called a has ended before the step
// called b starts (both in the plan, in different groups).
func (p Plan) Before(a, b string) bool {
	ga, gb := p.group(a), p.group(b)
	return ga >= 0 && gb >= 0 && ga < gb
}

// IsZero reports a plan with no steps (an Options field left unset).
func (p Plan) IsZero() bool { return len(p.Steps) == 0 }

func fatal(name string) Spec { return Spec{Name: name, Fatal: true} }
func best(name string) Spec  { return Spec{Name: name} }

// alongside is a step that runs at the same time as the one before it.
func alongside(s Spec) Spec {
	s.Alongside = true
	return s
}

// Agent is the agent's failover: the seed's steps with their order and
// checks fixed. Between the leader key and the routes there is nothing but
// the promotion and the readiness gate's write: the synchronous setting is
// made before the promotion (a standby's agent keeps it ready, so this is
// usually a check without a round trip), the routes' duplicate-address
// probe runs while the server promotes, the writable primary is published
// while the routes come up, and the CHECKPOINT runs after the routes (see
// CheckpointAfterRoutes). A switchover's target runs the plan whole (its
// fence step finds the clean handover); a leader still in recovery after
// an interrupted attempt runs it from StepSynchronous on.
func Agent() Plan {
	return Plan{Name: "vigil", Steps: []Spec{
		fatal(StepIsolationGuard),
		fatal(StepAcquireLeader),
		fatal(StepFence),
		best(StepSynchronous),
		fatal(StepPromote),
		alongside(best(StepRoutesProbe)),
		fatal(StepReadinessGate),
		fatal(StepPublish),
		alongside(fatal(StepRoutesUp)),
		best(StepStandbysFollow),
		best(StepCheckpoint),
	}}
}

// CheckpointWhy is why the CHECKPOINT still runs, after the routes: until
// the promoted server's first checkpoint its control file still shows the
// old timeline, so pg_rewind of the old primary finds nothing to rewind,
// and a crash would replay the whole backlog again.
const CheckpointWhy = "after the routes, off the write path: a rewind of the old primary needs the new timeline in this server's control file, and a crash now would not replay the backlog again"

// Pgpool is `vigil failover-command`: Pgpool-II decides that a failover
// happens and which node is promoted; the trusted-IP guard and that
// decision come before the plan. The VIP comes up after the gate, with its
// own duplicate-address check (it is added over SSH, see vip.Remote).
func Pgpool() Plan {
	p := Agent().From(StepFence).Without(StepPublish, StepStandbysFollow, StepRoutesProbe)
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
