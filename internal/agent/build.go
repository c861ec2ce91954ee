package agent

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/vigil-ha/vigil/internal/bootstrap"
	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
	"github.com/vigil-ha/vigil/internal/rejoin"
	"github.com/vigil-ha/vigil/internal/timeline"
)

// Builder builds this node's server when its data directory holds no
// cluster (*bootstrap.Builder).
type Builder interface {
	// NoData: the data directory is missing, empty or half-built.
	NoData() (bool, error)
	// Bootstrap creates the cluster and returns its system identifier.
	Bootstrap(ctx context.Context, memberHosts []string, rec rejoin.Recorder) (string, error)
	// Clone makes the node a standby of up.
	Clone(ctx context.Context, up database.Upstream, rec rejoin.Recorder, progress func(bootstrap.Progress)) (string, error)
}

// Initializer is the DCS's initialize key (*dcs.Store): who creates the
// cluster.
type Initializer interface {
	AcquireInitialize(ctx context.Context, node string, now time.Time) (bool, error)
	RenewInitialize(ctx context.Context) error
	FinishInitialize(ctx context.Context, rec dcs.Initialize) error
	ReleaseInitialize(ctx context.Context) error
}

// History record kinds of the builds.
const (
	bootstrapRecordKind = "bootstrap"
	cloneRecordKind     = "clone"
)

// Phases published in the member record while the node is built.
const (
	phaseBootstrap = "bootstrap"
	phaseClone     = "clone"
)

// errLeaderChanged ends a clone whose primary failed or changed.
var errLeaderChanged = errors.New("the primary being cloned is no longer the leader")

// building runs work while, every loop interval, the member record (with
// the phase and progress) is published, so that the member stays visible
// through a build longer than its lease, and check is asked whether the
// build may go on: an error from it cancels work's context, with that
// error as the cause.
func (a *Agent) building(ctx context.Context, phase string, check func(context.Context) error, work func(context.Context) error) error {
	a.mu.Lock()
	a.phase, a.cloneProgress = phase, nil
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.phase, a.cloneProgress = "", nil
		a.mu.Unlock()
	}()
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan struct{})
	go func() {
		ticker := time.NewTicker(a.o.Decision.LoopInterval)
		defer ticker.Stop()
		for {
			select {
			case <-done:
				return
			case <-ticker.C:
			}
			a.publishMember(wctx, decision.Local{Name: a.o.Node, Priority: a.o.Priority, NoData: true}, false)
			cctx, ccancel := context.WithTimeout(wctx, a.o.DCSTimeout)
			err := check(cctx)
			ccancel()
			if err != nil {
				a.log.Warn("build abandoned", "phase", phase, "reason", err)
				cancel(err)
				return
			}
		}
	}()
	err := work(wctx)
	close(done)
	if cause := context.Cause(wctx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) {
		err = fmt.Errorf("%w: %w", cause, err)
	}
	return err
}

// buildMayRun applies the retry delay after failed builds.
func (a *Agent) buildMayRun() bool {
	a.mu.Lock()
	wait := a.buildFailedAt.Add(rejoinRetryAfter(a.buildFailures)).Sub(a.clock.Now())
	a.mu.Unlock()
	if wait > 0 {
		a.log.Debug("build waits after a failure", "retry_in", wait.Round(time.Second))
		return false
	}
	return true
}

func (a *Agent) buildEnded(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err == nil || errors.Is(err, errLeaderChanged) {
		a.buildFailures = 0
		return
	}
	a.buildFailedAt = a.clock.Now()
	a.buildFailures++
}

// runBootstrap creates the cluster on this node if it wins the initialize
// key, keeping the key's lease alive while it works: should this agent
// die, the key expires and another node starts over.
func (a *Agent) runBootstrap(ctx context.Context, view dcs.View, reason string) error {
	if a.o.Builder == nil || a.o.Initializer == nil {
		return errors.New("bootstrap: this agent has no builder")
	}
	if !a.buildMayRun() {
		return nil
	}
	started := a.clock.Now()
	actx, cancel := context.WithTimeout(ctx, a.o.DCSTimeout)
	won, err := a.o.Initializer.AcquireInitialize(actx, a.o.Node, started)
	cancel()
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if !won {
		a.log.Info("another node won the initialize key: it creates the cluster, this node will clone it")
		return nil
	}
	a.log.Warn("initialize key won: creating the cluster on this node", "reason", reason)
	rec := a.newRecord(ctx, bootstrapRecordKind, "")
	var systemID string
	renew := func(rctx context.Context) error {
		// Only a lost key stops the bootstrap: a renewal that timed out
		// leaves the lease running, and FinishInitialize finds out.
		err := a.o.Initializer.RenewInitialize(rctx)
		if err != nil && !errors.Is(err, dcs.ErrNotInitializer) {
			a.log.Warn("renew the initialize key", "err", err)
			return nil
		}
		return err
	}
	err = a.building(ctx, phaseBootstrap, renew, func(bctx context.Context) error {
		var berr error
		systemID, berr = a.o.Builder.Bootstrap(bctx, memberHosts(view, a.o.Node), rec)
		return berr
	})
	if err == nil {
		fctx, cancel := context.WithTimeout(ctx, a.o.DCSTimeout)
		err = a.o.Initializer.FinishInitialize(fctx, dcs.Initialize{Node: a.o.Node, SystemID: systemID, Started: started, Finished: a.clock.Now()})
		cancel()
		if err != nil {
			// The key lapsed: another node may have created the cluster.
			// This one is not it; the next loop refuses its system if so.
			err = fmt.Errorf("record the new cluster's system %s in the initialize key: %w", systemID, err)
		}
	} else {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.o.DCSTimeout)
		if rerr := a.o.Initializer.ReleaseInitialize(rctx); rerr != nil {
			a.log.Warn("release the initialize key after a failed bootstrap (it expires anyway)", "err", rerr)
		}
		cancel()
	}
	return a.buildDone(ctx, rec, bootstrapRecordKind, reason, "cluster created, system "+systemID, err)
}

// runClone makes this node a standby of leader. The clone is abandoned as
// soon as leader no longer holds the leader key (its primary failed): the
// next loop clones the new one.
func (a *Agent) runClone(ctx context.Context, view dcs.View, leader, reason string) error {
	if a.o.Builder == nil {
		return errors.New("clone: this agent has no builder")
	}
	if !a.buildMayRun() {
		return nil
	}
	up, err := a.upstream(view, leader)
	if err != nil {
		return fmt.Errorf("clone: %w", err)
	}
	a.log.Warn("cloning the primary: this node's data directory holds no cluster", "leader", leader, "reason", reason)
	rec := a.newRecord(ctx, cloneRecordKind, "")
	check := func(cctx context.Context) error {
		v, err := a.o.Store.Snapshot(cctx)
		if err != nil {
			return nil // the DCS may come back; the copy goes on meanwhile
		}
		// The key, not the member's last write probe: one slow probe on
		// a loaded primary is no reason to start a long copy again.
		if v.Leader != leader {
			return fmt.Errorf("%w (leader now %q)", errLeaderChanged, v.Leader)
		}
		return nil
	}
	var evidence string
	err = a.building(ctx, phaseClone, check, func(cctx context.Context) error {
		var cerr error
		evidence, cerr = a.o.Builder.Clone(cctx, up, rec, func(p bootstrap.Progress) {
			eta := int64(-1)
			if p.ETA >= 0 {
				eta = int64(p.ETA / time.Second)
			}
			a.mu.Lock()
			a.cloneProgress = &dcs.CloneProgress{From: leader, BytesDone: p.BytesDone, BytesTotal: p.BytesTotal,
				RateBytes: p.Rate, ETASeconds: eta, Started: p.Started}
			a.mu.Unlock()
		})
		return cerr
	})
	return a.buildDone(ctx, rec, cloneRecordKind, reason, evidence, err)
}

// buildDone records the end of a build of kind (its outcome err, its
// evidence when it worked) in the history and the log.
func (a *Agent) buildDone(ctx context.Context, rec *timeline.Recorder, kind, reason, evidence string, err error) error {
	a.buildEnded(err)
	if err != nil {
		evidence = kind + " failed: " + err.Error()
	}
	record := rec.Finish(err == nil, joinReason(reason, evidence))
	a.appendHistory(ctx, record)
	if err != nil {
		return fmt.Errorf("%s: %w", kind, err)
	}
	a.log.Info(kind+" done", "evidence", evidence, "took", record.End.Sub(record.Start).Round(time.Millisecond), "timeline", "\n"+timeline.Format(record))
	return nil
}

// memberHosts are the addresses the other members published.
func memberHosts(v dcs.View, self string) []string {
	var hosts []string
	for name, m := range v.Members {
		if name != self && m.Host != "" {
			hosts = append(hosts, m.Host)
		}
	}
	sort.Strings(hosts)
	return hosts
}
