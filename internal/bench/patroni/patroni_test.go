package patroni

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/proc"
	"github.com/vigil-ha/vigil/internal/testbin"
	"github.com/vigil-ha/vigil/internal/workload"
)

// TestPatroniNodeCrash runs Patroni with its tight settings on a lab,
// crashes the leader's node and checks the mechanics of the comparison:
// a new leader, the VIP moved to it by the callback, the client's writes
// committed through the VIP again, and nothing left running afterwards.
// It asserts no figure: the benchmark measures.
func TestPatroniNodeCrash(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root: it builds network namespaces and moves a VIP")
	}
	bin, remove, err := testbin.Build()
	if err != nil {
		t.Fatal(err)
	}
	defer remove()
	parent, err := os.MkdirTemp("/var/tmp", "vigil-patroni-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(parent)
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "lab")
	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	res, err := Run(ctx, Options{Dir: dir, Binary: bin, Settings: Tight(), Rate: 50, Progress: &progress})
	t.Logf("progress:\n%s", progress.String())
	if err != nil {
		t.Fatalf("patroni run: %v", err)
	}
	t.Logf("old leader %s, new leader %s, VIP on %s, outage %.2fs, writes %d, read-only %d, lost %d\ncallbacks:\n%s",
		res.OldLeader, res.NewPrimary, res.VIPHolder, res.WriteOutageS, res.Writes, res.ReadOnlyErrors, res.AckedWritesLost, strings.Join(res.Callbacks, "\n"))

	if res.OldLeader == "" || res.NewPrimary == "" || res.NewPrimary == res.OldLeader {
		t.Fatalf("leaders before and after the crash: %q, %q; want two different nodes", res.OldLeader, res.NewPrimary)
	}
	if res.VIPHolder != res.NewPrimary {
		t.Fatalf("the VIP is on %q after the failover, want the new leader %s", res.VIPHolder, res.NewPrimary)
	}
	moved := false
	for _, line := range res.Callbacks {
		if strings.Contains(line, "action=on_role_change") && strings.Contains(line, "VIP up") {
			moved = true
		}
	}
	if !moved {
		t.Fatalf("no on_role_change callback added the VIP on %s after the crash; callback lines: %q", res.NewPrimary, res.Callbacks)
	}
	after := 0
	for _, p := range res.Series {
		if p.T > res.WriteOutageS-0.001 && p.Outcome == workload.OK {
			after++
		}
	}
	if res.WriteOutageS <= 0 || after == 0 {
		t.Fatalf("the client's writes did not resume through the VIP: outage %.2fs, %d writes committed after it", res.WriteOutageS, after)
	}
	if res.AckedWrites == 0 {
		t.Fatal("no acknowledged writes recorded")
	}

	// Nothing of the run is left: no namespace, no process working in or
	// on the lab directory (Patroni, PostgreSQL, etcd, callbacks), no lab.
	prefix := strings.TrimSuffix(res.ClientNetns, "client")
	if prefix == "" || prefix == res.ClientNetns {
		t.Fatalf("client namespace %q does not name the lab", res.ClientNetns)
	}
	namespaces, err := os.ReadDir("/run/netns")
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, ns := range namespaces {
		if strings.HasPrefix(ns.Name(), prefix) {
			t.Fatalf("namespace %s still exists", ns.Name())
		}
	}
	if _, err := os.Stat(dir); err == nil {
		t.Fatalf("lab directory %s still exists", dir)
	}
	left, err := proc.Processes(func(pid int) bool {
		if pid == os.Getpid() {
			return false
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
		cwd, _ := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "cwd"))
		return strings.Contains(string(cmdline), dir) || strings.HasPrefix(cwd, dir)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Fatalf("processes of the run still run: %v", left)
	}
}
