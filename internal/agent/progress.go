package agent

import (
	"context"
	"encoding/json"
	"time"

	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/timeline"
)

// progressStore is a Store that can keep a procedure's progress
// (*dcs.Store); the simulation's has none.
type progressStore interface {
	Progress(node string) *dcs.ProgressWriter
}

// newRecord starts the record of a procedure of this node. Its steps go
// to the step log and the agent's log and, where the DCS can keep it, to
// the node's progress key as they happen, for `vigil ctl list --watch`.
func (a *Agent) newRecord(ctx context.Context, kind, from string) *timeline.Recorder {
	ps, ok := a.o.Store.(progressStore)
	if !ok {
		return timeline.New(kind, a.o.Cluster, a.o.Node, from, a.o.StepLog, a.log)
	}
	return timeline.New(kind, a.o.Cluster, a.o.Node, from, a.o.StepLog, a.log, a.publishProgress(ctx, ps.Progress(a.o.Node)))
}

// publishProgress returns the observer that hands each progress to a
// writer goroutine: the procedure never waits for etcd. The goroutine
// writes the newest progress, keeps its lease alive through long steps,
// and removes the key once the record is finished (it is in the history
// then).
func (a *Agent) publishProgress(ctx context.Context, w *dcs.ProgressWriter) timeline.Observer {
	latest := make(chan timeline.Progress, 1)
	go func() {
		keepAlive := time.NewTicker(a.o.Decision.LeaseTTL)
		defer keepAlive.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-keepAlive.C:
				a.writeProgress(ctx, func(ctx context.Context) error { return w.KeepAlive(ctx) })
			case p := <-latest:
				if !p.End.IsZero() {
					a.writeProgress(context.WithoutCancel(ctx), w.Done)
					return
				}
				data, err := json.Marshal(p)
				if err != nil {
					a.log.Warn("encode procedure progress", "err", err)
					continue
				}
				a.writeProgress(ctx, func(ctx context.Context) error { return w.Put(ctx, data) })
			}
		}
	}()
	return timeline.ProgressObserver(func(p timeline.Progress) {
		select {
		case <-latest: // not written yet: the newer one replaces it
		default:
		}
		latest <- p
	})
}

func (a *Agent) writeProgress(ctx context.Context, write func(context.Context) error) {
	wctx, cancel := context.WithTimeout(ctx, a.o.DCSTimeout)
	defer cancel()
	if err := write(wctx); err != nil {
		a.log.Debug("procedure progress not published", "err", err)
	}
}
