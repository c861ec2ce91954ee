package bench

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/browsercheck"
)

// TestChartHasATimeAxisInSeconds draws the chart of a recorded benchmark
// (testdata/report.json: three scenarios, two runs each, one with
// read-only errors) and loads it in Chromium: under every scenario the
// reader finds tick labels in seconds, left to right in increasing order,
// none covering another, and the page has no error.
func TestChartHasATimeAxisInSeconds(t *testing.T) {
	data, err := os.ReadFile("testdata/report.json")
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("decode the recorded report: %v", err)
	}
	svg := SVG(rep)
	if !strings.Contains(svg, `class="axis-title"`) || !strings.Contains(svg, "seconds since the crash") {
		t.Error("the time axis has no title")
	}
	file := filepath.Join(t.TempDir(), "failover.svg")
	if err := os.WriteFile(file, []byte(svg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	page := browsercheck.Check(ctx, t, file, browsercheck.Query{Selector: TimeTickSelector, GroupAttr: LaneAttr})
	ticks := map[string][]browsercheck.Box{}
	for _, b := range page.Boxes {
		ticks[b.Group] = append(ticks[b.Group], b)
	}
	for _, s := range rep.Summary {
		lane := ticks[s.Scenario.Name]
		if len(lane) < 2 {
			t.Errorf("%s: %d time-axis tick labels, want at least two", s.Scenario.Name, len(lane))
			continue
		}
		prevSecs, prevLeft := 0.0, 0.0
		for i, b := range lane {
			secs, err := strconv.ParseFloat(strings.TrimSuffix(b.Text, " s"), 64)
			if err != nil || !strings.HasSuffix(b.Text, " s") {
				t.Errorf("%s: tick label %q is not in seconds", s.Scenario.Name, b.Text)
				break
			}
			if i > 0 && (secs <= prevSecs || b.Left <= prevLeft) {
				t.Errorf("%s: tick %q at x=%.1f after %g s at x=%.1f", s.Scenario.Name, b.Text, b.Left, prevSecs, prevLeft)
			}
			prevSecs, prevLeft = secs, b.Left
		}
	}
	if len(ticks) != len(rep.Summary) {
		t.Errorf("tick labels in lanes %v, want one axis per scenario (%d)", slices.Sorted(maps.Keys(ticks)), len(rep.Summary))
	}
}
