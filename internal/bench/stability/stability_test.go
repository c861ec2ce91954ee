package stability

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/chaos"
	"github.com/vigil-ha/vigil/internal/proc"
	"github.com/vigil-ha/vigil/internal/testbin"
)

func TestSettingForKeepsTheDefaultsProportions(t *testing.T) {
	s, err := SettingFor(3 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if s.LoopInterval != 500*time.Millisecond || s.DCSTimeout != 800*time.Millisecond {
		t.Errorf("3s: %s, want the defaults 500ms and 800ms", s)
	}
	s, err = SettingFor(2 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if s.LoopInterval != 333*time.Millisecond || s.DCSTimeout != 533*time.Millisecond {
		t.Errorf("2s: %s", s)
	}
	if _, err := SettingFor(1500 * time.Millisecond); err == nil || !strings.Contains(err.Error(), "whole number of seconds") {
		t.Errorf("1.5s: err %v, want the configuration's refusal", err)
	}
	if _, err := ParseSettings("3s,x"); err == nil {
		t.Error("ParseSettings accepted x")
	}
}

func TestParseDelayRange(t *testing.T) {
	lo, hi, err := ParseDelayRange("20ms-50ms")
	if err != nil || lo != 20*time.Millisecond || hi != 50*time.Millisecond {
		t.Errorf("20ms-50ms: %s %s %v", lo, hi, err)
	}
	for _, bad := range []string{"50ms-20ms", "x", "20ms-", "-5ms"} {
		if _, _, err := ParseDelayRange(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestStabilityRunCountsAnInjectedFailover runs the bench for one setting
// on a real netns cluster, checks while it runs that every stressor is in
// place (the drop rule in each node's namespace, stress-ng's CPU and hdd
// workers, connections through every proxy), then crashes the primary: the
// one failover that follows must be counted, and nothing may be left.
func TestStabilityRunCountsAnInjectedFailover(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the stability bench needs root: network namespaces, nftables, the VIP (CI runs as root; scripts/install-deps.sh installs stress-ng and nft)")
	}
	bin, remove, err := testbin.Build()
	if err != nil {
		t.Fatal(err)
	}
	defer remove()
	setting, err := SettingFor(3 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir: the servers' socket paths must be short, and the
	// database's OS user must reach the lab.
	parent, err := os.MkdirTemp("/var/tmp", "vigil-stability-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(parent)
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	const loss = 1
	var progress bytes.Buffer
	var crashed, labID string
	var stressPID int
	o := Options{
		Binary: bin, Settings: []Setting{setting}, Duration: 40 * time.Second, LabParent: parent,
		Stress:   Stress{CPULoad: 100, LossPercent: loss, DelayMin: 20 * time.Millisecond, DelayMax: 50 * time.Millisecond},
		Progress: &progress, Logger: slog.New(slog.NewTextHandler(&progress, &slog.HandlerOptions{Level: slog.LevelWarn})),
		During: func(ctx context.Context, live Live) error {
			stressPID, labID = live.StressNGPID, live.Cluster.Lab.ID()
			checkStressors(ctx, t, live, loss)
			crashed = live.Leader
			return live.Cluster.CrashNode(ctx, live.Leader)
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := Run(ctx, o)
	t.Logf("progress:\n%s\n%s", progress.String(), Table(rep))
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if len(rep.Results) != 1 {
		t.Fatalf("%d results, want 1", len(rep.Results))
	}
	res := rep.Results[0]
	if res.LeaderChanges != 1 || len(res.Leaders) != 2 || res.Leaders[0] != crashed || res.Leaders[1] == crashed {
		t.Errorf("crashed the leader %s: %d leader changes, leaders %v; want 1 change away from it", crashed, res.LeaderChanges, res.Leaders)
	}
	if res.LeaderKeyLosses < 1 {
		t.Errorf("the crashed leader's key expired, but %d losses were counted", res.LeaderKeyLosses)
	}
	if res.Writes == 0 || res.WriteErrors == 0 {
		t.Errorf("%d writes, %d failed: the client did not write through the VIP across the crash", res.Writes, res.WriteErrors)
	}
	if stressPID != 0 && processExists(stressPID) {
		t.Errorf("stress-ng (pid %d) still runs after the bench", stressPID)
	}
	if left, _ := filepath.Glob(filepath.Join(parent, "*")); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	if ns, _ := filepath.Glob(proc.NetnsPath("vigil-" + labID + "-*")); labID == "" || len(ns) > 0 {
		t.Errorf("lab %q: namespaces left behind: %v", labID, ns)
	}
}

// checkStressors looks, from outside the bench, at what it claims to have
// put in place.
func checkStressors(ctx context.Context, t *testing.T, live Live, loss int) {
	t.Helper()
	if len(live.Ruled) != 4 {
		t.Errorf("rules in %d namespaces, want the 3 nodes' and the client's: %v", len(live.Ruled), live.Ruled)
	}
	drop := fmt.Sprintf("numgen random mod 100 < %d drop", loss)
	for _, n := range live.Cluster.Lab.Nodes() {
		out, err := (proc.Runner{Netns: n.Netns}).Run(ctx, "nft", "list", "table", "inet", chaos.NFTTable)
		if err != nil {
			t.Errorf("%s: %v", n.Name, err)
			continue
		}
		for _, want := range []string{drop, "redirect to :"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("%s's rules lack %q:\n%s", n.Name, want, out)
			}
		}
	}
	workers := map[string]int{}
	pids, err := proc.Processes(func(pid int) bool {
		pgid, err := syscall.Getpgid(pid)
		return err == nil && pgid == live.StressNGPID
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		comm, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
		workers[strings.TrimSpace(string(comm))]++
	}
	if workers["stress-ng-cpu"] == 0 || workers["stress-ng-hdd"] == 0 {
		t.Errorf("stress-ng's process group %d has %v: want CPU and hdd workers", live.StressNGPID, workers)
	}
	// The etcd members reconnect at once after the reset; every
	// namespace's proxy must carry connections.
	deadline := time.Now().Add(20 * time.Second)
	for ns, p := range live.Proxies {
		for p.Connections() == 0 && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
		}
		if p.Connections() == 0 {
			t.Errorf("no connection went through the delaying proxy of %s", ns)
		}
	}
}

func processExists(pid int) bool {
	_, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid)))
	return err == nil
}

func TestReleasesCountsTheAgentsOwnReleasesInTheWindow(t *testing.T) {
	dir := t.TempDir()
	log := `{"time":"2026-12-02T16:42:09.198798104Z","level":"INFO","msg":"leader key released","node":"node1","reason":"no trusted IP answers"}
{"time":"2026-12-02T16:42:10.582086346Z","level":"INFO","msg":"leader key acquired","node":"node1","reason":"no leader"}
panic: not a record
{"time":"2026-12-02T16:43:49.573099057Z","level":"INFO","msg":"leader key released","node":"node1","reason":"database down"}
{"time":"2026-12-02T16:50:00Z","level":"INFO","msg":"leader key released","node":"node1","reason":"after the window"}
`
	if err := os.WriteFile(filepath.Join(dir, "node1.agent.log"), []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "node2.agent.log"), []byte(strings.Split(log, "\n")[0]+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 12, 2, 16, 42, 0, 0, time.UTC)
	got, err := releases(dir, from, from.Add(5*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"no trusted IP answers": 2, "database down": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("releases = %v, want %v", got, want)
	}
}
