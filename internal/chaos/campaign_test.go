package chaos

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/chaos/check"
	"github.com/vigil-ha/vigil/internal/chaos/history"
	"github.com/vigil-ha/vigil/internal/testbin"
)

// TestCampaignEveryFault runs a short campaign on a real netns cluster with
// every implemented fault type at least once, then judges its history:
// no violation, a complete history, nothing left behind.
func TestCampaignEveryFault(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a chaos campaign needs root (network namespaces, nftables, signals to the servers)")
	}
	for _, tool := range []string{"nft", "ss", "ip", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing (scripts/install-deps.sh installs it): a fault that needs it cannot be injected", tool)
		}
	}
	bin, remove, err := testbin.Build()
	if err != nil {
		t.Fatal(err)
	}
	defer remove()
	types := Implemented()
	out := filepath.Join(t.TempDir(), "campaign")
	var progress bytes.Buffer
	o := Options{
		Binary: bin, Seed: 20261202, Duration: MinDuration(types, defaultLeaseTTL), Faults: types, Out: out,
		Command: "go test ./internal/chaos -run TestCampaignEveryFault", Progress: &progress,
		Logger: slog.New(slog.NewTextHandler(&progress, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	res, err := Run(ctx, o)
	t.Logf("campaign progress:\n%s", progress.String())
	if err != nil {
		t.Fatalf("campaign: %v", err)
	}
	if len(res.InjectErrors) > 0 || len(res.HealErrors) > 0 {
		t.Errorf("inject errors %v, heal errors %v", res.InjectErrors, res.HealErrors)
	}
	h, judged, err := Judge(out, DefaultRecoveryBound)
	if err != nil {
		t.Fatal(err)
	}
	var report bytes.Buffer
	check.PrintText(&report, h, judged)
	t.Logf("report:\n%s", report.String())
	for _, v := range judged.Violations {
		t.Errorf("violation: %s step %d (%s): %s", v.Kind, v.Step, v.Fault, v.Message)
	}
	seen := map[string]bool{}
	for _, f := range h.Faults {
		seen[f.Type] = true
		if f.Injected.IsZero() || f.Healed.IsZero() || strings.HasPrefix(f.Detail, "NOT INJECTED") {
			t.Errorf("step %d %s: incomplete record %+v", f.Step, f.Type, f)
		}
	}
	for _, ty := range types {
		if !seen[ty] {
			t.Errorf("no %s fault in the history", ty)
		}
	}
	if len(h.Writes) == 0 || h.Final.At.IsZero() || h.Run.Ended.IsZero() || len(h.Final.Present) == 0 {
		t.Errorf("incomplete history: %d writes, final at %v, ended %v, %d rows present", len(h.Writes), h.Final.At, h.Run.Ended, len(h.Final.Present))
	}
	routes := map[history.Route]int{}
	for _, w := range h.Writes {
		if w.Outcome == history.OK {
			routes[w.Route]++
		}
	}
	if routes[history.RouteVIP] == 0 || routes[history.RouteDirect] == 0 {
		t.Errorf("acknowledged writes per route: %v", routes)
	}
	if len(h.Final.Leaks) > 0 {
		t.Errorf("leaks: %v", h.Final.Leaks)
	}
}

// TestCampaignInterrupted cancels a campaign while a latency fault (nft
// redirects, delaying proxies) is in place: Run must heal it and remove
// everything it created.
func TestCampaignInterrupted(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a chaos campaign needs root")
	}
	bin, remove, err := testbin.Build()
	if err != nil {
		t.Fatal(err)
	}
	defer remove()
	types := []string{Latency, PartitionPrimaryDCS}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	progress := &watchedBuffer{want: "step 1: ", hit: make(chan struct{})}
	// The database's OS user must reach the lab: not under t.TempDir (0700).
	parent, err := os.MkdirTemp("/var/tmp", "vigil-chaos-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(parent)
	o := Options{Binary: bin, Seed: 5, Duration: MinDuration(types, defaultLeaseTTL), Faults: types,
		Out: filepath.Join(parent, "campaign"), Progress: progress, LabParent: parent}
	os.Chmod(parent, 0o755)
	go func() {
		select {
		case <-progress.hit:
			time.Sleep(2 * time.Second)
			cancel()
		case <-ctx.Done():
		}
	}()
	_, err = Run(ctx, o)
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("Run after cancel = %v, want an interruption error", err)
	}
	t.Logf("progress:\n%s", progress.String())
	entries, _ := filepath.Glob(filepath.Join(parent, "vigil-chaos-*"))
	if len(entries) > 0 {
		t.Errorf("lab directories left: %v", entries)
	}
	if pids, _ := cmdlineContains(parent); len(pids) > 0 {
		t.Errorf("processes left: %v", pids)
	}
	h, err := history.Load(o.Out)
	if err != nil {
		t.Fatal(err)
	}
	if h.Run.Ended.IsZero() {
		t.Error("run.json has no end time")
	}
	if !h.Final.At.IsZero() {
		t.Error("an interrupted run wrote a final state")
	}
}

// watchedBuffer collects progress and signals once a line holds want.
type watchedBuffer struct {
	mu   sync.Mutex
	b    bytes.Buffer
	want string
	hit  chan struct{}
	once sync.Once
}

func (w *watchedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if bytes.Contains(p, []byte(w.want)) {
		w.once.Do(func() { close(w.hit) })
	}
	return w.b.Write(p)
}

func (w *watchedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
