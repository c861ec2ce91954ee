package analyze_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/vigil-ha/vigil/internal/analyze"
	"github.com/vigil-ha/vigil/internal/analyze/event"
	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/lab"
	"github.com/vigil-ha/vigil/internal/lab/labtest"
	"github.com/vigil-ha/vigil/internal/pgctl"
)

func dial(ctx context.Context, s *database.Server) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=%s dbname=%s connect_timeout=5", s.Conn.Host, s.Conn.Port, s.Conn.User, s.Conn.Database))
	if err != nil {
		return nil, err
	}
	cfg.Password = s.Conn.Password
	return pgx.ConnectConfig(ctx, cfg)
}

// TestLivePromotionWithReplayBacklog promotes a real PostgreSQL 15 standby
// that is 96 MiB behind on replay while a client keeps trying to write,
// then analyses the servers' own logs. The milestones must match what the
// test saw: the promote request when it was made, the server writable
// between the last refused and the first committed write (to the log's
// millisecond), and exactly as many read-only errors as writes refused.
func TestLivePromotionWithReplayBacklog(t *testing.T) {
	l := labtest.New(t, lab.Options{Nodes: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	primary, standby := labtest.Server(t, l, "node1"), labtest.Server(t, l, "node2")
	n1, _ := l.Node("node1")
	n2, _ := l.Node("node2")

	conn, err := dial(ctx, primary)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "create table live_writes (id bigserial primary key, at timestamptz default clock_timestamp())"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	waitUntil(t, ctx, "the standby to replay the table", func() bool {
		c, err := dial(ctx, standby)
		if err != nil {
			return false
		}
		defer c.Close(ctx)
		var ok bool
		return c.QueryRow(ctx, "select to_regclass('live_writes') is not null").Scan(&ok) == nil && ok
	})
	if err := l.PauseReplay(ctx, n2); err != nil {
		t.Fatal(err)
	}
	if err := l.GenerateWAL(ctx, n1, 96); err != nil {
		t.Fatal(err)
	}
	end, err := primary.Observe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, ctx, "the standby to receive the WAL", func() bool {
		o, err := standby.Observe(ctx)
		return err == nil && o.ReceivedLSN >= end.CurrentLSN
	})
	if err := primary.Stop(ctx, pgctl.Immediate); err != nil {
		t.Fatal(err)
	}

	client, err := dial(ctx, standby)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close(context.Background())
	promoteCalled := time.Now()
	promoted := make(chan error, 1)
	go func() { promoted <- standby.Promote(ctx, 3*time.Minute) }()
	var refused int
	var lastRefusedStart, firstCommitEnd time.Time
	for {
		start := time.Now()
		_, err := client.Exec(ctx, "insert into live_writes default values")
		if err == nil {
			firstCommitEnd = time.Now()
			break
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "25006" {
			t.Fatalf("write during promotion: %v", err)
		}
		refused++
		lastRefusedStart = start
		time.Sleep(5 * time.Millisecond)
	}
	if err := <-promoted; err != nil {
		t.Fatalf("promote: %v", err)
	}
	if refused == 0 {
		t.Fatal("no write was refused: the standby had no backlog to replay")
	}

	rep := run(t, analyze.Options{}, n1.LogFile, n2.LogFile)
	lane := "node2/postgresql.log"
	f := rep.Findings
	if f == nil || f.PromotedServer != lane {
		t.Fatalf("findings %+v (files %+v)", f, rep.Files)
	}
	var received, recovered, ready *event.Event
	var readOnly int64
	for i, e := range rep.Milestones {
		if e.Source != lane {
			continue
		}
		switch {
		case e.Kind == event.PromoteReceived && received == nil:
			received = &rep.Milestones[i]
		case e.Kind == event.ArchiveRecoveryComplete && received != nil && recovered == nil:
			recovered = &rep.Milestones[i]
		case e.Kind == event.Ready && received != nil && ready == nil:
			ready = &rep.Milestones[i]
		}
	}
	for _, s := range rep.ClientErrors {
		if s.Source == lane && s.Kind == event.ReadOnlyError {
			readOnly += s.Count
		}
	}
	if received == nil || recovered == nil || ready == nil {
		t.Fatalf("milestones missing: promote %v, recovery complete %v, ready %v", received, recovered, ready)
	}
	ms := time.Millisecond // %m's precision
	t.Logf("promote called %s, received %s; last refused write %s, archive recovery complete %s, ready %s, first commit %s; %d refused, %d logged",
		clk(promoteCalled), clk(received.Time), clk(lastRefusedStart), clk(recovered.Time), clk(ready.Time), clk(firstCommitEnd), refused, readOnly)
	if received.Time.Before(promoteCalled.Add(-ms)) || received.Time.After(promoteCalled.Add(10*time.Second)) {
		t.Errorf("promote received at %s, called at %s", clk(received.Time), clk(promoteCalled))
	}
	// Recovery ends before the first write can commit, and after the last
	// write that was refused had started.
	if recovered.Time.After(firstCommitEnd.Add(ms)) {
		t.Errorf("archive recovery complete at %s, after the first commit ended at %s", clk(recovered.Time), clk(firstCommitEnd))
	}
	if f.Writable == nil || !f.Writable.Time.Equal(ready.Time) || ready.Time.Before(lastRefusedStart.Add(-ms)) {
		t.Errorf("writable %+v: want the ready line, after the last refused write started at %s", f.Writable, clk(lastRefusedStart))
	}
	// The postmaster logs "ready" once it has reaped the startup process:
	// a moment after writes work. That moment is bounded, not zero.
	if lag := ready.Time.Sub(firstCommitEnd); lag > 500*time.Millisecond {
		t.Errorf("ready logged %s after the first commit", lag)
	}
	if readOnly != int64(refused) {
		t.Errorf("%d read-only errors in the log, the client saw %d refused", readOnly, refused)
	}
	if f.Replay == nil || f.Replay.From == nil || f.Replay.To == nil || f.Replay.To.Kind != event.RedoDone || f.Replay.S <= 0 {
		t.Errorf("replay = %+v", f.Replay)
	}
	if f.Failure == nil || f.WriteOutageS == nil {
		t.Errorf("no failure or write outage: %+v", f)
	}
	if len(rep.Warnings) > 0 {
		t.Errorf("warnings: %v", rep.Warnings)
	}
}

func clk(t time.Time) string { return t.Local().Format("15:04:05.000") }

func waitUntil(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
