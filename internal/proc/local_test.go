package proc

import (
	"context"
	"errors"
	"testing"

	"github.com/vigil-ha/vigil/internal/host"
)

func TestLocalCarriesExitCodes(t *testing.T) {
	ctx := context.Background()
	var h host.Host = Local{}
	res, err := h.Run(ctx, []string{"sh", "-c", "echo out; echo err >&2; exit 3"})
	if err != nil || res.ExitCode != 3 || string(res.Output) != "out\nerr\n" {
		t.Errorf("exit 3: %+v (output %q), %v", res, res.Output, err)
	}
	if _, err := host.Check(ctx, h, []string{"sh", "-c", "echo no; exit 4"}); err == nil || err.Error() != "sh -c echo no; exit 4: exit status 4: no" {
		t.Errorf("checked exit 4: %v", err)
	}
	if _, err := h.Run(ctx, []string{"/nonexistent/vigil-program"}); err == nil || errors.Is(err, host.ErrUnreachable) {
		t.Errorf("missing program: %v, want an error that is not unreachable", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := h.Run(cancelled, []string{"sleep", "5"}); err == nil {
		t.Error("a command on a cancelled context ran to the end")
	}
	if _, err := h.Run(ctx, nil); err == nil {
		t.Error("empty command ran")
	}
}
