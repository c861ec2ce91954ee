package dcs

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// progressKey is where a node's agent keeps the procedure it runs now
// (a failover, switchover, rejoin...), step by step: the history gets the
// record only when it ends, and `vigil ctl list --watch` shows the step
// running now.
func (s *Store) progressKey(node string) string { return s.key("progress", node) }

// ProgressWriter writes one procedure's progress under a lease of its
// own, so that the key of an agent that died mid-procedure lapses.
type ProgressWriter struct {
	s     *Store
	node  string
	lease heldLease
}

// Progress returns the writer of node's procedure progress.
func (s *Store) Progress(node string) *ProgressWriter { return &ProgressWriter{s: s, node: node} }

// progressTTLs is the lease of a progress key in lease TTLs: long enough
// for KeepAlive's spacing, short enough that a dead agent's progress goes
// soon.
const progressTTLs = 4

// Put writes data (the progress, as JSON) under the writer's lease,
// granted with the first write and again when it lapsed.
func (w *ProgressWriter) Put(ctx context.Context, data []byte) error {
	for attempt := 0; ; attempt++ {
		lease, err := w.grantedLease(ctx)
		if err != nil {
			return err
		}
		_, err = w.s.client.Put(ctx, w.s.progressKey(w.node), string(data), clientv3.WithLease(lease))
		if errors.Is(err, rpctypes.ErrLeaseNotFound) && attempt == 0 {
			w.lease.forget(lease)
			continue
		}
		if err != nil {
			return fmt.Errorf("publish progress of %s: %w", w.node, w.s.diag.explain(err))
		}
		return nil
	}
}

// KeepAlive renews the lease, for a step that runs longer than it (a
// base backup, a long replay).
func (w *ProgressWriter) KeepAlive(ctx context.Context) error {
	lease := w.lease.get()
	if lease == 0 {
		return nil
	}
	if _, err := w.s.client.KeepAliveOnce(ctx, lease); err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			w.lease.forget(lease)
		}
		return fmt.Errorf("publish progress of %s: renew lease: %w", w.node, w.s.diag.explain(err))
	}
	return nil
}

func (w *ProgressWriter) grantedLease(ctx context.Context) (clientv3.LeaseID, error) {
	if lease := w.lease.get(); lease != 0 {
		return lease, nil
	}
	g, err := w.s.client.Grant(ctx, progressTTLs*w.s.ttl)
	if err != nil {
		return 0, fmt.Errorf("publish progress of %s: grant lease: %w", w.node, w.s.diag.explain(err))
	}
	w.lease.set(g.ID)
	return g.ID, nil
}

// Done removes the progress key: the procedure ended, its record is in
// the history.
func (w *ProgressWriter) Done(ctx context.Context) error {
	return w.s.revoke(ctx, w.lease.take(), "clear progress of "+w.node)
}
