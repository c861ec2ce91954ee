package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/proc"
)

// TestLabDownAfterDemoKeepLeavesNoProcess: `vigil demo --keep` exits and
// leaves its cluster running, agents included; the connect command it
// prints works as printed (the real namespace name); and `vigil lab down`,
// run as another process, removes the agents with the lab.
func TestLabDownAfterDemoKeepLeavesNoProcess(t *testing.T) {
	ctx := testCtx(t, 6*time.Minute)
	dir := demoDir(t)
	t.Cleanup(func() {
		// Whatever happened, leave nothing behind on a shared machine.
		if _, err := os.Stat(dir); err == nil {
			_ = exec.Command(vigilBin, "lab", "down", "--dir", dir).Run()
		}
		_, _ = proc.KillUntilGone(func() ([]int, error) { return vigilProcesses() }, 10*time.Second)
	})

	var stdout, stderr bytes.Buffer
	demo := exec.CommandContext(ctx, vigilBin, "demo", "--keep", "--dir", dir, "--scenario", "switchover",
		"--sync-mode", "off", "--no-lag", "--background-tps", "0", "--rate", "20")
	demo.Stdout, demo.Stderr = &stdout, &stderr
	if err := demo.Run(); err != nil {
		t.Fatalf("vigil demo --keep: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	t.Logf("vigil demo --keep:\n%s", stdout.String())

	// The printed connect command, run as printed (we are root already).
	var connect []string
	for _, line := range strings.Split(stdout.String(), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "sudo ip netns exec "); ok {
			connect = append([]string{"ip", "netns", "exec"}, strings.Fields(rest)...)
		}
	}
	if len(connect) < 4 {
		t.Fatalf("no connect command (sudo ip netns exec ...) in the output")
	}
	netns := connect[3]
	if _, err := os.Stat(proc.NetnsPath(netns)); err != nil {
		t.Errorf("the connect command names namespace %q: %v", netns, err)
	}
	out, err := exec.CommandContext(ctx, connect[0], append(connect[1:], "-Atc", "SELECT pg_is_in_recovery()")...).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "f" {
		t.Errorf("the printed connect command %q: %v: %s (want a writable primary: f)", connect, err, out)
	}

	agents, err := vigilProcesses()
	if err != nil {
		t.Fatal(err)
	}
	if len(agents) < 3 {
		t.Fatalf("after vigil demo --keep, %d vigil processes run (%v), want its 3 agents", len(agents), agents)
	}
	t.Logf("vigil processes left running by the demo: %v", agents)

	down, err := exec.CommandContext(ctx, vigilBin, "lab", "down", "--dir", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("vigil lab down: %v\n%s", err, down)
	}
	left, err := vigilProcesses()
	if err != nil {
		t.Fatal(err)
	}
	for _, pid := range left {
		cmdline, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
		t.Errorf("vigil process %d still runs after vigil lab down: %s", pid, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
	}
	if _, err := os.Stat(proc.NetnsPath(netns)); err == nil {
		t.Errorf("namespace %s is still there after vigil lab down", netns)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("%s is still there after vigil lab down", dir)
	}
}

// vigilProcesses lists the live processes running the binary under test
// (this test binary's own build: other test runs use other copies).
func vigilProcesses() ([]int, error) {
	return proc.Processes(func(pid int) bool {
		exe, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "exe"))
		return err == nil && strings.TrimSuffix(exe, " (deleted)") == vigilBin
	})
}
