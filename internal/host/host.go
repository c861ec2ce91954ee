// Package host is the one way Vigil runs a program on a machine of the
// cluster, whether this one (proc.Local) or another over SSH (remote.Host).
// Callers build argv and read exit codes; where the program runs is the
// Host's business. A program that ran and exited non-zero is not an error:
// callers such as pgctl give exit codes a documented meaning (pg_ctl status
// exits 3 for "not running"), so the code travels in the Result. The error
// is for a program that could not run to the end.
package host

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Host runs one program, argv[0] with the arguments argv[1:], no shell.
type Host interface {
	Run(ctx context.Context, argv []string) (Result, error)
}

// Result is what a program did: its output (standard output, then
// standard error) and its exit status.
type Result struct {
	Output   []byte
	ExitCode int
}

// ErrUnreachable matches (errors.Is) an error of a Host that could not
// reach its machine for a network reason: refused, timed out, no route.
// Authentication and host-key failures never match it: they are
// configuration or an attack, and a fence policy that may go on without a
// fence when a host is down must not go on for them.
var ErrUnreachable = errors.New("host unreachable")

// Unreachable marks err as matching ErrUnreachable, keeping its message.
func Unreachable(err error) error {
	if err == nil {
		return nil
	}
	return unreachable{err}
}

type unreachable struct{ err error }

func (u unreachable) Error() string        { return u.err.Error() }
func (u unreachable) Unwrap() error        { return u.err }
func (u unreachable) Is(target error) bool { return target == ErrUnreachable }

// ExitError is a program that ran and exited non-zero, for callers to whom
// every non-zero exit is a failure.
type ExitError struct {
	Argv   []string
	Code   int
	Output []byte
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("%s: exit status %d", strings.Join(e.Argv, " "), e.Code)
	if out := strings.TrimSpace(string(e.Output)); out != "" {
		msg += ": " + tail(out, 2000)
	}
	return msg
}

// Check runs argv on h and turns a non-zero exit into an *ExitError.
func Check(ctx context.Context, h Host, argv []string) (Result, error) {
	res, err := h.Run(ctx, argv)
	if err == nil && res.ExitCode != 0 {
		err = &ExitError{Argv: argv, Code: res.ExitCode, Output: res.Output}
	}
	return res, err
}

// Func adapts a function to Host.
type Func func(ctx context.Context, argv []string) (Result, error)

// Run calls f.
func (f Func) Run(ctx context.Context, argv []string) (Result, error) { return f(ctx, argv) }

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
