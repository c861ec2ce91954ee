package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/pgctl"
	"github.com/vigil-ha/vigil/internal/timeline"
)

// rejoinRecord returns the newest rejoin record of node in the history.
func rejoinRecord(ctx context.Context, c *cluster, node string) (timeline.Record, bool) {
	s := c.store()
	raw, err := s.History(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	var found timeline.Record
	ok := false
	for _, r := range raw {
		var rec timeline.Record
		if json.Unmarshal(r, &rec) == nil && rec.Kind == "rejoin" && rec.Node == node {
			found, ok = rec, true
		}
	}
	return found, ok
}

// waitStreamsFrom waits until node is a standby whose WAL receiver streams
// from leader's address.
func waitStreamsFrom(ctx context.Context, c *cluster, node, leader string) error {
	ln, err := c.lab.Node(leader)
	if err != nil {
		return err
	}
	return eventually(ctx, 60*time.Second, func() error {
		v, err := c.queryOn(ctx, node, "SELECT status || ' ' || sender_host || ':' || sender_port FROM pg_stat_wal_receiver")
		if err != nil {
			return err
		}
		if want := fmt.Sprintf("streaming %s:%d", ln.Host, ln.Port); v != want {
			return fmt.Errorf("%s wal receiver %q, want %q", node, v, want)
		}
		return nil
	})
}

func insertRow(ctx context.Context, c *cluster, node, tag string) error {
	_, err := c.queryOn(ctx, node, "WITH i AS (INSERT INTO rejoin_probe (tag) VALUES ($1) RETURNING 1) SELECT count(*)::text FROM i", tag)
	return err
}

// TestRejoinAfterFailover: a former primary that diverged (it committed
// rows the new primary never saw) is brought back by `vigil ctl rejoin`
// with pg_rewind: its divergent rows are gone and it streams from the new
// primary. Then the second primary is crashed, and its agent, configured
// for automatic rejoin by base backup, brings it back by itself, keeping
// the old data directory aside.
func TestRejoinAfterFailover(t *testing.T) {
	c := newCluster(t, clusterOptions{nodes: 3, priorities: map[string]int{"node2": 150, "node3": 120},
		edit: func(node string, cfg map[string]any) {
			if node == "node2" {
				cfg["rejoin"] = map[string]any{"automatic": true, "method": "basebackup"}
			}
		}})
	ctx := testCtx(t, 8*time.Minute)
	for _, n := range []string{"node1", "node2", "node3"} {
		c.startAgent(n)
	}
	s := c.store()
	if p := c.waitWritablePrimary(ctx, s); p != "node1" {
		t.Fatalf("initial primary = %s", p)
	}
	conn, err := connect(ctx, c.server("node1").Conn.Host, c.server("node1").Conn.Port, c.server("node1").Conn.User, c.server("node1").Conn.Password, c.server("node1").Conn.Database)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE rejoin_probe (tag text)"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if err := insertRow(ctx, c, "node1", "before"); err != nil {
		t.Fatal(err)
	}

	// Failover 1: node1 dies; node2 (highest priority) takes over.
	c.crashNode(ctx, "node1")
	p := c.waitWritablePrimary(ctx, s, "node1")
	if p != "node2" {
		t.Fatalf("new primary = %s, want node2", p)
	}
	if err := insertRow(ctx, c, "node2", "after-failover"); err != nil {
		t.Fatal(err)
	}
	// node1 diverges: started on its own (as a careless operator might),
	// it commits a row the cluster never sees, then stops.
	n1, _ := c.lab.Node("node1")
	if err := c.lab.Start(ctx, n1); err != nil {
		t.Fatal(err)
	}
	if err := insertRow(ctx, c, "node1", "divergent"); err != nil {
		t.Fatal(err)
	}
	if err := c.lab.Stop(ctx, n1, pgctl.Fast); err != nil {
		t.Fatal(err)
	}

	// Its agent keeps it down: rejoin is manual for node1.
	c.startAgent("node1")
	time.Sleep(3 * testTTL)
	if running, _, err := c.server("node1").Ctl.Status(ctx); err != nil || running {
		t.Fatalf("node1 was started by its agent without a rejoin (running %v, %v)", running, err)
	}
	out := ctlRebuild(ctx, t, c, s, "rejoin", "node1", "node2")
	if !strings.Contains(out, "rejoin succeeded on node1") {
		t.Errorf("ctl rejoin did not print the rejoin's record")
	}
	if err := waitStreamsFrom(ctx, c, "node1", "node2"); err != nil {
		t.Fatal(err)
	}
	if err := insertRow(ctx, c, "node2", "after-rejoin"); err != nil {
		t.Fatal(err)
	}
	if err := eventually(ctx, 20*time.Second, func() error {
		tags, err := c.queryOn(ctx, "node1", "SELECT string_agg(tag, ',' ORDER BY tag) FROM rejoin_probe")
		if err != nil {
			return err
		}
		if tags != "after-failover,after-rejoin,before" {
			return fmt.Errorf("node1 has rows %q", tags)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	rec, ok := rejoinRecord(ctx, c, "node1")
	if !ok || !rec.OK || !strings.Contains(rec.Reason, "method rewind") {
		t.Errorf("node1's rejoin record: %+v", rec)
	}
	if _, code := c.ctl(ctx, "rejoin", "node1"); code != 2 {
		t.Errorf("a second rejoin of a streaming standby: exit %d, want 2 (refused)", code)
	}

	// Failover 2: node2 dies; its agent rejoins it automatically by base
	// backup once a new primary is writable.
	c.crashNode(ctx, "node2")
	p2 := c.waitWritablePrimary(ctx, s, "node2")
	t.Logf("second failover: %s is the primary", p2)
	c.startAgent("node2")
	if err := waitStreamsFrom(ctx, c, "node2", p2); err != nil {
		t.Fatal(err)
	}
	if err := eventually(ctx, 30*time.Second, func() error {
		rec, ok := rejoinRecord(ctx, c, "node2")
		if !ok || !rec.OK {
			return fmt.Errorf("no successful rejoin record for node2: %+v", rec)
		}
		if !strings.Contains(rec.Reason, "method basebackup") || !strings.Contains(rec.Reason, "automatic rejoin") {
			return fmt.Errorf("node2's rejoin record: %s", rec.Reason)
		}
		_, kept, found := strings.Cut(rec.Reason, "the old data directory is kept at ")
		if !found {
			return fmt.Errorf("the record does not say where the old data directory went: %s", rec.Reason)
		}
		if _, err := os.Stat(strings.TrimSpace(kept)); err != nil {
			return fmt.Errorf("old data directory: %v", err)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	if tags, err := c.queryOn(ctx, "node2", "SELECT count(*)::text FROM rejoin_probe"); err != nil || tags != "3" {
		t.Errorf("node2 after the base backup: %q rows (%v), want 3", tags, err)
	}
}
