package database_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/lab"
	"github.com/vigil-ha/vigil/internal/lab/labtest"
	"github.com/vigil-ha/vigil/internal/pgctl"
	"github.com/vigil-ha/vigil/internal/wal"
)

// freePortForTest returns a loopback port that nothing listens on.
func freePortForTest(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

func asConnectError(err error, target **database.ConnectError) bool { return errors.As(err, target) }

func TestObserveRolesTimelineAndLSNOrder(t *testing.T) {
	l := labtest.New(t, lab.Options{Nodes: 3})
	ctx := labtest.Context(t, 2*time.Minute)
	primary := labtest.Server(t, l, "node1")
	standbys := []*database.Server{labtest.Server(t, l, "node2"), labtest.Server(t, l, "node3")}

	write := primary.ProbeWrite(ctx)
	if !write.Writable() {
		t.Fatalf("probe on primary: %v", write)
	}
	for _, sb := range standbys {
		labtest.WaitFor(t, ctx, sb.Name+" to replay the probe", func() bool {
			obs, err := sb.Observe(ctx)
			return err == nil && obs.ReplayedLSN >= write.CommitLSN
		})
	}

	p := labtest.Observe(t, ctx, primary)
	if !p.Reachable || p.InRecovery || p.ReadOnly {
		t.Errorf("primary: reachable=%v in_recovery=%v read_only=%v, want true false false", p.Reachable, p.InRecovery, p.ReadOnly)
	}
	if p.Timeline != 1 {
		t.Errorf("primary timeline = %d, want 1", p.Timeline)
	}
	if p.CurrentLSN < write.CommitLSN {
		t.Errorf("primary current LSN %s is behind the probe's commit %s", p.CurrentLSN, write.CommitLSN)
	}
	if p.ServerVersionNum < 150000 || !strings.HasPrefix(p.ServerVersion, "15") {
		t.Errorf("server version = %d %q, want 15", p.ServerVersionNum, p.ServerVersion)
	}
	if len(p.Standbys) != 2 {
		t.Fatalf("primary sees %d standbys, want 2: %+v", len(p.Standbys), p.Standbys)
	}
	for i, sb := range p.Standbys {
		if sb.ApplicationName != standbys[i].Name || sb.State != "streaming" || sb.SyncState != "async" {
			t.Errorf("standby %d = %+v, want %s streaming async", i, sb, standbys[i].Name)
		}
		if sb.ReplayLSN > sb.FlushLSN || sb.FlushLSN > sb.SentLSN || sb.SentLSN > p.CurrentLSN {
			t.Errorf("standby %s LSNs out of order: replay %s flush %s sent %s current %s", sb.ApplicationName, sb.ReplayLSN, sb.FlushLSN, sb.SentLSN, p.CurrentLSN)
		}
	}

	for _, s := range standbys {
		o := labtest.Observe(t, ctx, s)
		if !o.Reachable || !o.InRecovery || !o.ReadOnly {
			t.Errorf("%s: reachable=%v in_recovery=%v read_only=%v, want all true", s.Name, o.Reachable, o.InRecovery, o.ReadOnly)
		}
		if o.Timeline != 1 {
			t.Errorf("%s timeline = %d, want 1", s.Name, o.Timeline)
		}
		if o.SystemIdentifier == "" || o.SystemIdentifier != p.SystemIdentifier {
			t.Errorf("%s system identifier %q, primary %q", s.Name, o.SystemIdentifier, p.SystemIdentifier)
		}
		if o.ReplayedLSN < write.CommitLSN || o.ReplayedLSN > o.ReceivedLSN || o.ReceivedLSN > p.CurrentLSN {
			t.Errorf("%s LSNs out of order: commit %s <= replayed %s <= received %s <= primary %s", s.Name, write.CommitLSN, o.ReplayedLSN, o.ReceivedLSN, p.CurrentLSN)
		}
		if o.WALReceiver == nil || o.WALReceiver.Status != "streaming" || o.WALReceiver.SenderPort != primary.Conn.Port || o.WALReceiver.SlotName != s.Name {
			t.Errorf("%s WAL receiver = %+v, want streaming from port %d with slot %s", s.Name, o.WALReceiver, primary.Conn.Port, s.Name)
		}
		if o.ReplayPaused || o.ReplayBacklogBytes != o.ReceivedLSN.Sub(o.ReplayedLSN) {
			t.Errorf("%s paused=%v backlog=%d", s.Name, o.ReplayPaused, o.ReplayBacklogBytes)
		}
	}

	// An unreachable server is reported as such, with an error that says so.
	down := variant(primary, func(c *database.ConnConfig) { c.Port = freePortForTest(t) })
	o, err := down.Observe(ctx)
	var ce *database.ConnectError
	if o.Reachable || err == nil || !asConnectError(err, &ce) {
		t.Errorf("observe of a closed port: reachable=%v err=%v, want unreachable with a ConnectError", o.Reachable, err)
	}
}

func TestProbeWriteClassifiesEveryOutcome(t *testing.T) {
	l := labtest.New(t, lab.Options{Nodes: 2})
	ctx := labtest.Context(t, 2*time.Minute)
	primary := labtest.Server(t, l, "node1")
	standby := labtest.Server(t, l, "node2")

	first := primary.ProbeWrite(ctx)
	second := primary.ProbeWrite(ctx)
	if !first.Writable() || !second.Writable() {
		t.Fatalf("primary probes: %v / %v", first, second)
	}
	if second.Counter != first.Counter+1 || second.CommitLSN <= first.CommitLSN {
		t.Errorf("second probe counter %d lsn %s, first %d %s: want a new committed row each time", second.Counter, second.CommitLSN, first.Counter, first.CommitLSN)
	}

	r := standby.ProbeWrite(ctx)
	if r.Class != database.ProbeInRecovery || r.SQLState != "25006" {
		t.Errorf("probe on standby = %s (sqlstate %q, %v), want in_recovery with 25006", r.Class, r.SQLState, r.Err)
	}

	// A primary made read-only by configuration refuses with the same
	// SQLSTATE but is not in recovery.
	labtest.Exec(t, ctx, primary, "ALTER SYSTEM SET default_transaction_read_only = on")
	labtest.Exec(t, ctx, primary, "select pg_reload_conf()")
	labtest.WaitFor(t, ctx, "read-only primary", func() bool { return primary.ProbeWrite(ctx).Class == database.ProbeReadOnly })
	r = primary.ProbeWrite(ctx)
	if r.SQLState != "25006" || r.Writable() {
		t.Errorf("read-only primary probe = %+v", r)
	}
	labtest.Exec(t, ctx, primary, "ALTER SYSTEM RESET default_transaction_read_only")
	labtest.Exec(t, ctx, primary, "select pg_reload_conf()")
	labtest.WaitFor(t, ctx, "writable primary", func() bool { return primary.ProbeWrite(ctx).Writable() })

	// A commit that waits for a synchronous standby that does not exist.
	if err := primary.SetSynchronous(ctx, "no_such_standby"); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, time.Second)
	r = primary.ProbeWrite(short)
	cancel()
	if r.Class != database.ProbeSyncWait {
		t.Errorf("probe with a missing synchronous standby = %s (%v), want sync_wait", r.Class, r.Err)
	}
	if err := primary.SetAsync(ctx); err != nil {
		t.Fatal(err)
	}
	if r := primary.ProbeWrite(ctx); !r.Writable() {
		t.Errorf("after SetAsync: %v", r)
	}

	closed := variant(primary, func(c *database.ConnConfig) { c.Port = freePortForTest(t) })
	if r := closed.ProbeWrite(ctx); r.Class != database.ProbeConnectionFailure {
		t.Errorf("probe of a closed port = %s (%v), want connection_failure", r.Class, r.Err)
	}

	badAuth := variant(primary, func(c *database.ConnConfig) { c.Password = "wrong" })
	if r := badAuth.ProbeWrite(ctx); r.Class != database.ProbeConnectionFailure || strings.Contains(r.Error, "wrong") {
		t.Errorf("probe with a wrong password = %s (%s), want connection_failure without the password in the message", r.Class, r.Error)
	}
}

// TestPromotedStandbyWithBacklogIsReadOnlyUntilReplayed reproduces the seed
// incident: a standby behind on replay is promoted; until it has replayed its
// backlog it accepts connections and answers queries but refuses writes.
func TestPromotedStandbyWithBacklogIsReadOnlyUntilReplayed(t *testing.T) {
	l := labtest.New(t, lab.Options{Nodes: 2})
	ctx := labtest.Context(t, 4*time.Minute)
	primary := labtest.Server(t, l, "node1")
	standby := labtest.Server(t, l, "node2")
	n2, _ := l.Node("node2")
	n1, _ := l.Node("node1")

	if err := l.PauseReplay(ctx, n2); err != nil {
		t.Fatal(err)
	}
	if err := l.GenerateWAL(ctx, n1, 160); err != nil {
		t.Fatal(err)
	}
	end := labtest.Observe(t, ctx, primary).CurrentLSN
	labtest.WaitFor(t, ctx, "standby to receive the primary's WAL", func() bool {
		o, err := standby.Observe(ctx)
		return err == nil && o.ReceivedLSN >= end
	})
	before := labtest.Observe(t, ctx, standby)
	if !before.ReplayPaused || before.ReplayBacklogBytes < 64<<20 {
		t.Fatalf("standby before promotion: paused=%v backlog=%d, want paused with >= 64 MiB", before.ReplayPaused, before.ReplayBacklogBytes)
	}
	if err := primary.Stop(ctx, pgctl.Immediate); err != nil {
		t.Fatal(err)
	}

	promoted := make(chan error, 1)
	go func() { promoted <- standby.Promote(ctx, 3*time.Minute) }()

	// Promotion ends the pause (PostgreSQL >= 14), so a standby seen
	// replaying again while in recovery is a promotion under way. Writes
	// refused then are the seed's read-only window.
	var refusedDuringPromotion, backlogSeen int
	var promoteErr error
	var promoteDone bool
	for !promoteDone {
		o, oerr := standby.Observe(ctx)
		r := standby.ProbeWrite(ctx)
		if oerr == nil && o.InRecovery && !o.ReplayPaused && r.Class == database.ProbeInRecovery {
			refusedDuringPromotion++
			if r.ReplayBacklogBytes > 0 {
				backlogSeen++
			}
		}
		select {
		case promoteErr = <-promoted:
			promoteDone = true
		case <-ctx.Done():
			t.Fatal("promotion did not finish")
		default:
		}
	}
	if promoteErr != nil {
		t.Fatalf("promote: %v", promoteErr)
	}
	if refusedDuringPromotion == 0 || backlogSeen == 0 {
		t.Errorf("writes refused while the promotion replayed its backlog: %d (with backlog reported: %d), want > 0", refusedDuringPromotion, backlogSeen)
	}
	if r := standby.ProbeWrite(ctx); !r.Writable() {
		t.Errorf("after promotion finished: %v", r)
	}
	after := labtest.Observe(t, ctx, standby)
	if after.InRecovery || after.Timeline != 2 || after.CurrentLSN < end {
		t.Errorf("promoted: in_recovery=%v timeline=%d lsn=%s (primary ended at %s)", after.InRecovery, after.Timeline, after.CurrentLSN, end)
	}
	// Promoting a primary is a no-op.
	if err := standby.Promote(ctx, time.Minute); err != nil {
		t.Errorf("second promote: %v", err)
	}
}

func TestCheckpointAndSynchronousSettings(t *testing.T) {
	l := labtest.New(t, lab.Options{Nodes: 3})
	ctx := labtest.Context(t, 2*time.Minute)
	primary := labtest.Server(t, l, "node1")

	redoBefore := labtest.QueryString(t, ctx, primary, "select redo_lsn::text from pg_control_checkpoint()")
	labtest.Exec(t, ctx, primary, "create table checkpoint_marker as select generate_series(1, 1000) as i")
	if err := primary.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	redoAfter := labtest.QueryString(t, ctx, primary, "select redo_lsn::text from pg_control_checkpoint()")
	b, _ := wal.ParseLSN(redoBefore)
	a, _ := wal.ParseLSN(redoAfter)
	if a <= b {
		t.Errorf("redo LSN after CHECKPOINT %s, before %s: want it to advance", a, b)
	}

	if err := primary.SetSynchronous(ctx, "node2", "node3"); err != nil {
		t.Fatal(err)
	}
	if got := labtest.QueryString(t, ctx, primary, "show synchronous_standby_names"); got != `ANY 1 ("node2", "node3")` {
		t.Errorf("synchronous_standby_names = %q", got)
	}
	labtest.WaitFor(t, ctx, "standbys to become quorum standbys", func() bool {
		o, err := primary.Observe(ctx)
		if err != nil || len(o.Standbys) != 2 {
			return false
		}
		return o.Standbys[0].SyncState == "quorum" && o.Standbys[1].SyncState == "quorum"
	})
	if r := primary.ProbeWrite(ctx); !r.Writable() {
		t.Errorf("write with quorum standbys: %v", r)
	}

	if err := primary.SetAsync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := labtest.QueryString(t, ctx, primary, "show synchronous_standby_names"); got != "" {
		t.Errorf("synchronous_standby_names after SetAsync = %q, want empty", got)
	}
	if got := labtest.Observe(t, ctx, primary).SynchronousStandbyNames; got != "" {
		t.Errorf("observed synchronous_standby_names = %q", got)
	}
	if err := primary.SetSynchronous(ctx); err == nil {
		t.Error("SetSynchronous with no names succeeded")
	}
}

func TestFollowNewPrimary(t *testing.T) {
	l := labtest.New(t, lab.Options{Nodes: 3})
	ctx := labtest.Context(t, 3*time.Minute)
	old := labtest.Server(t, l, "node1")
	next := labtest.Server(t, l, "node2")
	other := labtest.Server(t, l, "node3")
	replUser, _, err := l.Replication()
	if err != nil {
		t.Fatal(err)
	}

	// A clean shutdown sends all WAL to the standbys, so the old primary has
	// not diverged and can follow the new one without a rewind.
	if err := old.Stop(ctx, pgctl.Fast); err != nil {
		t.Fatal(err)
	}
	if err := next.Promote(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	up := func(slot string) database.Upstream {
		return database.Upstream{Host: next.Conn.Host, Port: next.Conn.Port, User: replUser, PassFile: l.PassFile(), SlotName: slot}
	}
	if err := next.Follow(ctx, up("node2")); err == nil || !strings.Contains(err.Error(), "running primary") {
		t.Errorf("Follow on a running primary: %v, want a refusal", err)
	}

	for _, s := range []*database.Server{other, old} { // a running standby, then a stopped server
		if err := next.EnsureSlot(ctx, s.Name); err != nil {
			t.Fatal(err)
		}
		if err := s.Follow(ctx, up(s.Name)); err != nil {
			t.Fatal(err)
		}
		if err := s.WaitStreaming(ctx, next.Conn.Host, next.Conn.Port); err != nil {
			t.Fatal(err)
		}
	}
	if err := next.EnsureSlot(ctx, "node3"); err != nil {
		t.Errorf("EnsureSlot on an existing slot: %v", err)
	}

	labtest.Exec(t, ctx, next, "create table followed (v text)")
	labtest.Exec(t, ctx, next, "insert into followed values ('written on the new primary')")
	for _, s := range []*database.Server{other, old} {
		labtest.WaitFor(t, ctx, "row to reach "+s.Name, func() bool {
			conn, err := labtest.TryConnect(ctx, s)
			if err != nil {
				return false
			}
			defer conn.Close(ctx)
			var v string
			return conn.QueryRow(ctx, "select v from followed").Scan(&v) == nil && v == "written on the new primary"
		})
		o := labtest.Observe(t, ctx, s)
		if !o.InRecovery || o.Timeline != 2 {
			t.Errorf("%s after follow: in_recovery=%v timeline=%d, want a standby on timeline 2", s.Name, o.InRecovery, o.Timeline)
		}
	}
}

// variant is s reached with other connection settings: a new Server (a
// Server holds what it learnt of its server, which must not be copied).
func variant(s *database.Server, change func(*database.ConnConfig)) *database.Server {
	v := &database.Server{Name: s.Name, Flavor: s.Flavor, Conn: s.Conn, Ctl: s.Ctl, StartOptions: s.StartOptions, Logger: s.Logger}
	change(&v.Conn)
	return v
}
