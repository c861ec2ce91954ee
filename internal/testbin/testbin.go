// Package testbin builds the vigil binary for tests that run it the way its
// users and other programs do (Pgpool-II's failover_command, agents as
// separate processes that a test can kill -9).
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// Build compiles cmd/vigil into a new directory that the database's OS
// user can also reach, and returns the binary's path and how to remove it.
func Build() (path string, remove func(), err error) {
	dir, err := os.MkdirTemp("", "vigil-test-bin-")
	if err != nil {
		return "", nil, fmt.Errorf("build vigil: %w", err)
	}
	remove = func() { os.RemoveAll(dir) }
	if err := os.Chmod(dir, 0o755); err != nil {
		remove()
		return "", nil, fmt.Errorf("build vigil: %w", err)
	}
	path = filepath.Join(dir, "vigil")
	_, file, _, _ := runtime.Caller(0)
	build := exec.Command("go", "build", "-o", path, "./cmd/vigil")
	build.Dir = filepath.Join(filepath.Dir(file), "..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		remove()
		return "", nil, fmt.Errorf("go build ./cmd/vigil: %w\n%s", err, out)
	}
	return path, remove, nil
}
