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

// Tree lists root and every process descended from it, root first. A
// server's children must be killed with it: a postmaster killed alone
// leaves backends that hold its shared memory and keep the next start from
// succeeding.
func Tree(root int) ([]int, error) {
	parents := map[int]int{}
	if _, err := Processes(func(pid int) bool {
		if st, err := ReadStat(pid); err == nil {
			parents[pid] = st.PPID
		}
		return false
	}); err != nil {
		return nil, err
	}
	if _, ok := parents[root]; !ok {
		return nil, nil
	}
	tree := []int{root}
	for i := 0; i < len(tree); i++ {
		for pid, ppid := range parents {
			if ppid == tree[i] {
				tree = append(tree, pid)
			}
		}
	}
	return tree, nil
}

// Alive returns the processes of pids that still exist and are not zombies
// (a zombie has exited and only waits for its parent to collect it).
func Alive(pids []int) []int {
	var alive []int
	for _, pid := range pids {
		if st, err := ReadStat(pid); err == nil && st.State != 'Z' {
			alive = append(alive, pid)
		}
	}
	return alive
}
