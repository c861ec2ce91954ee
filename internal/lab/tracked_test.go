package lab

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/proc"
)

// TestStopTrackedKillsOnlyTheRecordedProcess: Down kills a tracked process
// that still runs, from a Lab that did not start it, and leaves alone a
// process whose pid matches a record but whose start time does not (a
// reused pid).
func TestStopTrackedKillsOnlyTheRecordedProcess(t *testing.T) {
	dir := t.TempDir()
	start := func() *exec.Cmd {
		cmd := exec.Command("sleep", "60")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		return cmd
	}
	tracked, other := start(), start()
	starter := &Lab{st: state{Dir: dir}, logger: discardLogger()}
	if err := starter.TrackProcess("agent-node1", tracked.Process.Pid); err != nil {
		t.Fatal(err)
	}
	// A stale record: other's pid with another start time.
	st, err := proc.ReadStat(other.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	boot, err := proc.BootID()
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(trackedProcess{Name: "agent-node2", PID: other.Process.Pid, StartTime: st.StartTime + 1, BootID: boot})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, processesDir, "agent-node2.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}

	waited := make(chan error, 1)
	go func() { waited <- tracked.Wait() }()
	// Down runs elsewhere: a Lab that knows only the directory.
	downer := &Lab{st: state{Dir: dir}, logger: discardLogger()}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := downer.stopTracked(ctx, dir); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waited:
		if ws, ok := tracked.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Errorf("tracked process ended with %v, want SIGKILL", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the tracked process still runs")
	}
	if err := other.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the process behind the stale record was touched: %v", err)
	}
}
