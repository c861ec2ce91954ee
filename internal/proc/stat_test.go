package proc

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestReadStat(t *testing.T) {
	self, err := ReadStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if self.PPID != os.Getppid() || self.StartTime == 0 || self.State == 'Z' {
		t.Errorf("own stat %+v, parent %d", self, os.Getppid())
	}
	// A command name with spaces and parentheses does not shift the fields.
	dir := t.TempDir()
	odd := dir + "/a) b (c"
	if err := os.Symlink("/bin/sleep", odd); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(odd, "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	child, err := ReadStat(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if child.PPID != os.Getpid() || child.StartTime < self.StartTime {
		t.Errorf("child stat %+v, want parent %d and a start at or after %d", child, os.Getpid(), self.StartTime)
	}
	if _, err := ReadStat(1 << 30); err == nil {
		t.Error("stat of a pid that cannot exist: no error")
	}
	if id, err := BootID(); err != nil || id == "" {
		t.Errorf("boot id %q, %v", id, err)
	}
}

// TestReadStatCPU: a process that computes accumulates CPU ticks.
func TestReadStatCPU(t *testing.T) {
	deadline := time.Now().Add(30 * time.Second)
	for x := uint64(1); ; x = x*6364136223846793005 + 1 {
		st, err := ReadStat(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if st.UserTicks+st.SystemTicks > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no CPU time after 30 s of computing (%d): %+v", x, st)
		}
	}
}
