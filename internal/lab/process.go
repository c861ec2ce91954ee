package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-ha/vigil/internal/proc"
)

// isServerOf reports whether pid is a live server process (postmaster or
// child) working on one of dataDirs. A pid in the state file may have been
// reused by an unrelated process since; this check is what makes killing it
// safe.
func (l *Lab) isServerOf(pid int, dataDirs []string) bool {
	if pid <= 0 {
		return false
	}
	return l.matchProcess(strconv.Itoa(pid), dataDirs)
}

// matchProcess: the executable is the flavor's server binary and the working
// directory (every server process runs in its data directory) or, for the
// postmaster, the -D argument is one of dataDirs.
func (l *Lab) matchProcess(pid string, dataDirs []string) bool {
	exe, err := os.Readlink(filepath.Join("/proc", pid, "exe"))
	if err != nil { // gone, a zombie, or a kernel thread
		return false
	}
	if filepath.Base(strings.TrimSuffix(exe, " (deleted)")) != l.flavor.ServerBinary {
		return false
	}
	if cwd, err := os.Readlink(filepath.Join("/proc", pid, "cwd")); err == nil {
		if slices.Contains(dataDirs, strings.TrimSuffix(cwd, " (deleted)")) {
			return true
		}
	}
	cmdline, err := os.ReadFile(filepath.Join("/proc", pid, "cmdline"))
	if err != nil {
		return false
	}
	args := strings.Split(string(bytes.TrimRight(cmdline, "\x00")), "\x00")
	for i, a := range args {
		if a == "-D" && i+1 < len(args) && slices.Contains(dataDirs, filepath.Clean(args[i+1])) {
			return true
		}
	}
	return false
}

// serverProcesses lists the live processes of servers on dataDirs,
// including ones the lab did not start (a test restarted a node through
// pgctl) and the children of a killed postmaster.
func (l *Lab) serverProcesses(dataDirs []string) []int {
	pids, err := proc.Processes(func(pid int) bool {
		return pid != os.Getpid() && l.matchProcess(strconv.Itoa(pid), dataDirs)
	})
	if err != nil {
		l.log().Warn("list server processes", "err", err)
	}
	return pids
}

func killPID(pid int) error {
	err := syscall.Kill(pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// waitGone waits until no server process works on dataDirs, for at most max
// or until ctx ends, and returns those left. With kill it SIGKILLs them as it
// finds them; without, it waits for them to exit on their own (the children
// of a crashed postmaster notice its death).
func (l *Lab) waitGone(ctx context.Context, dataDirs []string, max time.Duration, kill bool) []int {
	ctx, cancel := context.WithTimeout(ctx, max)
	defer cancel()
	for {
		left := l.serverProcesses(dataDirs)
		if len(left) == 0 {
			return nil
		}
		if kill {
			for _, pid := range left {
				_ = killPID(pid)
			}
		}
		select {
		case <-ctx.Done():
			return left
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitReaped waits until pid no longer exists, not even as a zombie.
func waitReaped(ctx context.Context, pid int, max time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, max)
	defer cancel()
	for {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("process %d was killed but not reaped by its parent: %w", pid, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
