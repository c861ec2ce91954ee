package host

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"testing"
)

func TestUnreachableKeepsTheCauseAndItsMessage(t *testing.T) {
	cause := errors.New("dial tcp 10.0.0.1:22: connect: no route to host")
	err := Unreachable(cause)
	if !errors.Is(err, ErrUnreachable) || !errors.Is(err, cause) || err.Error() != cause.Error() {
		t.Errorf("Unreachable(%v) = %v: want both matches and the same message", cause, err)
	}
	if errors.Is(cause, ErrUnreachable) || errors.Is(fmt.Errorf("open: %w", fs.ErrNotExist), ErrUnreachable) {
		t.Error("an unmarked error matches ErrUnreachable")
	}
	if Unreachable(nil) != nil {
		t.Error("Unreachable(nil) is not nil")
	}
}

func TestCheckMakesNonZeroExitsErrors(t *testing.T) {
	exits := func(code int) Host {
		return Func(func(context.Context, []string) (Result, error) {
			return Result{Output: []byte("pg_ctl: no server running\n"), ExitCode: code}, nil
		})
	}
	if _, err := Check(context.Background(), exits(0), []string{"pg_ctl", "status"}); err != nil {
		t.Errorf("exit 0: %v", err)
	}
	_, err := Check(context.Background(), exits(3), []string{"pg_ctl", "status"})
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 3 || err.Error() != "pg_ctl status: exit status 3: pg_ctl: no server running" {
		t.Errorf("exit 3: %v", err)
	}
}
