// Package pgctl drives a server through its control binary (pg_ctl, or
// sys_ctl for KingbaseES): start, stop, status, promote, reload. It is the
// path that works when SQL does not (the server is down, or starting).
// It is the one place that builds the control binary's command lines, and
// it runs them on any host.Host: this machine, or another over SSH (the
// fence, the Pgpool-II failover command).
package pgctl

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/internal/flavor"
	"github.com/vigil-ha/vigil/internal/host"
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

// Ctl is one data directory and the binaries that operate it, on one
// host: this one (Runner says as whom) or, with Host, any other. It builds
// every control-binary command line Vigil runs, and it reads the control
// binary's answers by their documented exit codes, never by messages,
// which are translated on hosts with another locale.
type Ctl struct {
	Flavor  flavor.Flavor
	BinDir  string
	DataDir string
	// Runner runs the binaries on this machine when Host is nil.
	Runner proc.Runner
	// Host runs the binaries instead of Runner, e.g. a remote.Host.
	Host host.Host
	// Prefix comes before every binary, e.g. runuser -u postgres -- for a
	// Host logged in as root: the server's binaries refuse root.
	Prefix []string
}

// Exit statuses of the control binary's status command, as its
// documentation gives them.
const (
	StatusRunning    = 0
	StatusNotRunning = 3
	// StatusNoDataDir: the data directory is missing or unreadable.
	StatusNoDataDir = 4
)

// Bin returns the full path of one of the flavor's binaries.
func (c Ctl) Bin(name string) string { return filepath.Join(c.BinDir, name) }

// Argv is the control binary on the data directory with args, prefixed.
func (c Ctl) Argv(args ...string) []string {
	return c.binArgv(c.Flavor.ControlBinary, append([]string{"-D", c.DataDir}, args...)...)
}

func (c Ctl) binArgv(name string, args ...string) []string {
	argv := append([]string(nil), c.Prefix...)
	argv = append(argv, c.Bin(name))
	return append(argv, args...)
}

// StatusArgv asks whether a server runs on the data directory.
func (c Ctl) StatusArgv() []string { return c.Argv("status") }

// StopArgv stops the server in mode and waits up to wait (whole seconds,
// at least one).
func (c Ctl) StopArgv(mode StopMode, wait time.Duration) []string {
	return c.Argv("stop", "-m", string(mode), "-w", "-t", seconds(wait))
}

// PromoteArgv promotes the standby and waits until it has left recovery,
// up to wait; with wait 0 it leaves the waiting to the binary's defaults,
// as failover_stream.sh's bare "sys_ctl promote" did.
func (c Ctl) PromoteArgv(wait time.Duration) []string {
	if wait <= 0 {
		return c.Argv("promote")
	}
	return c.Argv("promote", "-w", "-t", seconds(wait))
}

func (c Ctl) on() host.Host {
	if c.Host != nil {
		return c.Host
	}
	return proc.Local{Runner: c.Runner}
}

// run runs argv; a non-zero exit is an error.
func (c Ctl) run(ctx context.Context, argv []string) ([]byte, error) {
	res, err := host.Check(ctx, c.on(), argv)
	return res.Output, err
}

// Status reports whether a server is running on the data directory, and its PID.
func (c Ctl) Status(ctx context.Context) (running bool, pid int, err error) {
	res, err := c.on().Run(ctx, c.StatusArgv())
	if err != nil {
		return false, 0, fmt.Errorf("status of %s: %w", c.DataDir, err)
	}
	switch res.ExitCode {
	case StatusRunning:
		return true, parsePID(string(res.Output)), nil
	case StatusNotRunning:
		return false, 0, nil
	}
	exit := &host.ExitError{Argv: c.StatusArgv(), Code: res.ExitCode, Output: res.Output}
	if res.ExitCode == StatusNoDataDir {
		return false, 0, fmt.Errorf("status of %s: no accessible data directory: %w", c.DataDir, exit)
	}
	return false, 0, fmt.Errorf("status of %s: %w", c.DataDir, exit)
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
	if _, err := c.run(ctx, c.Argv(args...)); err != nil {
		return fmt.Errorf("start server on %s: %w", c.DataDir, err)
	}
	return nil
}

// Stop stops the server in the given mode and waits for it to exit. Stopping
// a server that is not running is not an error.
func (c Ctl) Stop(ctx context.Context, mode StopMode, wait time.Duration) error {
	_, err := c.StopOutcome(ctx, mode, wait)
	return err
}

// Stopped is how a stop ended.
type Stopped struct {
	// Already: there was no server to stop. No PID file, or the PID file
	// of a server that died: the stop fails, and status then exits 3.
	Already bool
	// Said is the control binary's own line for it: "server stopped", or
	// why there was nothing to stop. Evidence for people; nothing decides
	// on it.
	Said string
}

// StopOutcome is Stop, saying whether there was a server to stop. A stop
// that fails counts as done only when status then exits 3 (not running):
// the server may have exited meanwhile, or never run.
func (c Ctl) StopOutcome(ctx context.Context, mode StopMode, wait time.Duration) (Stopped, error) {
	if wait <= 0 {
		wait = 60 * time.Second
	}
	argv := c.StopArgv(mode, wait)
	out, err := c.run(ctx, argv)
	if err == nil {
		return Stopped{Said: lastLine(string(out))}, nil
	}
	var ee *host.ExitError
	if errors.As(err, &ee) {
		// Status answers "not running" only for its exit code 3.
		if running, _, serr := c.Status(ctx); serr == nil && !running {
			return Stopped{Already: true, Said: firstLine(string(ee.Output))}, nil
		}
	}
	return Stopped{}, fmt.Errorf("stop server on %s (%s): %w", c.DataDir, mode, err)
}

// Promote asks a standby to become a primary and waits until it has left
// recovery. Note that leaving recovery is not the same as accepting writes
// under every product; the readiness gate checks that separately.
func (c Ctl) Promote(ctx context.Context, wait time.Duration) error {
	if wait <= 0 {
		wait = 60 * time.Second
	}
	if _, err := c.run(ctx, c.PromoteArgv(wait)); err != nil {
		return fmt.Errorf("promote server on %s: %w", c.DataDir, err)
	}
	return nil
}

// RequestPromote runs the bare promote of failover_stream.sh, leaving
// the wait to the binary's defaults.
func (c Ctl) RequestPromote(ctx context.Context) error {
	if _, err := c.run(ctx, c.PromoteArgv(0)); err != nil {
		return fmt.Errorf("promote server on %s: %w", c.DataDir, err)
	}
	return nil
}

// Reload makes the server re-read its configuration files.
func (c Ctl) Reload(ctx context.Context) error {
	if _, err := c.run(ctx, c.Argv("reload")); err != nil {
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

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return shorten(strings.TrimSpace(s))
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return shorten(s)
}

func shorten(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
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
	out, err := c.run(ctx, c.binArgv(c.Flavor.ControlDataBin, c.DataDir))
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

// InitDBOptions say how initdb creates a data directory.
type InitDBOptions struct {
	// Superuser is the bootstrap superuser's name; its password is read
	// from a file (--pwfile), never an argument.
	Superuser     string
	DataChecksums bool
	Locale        string
	Encoding      string
	// Extra arguments, as given.
	Extra []string
}

// InitDBArgv is the flavor's initdb creating the data directory: peer
// authentication over the local socket, scram-sha-256 over TCP.
func (c Ctl) InitDBArgv(o InitDBOptions, pwfile string) []string {
	args := []string{"-D", c.DataDir, "-U", o.Superuser, "--pwfile=" + pwfile,
		"--auth-local=peer", "--auth-host=scram-sha-256"}
	if o.DataChecksums {
		args = append(args, "--data-checksums")
	}
	if o.Locale != "" {
		args = append(args, "--locale="+o.Locale)
	}
	if o.Encoding != "" {
		args = append(args, "--encoding="+o.Encoding)
	}
	args = append(args, o.Extra...)
	return c.binArgv(c.Flavor.InitDBBinary, args...)
}
