package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/analyze/report"
	"github.com/vigil-ha/vigil/internal/browsercheck"
)

// analyzeOutput is the part of `vigil analyze --json` this test reads.
type analyzeOutput struct {
	Files []struct {
		Source  string `json:"source"`
		Format  string `json:"format"`
		Problem string `json:"problem"`
	} `json:"files"`
	Milestones []struct {
		Time   time.Time         `json:"time"`
		Kind   string            `json:"kind"`
		Source string            `json:"source"`
		Attrs  map[string]string `json:"attrs"`
	} `json:"milestones"`
	Findings *struct {
		PromotedServer string   `json:"promoted_server"`
		Window         *float64 `json:"read_only_window_s"`
		Errors         int      `json:"read_only_errors"`
		Outage         *float64 `json:"write_outage_s"`
		Verdict        string   `json:"verdict"`
		Failure        *struct {
			Time time.Time `json:"time"`
			Kind string    `json:"kind"`
		} `json:"failure"`
		Writable *struct {
			Time time.Time `json:"time"`
			Kind string    `json:"kind"`
		} `json:"writable"`
	} `json:"findings"`
	Warnings []string `json:"warnings"`
}

// TestAnalyzeARealFailover crashes the primary of a cluster run by real
// agents, then gives `vigil analyze` the new primary's step log and every
// server's log. The analysis must put Vigil's steps and the servers' lines
// on one timeline that agrees with itself: the server received the
// promote request during the agent's promote step, the database was
// writable before the agent published it, so no read-only window. The
// HTML report of the same logs is checked in Chromium.
func TestAnalyzeARealFailover(t *testing.T) {
	c := newCluster(t, clusterOptions{nodes: 3})
	ctx := testCtx(t, 6*time.Minute)
	for _, n := range []string{"node1", "node2", "node3"} {
		c.startAgent(n)
	}
	s := c.store()
	if p := c.waitWritablePrimary(ctx, s); p != "node1" {
		t.Fatalf("initial primary = %s", p)
	}
	crashAt := time.Now()
	c.crashNode(ctx, "node1")
	newPrimary := c.waitWritablePrimary(ctx, s, "node1")
	seen := time.Now()
	steps := filepath.Join(c.dir, newPrimary+".steps.jsonl")
	if err := eventually(ctx, 30*time.Second, func() error {
		if !strings.Contains(readFile(t, steps), `"standbys_follow"`) {
			return fmt.Errorf("failover not finished in %s", steps)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	htmlReport := filepath.Join(t.TempDir(), "failover.html")
	args := []string{"analyze", "--json", "--html", htmlReport, steps}
	for _, n := range c.lab.Nodes() {
		args = append(args, n.LogFile)
	}
	out, err := exec.CommandContext(ctx, vigilBin, args...).Output()
	if err != nil {
		t.Fatalf("vigil analyze: %v", err)
	}
	var rep analyzeOutput
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("analyze output: %v\n%s", err, out)
	}
	for _, f := range rep.Files {
		if f.Problem != "" {
			t.Errorf("%s: %s", f.Source, f.Problem)
		}
	}
	serverLane := newPrimary + "/postgresql.log"
	find := func(kind, source string) (time.Time, map[string]string) {
		for _, m := range rep.Milestones {
			if m.Kind == kind && (source == "" || m.Source == source) {
				return m.Time, m.Attrs
			}
		}
		t.Errorf("no %s milestone from %q", kind, source)
		return time.Time{}, nil
	}
	stepLane := filepath.Base(steps)
	start, _ := find("failover_start", stepLane)
	requested, _ := find("promote_requested", stepLane)
	promoted, attrs := find("promoted", stepLane)
	received, _ := find("promote_received", serverLane)
	committed, _ := find("write_committed", stepLane)
	published, _ := find("route_up", stepLane)
	ms := time.Millisecond
	if received.Before(requested.Add(-ms)) || received.After(promoted.Add(ms)) {
		t.Errorf("server received the promote request at %s, outside the agent's promote step %s .. %s", received, requested, promoted)
	}
	if start.Before(crashAt) || committed.After(seen) {
		t.Errorf("failover %s .. %s outside crash %s .. seen writable %s", start, committed, crashAt, seen)
	}
	if attrs["node"] != newPrimary {
		t.Errorf("promote step attrs %v", attrs)
	}
	f := rep.Findings
	if f == nil || f.PromotedServer != serverLane || f.Writable == nil || f.Window == nil || *f.Window != 0 || f.Errors != 0 {
		t.Fatalf("findings: %+v", f)
	}
	if f.Writable.Time.After(published) {
		t.Errorf("writable at %s, after the agent published at %s", f.Writable.Time, published)
	}
	if f.Failure == nil || f.Outage == nil || f.Failure.Time.Before(crashAt.Add(-ms)) || *f.Outage <= 0 || *f.Outage > seen.Sub(crashAt).Seconds()+ms.Seconds() {
		t.Errorf("failure %+v outage %v (crash at %s, writable seen %s later)", f.Failure, f.Outage, crashAt, seen.Sub(crashAt))
	}
	if !strings.Contains(f.Verdict, "never reached a read-only primary") {
		t.Errorf("verdict: %s", f.Verdict)
	}
	for _, w := range rep.Warnings {
		if strings.Contains(w, "clocks disagree") {
			t.Errorf("warning: %s", w)
		}
	}
	if t.Failed() {
		os.Stderr.Write(out)
	}
	// The same analysis as a reader opens it: no console error, no two
	// milestone labels of a lane over each other, the agent's steps labelled.
	page := browsercheck.Check(ctx, t, htmlReport, browsercheck.Query{Selector: report.LabelSelector, GroupAttr: report.LaneAttr})
	stepLabels := 0
	for _, b := range page.Boxes {
		if b.Group == stepLane {
			stepLabels++
		}
	}
	if stepLabels < 4 {
		t.Errorf("%d milestone labels in the lane of %s in the HTML report, want the failover's steps", stepLabels, stepLane)
	}
}
