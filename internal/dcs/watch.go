package dcs

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// WatchLeadership reports changes of the keys that decide who leads: the
// leader key (taken, handed over, released, or deleted when its lease
// expires) and the request key. An agent that waits on it acts the moment
// the key changes instead of at its next loop. A receive stands for one
// or more changes; every change made after WatchLeadership returns is
// reported (when the DCS answered its first read, which waits at most a
// lease TTL), also across a watch that breaks and is set up again (a
// compaction aside). The channel is never closed; the watches end with
// ctx.
func (s *Store) WatchLeadership(ctx context.Context) <-chan struct{} {
	changed := make(chan struct{}, 1)
	// Bounded: an agent starting while etcd does not answer must not wait
	// here; its watches then start from the first revision they get.
	var from int64
	rctx, cancel := context.WithTimeout(ctx, time.Duration(s.ttl)*time.Second)
	if resp, err := s.client.Get(rctx, s.key("leader"), clientv3.WithCountOnly()); err == nil {
		from = resp.Header.Revision + 1
	}
	cancel()
	for _, key := range []string{s.key("leader"), s.key("request")} {
		go s.watchKey(ctx, key, from, changed)
	}
	return changed
}

// watchKey watches key from revision from (0: from now on) and again,
// from the revision after the last one seen, when the watch breaks.
func (s *Store) watchKey(ctx context.Context, key string, from int64, changed chan<- struct{}) {
	const retry = 500 * time.Millisecond
	for ctx.Err() == nil {
		var opts []clientv3.OpOption
		if from > 0 {
			opts = append(opts, clientv3.WithRev(from))
		}
		for resp := range s.client.Watch(clientv3.WithRequireLeader(ctx), key, opts...) {
			if resp.CompactRevision > 0 {
				from = 0 // compacted past what we missed: from now on
			}
			if resp.Err() != nil || len(resp.Events) == 0 {
				continue
			}
			from = resp.Events[len(resp.Events)-1].Kv.ModRevision + 1
			select {
			case changed <- struct{}{}:
			default: // a change is pending already: the reader looks at the state, not the event
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(retry):
		}
	}
}
