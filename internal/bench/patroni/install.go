package patroni

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
)

// Executable is where Debian's patroni package installs the daemon.
const Executable = "/usr/bin/patroni"

// Package is the Debian package the comparison runs.
const Package = "patroni"

// Install installs Debian's patroni package when it is missing, without
// starting or enabling its service: Patroni runs only as the benchmark's
// own child processes, with the benchmark's configuration.
func Install(ctx context.Context) error {
	if _, err := os.Stat(Executable); err == nil {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%s is missing and installing the %s package needs root", Executable, Package)
	}
	// Without systemd, the package's init script would start the service
	// during the install: a temporary policy-rc.d stops that, unless the
	// host has its own policy already (as scripts/install-deps.sh does).
	const policy = "/usr/sbin/policy-rc.d"
	if !exists(policy) && !exists("/run/systemd/system") {
		if err := os.WriteFile(policy, []byte("#!/bin/sh\n# written by vigil bench for the length of one install\nexit 101\n"), 0o755); err != nil {
			return fmt.Errorf("install %s: write %s: %w", Package, policy, err)
		}
		defer os.Remove(policy)
	}
	if err := aptGet(ctx, "install", "-y", "-qq", "--no-install-recommends", Package); err != nil {
		// A stale package list is the usual reason: refresh it once.
		if uerr := aptGet(ctx, "update", "-qq"); uerr != nil {
			return fmt.Errorf("install %s: %w (and %w)", Package, err, uerr)
		}
		if err := aptGet(ctx, "install", "-y", "-qq", "--no-install-recommends", Package); err != nil {
			return fmt.Errorf("install %s: %w", Package, err)
		}
	}
	// The package enables its unit; this host runs Patroni only for the
	// benchmark, so the unit is disabled again (it was never started).
	if _, err := exec.LookPath("systemctl"); err == nil {
		if out, err := exec.CommandContext(ctx, "systemctl", "disable", "patroni.service").CombinedOutput(); err != nil {
			return fmt.Errorf("install %s: disable its service: %w: %s", Package, err, out)
		}
	}
	if !exists(Executable) {
		return fmt.Errorf("install %s: %s is still missing", Package, Executable)
	}
	return nil
}

func aptGet(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, "apt-get", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get %v: %w: %s", args, err, out)
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}
