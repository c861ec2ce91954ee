package agent

import (
	"context"
	"sync/atomic"

	"github.com/vigil-ha/vigil/internal/proc"
)

// Causes of a loop run before its ticker, named in the decision's log line.
const (
	wokenByLeadership = "leader or request key changed"
	wokenByPostmaster = "postmaster exited"
)

// leadershipWatcher is a Store that reports changes of the leader and
// request keys as they happen (*dcs.Store).
type leadershipWatcher interface {
	WatchLeadership(ctx context.Context) <-chan struct{}
}

// wakeups make the loop run at once when what it decides on changes: the
// leader key (expired, released, handed over), a request, the death of
// this node's postmaster. The ticker stays, for everything that is not an
// event (a hung server, a quiet stream); the wakeups take the loop
// interval off the reaction time. Only agents that Run have them; a
// stepped agent (the simulation) is driven by its caller.
type wakeups struct {
	cause chan string
	// pids are the postmasters to wait for, the newest first; watched is
	// the last one sent (the loop's goroutine only).
	pids    chan int
	watched int
	// exited is the last postmaster seen to exit. Until its parent reaps
	// it, a dead postmaster is a zombie that signals still reach, so the
	// control binary may call it running: the exit seen decides.
	exited atomic.Int64
}

// signal asks for a loop run now. One pending wakeup is enough: the loop
// reads the state, not the event.
func (w *wakeups) signal(cause string) {
	select {
	case w.cause <- cause:
	default:
	}
}

// startWakeups starts the watches; they end with ctx.
func (a *Agent) startWakeups(ctx context.Context) {
	w := &wakeups{cause: make(chan string, 1), pids: make(chan int, 1)}
	a.wake = w
	if lw, ok := a.o.Store.(leadershipWatcher); ok {
		go func() {
			// Set up here, not before the loop starts: with etcd down it
			// waits, and the loop must not.
			changes := lw.WatchLeadership(ctx)
			for {
				select {
				case <-ctx.Done():
					return
				case <-changes:
					w.signal(wokenByLeadership)
				}
			}
		}()
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case pid := <-w.pids:
				err := proc.WaitExit(ctx, pid)
				if err == nil {
					w.exited.Store(int64(pid))
					w.signal(wokenByPostmaster)
				} else if ctx.Err() == nil {
					a.log.Debug("cannot wait for the postmaster's exit; the loop will notice it", "pid", pid, "err", err)
				}
			}
		}
	}()
}

// watchPostmaster makes sure the postmaster pid is waited for: called with
// each observation of a running server. It reports false for a postmaster
// already seen to exit.
func (a *Agent) watchPostmaster(pid int) (alive bool) {
	w := a.wake
	if w == nil || pid <= 0 {
		return true
	}
	if int64(pid) == w.exited.Load() {
		return false
	}
	if pid == w.watched {
		return true
	}
	w.watched = pid
	select {
	case <-w.pids: // an older pid nobody waits for yet: replaced
	default:
	}
	w.pids <- pid
	return true
}
