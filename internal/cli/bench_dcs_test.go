package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchDCSRefusesBeforeStarting: a fleet the machine cannot hold, or
// options that make no run, are refused as usage errors before anything
// starts or is written.
func TestBenchDCSRefusesBeforeStarting(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"beyond the machine", []string{"--clusters", "100000"}, "too many clusters for this machine"},
		{"more crashes than clusters", []string{"--clusters", "5", "--crashes", "6"}, "--crashes 6"},
		{"one member", []string{"--clusters", "5", "--members", "1"}, "--members 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			var stdout, stderr bytes.Buffer
			code := Main(append([]string{"bench", "dcs", "--out", out}, tc.args...), &stdout, &stderr)
			if code != ExitUsage || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr.String(), ExitUsage, tc.want)
			}
			if _, err := os.Stat(filepath.Join(out, "etcd-e1.log")); err == nil {
				t.Fatal("a refused run started etcd")
			}
		})
	}
}
