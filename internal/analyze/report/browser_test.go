package report

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/analyze"
	"github.com/vigil-ha/vigil/internal/analyze/input"
	"github.com/vigil-ha/vigil/internal/browsercheck"
)

// TestSeedReportInABrowser renders the seed incident's report and loads it
// in Chromium. The Kingbase failover log logs seven milestones within
// 15:12:01-15:12:02, one pixel column at the chart's scale: their labels
// used to be drawn over each other. No two labels of a lane, nor two of
// the time axis, may share a pixel now, and the page has no console error.
func TestSeedReportInABrowser(t *testing.T) {
	page := checkInBrowser(t, seedReport(t))
	perLane := map[string]int{}
	for _, box := range page.Boxes {
		perLane[box.Group]++
	}
	if perLane["failover.log"] < 7 || perLane["kingbase-2023-09-19_090002.log"] < 3 || perLane[AxisLane] < 2 {
		t.Fatalf("labels per lane %v: the crowded failover log lane is not what was checked", perLane)
	}
}

func TestPlaceLabelsKeepsARowFree(t *testing.T) {
	labels := []*label{
		{text: "a", x0: 100, x1: 160},
		{text: "b", x0: 100, x1: 130}, // same marker as a
		{text: "c", x0: 150, x1: 200}, // starts under a
		{text: "d", x0: 172, x1: 220}, // clears a by the gap
		{text: "e", x0: 100, x1: 120},
	}
	rows := placeLabels(labels)
	if rows != 3 {
		t.Errorf("rows = %d, want 3", rows)
	}
	for i, l := range labels {
		for _, m := range labels[i+1:] {
			if l.row == m.row && l.x0 < m.x1+labelGap && m.x0 < l.x1+labelGap {
				t.Errorf("%s [%g,%g] and %s [%g,%g] share row %d", l.text, l.x0, l.x1, m.text, m.x0, m.x1, l.row)
			}
		}
	}
}

// TestNoLoadFailoverInABrowser: the seed's other failover log, alone.
func TestNoLoadFailoverInABrowser(t *testing.T) {
	srcs, errs := input.Expand([]string{"../testdata/seed/failover-2023-09-21-noload.log"}, nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	rep, err := analyze.Run(context.Background(), srcs, analyze.Options{TZ: time.FixedZone("CST", 8*3600), Local: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	checkInBrowser(t, rep)
}

// checkInBrowser writes rep's HTML report and checks it in Chromium.
func checkInBrowser(t *testing.T, rep *analyze.Report) browsercheck.Page {
	t.Helper()
	var b bytes.Buffer
	if err := HTML(&b, rep); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "report.html")
	if err := os.WriteFile(file, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return browsercheck.Check(ctx, t, file, browsercheck.Query{Selector: LabelSelector, GroupAttr: LaneAttr})
}
