// Package fence stops a former primary from outside its own agent, for the
// case the lease arithmetic cannot cover: an agent that died while its
// database still runs as a primary.
package fence

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/host"
	"github.com/vigil-ha/vigil/internal/proc"
)

// Command runs an operator-supplied program (argv, no shell) with the old
// primary's name, host and port substituted for {name}, {host}, {port}.
type Command struct {
	Argv   []string
	Runner proc.Runner
}

// Fence runs the command; a non-zero exit is an error.
func (c Command) Fence(ctx context.Context, old dcs.Member) (string, error) {
	if len(c.Argv) == 0 {
		return "", fmt.Errorf("fence command: empty")
	}
	r := strings.NewReplacer("{name}", old.Name, "{host}", old.Host, "{port}", strconv.Itoa(old.Port))
	argv := make([]string, len(c.Argv))
	for i, a := range c.Argv {
		argv[i] = r.Replace(a)
	}
	res, err := host.Check(ctx, proc.Local{Runner: c.Runner}, argv)
	if err != nil {
		return "", fmt.Errorf("fence %s: %w", old.Name, err)
	}
	msg := strings.TrimSpace(string(res.Output))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	return fmt.Sprintf("fence command %s exited 0: %s", argv[0], msg), nil
}

// All fences with each fencer in turn (a command, then SSH, ...); every
// one must succeed, since each closes a different way the old primary
// could still accept writes.
type All []interface {
	Fence(ctx context.Context, old dcs.Member) (string, error)
}

// Fence runs the fencers in order and stops at the first failure.
func (a All) Fence(ctx context.Context, old dcs.Member) (string, error) {
	var evidence []string
	for _, f := range a {
		ev, err := f.Fence(ctx, old)
		if ev != "" {
			evidence = append(evidence, ev)
		}
		if err != nil {
			return strings.Join(evidence, "; "), err
		}
	}
	return strings.Join(evidence, "; "), nil
}
