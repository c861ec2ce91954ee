package agent

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
)

// leaseKeeper renews the leader lease on its own goroutine, every loop
// interval, so that a long step of the main loop (a promotion replaying a
// large backlog, say) never lets the lease lapse. It is also the watchdog
// of the lease arithmetic (package decision): when renewals have failed for
// DemoteAfter, or the key turns out to be gone, it demotes at once without
// waiting for the main loop.
type leaseKeeper struct {
	store   *dcs.Store
	node    string
	cfg     decision.Config
	timeout time.Duration
	log     *slog.Logger
	demote  func(reason string)

	mu        sync.Mutex
	held      bool
	renewedAt time.Time
	stop      context.CancelFunc
	done      chan struct{}
}

func newLeaseKeeper(store *dcs.Store, node string, cfg decision.Config, timeout time.Duration, log *slog.Logger, demote func(string)) *leaseKeeper {
	return &leaseKeeper{store: store, node: node, cfg: cfg, timeout: min(timeout, cfg.LoopInterval), log: log, demote: demote}
}

func (k *leaseKeeper) state() (bool, time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.held, k.renewedAt
}

func (k *leaseKeeper) holding() bool {
	held, _ := k.state()
	return held
}

// acquire takes the free leader key and starts renewing it.
func (k *leaseKeeper) acquire(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	ok, grantedAt, err := k.store.AcquireLeader(ctx, k.node)
	if err != nil || !ok {
		return false, err
	}
	k.mu.Lock()
	k.held = true
	k.renewedAt = grantedAt
	runCtx, stop := context.WithCancel(context.Background())
	k.stop = stop
	k.done = make(chan struct{})
	done := k.done
	k.mu.Unlock()
	go k.run(runCtx, done)
	return true, nil
}

func (k *leaseKeeper) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	ticker := time.NewTicker(k.cfg.LoopInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		rctx, cancel := context.WithTimeout(ctx, k.timeout)
		sent, err := k.store.RenewLeader(rctx, k.node)
		cancel()
		if ctx.Err() != nil {
			return
		}
		k.mu.Lock()
		if err == nil {
			k.renewedAt = sent
			k.mu.Unlock()
			continue
		}
		elapsed := time.Since(k.renewedAt)
		k.mu.Unlock()
		switch {
		case errors.Is(err, dcs.ErrNotLeader):
			k.lost("leader key lost: " + err.Error())
			return
		case elapsed >= k.cfg.DemoteAfter():
			k.lost("leader lease not renewed for " + elapsed.Round(time.Millisecond).String() + ": " + err.Error())
			return
		default:
			k.log.Warn("leader lease renewal failed; retrying", "err", err, "since_renewal", elapsed.Round(time.Millisecond), "demote_after", k.cfg.DemoteAfter())
		}
	}
}

func (k *leaseKeeper) lost(reason string) {
	k.mu.Lock()
	k.held = false
	k.renewedAt = time.Time{}
	k.mu.Unlock()
	k.log.Error("demoting: "+reason, "node", k.node)
	k.demote(reason)
}

// release stops renewing and deletes the key.
func (k *leaseKeeper) release(ctx context.Context) {
	k.mu.Lock()
	stop, done := k.stop, k.done
	k.held = false
	k.renewedAt = time.Time{}
	k.stop = nil
	k.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	rctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	if err := k.store.ReleaseLeader(rctx); err != nil {
		k.log.Warn("release leader key (it expires on its own)", "err", err)
	}
}
