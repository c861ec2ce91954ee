package agent

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/internal/clock"
	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
)

// leaseKeeper renews the leader lease on its own goroutine, every loop
// interval, so that a long step of the main loop (a promotion replaying a
// large backlog, say) never lets the lease lapse. It is also the watchdog
// of the lease arithmetic (package decision): when renewals have failed for
// DemoteAfter, or the key turns out to be gone, it calls lost at once
// without waiting for the main loop; lost decides between taking a free key
// back and demoting.
type leaseKeeper struct {
	store dcsLeader
	node  string
	cfg   decision.Config
	log   *slog.Logger
	lost  func(reason string, notLeader bool)
	// failsafe pings the other members after a failed renewal and says
	// whether the role may be kept without the DCS (decision: Failsafe).
	failsafe func(ctx context.Context) bool

	// acquiring serialises acquire: the main loop and lost may both try to
	// take the key back at the same moment.
	acquiring sync.Mutex

	// clock is the keeper's time; stepped: no goroutine, the caller runs
	// renewStep every loop interval instead (Options.Stepped).
	clock   Clock
	stepped bool

	mu        sync.Mutex
	held      bool
	renewedAt time.Time
	stop      context.CancelFunc
	done      chan struct{}
	// runCtx is the context of the current holding (a stepped keeper's
	// renewals run in it): release and giveUp cancel it.
	runCtx context.Context
}

// dcsLeader is the part of the DCS the keeper uses.
type dcsLeader interface {
	AcquireLeader(ctx context.Context, name string) (bool, time.Time, error)
	RenewLeader(ctx context.Context, name string) (time.Time, error)
	ReleaseLeader(ctx context.Context) error
}

func newLeaseKeeper(store dcsLeader, node string, cfg decision.Config, log *slog.Logger, lost func(string, bool), failsafe func(context.Context) bool) *leaseKeeper {
	return &leaseKeeper{store: store, node: node, cfg: cfg, log: log, lost: lost, failsafe: failsafe, clock: clock.Real{}}
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

// errKeyTaken: another node holds the leader key.
var errKeyTaken = errors.New("the leader key is held by another node")

// acquire takes the free leader key atomically and starts renewing it. It
// is a no-op while the key is held.
func (k *leaseKeeper) acquire(ctx context.Context) error {
	k.acquiring.Lock()
	defer k.acquiring.Unlock()
	if k.holding() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, k.cfg.RenewalTimeout())
	defer cancel()
	ok, grantedAt, err := k.store.AcquireLeader(ctx, k.node)
	if err != nil {
		return err
	}
	if !ok {
		return errKeyTaken
	}
	k.mu.Lock()
	k.held = true
	k.renewedAt = grantedAt
	runCtx, stop := context.WithCancel(context.Background())
	k.stop, k.runCtx = stop, runCtx
	if k.stepped {
		k.mu.Unlock()
		return nil
	}
	k.done = make(chan struct{})
	done := k.done
	k.mu.Unlock()
	go k.run(runCtx, done)
	return nil
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
		if !k.renewOnce(ctx) {
			return
		}
	}
}

// renewStep is one renewal of a stepped keeper; a no-op without a key.
func (k *leaseKeeper) renewStep() {
	k.mu.Lock()
	ctx := k.runCtx
	held := k.held
	k.mu.Unlock()
	if !held || ctx == nil || ctx.Err() != nil {
		return
	}
	k.renewOnce(ctx)
}

// renewOnce renews the lease once and, when that fails, decides whether to
// go on holding; false once the key is given up (or released meanwhile).
func (k *leaseKeeper) renewOnce(ctx context.Context) bool {
	rctx, cancel := context.WithTimeout(ctx, k.cfg.RenewalTimeout())
	sent, err := k.store.RenewLeader(rctx, k.node)
	cancel()
	if ctx.Err() != nil {
		return false
	}
	k.mu.Lock()
	if err == nil {
		k.renewedAt = sent
		k.mu.Unlock()
		return true
	}
	elapsed := k.clock.Now().Sub(k.renewedAt)
	k.mu.Unlock()
	switch {
	case errors.Is(err, dcs.ErrNotLeader):
		k.giveUp("leader key lost: "+err.Error(), true)
		return false
	case k.cfg.Failsafe && k.failsafe(ctx):
		k.log.Debug("leader lease renewal failed; failsafe holds", "err", err, "since_renewal", elapsed.Round(time.Millisecond))
	case elapsed >= k.cfg.DemoteAfter():
		k.giveUp("leader lease not renewed for "+elapsed.Round(time.Millisecond).String()+": "+err.Error(), false)
		return false
	default:
		k.log.Warn("leader lease renewal failed; retrying", "err", err, "since_renewal", elapsed.Round(time.Millisecond), "demote_after", k.cfg.DemoteAfter())
	}
	return true
}

// giveUp forgets the key and hands the decision to lost. The renewal
// goroutine ends with it, so a lost that takes the key back starts a new one.
func (k *leaseKeeper) giveUp(reason string, notLeader bool) {
	k.mu.Lock()
	stop := k.stop
	k.held = false
	k.renewedAt = time.Time{}
	k.stop, k.runCtx = nil, nil
	k.mu.Unlock()
	if stop != nil {
		stop() // this goroutine's own context: it returns after lost
	}
	k.log.Warn("leader lease lost: "+reason, "node", k.node)
	k.lost(reason, notLeader)
}

// release stops renewing and deletes the key.
func (k *leaseKeeper) release(ctx context.Context) {
	k.mu.Lock()
	stop, done := k.stop, k.done
	k.held = false
	k.renewedAt = time.Time{}
	k.stop, k.done, k.runCtx = nil, nil, nil
	k.mu.Unlock()
	if stop != nil {
		stop()
		if done != nil {
			<-done
		}
	}
	rctx, cancel := context.WithTimeout(ctx, k.cfg.RenewalTimeout())
	defer cancel()
	if err := k.store.ReleaseLeader(rctx); err != nil {
		k.log.Warn("release leader key (it expires on its own)", "err", err)
	}
}
