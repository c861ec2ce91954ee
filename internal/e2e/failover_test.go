package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/failover"
	"github.com/vigil-ha/vigil/internal/timeline"
)

// TestNodeCrashPromotesTheStandbyWithTheMostWAL: SIGKILL of the primary's
// postmaster and agent together. node3 is configured with the higher
// priority but is made to lag; node2, with more WAL, must win. node3 then
// replicates from node2, and node1, restarted with its agent, stays down.
func TestNodeCrashPromotesTheStandbyWithTheMostWAL(t *testing.T) {
	c := newCluster(t, clusterOptions{nodes: 3, priorities: map[string]int{"node2": 50, "node3": 200}})
	ctx := testCtx(t, 6*time.Minute)
	for _, n := range []string{"node1", "node2", "node3"} {
		c.startAgent(n)
	}
	s := c.store()
	if p := c.waitWritablePrimary(ctx, s); p != "node1" {
		t.Fatalf("initial primary = %s, want node1", p)
	}
	checker := c.startSplitBrainChecker()
	checker.waitCommits(t, "node1")
	mustExec(t, ctx, c, "node1", "create table e2e_rows (id int primary key, note text)")

	// Make node3 lag: freeze its agent (so it cannot re-point the server)
	// and cut its WAL receiver, then write on the primary.
	c.signalAgent("node3", syscall.SIGSTOP)
	mustExec(t, ctx, c, "node3", "alter system set primary_conninfo = ''")
	mustExec(t, ctx, c, "node3", "select pg_reload_conf()")
	if err := eventually(ctx, 30*time.Second, func() error {
		v, err := c.queryOn(ctx, "node3", "select count(*)::text from pg_stat_wal_receiver")
		if err != nil || v != "0" {
			return fmt.Errorf("node3 WAL receivers: %s %v", v, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mustExec(t, ctx, c, "node1", "insert into e2e_rows select g, 'before crash' from generate_series(1, 5000) g")
	end, err := c.queryOn(ctx, "node1", "select pg_current_wal_lsn()::text")
	if err != nil {
		t.Fatal(err)
	}
	if err := eventually(ctx, 30*time.Second, func() error {
		v, err := c.queryOn(ctx, "node2", "select (pg_last_wal_receive_lsn() >= $1::pg_lsn)::text", end)
		if err != nil || v != "true" {
			return fmt.Errorf("node2 received %s: %v", v, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	crashAt := time.Now()
	c.crashNode(ctx, "node1")
	c.signalAgent("node3", syscall.SIGCONT)

	newPrimary := c.waitWritablePrimary(ctx, s, "node1")
	t.Logf("new primary %s writable %s after the crash", newPrimary, time.Since(crashAt).Round(time.Millisecond))
	if newPrimary != "node2" {
		t.Fatalf("new primary = %s, want node2 (most WAL, although node3 has the higher priority)", newPrimary)
	}
	if v, err := c.queryOn(ctx, "node2", "select count(*)::text from e2e_rows"); err != nil || v != "5000" {
		t.Errorf("rows on the new primary = %s (%v), want 5000", v, err)
	}

	// node3 follows node2: a row written there appears on node3.
	mustExec(t, ctx, c, "node2", "insert into e2e_rows values (100001, 'after failover')")
	if err := eventually(ctx, 60*time.Second, func() error {
		v, err := c.queryOn(ctx, "node3", "select note from e2e_rows where id = 100001")
		if err != nil || v != "after failover" {
			return fmt.Errorf("node3: %q %v", v, err)
		}
		return nil
	}); err != nil {
		t.Errorf("row written on node2 never reached node3: %v", err)
	}

	// The killed node comes back with its agent: it must not become writable.
	c.startAgent("node1")
	time.Sleep(4 * testTTL)
	if r := c.server("node1").ProbeWrite(ctx); r.Writable() {
		t.Errorf("the former primary accepts writes after its agent restarted: %v", r)
	}
	if p := c.waitWritablePrimary(ctx, s); p != "node2" {
		t.Errorf("primary after node1 returned = %s, want node2", p)
	}
	checker.finish(t)

	// The failover left a record with every step, in order.
	hist, err := s.History(ctx)
	if err != nil || len(hist) == 0 {
		t.Fatalf("history: %d records, %v", len(hist), err)
	}
	var rec timeline.Record
	if err := json.Unmarshal(hist[len(hist)-1], &rec); err != nil {
		t.Fatal(err)
	}
	want := []string{failover.StepIsolationGuard, failover.StepAcquireLeader, failover.StepFence, failover.StepSynchronous,
		failover.StepPromote, failover.StepReadinessGate, failover.StepPublish, failover.StepStandbysFollow, failover.StepCheckpoint}
	var got []string
	for _, st := range rec.Steps {
		got = append(got, st.Name)
		if !st.OK {
			t.Errorf("step %s failed: %s", st.Name, st.Error)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("steps = %v, want %v", got, want)
	}
	if rec.Node != "node2" || !rec.OK {
		t.Errorf("record node %s ok %v", rec.Node, rec.OK)
	}
	t.Logf("failover timeline:\n%s", timeline.Format(rec))

	// The same steps were logged as JSON lines by the agent.
	data, err := os.ReadFile(filepath.Join(c.dir, "node2.steps.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var lines int
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var l timeline.StepLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Errorf("step log line %q: %v", line, err)
		}
		if l.ID == rec.ID {
			lines++
		}
	}
	if lines != len(rec.Steps) {
		t.Errorf("step log has %d lines for %s, record has %d steps", lines, rec.ID, len(rec.Steps))
	}
}

func mustExec(t *testing.T, ctx context.Context, c *cluster, node, stmt string) {
	t.Helper()
	s := c.server(node)
	conn, err := connect(ctx, s.Conn.Host, s.Conn.Port, s.Conn.User, s.Conn.Password, s.Conn.Database)
	if err != nil {
		t.Fatalf("connect %s: %v", node, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, stmt); err != nil {
		t.Fatalf("%s on %s: %v", stmt, node, err)
	}
}

// TestSynchronousModeLosesNoAcknowledgedWrite writes continuously with
// synchronous replication on, crashes the primary, and checks that every
// write the client saw acknowledged is on the new primary.
func TestSynchronousModeLosesNoAcknowledgedWrite(t *testing.T) {
	c := newCluster(t, clusterOptions{nodes: 3, syncMode: "on"})
	ctx := testCtx(t, 6*time.Minute)
	for _, n := range []string{"node1", "node2", "node3"} {
		c.startAgent(n)
	}
	s := c.store()
	if p := c.waitWritablePrimary(ctx, s); p != "node1" {
		t.Fatalf("initial primary = %s", p)
	}
	mustExec(t, ctx, c, "node1", "create table acked (id bigint primary key)")
	// Wait until the agents made replication synchronous.
	if err := eventually(ctx, 60*time.Second, func() error {
		v, err := c.queryOn(ctx, "node1", "select string_agg(sync_state, ',' order by application_name) from pg_stat_replication")
		if err != nil || v != "quorum,quorum" {
			return fmt.Errorf("sync states %q %v", v, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	checker := c.startSplitBrainChecker()

	// The writer: one row per commit, remembering every acknowledged id.
	var mu sync.Mutex
	var acked []int64
	stop := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		srv := c.server("node1")
		conn, err := connect(ctx, srv.Conn.Host, srv.Conn.Port, srv.Conn.User, srv.Conn.Password, srv.Conn.Database)
		if err != nil {
			t.Errorf("writer connect: %v", err)
			return
		}
		defer conn.Close(context.Background())
		for id := int64(1); ; id++ {
			select {
			case <-stop:
				return
			default:
			}
			wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := conn.Exec(wctx, "insert into acked values ($1)", id)
			cancel()
			if err != nil {
				return // the primary is gone: nothing more is acknowledged
			}
			mu.Lock()
			acked = append(acked, id)
			mu.Unlock()
		}
	}()
	time.Sleep(2 * time.Second)
	c.crashNode(ctx, "node1")
	close(stop)
	<-writerDone

	newPrimary := c.waitWritablePrimary(ctx, s, "node1")
	mu.Lock()
	n := len(acked)
	last := int64(0)
	if n > 0 {
		last = acked[n-1]
	}
	mu.Unlock()
	if n < 10 {
		t.Fatalf("only %d writes acknowledged before the crash", n)
	}
	got, err := c.queryOn(ctx, newPrimary, "select count(*)::text from acked where id <= $1", last)
	if err != nil {
		t.Fatal(err)
	}
	if cnt, _ := strconv.Atoi(got); cnt < n {
		t.Errorf("new primary %s has %d of the %d acknowledged writes", newPrimary, cnt, n)
	}
	t.Logf("%d acknowledged writes, all on %s", n, newPrimary)
	checker.finish(t)
}

// TestNoQuorumNoPromotion: the primary crashes while a second etcd member
// is gone too. The surviving standby must not promote without a quorum; once
// the quorum returns, it does.
func TestNoQuorumNoPromotion(t *testing.T) {
	c := newCluster(t, clusterOptions{nodes: 3})
	ctx := testCtx(t, 6*time.Minute)
	s := c.startAgents(ctx)
	c.killAgent("node2") // its server keeps running as a standby
	c.crashNode(ctx, "node1")
	deadline := time.Now().Add(5 * testTTL)
	for time.Now().Before(deadline) {
		for _, n := range []string{"node2", "node3"} {
			if v, err := c.queryOn(ctx, n, "select pg_is_in_recovery()::text"); err == nil && v != "true" {
				t.Fatalf("%s left recovery without a DCS quorum", n)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.startAgent("node2")
	p := c.waitWritablePrimary(ctx, s, "node1")
	t.Logf("with the quorum back, %s was promoted", p)
}

// TestTwoNodesAndWitness: a 2-node database cluster with a witness as the
// third etcd member. Without the witness, the surviving node must not
// promote; with it, it must.
func TestTwoNodesAndWitness(t *testing.T) {
	// node2 is also misconfigured (another maximum lag): the agents must
	// say so.
	c := newCluster(t, clusterOptions{nodes: 2, witness: true, edit: func(node string, cfg map[string]any) {
		if node == "node2" {
			cfg["failover"].(map[string]any)["maximum_lag_on_failover"] = 1 << 20
		}
	}})
	ctx := testCtx(t, 6*time.Minute)
	c.startWitness()
	c.startAgent("node1")
	c.startAgent("node2")
	s := c.store()
	if p := c.waitWritablePrimary(ctx, s); p != "node1" {
		t.Fatalf("initial primary = %s", p)
	}
	c.killWitness()
	c.crashNode(ctx, "node1")
	deadline := time.Now().Add(5 * testTTL)
	for time.Now().Before(deadline) {
		if v, err := c.queryOn(ctx, "node2", "select pg_is_in_recovery()::text"); err == nil && v != "true" {
			t.Fatal("node2 promoted with neither the primary nor the witness")
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.startWitness()
	if p := c.waitWritablePrimary(ctx, s, "node1"); p != "node2" {
		t.Fatalf("primary = %s, want node2", p)
	}
	c.stopAll()
	if log := readFile(t, c.dir+"/node2.agent.log"); !strings.Contains(log, "configuration differs between members") {
		t.Error("node2 never reported that its configuration differs from node1's")
	}
}
