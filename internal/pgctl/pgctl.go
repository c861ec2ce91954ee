// Package pgctl drives a server through its control binary (pg_ctl, or
// sys_ctl for KingbaseES): start, stop, status, promote, reload. It is the
// path that works when SQL does not (the server is down, or starting).
package pgctl

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/internal/flavor"
	"github.com/vigil-ha/vigil/internal/proc"
)

// StopMode is pg_ctl's shutdown mode.
type StopMode string

// Shutdown modes. Smart waits for clients and is never what an HA tool wants.
const (
	// Fast disconnects clients, writes a shutdown checkpoint: no crash recovery on restart.
	Fast StopMode = "fast"
	// Immediate aborts at once, like a crash: used for fencing.
	Immediate StopMode = "immediate"
)

// Ctl is one data directory and the binaries that operate it.
type Ctl struct {
	Flavor  flavor.Flavor
	BinDir  string
	DataDir string
	Runner  proc.Runner
}

// Bin returns the full path of one of the flavor's binaries.
func (c Ctl) Bin(name string) string { return filepath.Join(c.BinDir, name) }

func (c Ctl) run(ctx context.Context, args ...string) ([]byte, error) {
	return c.Runner.Run(ctx, c.Bin(c.Flavor.ControlBinary), append([]string{"-D", c.DataDir}, args...)...)
}

// Status reports whether a server is running on the data directory, and its PID.
func (c Ctl) Status(ctx context.Context) (running bool, pid int, err error) {
	out, err := c.run(ctx, "status")
	switch code := proc.ExitCode(err); {
	case err == nil:
		return true, parsePID(string(out)), nil
	case code == 3:
		return false, 0, nil
	case code == 4:
		return false, 0, fmt.Errorf("status of %s: no accessible data directory: %w", c.DataDir, err)
	default:
		return false, 0, fmt.Errorf("status of %s: %w", c.DataDir, err)
	}
}

// parsePID reads "pg_ctl: server is running (PID: 1234)".
func parsePID(out string) int {
	_, rest, ok := strings.Cut(out, "(PID: ")
	if !ok {
		return 0
	}
	num, _, _ := strings.Cut(rest, ")")
	pid, _ := strconv.Atoi(strings.TrimSpace(num))
	return pid
}

// StartOptions tune Start.
type StartOptions struct {
	// LogFile receives the server's output until its logging collector takes over.
	LogFile string
	// Wait is how long to wait for the server to accept connections.
	Wait time.Duration
	// ExtraOptions are passed to the server (pg_ctl -o).
	ExtraOptions string
}

// Start starts the server and waits until it accepts connections (a standby
// accepts them once it reaches consistency). Starting a running server is not
// an error.
func (c Ctl) Start(ctx context.Context, opts StartOptions) error {
	if running, _, err := c.Status(ctx); err == nil && running {
		return nil
	}
	wait := opts.Wait
	if wait <= 0 {
		wait = 60 * time.Second
	}
	args := []string{"start", "-w", "-t", seconds(wait)}
	if opts.LogFile != "" {
		args = append(args, "-l", opts.LogFile)
	}
	if opts.ExtraOptions != "" {
		args = append(args, "-o", opts.ExtraOptions)
	}
	if _, err := c.run(ctx, args...); err != nil {
		return fmt.Errorf("start server on %s: %w", c.DataDir, err)
	}
	return nil
}

// Stop stops the server in the given mode and waits for it to exit. Stopping
// a server that is not running is not an error.
func (c Ctl) Stop(ctx context.Context, mode StopMode, wait time.Duration) error {
	running, _, err := c.Status(ctx)
	if err != nil {
		return fmt.Errorf("stop server on %s: %w", c.DataDir, err)
	}
	if !running {
		return nil
	}
	if wait <= 0 {
		wait = 60 * time.Second
	}
	if _, err := c.run(ctx, "stop", "-m", string(mode), "-w", "-t", seconds(wait)); err != nil {
		// It may have exited between the status check and the stop.
		if running, _, serr := c.Status(ctx); serr == nil && !running {
			return nil
		}
		return fmt.Errorf("stop server on %s (%s): %w", c.DataDir, mode, err)
	}
	return nil
}

// Promote asks a standby to become a primary and waits until it has left
// recovery. Note that leaving recovery is not the same as accepting writes
// under every product; the readiness gate checks that separately.
func (c Ctl) Promote(ctx context.Context, wait time.Duration) error {
	if wait <= 0 {
		wait = 60 * time.Second
	}
	if _, err := c.run(ctx, "promote", "-w", "-t", seconds(wait)); err != nil {
		return fmt.Errorf("promote server on %s: %w", c.DataDir, err)
	}
	return nil
}

// Reload makes the server re-read its configuration files.
func (c Ctl) Reload(ctx context.Context) error {
	if _, err := c.run(ctx, "reload"); err != nil {
		return fmt.Errorf("reload server on %s: %w", c.DataDir, err)
	}
	return nil
}

func seconds(d time.Duration) string {
	s := int(d.Round(time.Second) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.Itoa(s)
}

// ControlData is what the control file says; readable while the server is down.
type ControlData struct {
	SystemID string
	// State is e.g. "in production", "shut down", "shut down in recovery",
	// "in archive recovery", "in crash recovery".
	State         string
	Timeline      uint32
	CheckpointLSN string
}

// ControlData runs the flavor's pg_controldata on the data directory.
func (c Ctl) ControlData(ctx context.Context) (ControlData, error) {
	out, err := c.Runner.Run(ctx, c.Bin(c.Flavor.ControlDataBin), c.DataDir)
	if err != nil {
		return ControlData{}, fmt.Errorf("read control file of %s: %w", c.DataDir, err)
	}
	return parseControlData(string(out)), nil
}

func parseControlData(out string) ControlData {
	var cd ControlData
	for _, line := range strings.Split(out, "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch strings.TrimSpace(key) {
		case "Database system identifier":
			cd.SystemID = val
		case "Database cluster state":
			cd.State = val
		case "Latest checkpoint's TimeLineID":
			tli, _ := strconv.ParseUint(val, 10, 32)
			cd.Timeline = uint32(tli)
		case "Latest checkpoint location":
			cd.CheckpointLSN = val
		}
	}
	return cd
}
