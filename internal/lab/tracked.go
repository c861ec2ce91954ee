package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/internal/proc"
)

// processesDir holds one file per process started for the lab by its users
// (agents, witnesses: see TrackProcess). One file each rather than a list
// in the state file: the program that starts them and `vigil lab` commands
// run in other processes may each write at the same time.
const processesDir = "processes"

// trackedProcess names one process for the life of the machine: a pid
// reused by another process since has another start time.
type trackedProcess struct {
	Name      string `json:"name"`
	PID       int    `json:"pid"`
	StartTime uint64 `json:"start_time"` // clock ticks since boot, /proc/PID/stat
	BootID    string `json:"boot_id"`
}

// TrackProcess records pid, a process started for the lab (an agent, a
// witness), so that Down stops it, also when Down runs in another process
// (`vigil lab down` after `vigil demo --keep`). Call it right after
// starting the process: the record holds its start time, and Down kills
// only a process that still has it.
func (l *Lab) TrackProcess(name string, pid int) error {
	st, err := proc.ReadStat(pid)
	if err != nil {
		return fmt.Errorf("track %s (pid %d): %w", name, pid, err)
	}
	boot, err := proc.BootID()
	if err != nil {
		return fmt.Errorf("track %s (pid %d): %w", name, pid, err)
	}
	data, err := json.Marshal(trackedProcess{Name: name, PID: pid, StartTime: st.StartTime, BootID: boot})
	if err != nil {
		return fmt.Errorf("track %s (pid %d): %w", name, pid, err)
	}
	dir := filepath.Join(l.Dir(), processesDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("track %s (pid %d): %w", name, pid, err)
	}
	// Written whole under a temporary name, then renamed: Down never
	// reads half a record.
	path := filepath.Join(dir, fmt.Sprintf("%s.%d.json", name, pid))
	if err := os.WriteFile(path+".tmp", data, 0o644); err != nil {
		return fmt.Errorf("track %s (pid %d): %w", name, pid, err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		return fmt.Errorf("track %s (pid %d): %w", name, pid, err)
	}
	return nil
}

// trackedProcesses reads the records in the lab directory dir.
func trackedProcesses(dir string) ([]trackedProcess, error) {
	entries, err := os.ReadDir(filepath.Join(dir, processesDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list the lab's processes: %w", err)
	}
	var out []trackedProcess
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		path := filepath.Join(dir, processesDir, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		var t trackedProcess
		if err := json.Unmarshal(data, &t); err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		out = append(out, t)
	}
	return out, nil
}

// alive reports whether t still runs: the same boot, the same pid with the
// same start time, and not a zombie (dead, only waiting for its parent).
func (t trackedProcess) alive(boot string) bool {
	if t.PID <= 0 || t.BootID != boot {
		return false
	}
	st, err := proc.ReadStat(t.PID)
	return err == nil && st.StartTime == t.StartTime && st.State != 'Z'
}

// stopTracked kills the processes tracked in the lab directory dir that
// still run, and waits until they are gone. Down does it before anything
// else: an agent left running restarts the servers Down stops.
func (l *Lab) stopTracked(ctx context.Context, dir string) error {
	tracked, err := trackedProcesses(dir)
	if err != nil || len(tracked) == 0 {
		return err
	}
	boot, err := proc.BootID()
	if err != nil {
		return fmt.Errorf("stop the lab's processes: %w", err)
	}
	running := func() ([]int, error) {
		var pids []int
		for _, t := range tracked {
			if t.alive(boot) {
				pids = append(pids, t.PID)
			}
		}
		return pids, nil
	}
	for _, t := range tracked {
		if t.alive(boot) {
			l.log().Info("killing a process started for the lab", "name", t.Name, "pid", t.PID)
		}
	}
	within := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		within = min(within, time.Until(d))
	}
	if left, _ := proc.KillUntilGone(running, within); len(left) > 0 {
		return fmt.Errorf("processes %v started for the lab still run after SIGKILL", left)
	}
	return nil
}
