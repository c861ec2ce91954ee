package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/chaos/check"
	"github.com/vigil-ha/vigil/internal/chaos/history"
)

// runChaosCheck runs the command alone (the chaos command registers it) and
// maps its error to an exit code as Main does.
func runChaosCheck(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newChaosCheckCmd()
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	var ee *exitError
	switch {
	case err == nil:
		return ExitOK, out.String(), errOut.String()
	case errors.As(err, &ee):
		return ee.code, out.String(), err.Error()
	case isFlagError(err):
		return ExitUsage, out.String(), err.Error()
	}
	return ExitFailure, out.String(), err.Error()
}

// saveCampaign records a small clean campaign in a new directory; without
// final it leaves no final.json, as an interrupted run does.
func saveCampaign(t *testing.T, final bool) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "campaign")
	t0 := time.Date(2025, 3, 4, 12, 0, 0, 0, time.UTC)
	rec, err := history.NewRecorder(dir, history.Run{Seed: 3, SyncMode: "on", Nodes: []string{"node1", "node2"}, Started: t0})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	fin := history.Final{At: t0.Add(time.Minute), Primary: "node1", Streaming: []string{"node2"}}
	for i := range int64(5) {
		end := t0.Add(time.Duration(i) * time.Second)
		if err := rec.Write(history.Write{ID: i + 1, Route: history.RouteVIP, Start: end.Add(-time.Millisecond), End: end,
			Outcome: history.OK, Node: "node1", SystemID: "1", Timeline: 1, LSN: "0/1000000"}); err != nil {
			t.Fatal(err)
		}
		fin.Present = append(fin.Present, i+1)
	}
	if err := rec.Fault(history.Fault{Step: 1, Type: "agent-crash", Target: "node1", Injected: t0.Add(2 * time.Second),
		Healed: t0.Add(3 * time.Second), Recovered: t0.Add(4 * time.Second), RecoveryBound: history.Duration(10 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	if final {
		if err := rec.Final(fin); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestChaosCheckClean(t *testing.T) {
	dir := saveCampaign(t, true)
	code, out, errOut := runChaosCheck(t, dir)
	if code != ExitOK || !strings.Contains(out, "PASS") || !strings.Contains(out, "agent-crash") {
		t.Fatalf("exit %d: %s\n%s", code, errOut, out)
	}
	for _, name := range []string{check.JSONFile, check.HTMLFile} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Error(err)
		}
	}
	code, out, _ = runChaosCheck(t, "--json", dir)
	var rep struct {
		Violations []check.Violation `json:"violations"`
		Faults     map[string]any    `json:"faults"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != ExitOK || rep.Violations == nil || rep.Faults["agent-crash"] == nil {
		t.Errorf("--json: exit %d, %v: %s", code, err, out)
	}
}

func TestChaosCheckInterrupted(t *testing.T) {
	dir := saveCampaign(t, false)
	code, out, errOut := runChaosCheck(t, "--json", dir)
	if code != ExitFailure || !strings.Contains(errOut, "1 violation") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	b, err := os.ReadFile(filepath.Join(dir, check.JSONFile))
	if err != nil || !bytes.Equal(b, []byte(out)) || !strings.Contains(out, `"kind": "no-primary"`) {
		t.Errorf("report.json (%v) differs from standard output or lacks no-primary:\n%s", err, out)
	}
}

func TestChaosCheckBadInput(t *testing.T) {
	empty := t.TempDir()
	file := filepath.Join(empty, "run.json")
	if err := os.WriteFile(file, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, args := range map[string][]string{
		"missing directory": {filepath.Join(empty, "nope")},
		"not a campaign":    {t.TempDir()},
		"a file":            {file},
		"no argument":       {},
	} {
		if code, _, errOut := runChaosCheck(t, args...); code != ExitUsage {
			t.Errorf("%s: exit %d (%s), want %d", name, code, errOut, ExitUsage)
		}
	}
}
