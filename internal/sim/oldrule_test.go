package sim

import (
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/decision"
)

// oldDecide is the decision core as it was before issue 12's fix of case
// 2: a stopped former primary started its server first ([StartPrimary])
// instead of taking the key first ([AcquireLeader, StartPrimary]), and an
// agent that gave its key up for a failure did not stay down (no
// Input.GaveUpAt). Nor did a standby ask its upstream directly whether it
// still ran as a primary (Local.UpstreamIsPrimary, a later fix that also
// stops this case's second primary on its own).
func oldDecide(in decision.Input) decision.Output {
	in.GaveUpAt = time.Time{}
	in.Self.UpstreamIsPrimary = false
	out := decision.Decide(in)
	if len(out.Actions) == 2 && out.Actions[0].Kind == decision.AcquireLeader && out.Actions[1].Kind == decision.StartPrimary {
		out.Actions = []decision.Action{{Kind: decision.StartPrimary}}
		out.Reason = "no leader; former primary with the newest history: starting it"
	}
	return out
}

func hasViolation(r Result, kind string) bool {
	for _, v := range r.Violations {
		if v.Kind == kind {
			return true
		}
	}
	return false
}

// The scenario of issue 12 case 2 runs two writable primaries on the old
// rule and none on the current one.
func TestOldRuleFindsStartBeforeKey(t *testing.T) {
	sc := loadScript(t, "testdata/start-before-key.txt")
	if r := Run(sc, nil, nil); len(r.Violations) > 0 {
		t.Errorf("current decision core:\n%s", r.Report(100))
	}
	r := Run(sc, oldDecide, nil)
	if !hasViolation(r, SplitBrain) {
		t.Fatalf("the old rule was not caught:\n%s", r.Report(100))
	}
	t.Logf("old rule: %s", r.Violations[0])
}

// The random schedules find it too, without being told where to look.
func TestRandomSchedulesFindStartBeforeKey(t *testing.T) {
	deadline := time.Now().Add(20 * time.Second)
	for seed := uint64(1); time.Now().Before(deadline); seed++ {
		sc := Generate(seed)
		r := Run(sc, oldDecide, nil)
		if !hasViolation(r, SplitBrain) {
			continue
		}
		if cur := Run(sc, nil, nil); hasViolation(cur, SplitBrain) {
			t.Fatalf("seed %d: the current rule fails the same schedule:\n%s", seed, cur.Report(100))
		}
		t.Logf("seed %d (schedule %d steps) finds the old rule: %s", seed, len(sc.Steps), r.Violations[0])
		return
	}
	t.Fatal("no random schedule found the old rule within 20 s")
}

// silenceOnlyDecide is the decision core before a standby asked its
// upstream directly: a quiet WAL receiver was taken for a dead upstream.
func silenceOnlyDecide(in decision.Input) decision.Output {
	in.Self.UpstreamIsPrimary = false
	return decision.Decide(in)
}

// A frozen primary's agent whose WAL stream also goes quiet: on silence
// alone a standby is promoted next to a primary that still takes writes
// (the split brain the chaos campaign found on a loaded lab); asking the
// upstream keeps one primary.
func TestQuietStreamAloneDoesNotProveTheUpstreamDead(t *testing.T) {
	sc := loadScript(t, "testdata/frozen-agent-quiet-stream.txt")
	if r := Run(sc, nil, nil); r.Failed() {
		t.Errorf("current decision core:\n%s", r.Report(100))
	}
	r := Run(sc, silenceOnlyDecide, nil)
	if !hasViolation(r, SplitBrainNoAgent) {
		t.Fatalf("silence alone was not caught:\n%s", r.Report(100))
	}
	t.Logf("silence alone: %s", r.Violations[0])
}
