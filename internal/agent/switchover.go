package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
	"github.com/vigil-ha/vigil/internal/pgctl"
	"github.com/vigil-ha/vigil/internal/timeline"
	"github.com/vigil-ha/vigil/internal/wal"
)

// Switchover step names (the old leader's side; the target then runs the
// failover steps from promote on).
const (
	StepRoutesDown     = "routes_down"
	StepCleanStop      = "clean_stop"
	StepTargetCaughtUp = "target_caught_up"
	StepFollowTarget   = "follow_target"
	StepHandOver       = "hand_over"
)

// handoverWait bounds how long the old leader waits for the target to
// receive its last WAL.
const handoverWait = 30 * time.Second

// runSwitchover hands the primary role to target without losing a commit:
// writes stop (routes down, clean shutdown, which sends every WAL record to
// the connected standbys), the target is seen to have all of it, this
// server is configured to follow the target, and only then is the key
// released to it. If the target does not catch up, this server starts
// again as the primary it was.
func (a *Agent) runSwitchover(ctx context.Context, view dcs.View, target, reason string) {
	rec := a.newRecord(ctx, "switchover", a.o.Node)
	a.log.Warn("starting switchover", "target", target, "reason", reason)
	ok := a.switchoverSteps(ctx, rec, view, target)
	record := rec.Finish(ok, reason)
	a.attribute(&record)
	a.saveHistory(ctx, record)
	a.log.Info("switchover finished on the old leader", "ok", ok, "timeline", "\n"+timeline.Format(record))
}

func (a *Agent) switchoverSteps(ctx context.Context, rec *timeline.Recorder, view dcs.View, target string) bool {
	srv := a.o.Server
	targetMember, ok := view.Members[target]
	if !ok {
		rec.Add(timeline.Step{Name: StepRoutesDown, Start: a.clock.Now(), End: a.clock.Now(), Error: "target " + target + " is not a member"})
		a.clearRequest(ctx, view)
		return false
	}
	_ = rec.Run(StepRoutesDown, func() (string, error) {
		a.routesDown(ctx, "switchover to "+target)
		wctx, cancel := context.WithTimeout(ctx, a.o.DCSTimeout)
		defer cancel()
		if err := a.o.Store.WithdrawPrimary(wctx, a.o.Node); err != nil {
			return "", err
		}
		return "routes down, writable-primary record withdrawn", nil
	})

	var final wal.LSN
	err := rec.Run(StepCleanStop, func() (string, error) {
		sctx, cancel := context.WithTimeout(ctx, a.o.PromoteTimeout)
		defer cancel()
		// A fast shutdown checkpoints and waits until the walsenders have
		// sent everything: the standbys get the last commit.
		if err := srv.Stop(sctx, pgctl.Fast); err != nil {
			return "", err
		}
		cd, err := a.o.Control.ControlData(sctx)
		if err != nil {
			return "", err
		}
		if final, err = wal.ParseLSN(cd.CheckpointLSN); err != nil {
			return "", err
		}
		return fmt.Sprintf("stopped cleanly (%s), shutdown checkpoint at %s", cd.State, final), nil
	})
	if err != nil {
		a.resumeAsPrimary(ctx, view, "clean stop failed")
		return false
	}

	err = rec.Run(StepTargetCaughtUp, func() (string, error) {
		deadline := a.clock.Now().Add(handoverWait)
		for {
			wctx, cancel := context.WithTimeout(ctx, a.o.DCSTimeout)
			v, err := a.o.Store.Snapshot(wctx)
			cancel()
			if err == nil {
				if m, ok := v.Members[target]; ok && m.WAL > final {
					return fmt.Sprintf("%s has WAL up to %s, past the shutdown checkpoint %s", target, m.WAL, final), nil
				}
			}
			if a.clock.Now().After(deadline) {
				return "", fmt.Errorf("%s did not receive WAL past %s within %s", target, final, handoverWait)
			}
			if err := a.clock.Sleep(ctx, a.o.Decision.LoopInterval/2); err != nil {
				return "", err
			}
		}
	})
	if err != nil {
		a.resumeAsPrimary(ctx, view, "target did not catch up")
		return false
	}

	// Follow the target before it is promoted: as a cascading standby it
	// streams on across the timeline switch, with nothing to rewind.
	err = rec.Run(StepFollowTarget, func() (string, error) {
		fctx, cancel := context.WithTimeout(ctx, a.o.PromoteTimeout)
		defer cancel()
		// No slot name: the target, still a standby, holds no slot for this
		// node yet, and a walreceiver asking for one would not stream
		// across the promotion.
		up := database.Upstream{Host: targetMember.Host, Port: targetMember.Port, User: a.o.ReplicationUser, PassFile: a.o.ReplicationPassFile}
		if err := srv.Follow(fctx, up); err != nil {
			return "", err
		}
		return fmt.Sprintf("restarted as a standby of %s:%d", up.Host, up.Port), nil
	})
	if err != nil {
		a.resumeAsPrimary(ctx, view, "could not follow the target")
		return false
	}

	err = rec.Run(StepHandOver, func() (string, error) {
		wctx, cancel := context.WithTimeout(ctx, a.o.DCSTimeout)
		defer cancel()
		r := dcs.Request{Kind: decision.RequestSwitchover, From: a.o.Node, To: target, Created: a.clock.Now(), HandedOver: true}
		if view.Request != nil {
			// The target's record names the operator too.
			r.Actor = view.Request.Actor
		}
		if err := a.o.Store.SetRequest(wctx, r); err != nil {
			return "", err
		}
		a.lease.release(ctx)
		return "leader key released to " + target, nil
	})
	return err == nil
}

// resumeAsPrimary undoes a switchover that could not complete: the server
// starts again (it stopped cleanly, so it is the same primary) and the
// request is dropped. The key was never released.
func (a *Agent) resumeAsPrimary(ctx context.Context, view dcs.View, why string) {
	if !a.lease.holding() {
		// The key went while this agent waited (a DCS cut, a stall past
		// the lease): another node may be primary now. The server stays
		// stopped; the main loop takes the key first if it is free.
		a.log.Error("switchover abandoned, and the leader key is lost: not restarting the primary", "reason", why)
		a.clearRequest(ctx, view)
		return
	}
	a.log.Error("switchover abandoned; restarting as the primary", "reason", why)
	sctx, cancel := context.WithTimeout(ctx, a.o.PromoteTimeout)
	defer cancel()
	if err := a.o.Server.Start(sctx); err != nil {
		a.log.Error("restart after an abandoned switchover", "err", err)
	}
	a.clearRequest(ctx, view)
}

// clearRequest removes the request this agent acted on, read in view; one
// written since is left for its own turn.
func (a *Agent) clearRequest(ctx context.Context, view dcs.View) {
	wctx, cancel := context.WithTimeout(ctx, a.o.DCSTimeout)
	defer cancel()
	err := a.o.Store.ClearRequest(wctx, view.RequestRevision)
	switch {
	case errors.Is(err, dcs.ErrRequestChanged):
		a.log.Info("request not cleared: a newer one was written", "err", err)
	case err != nil:
		a.log.Warn("clear request", "err", err)
	}
}
