package bench

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/internal/bench/patroni"
	"github.com/vigil-ha/vigil/internal/demo"
)

// TestRatiosDividePatroniByVigilsNodeCrash: each Patroni scenario is
// compared with Vigil's node crash without lag, not with the legacy or
// lag scenarios, and a scenario without runs gets no ratio.
func TestRatiosDividePatroniByVigilsNodeCrash(t *testing.T) {
	run := func(outage float64) demo.Result { return demo.Result{WriteOutageS: outage} }
	sc := append(DefaultScenarios(128), PatroniScenario(patroni.Default()), PatroniScenario(patroni.Tight()))
	runs := map[string][]demo.Result{
		"LEGACY node-crash+lag":      {run(1)},
		"node-crash+lag":             {run(2)},
		"node-crash":                 {run(3), run(4), run(5)},
		"PATRONI default node-crash": {run(30), run(40), run(50)},
	}
	var sums []Summary
	for _, s := range sc {
		sums = append(sums, summarize(s, runs[s.Name], 0))
	}
	got := ratios(sums)
	if len(got) != 1 || got[0].Scenario != "PATRONI default node-crash" || got[0].Baseline != "node-crash" || got[0].MedianOutage != 10 {
		t.Fatalf("ratios = %+v, want PATRONI default node-crash / node-crash = 10 only", got)
	}
	rep := Report{Summary: sums, Ratios: got}
	data, err := json.Marshal(rep)
	if err != nil {
		t.Fatalf("a report with a scenario without runs must still marshal: %v", err)
	}
	if !strings.Contains(string(data), `"write_outage_s":{"min":null,"median":null,"p95":null,"max":null}`) {
		t.Fatalf("the measures of a scenario without runs should be null in JSON: %s", data)
	}
	if !math.IsNaN(sums[len(sums)-1].WriteOutageS.Median) {
		t.Fatal("the Go value of a measure without runs is NaN")
	}
	if !strings.Contains(Table(rep), "PATRONI default node-crash / node-crash: median write outage ratio 10.0") {
		t.Fatalf("the table does not show the ratio:\n%s", Table(rep))
	}
}
