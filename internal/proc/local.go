package proc

import (
	"context"
	"errors"
	"fmt"

	"github.com/vigil-ha/vigil/internal/host"
)

// Local is this machine as a host.Host: programs run as Runner says (as
// which account, in which network namespace).
type Local struct {
	Runner Runner
}

// Run runs argv and returns its exit status. A program that could not be
// started, or was killed (by a signal, or because ctx ended), is an error.
func (l Local) Run(ctx context.Context, argv []string) (host.Result, error) {
	if len(argv) == 0 {
		return host.Result{}, errors.New("run: empty command")
	}
	out, err := l.Runner.Run(ctx, argv[0], argv[1:]...)
	if code := ExitCode(err); code >= 0 {
		return host.Result{Output: out, ExitCode: code}, nil
	}
	if err != nil {
		return host.Result{Output: out}, fmt.Errorf("run %s on this host: %w", argv[0], err)
	}
	return host.Result{Output: out}, nil
}
