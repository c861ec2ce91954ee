package proc

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRunAsAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (CI runs as root): it switches to the postgres account")
	}
	id, err := LookupUser("postgres")
	if err != nil {
		t.Fatal(err)
	}
	out, err := Runner{As: &id}.Run(context.Background(), "id", "-un")
	if err != nil || strings.TrimSpace(string(out)) != "postgres" {
		t.Errorf("id -un as postgres = %q, %v", out, err)
	}
}

func TestRunErrorCarriesOutputAndExitCode(t *testing.T) {
	_, err := Runner{}.Run(context.Background(), "sh", "-c", "echo the reason >&2; exit 4")
	var pe *Error
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "the reason") || ExitCode(err) != 4 {
		t.Errorf("err = %v (exit code %d)", err, ExitCode(err))
	}
	if ExitCode(errors.New("x")) != -1 {
		t.Error("ExitCode of a plain error")
	}
}

// A daemon started by the command keeps its stdout open; Run must still
// return when the command itself exits (pg_ctl start does exactly this).
func TestRunDoesNotWaitForDaemons(t *testing.T) {
	start := time.Now()
	if _, err := (Runner{}).Run(context.Background(), "sh", "-c", "sleep 5 & echo started"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Run waited %s for a background child", d)
	}
}

func TestLookupUnknownUser(t *testing.T) {
	if _, err := LookupUser("no-such-user-vigil"); err == nil || !strings.Contains(err.Error(), "no-such-user-vigil") {
		t.Errorf("err = %v", err)
	}
}

func TestTreeFindsChildrenAndKillUntilGoneStopsStoppedOnes(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 30 & sleep 30 & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	root := cmd.Process.Pid
	var tree []int
	for deadline := time.Now().Add(5 * time.Second); len(tree) < 3 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var err error
		if tree, err = Tree(root); err != nil {
			t.Fatal(err)
		}
	}
	if len(tree) != 3 || tree[0] != root {
		t.Fatalf("Tree(%d) = %v, want the shell and its two sleeps", root, tree)
	}
	// A stopped process (a hung server) still dies of SIGKILL.
	for _, pid := range tree {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}
	left, err := KillUntilGone(func() ([]int, error) { return Alive(tree), nil }, 5*time.Second)
	if err != nil || len(left) > 0 {
		t.Fatalf("left %v, err %v", left, err)
	}
	<-done
	if got, _ := Tree(root); len(got) != 0 {
		t.Fatalf("Tree of a reaped process = %v, want none", got)
	}
}
