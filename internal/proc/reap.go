package proc

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// Processes lists the processes of this host for which match is true.
func Processes(match func(pid int) bool) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err == nil && match(pid) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// KillUntilGone sends SIGKILL to what list returns until it returns nothing
// or within has passed, and returns what is left. Tests use it to remove
// every process a server they started left behind, children included.
func KillUntilGone(list func() ([]int, error), within time.Duration) ([]int, error) {
	deadline := time.Now().Add(within)
	for {
		left, err := list()
		if err != nil || len(left) == 0 || time.Now().After(deadline) {
			return left, err
		}
		for _, pid := range left {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
