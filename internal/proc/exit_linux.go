package proc

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// WaitExit returns when the process pid has exited (nil), or ctx ends. The
// process need not be a child: it waits on a pidfd (Linux 5.3), so a
// postmaster started by pg_ctl is seen to exit the moment it does.
func WaitExit(ctx context.Context, pid int) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil // gone already
	}
	if err != nil {
		return fmt.Errorf("wait for process %d: pidfd_open: %w", pid, err)
	}
	defer unix.Close(fd)
	// A pidfd becomes readable when the process exits. Poll in slices so
	// that a cancelled ctx is seen within one slice.
	const sliceMs = 1000
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, sliceMs)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("wait for process %d: poll: %w", pid, err)
		}
		if n > 0 {
			return nil
		}
	}
}
