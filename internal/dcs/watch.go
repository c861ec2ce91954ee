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
// or more changes; the channel is never closed, and a watch that breaks
// (a compaction, an etcd restart) is set up again until ctx ends.
func (s *Store) WatchLeadership(ctx context.Context) <-chan struct{} {
	changed := make(chan struct{}, 1)
	for _, key := range []string{s.key("leader"), s.key("request")} {
		go s.watchKey(ctx, key, changed)
	}
	return changed
}

func (s *Store) watchKey(ctx context.Context, key string, changed chan<- struct{}) {
	const retry = 500 * time.Millisecond
	for ctx.Err() == nil {
		for resp := range s.client.Watch(clientv3.WithRequireLeader(ctx), key) {
			if resp.Err() != nil || len(resp.Events) == 0 {
				continue
			}
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
