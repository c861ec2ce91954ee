package proc

import (
	"context"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestWaitExitSeesAKilledProcess: a process that is not waited for by
// WaitExit's caller as a parent (the test reaps it separately, as pg_ctl's
// postmaster is nobody's child of the agent) is seen to exit once killed,
// and not before.
func TestWaitExitSeesAKilledProcess(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	early, stop := context.WithCancel(ctx)
	stop()
	if err := WaitExit(early, cmd.Process.Pid); err == nil {
		t.Fatal("WaitExit returned nil for a live process with a cancelled context")
	}

	exited := make(chan error, 1)
	go func() { exited <- WaitExit(ctx, cmd.Process.Pid) }()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err != nil {
		t.Fatalf("WaitExit after kill -9: %v", err)
	}
	_ = cmd.Wait()
	if err := WaitExit(ctx, cmd.Process.Pid); err != nil {
		t.Fatalf("WaitExit of a process gone already: %v", err)
	}
}
