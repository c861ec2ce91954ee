// Package proc runs external programs the way a database node needs them run:
// optionally as an unprivileged OS account (PostgreSQL refuses to run as root)
// and optionally inside a named network namespace (the lab's simulated hosts).
package proc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
)

// Identity is an OS account that commands run as.
type Identity struct {
	Name string
	UID  uint32
	GID  uint32
	Home string
}

// LookupUser resolves an OS account by name.
func LookupUser(name string) (Identity, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return Identity{}, fmt.Errorf("look up OS user %q: %w (create it, e.g. with the postgresql package, or choose another user)", name, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return Identity{}, fmt.Errorf("look up OS user %q: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return Identity{}, fmt.Errorf("look up OS user %q: gid %q: %w", name, u.Gid, err)
	}
	return Identity{Name: u.Username, UID: uint32(uid), GID: uint32(gid), Home: u.HomeDir}, nil
}

// Runner describes where and as whom commands run. The zero value runs them
// as the current user in the current network namespace.
type Runner struct {
	// Netns is the name of a network namespace created with `ip netns add`;
	// empty means the caller's namespace.
	Netns string
	// As is the account to run as; nil means the current user.
	As *Identity
	// Env is added to a minimal environment (PATH, HOME, LC_ALL=C).
	Env []string
	// Dir is the working directory; "/" when empty, because the caller's
	// directory may not be readable by As.
	Dir string
}

// NetnsPath is where `ip netns add` mounts a named network namespace.
func NetnsPath(name string) string { return "/run/netns/" + name }

// Command builds the command without starting it.
func (r Runner) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if r.Netns != "" {
		// Entering a namespace needs privileges the target account lacks, so
		// nsenter enters first and then drops to the account itself.
		nsArgs := []string{"--net=" + NetnsPath(r.Netns)}
		if r.As != nil {
			nsArgs = append(nsArgs, "--setgid", strconv.FormatUint(uint64(r.As.GID), 10),
				"--setuid", strconv.FormatUint(uint64(r.As.UID), 10))
		}
		nsArgs = append(nsArgs, "--", name)
		cmd = exec.CommandContext(ctx, "nsenter", append(nsArgs, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, name, args...)
		if r.As != nil && uint32(os.Geteuid()) != r.As.UID {
			cmd.SysProcAttr = &syscall.SysProcAttr{
				Credential: &syscall.Credential{Uid: r.As.UID, Gid: r.As.GID, Groups: []uint32{}},
			}
		}
	}
	cmd.Dir = r.Dir
	if cmd.Dir == "" {
		cmd.Dir = "/"
	}
	cmd.Env = r.environment()
	return cmd
}

func (r Runner) environment() []string {
	home := os.Getenv("HOME")
	if r.As != nil {
		home = r.As.Home
	}
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	env := []string{"PATH=" + path, "HOME=" + home, "LC_ALL=C", "LANG=C"}
	if r.As != nil {
		env = append(env, "USER="+r.As.Name, "LOGNAME="+r.As.Name)
	}
	return append(env, r.Env...)
}

// Run runs the command and returns its combined output. A failure is returned
// with the command line and the end of its output, which is where programs
// like pg_ctl put the reason.
func (r Runner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	return r.RunInput(ctx, nil, name, args...)
}

// maxOutput bounds what Run keeps of a command's output.
const maxOutput = 1 << 20

// RunInput is Run with stdin read from in (nil: no input). Secrets go this
// way rather than in arguments or the environment, which other users can read
// in /proc.
func (r Runner) RunInput(ctx context.Context, in io.Reader, name string, args ...string) ([]byte, error) {
	cmd := r.Command(ctx, name, args...)
	cmd.Stdin = in
	// The output goes to an unlinked file, not a pipe: a daemon started by the
	// command (the server that `pg_ctl start` leaves running when it has no
	// log file) inherits stdout, and Wait would block on a pipe until that
	// daemon exits.
	out, err := os.CreateTemp("", "vigil-proc-*")
	if err != nil {
		return nil, fmt.Errorf("run %s: create output file: %w", name, err)
	}
	defer out.Close()
	if err := os.Remove(out.Name()); err != nil {
		return nil, fmt.Errorf("run %s: unlink output file: %w", name, err)
	}
	cmd.Stdout = out
	cmd.Stderr = out
	runErr := cmd.Run()
	var buf bytes.Buffer
	if _, err := out.Seek(0, io.SeekStart); err == nil {
		_, _ = io.Copy(&buf, io.LimitReader(out, maxOutput))
	}
	if runErr != nil {
		return buf.Bytes(), &Error{Cmd: name, Args: args, Output: tail(buf.String(), 2000), Err: runErr}
	}
	return buf.Bytes(), nil
}

// Error is a failed command.
type Error struct {
	Cmd    string
	Args   []string
	Output string
	Err    error
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s %s: %v", e.Cmd, strings.Join(e.Args, " "), e.Err)
	if out := strings.TrimSpace(e.Output); out != "" {
		msg += ": " + out
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// ExitCode returns the exit status of a failed command, or -1 when err is not
// a command that ran and exited.
func ExitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
