package proc

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
)

// InNetns runs f on an OS thread that has entered the network namespace
// ns (a name from `ip netns add`). A socket created by f belongs to that
// namespace for its whole life, whichever thread uses it afterwards: this
// is how a chaos campaign or a test puts clients and proxies on a lab's
// hosts while running in this process. The thread goes back to its
// namespace afterwards, or dies with its goroutine if it cannot.
func InNetns(ns string, f func() error) error {
	target, err := os.Open(NetnsPath(ns))
	if err != nil {
		return fmt.Errorf("open namespace %s: %w", ns, err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open own namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := setns(int(target.Fd())); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter namespace %s: %w", ns, err)
			return
		}
		ferr := f()
		if err := setns(int(orig.Fd())); err != nil {
			// Stay locked: the thread exits with this goroutine rather
			// than run other goroutines in the lab's namespace.
			errc <- errors.Join(ferr, fmt.Errorf("leave namespace %s: %w", ns, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

func setns(fd int) error {
	if _, _, e := syscall.RawSyscall(sysSetns, uintptr(fd), syscall.CLONE_NEWNET, 0); e != 0 {
		return e
	}
	return nil
}
