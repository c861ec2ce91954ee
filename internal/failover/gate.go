package failover

import (
	"context"
	"fmt"
	"time"

	"github.com/vigil-ha/vigil/internal/clock"
	"github.com/vigil-ha/vigil/internal/database"
)

// ProbeServer is what the readiness gate asks of the promoted server.
type ProbeServer interface {
	// ProbeWrite commits a real write, or says why it could not.
	ProbeWrite(ctx context.Context) database.ProbeResult
	// Observe is read only when a hung commit may wait for a
	// synchronous standby (Gate.SyncStuck).
	Observe(ctx context.Context) (database.Observation, error)
}

// Progress is where the gate stands.
type Progress struct {
	// Last is the last probe; Attempts the probes so far, Refused those
	// refused because the server is in recovery or read-only.
	Last     database.ProbeResult
	Attempts int
	Refused  int
	// Elapsed is the time since the gate opened.
	Elapsed time.Duration
}

// Refusing reports that the last probe was refused by a server still in
// recovery or read-only: the seed's read-only window.
func (p Progress) Refusing() bool {
	return p.Last.Class == database.ProbeInRecovery || p.Last.Class == database.ProbeReadOnly
}

// NotReadyError is the gate's failure: no write committed in time.
type NotReadyError struct {
	Timeout time.Duration
	Progress
}

func (e *NotReadyError) Error() string {
	return fmt.Sprintf("no write committed within %s after %d attempts (%d refused as read-only); last: %s", e.Timeout, e.Attempts, e.Refused, e.Last.Error)
}

// Gate is the readiness gate: a real write must commit before anything
// routes clients to a promoted server. While the server still replays its
// backlog it refuses writes (the seed incident's 35 s); the gate waits
// that out, reporting progress with the replay backlog, up to Timeout.
type Gate struct {
	Server ProbeServer
	// Clock is the gate's time (nil: package time). The deadline is
	// checked on it too: a simulation's virtual time runs ahead of ctx's.
	Clock clock.Clock
	// Timeout bounds the gate; ProbeTimeout one probe; Poll is the pause
	// between probes.
	Timeout      time.Duration
	ProbeTimeout time.Duration
	Poll         time.Duration

	// ToAsync clears the synchronous standbys, when a commit waits for a
	// synchronous standby that is gone (nil: wait). It returns whether
	// the gate may call it again.
	ToAsync func(ctx context.Context, why string) (again bool)
	// SyncStuck, when set, is asked after a probe that timed out whether
	// the commit hangs on a missing synchronous standby (a first write may
	// time out rather than report the wait); then ToAsync is called.
	SyncStuck func(database.Observation) (stuck bool, why string)

	// Probed sees every probe (the agent's status while it promotes).
	Probed func(database.ProbeResult)
	// Report is offered the progress at most once a second while no write
	// committed; it returns whether it reported (else it is offered the
	// next probe's).
	Report func(Progress) bool
}

// Wait probes until a write commits, and returns the committing probe's
// progress; or a *NotReadyError.
func (g Gate) Wait(ctx context.Context) (Progress, error) {
	clk := g.Clock
	if clk == nil {
		clk = clock.Real{}
	}
	gctx, cancel := context.WithTimeout(ctx, g.Timeout)
	defer cancel()
	start := clk.Now()
	deadline := start.Add(g.Timeout)
	var p Progress
	var lastReport time.Time
	asyncAgain := g.ToAsync != nil
	for {
		p.Attempts++
		pctx, pcancel := context.WithTimeout(gctx, g.ProbeTimeout)
		r := g.Server.ProbeWrite(pctx)
		pcancel()
		p.Last, p.Elapsed = r, clk.Now().Sub(start)
		if g.Probed != nil {
			g.Probed(r)
		}
		switch {
		case r.Writable():
			p.Last.Error = ""
			return p, nil
		case r.Class == database.ProbeSyncWait && asyncAgain:
			asyncAgain = g.ToAsync(gctx, "commits waited for a synchronous standby that is gone")
		case r.Class == database.ProbeTimeout && asyncAgain && g.SyncStuck != nil:
			octx, ocancel := context.WithTimeout(gctx, g.ProbeTimeout)
			obs, err := g.Server.Observe(octx)
			ocancel()
			if stuck, why := g.SyncStuck(obs); err == nil && stuck {
				asyncAgain = g.ToAsync(gctx, "a commit timed out: "+why)
			}
		case p.Refusing():
			p.Refused++
		}
		if g.Report != nil && clk.Now().Sub(lastReport) >= time.Second && g.Report(p) {
			lastReport = clk.Now()
		}
		if clk.Sleep(gctx, g.Poll) != nil || !clk.Now().Before(deadline) {
			return p, &NotReadyError{Timeout: g.Timeout, Progress: p}
		}
	}
}

// PromotedEvidence is the promote step's evidence: the timeline change, the
// WAL position and the replay backlog the server had to replay.
func PromotedEvidence(before, after database.Observation) string {
	return fmt.Sprintf("left recovery: timeline %d -> %d, WAL %s (replay backlog before: %d bytes)",
		before.Timeline, after.Timeline, after.CurrentLSN, before.ReplayBacklogBytes)
}

// Checkpointer is a server that can checkpoint.
type Checkpointer interface {
	Checkpoint(ctx context.Context) error
}

// Checkpoint is the checkpoint step, so that a crash soon after the
// promotion does not replay the whole backlog again.
func Checkpoint(ctx context.Context, srv Checkpointer, timeout time.Duration) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := srv.Checkpoint(cctx); err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	return "CHECKPOINT done " + CheckpointWhy, nil
}
