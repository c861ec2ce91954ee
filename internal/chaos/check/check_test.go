package check

import (
	"slices"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/chaos/history"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(h *history.History)
		kind   Kind // "" for a clean history
		step   int
		writes []int64
		lost   []int64 // every lost write listed, within the bound or not
	}{
		{name: "clean failover: old primary acked strictly before the new one", change: func(*history.History) {}},
		{name: "sync off: old primary's last acks lost within the bound", change: func(h *history.History) {
			h.Writes[8].LSN, h.Writes[9].LSN = "0/3000080", "0/3000100"
			drop(h, 9, 10)
		}, lost: []int64{9, 10}},
		{name: "sync off: loss beyond maximum_lag_on_failover", change: func(h *history.History) {
			h.Run.MaxLag = 0x90
			h.Writes[8].LSN, h.Writes[9].LSN = "0/3000080", "0/3000100"
			drop(h, 9, 10)
		}, kind: LossBeyondLag, step: 1, writes: []int64{10}, lost: []int64{9, 10}},
		{name: "sync off: loss on the final timeline cannot be measured", change: func(h *history.History) {
			drop(h, 20)
		}, kind: LossBeyondLag, step: 1, writes: []int64{20}, lost: []int64{20}},
		{name: "sync on: an acknowledged write missing", change: func(h *history.History) {
			h.Run.SyncMode = "on"
			drop(h, 10)
		}, kind: LostWrite, step: 1, writes: []int64{10}, lost: []int64{10}},
		{name: "sync strict: unknown outcomes are neither lost nor acknowledged", change: func(h *history.History) {
			h.Run.SyncMode = "strict"
			late := failed(21, 15, history.Unknown, history.RouteDirect)
			late.Node, late.Server, late.Timeline = "node1", "10.0.0.1", 1 // the server it was sent to
			h.Writes = append(h.Writes, late, failed(22, 10.2, history.Unknown, history.RouteVIP))
			h.Final.Present = append(h.Final.Present, 22)
		}},
		{name: "split brain: one late ack by the old primary after the new one acked", change: func(h *history.History) {
			w := ack(21, 15.5, "node1", 1, fork+0x40)
			h.Writes = append(h.Writes, w)
			h.Final.Present = append(h.Final.Present, 21)
		}, kind: SplitBrain, step: 1, writes: []int64{14, 15, 16, 21}},
		{name: "delayed ack of a commit begun before the new primary's first: not split brain", change: func(h *history.History) {
			w := ack(21, 14, "node1", 1, fork-0x10)
			w.Start = at(12.9)
			h.Writes = append(h.Writes, w)
			h.Final.Present = append(h.Final.Present, 21)
		}},
		{name: "read-only through the VIP", change: func(h *history.History) {
			h.Writes = append(h.Writes, failed(21, 12.5, history.ReadOnly, history.RouteVIP))
		}, kind: ReadOnlyError, step: 1, writes: []int64{21}},
		{name: "read-only through a /primary-checked route", change: func(h *history.History) {
			h.Writes = append(h.Writes, failed(21, 25, history.ReadOnly, history.RouteDirect))
		}, kind: ReadOnlyError, step: 1, writes: []int64{21}},
		{name: "fault not recovered", change: func(h *history.History) {
			h.Faults[0].Recovered = time.Time{}
		}, kind: NotRecovered, step: 1},
		{name: "fault recovered beyond its bound", change: func(h *history.History) {
			h.Faults[0].Recovered = at(51)
		}, kind: NotRecovered, step: 1},
		{name: "no primary at the end", change: func(h *history.History) {
			h.Final.Primary = ""
		}, kind: NoPrimary},
		{name: "interrupted run: no final state", change: func(h *history.History) {
			h.Final = history.Final{}
		}, kind: NoPrimary},
		{name: "a standby not streaming", change: func(h *history.History) {
			h.Final.Streaming = []string{"node3"}
		}, kind: NotStreaming},
		{name: "agent panic", change: func(h *history.History) {
			h.Final.Panics = []string{"node2: panic: runtime error: index out of range"}
		}, kind: AgentPanic},
		{name: "leak", change: func(h *history.History) {
			h.Final.Leaks = []string{"namespace vigil-7-node1"}
		}, kind: ResourceLeaked},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := campaign()
			tc.change(&h)
			r := Check(h, Options{})
			var lost []int64
			for _, l := range r.Lost {
				lost = append(lost, l.ID)
			}
			if !slices.Equal(lost, tc.lost) {
				t.Errorf("lost = %v, want %v", lost, tc.lost)
			}
			if tc.kind == "" {
				if !r.Passed() {
					t.Fatalf("violations in a clean history: %+v", r.Violations)
				}
				return
			}
			if len(r.Violations) != 1 {
				t.Fatalf("want one %s violation, got %+v", tc.kind, r.Violations)
			}
			v := r.Violations[0]
			if v.Kind != tc.kind || v.Step != tc.step || !slices.Equal(v.Writes, tc.writes) || v.Seed != 7 || v.Message == "" {
				t.Errorf("violation = %+v, want kind %s step %d writes %v seed 7", v, tc.kind, tc.step, tc.writes)
			}
			if tc.step != 0 && v.Fault != "node-crash" {
				t.Errorf("violation names fault %q", v.Fault)
			}
		})
	}
}

func TestCheckNeverHealed(t *testing.T) {
	h := campaign()
	h.Faults[0].Healed, h.Faults[0].Recovered = time.Time{}, time.Time{}
	h.Final = history.Final{}
	r := Check(h, Options{})
	var kinds []Kind
	for _, v := range r.Violations {
		kinds = append(kinds, v.Kind)
	}
	if !slices.Contains(kinds, NotRecovered) || !slices.Contains(kinds, NoPrimary) || len(kinds) != 2 {
		t.Errorf("kinds = %v, want not-recovered and no-primary", kinds)
	}
}

func TestCheckRecoveryBoundOption(t *testing.T) {
	h := campaign()
	h.Faults[0].RecoveryBound = 0
	if r := Check(h, Options{RecoveryBound: time.Second}); len(r.Violations) != 1 || r.Violations[0].Kind != NotRecovered {
		t.Errorf("2 s recovery with a 1 s bound: %+v", r.Violations)
	}
	if r := Check(h, Options{}); !r.Passed() {
		t.Errorf("2 s recovery with the default bound: %+v", r.Violations)
	}
}

func TestCheckStats(t *testing.T) {
	h := campaign()
	h.Writes = append(h.Writes, failed(21, 25, history.Connection, history.RouteDirect))
	r := Check(h, Options{})
	fs := r.Faults["node-crash"]
	if fs.Injected != 1 || fs.Recovered != 1 || fs.Late != 0 {
		t.Errorf("counts = %+v", fs)
	}
	if fs.RecoveryS.Median != 2 || fs.FromInjectedS.Max != 12 || !slices.Equal(fs.RecoverySeconds, []float64{2}) {
		t.Errorf("recovery = %+v from injection %+v", fs.RecoveryS, fs.FromInjectedS)
	}
	// The last ack before the crash was at 9 s; counted from the injection
	// at 10 s to node2's first at 13.1 s.
	if got := fs.WriteOutageS.Max; got < 3.09 || got > 3.11 {
		t.Errorf("write outage = %v, want 3.1", got)
	}
	if fs.Errors[history.Connection] != 3 || r.Between[history.Connection] != 1 || r.Writes[history.OK] != 17 {
		t.Errorf("errors = %v, between = %v, writes = %v", fs.Errors, r.Between, r.Writes)
	}
}

func TestOutage(t *testing.T) {
	acks := []time.Time{at(1), at(2), at(9), at(10), at(30)}
	for _, tc := range []struct {
		from, to float64
		want     time.Duration
	}{
		{2.5, 9.5, 6500 * time.Millisecond}, // injection to the first ack
		{0, 20, 20 * time.Second},           // runs on to the first ack after the window
		{31, 40, 9 * time.Second},           // none after: up to the window's end
	} {
		if got := outage(acks, at(tc.from), at(tc.to)); got != tc.want {
			t.Errorf("outage(%v, %v) = %v, want %v", tc.from, tc.to, got, tc.want)
		}
	}
}

func TestSummarise(t *testing.T) {
	s := summarise([]float64{5, 1, 4, 2, 3})
	if s != (Stats{N: 5, Min: 1, Median: 3, P95: 5, Max: 5}) {
		t.Errorf("summarise = %+v", s)
	}
	if (summarise(nil) != Stats{}) {
		t.Error("no sample gives non-zero stats")
	}
}
