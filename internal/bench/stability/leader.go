package stability

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vigil-ha/vigil/internal/config"
)

// leaderKey is the key an agent holds while it leads cluster (package
// dcs's layout under the default prefix, which the lab's agents keep).
func leaderKey(cluster string) string {
	return path.Join(config.Defaults().DCS.Prefix, cluster, "leader")
}

// leaderWatch counts the leader changes of one cluster from etcd's history
// of the leader key. The key is created (put-if-absent) by the agent that
// takes the lead and deleted when its lease expires or is released; the
// lease renewals do not write it. So every change of leader is a revision
// of that key, and etcd's watch from a revision delivers every later
// revision of the key in order (the client resumes from the last one it
// delivered when its stream breaks; a compacted history is an error, not a
// gap). finish then proves the count complete: it waits for a progress
// notification past the revision of a final read and compares that read
// with the last event seen.
type leaderWatch struct {
	cli    *clientv3.Client
	key    string
	cancel context.CancelFunc
	done   chan struct{}

	mu sync.Mutex
	// holder is the node named by the key, "" while it is absent.
	holder string
	// holders lists every leader, the first being the one at the start.
	holders []string
	changes int // a different node took the key
	losses  int // the key was deleted: its lease expired or was released
	events  []LeaderEvent
	seenRev int64
	err     error
}

// watchLeader starts counting from the key's current state.
func watchLeader(ctx context.Context, cli *clientv3.Client, key string) (*leaderWatch, error) {
	resp, err := cli.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read the leader key %s: %w", key, err)
	}
	w := &leaderWatch{cli: cli, key: key, done: make(chan struct{}), seenRev: resp.Header.Revision}
	if len(resp.Kvs) > 0 {
		w.holder = string(resp.Kvs[0].Value)
		w.holders = []string{w.holder}
	}
	wctx, cancel := context.WithCancel(ctx)
	w.cancel = cancel
	ch := cli.Watch(wctx, key, clientv3.WithRev(resp.Header.Revision+1), clientv3.WithProgressNotify())
	go w.run(wctx, ch)
	return w, nil
}

func (w *leaderWatch) run(ctx context.Context, ch clientv3.WatchChan) {
	defer close(w.done)
	for resp := range ch {
		if err := resp.Err(); err != nil {
			if ctx.Err() == nil {
				w.fail(fmt.Errorf("watch %s: %w", w.key, err))
			}
			return
		}
		w.mu.Lock()
		now := time.Now()
		for _, ev := range resp.Events {
			switch ev.Type {
			case mvccpb.PUT:
				next := string(ev.Kv.Value)
				if next != w.lastLeader() {
					w.changes++
					w.holders = append(w.holders, next)
				}
				w.holder = next
				w.events = append(w.events, LeaderEvent{Seen: now, Revision: ev.Kv.ModRevision, Taken: next})
			case mvccpb.DELETE:
				w.losses++
				w.events = append(w.events, LeaderEvent{Seen: now, Revision: ev.Kv.ModRevision, Lost: w.holder})
				w.holder = ""
			}
		}
		w.seenRev = max(w.seenRev, resp.Header.Revision)
		w.mu.Unlock()
	}
	if ctx.Err() == nil {
		w.fail(fmt.Errorf("watch %s ended before the run did", w.key))
	}
}

// lastLeader is the last node that held the key ("" if none yet). A node
// that retakes the key it lost is not a change of leader (it is counted
// in losses). Callers hold mu.
func (w *leaderWatch) lastLeader() string {
	if len(w.holders) == 0 {
		return ""
	}
	return w.holders[len(w.holders)-1]
}

func (w *leaderWatch) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}

// LeaderEvent is one revision of the leader key: a node took it, or the
// key of the node that held it was deleted.
type LeaderEvent struct {
	// Seen is when the watch received it (etcd does not time revisions).
	Seen     time.Time `json:"seen"`
	Revision int64     `json:"revision"`
	Taken    string    `json:"taken,omitempty"`
	Lost     string    `json:"lost,omitempty"`
}

// leaderCount is what the watch saw.
type leaderCount struct {
	Changes int
	Losses  int
	Holders []string
	Events  []LeaderEvent
}

// finish stops the watch once it has seen everything up to now and checks
// that it agrees with a final read of the key.
func (w *leaderWatch) finish(ctx context.Context, within time.Duration) (leaderCount, error) {
	defer func() { w.cancel(); <-w.done }()
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	resp, err := w.cli.Get(ctx, w.key)
	if err != nil {
		return leaderCount{}, fmt.Errorf("final read of the leader key: %w", err)
	}
	final := ""
	if len(resp.Kvs) > 0 {
		final = string(resp.Kvs[0].Value)
	}
	for {
		w.mu.Lock()
		caughtUp, holder, werr := w.seenRev >= resp.Header.Revision, w.holder, w.err
		c := leaderCount{Changes: w.changes, Losses: w.losses, Holders: slices.Clone(w.holders), Events: slices.Clone(w.events)}
		w.mu.Unlock()
		switch {
		case werr != nil:
			return c, werr
		case caughtUp && holder != final:
			return c, fmt.Errorf("the watch of %s saw %q last but the key names %q: an event was missed", w.key, holder, final)
		case caughtUp:
			return c, nil
		}
		// Asks etcd for a progress notification: a response whose
		// revision says every event before it was delivered.
		if err := w.cli.RequestProgress(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return c, fmt.Errorf("watch %s: request progress: %w", w.key, err)
		}
		select {
		case <-ctx.Done():
			return c, fmt.Errorf("the watch of %s did not reach revision %d within %s", w.key, resp.Header.Revision, within)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
