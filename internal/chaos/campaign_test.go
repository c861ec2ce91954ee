package chaos

import (
	"bytes"
	"context"
	"fmt"
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
// every fault type of the catalogue at least once, then judges its history:
// no violation, a complete history, nothing left behind.
func TestCampaignEveryFault(t *testing.T) {
	types := Catalogue()
	runCampaign(t, Options{Seed: 20261202, Faults: types, Command: "go test ./internal/chaos -run TestCampaignEveryFault"}, 20*time.Minute)
}

// TestCampaignDiskFull fills the primary's WAL filesystem: the server
// PANICs on a WAL write, the cluster recovers once the filler is gone,
// and the WAL filesystems are unmounted at the end.
func TestCampaignDiskFull(t *testing.T) {
	h, _ := runCampaign(t, Options{Seed: 11, Faults: []string{DiskFull, DBCrash}, Command: "go test ./internal/chaos -run TestCampaignDiskFull"}, 10*time.Minute)
	for _, f := range h.Faults {
		if f.Type != DiskFull {
			continue
		}
		if !strings.Contains(f.Detail, "WAL filesystem filled") {
			t.Errorf("step %d: detail %q", f.Step, f.Detail)
		}
		if f.Target == f.PrimaryBefore && !strings.Contains(f.Detail, "PANIC") {
			t.Errorf("step %d: the primary %s did not PANIC on a full WAL filesystem: %s", f.Step, f.Target, f.Detail)
		}
	}
}

// TestCampaignExternalEtcd runs the agents on a separate 3-member etcd
// and kills one of its members, cuts all of them off, and crashes a node.
func TestCampaignExternalEtcd(t *testing.T) {
	h, out := runCampaign(t, Options{Seed: 12, DCS: "external", Faults: []string{EtcdMemberKill, EtcdDown, NodeCrash},
		Command: "go test ./internal/chaos -run TestCampaignExternalEtcd"}, 10*time.Minute)
	if h.Run.DCS != "external" {
		t.Errorf("run.json dcs = %q", h.Run.DCS)
	}
	for _, f := range h.Faults {
		if f.Type == EtcdMemberKill && !strings.HasPrefix(f.Target, "etcd") {
			t.Errorf("step %d: etcd-member-kill hit %s, not an external member", f.Step, f.Target)
		}
		if f.Type == EtcdDown && !strings.Contains(f.Detail, "external member") {
			t.Errorf("step %d: etcd-down detail %q", f.Step, f.Detail)
		}
	}
	for i := range externalMembers {
		if _, err := os.Stat(filepath.Join(out, "agents", fmt.Sprintf("etcd%d.log", i+1))); err != nil {
			t.Errorf("external member's log not kept: %v", err)
		}
	}
}

// runCampaign runs a campaign of o (Binary, Out, Duration, Progress and
// Logger filled in: the shortest duration for o.Faults) and judges it: no
// violation, no inject or heal error, every requested type in a complete
// history, writes on both routes, nothing left behind.
func runCampaign(t *testing.T, o Options, timeout time.Duration) (history.History, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("a chaos campaign needs root: network namespaces, nftables, signals to the servers (CI runs as root)")
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
	types := o.Faults
	var progress bytes.Buffer
	o.Binary, o.Duration, o.Out, o.Progress = bin, MinDuration(types, defaultLeaseTTL), keptOnFailure(t), &progress
	o.Logger = slog.New(slog.NewTextHandler(&progress, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	res, err := Run(ctx, o)
	t.Logf("campaign progress:\n%s", progress.String())
	if err != nil {
		t.Fatalf("campaign: %v", err)
	}
	if len(res.InjectErrors) > 0 || len(res.HealErrors) > 0 {
		t.Errorf("inject errors %v, heal errors %v", res.InjectErrors, res.HealErrors)
	}
	h, judged, err := Judge(o.Out, DefaultRecoveryBound)
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
	return h, o.Out
}

// keptOnFailure returns a campaign directory that outlives a failed test:
// its agents' logs are what explains a violation, and the failure prints
// their warnings and decisions (a CI run leaves nothing else to read).
func keptOnFailure(t *testing.T) string {
	t.Helper()
	parent, err := os.MkdirTemp("", "vigil-chaos-campaign-")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(parent, "campaign")
	t.Cleanup(func() {
		if !t.Failed() {
			os.RemoveAll(parent)
			return
		}
		logs, _ := filepath.Glob(filepath.Join(out, "agents", "*.log"))
		for _, l := range logs {
			t.Logf("==== %s: warnings and decisions (last 80)\n%s", filepath.Base(l), agentLogDigest(l, 80))
		}
		t.Logf("campaign directory kept: %s", out)
	})
	return out
}

// agentLogDigest keeps the agent's own lines at warning level and its
// decisions, without the embedded etcd's, the last n of them.
func agentLogDigest(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, `"caller":`) {
			continue // the embedded etcd member's
		}
		if strings.Contains(l, `"msg":"decision"`) || strings.Contains(l, `"level":"WARN"`) || strings.Contains(l, `"level":"ERROR"`) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep[max(0, len(keep)-n):], "\n")
}

// TestCampaignInterrupted cancels a campaign while a latency fault (nft
// redirects, delaying proxies) is in place: Run must heal it and remove
// everything it created.
func TestCampaignInterrupted(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("a chaos campaign needs root (CI runs as root)")
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
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	go func() {
		select {
		case <-progress.hit:
			// "step 1: " is printed once the fault is in place: cancel
			// now, with a fault to heal.
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
