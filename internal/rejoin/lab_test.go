package rejoin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/flavor"
	"github.com/vigil-ha/vigil/internal/lab"
	"github.com/vigil-ha/vigil/internal/lab/labtest"
	"github.com/vigil-ha/vigil/internal/pgctl"
	"github.com/vigil-ha/vigil/internal/rejoin"
	"github.com/vigil-ha/vigil/internal/timeline"
	"github.com/vigil-ha/vigil/internal/wal"
)

// The rejoin procedure against real PostgreSQL servers of a lab (root).

// divergedPair is a 2-node lab after a failover in which both sides wrote:
// node2 was promoted while node1 still ran, then node1 committed rows that
// node2 never received.
type divergedPair struct {
	lab       *lab.Lab
	old, next *database.Server
	oldNode   lab.Node
	nextNode  lab.Node
	up        database.Upstream
	// oldMarker and nextMarker were written to each server's own log.
	oldMarker, nextMarker string
}

func newDivergedPair(t *testing.T, ctx context.Context) divergedPair {
	t.Helper()
	l := labtest.New(t, lab.Options{Nodes: 2})
	p := divergedPair{lab: l, old: labtest.Server(t, l, "node1"), next: labtest.Server(t, l, "node2")}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		dst := filepath.Join(os.TempDir(), "rejoin-debug", strings.ReplaceAll(t.Name(), "/", "_"))
		_ = os.MkdirAll(dst, 0o755)
		for _, n := range l.Nodes() {
			data, _ := os.ReadFile(n.LogFile)
			_ = os.WriteFile(filepath.Join(dst, n.Name+".log"), data, 0o644)
		}
	})
	var err error
	if p.oldNode, err = l.Node("node1"); err != nil {
		t.Fatal(err)
	}
	if p.nextNode, err = l.Node("node2"); err != nil {
		t.Fatal(err)
	}
	replUser, _, err := l.Replication()
	if err != nil {
		t.Fatal(err)
	}
	p.up = database.Upstream{Host: p.next.Conn.Host, Port: p.next.Conn.Port, User: replUser, PassFile: l.PassFile(), SlotName: "node1"}

	labtest.Exec(t, ctx, p.old, "create table rejoin_rows (v text primary key)")
	labtest.Exec(t, ctx, p.old, "insert into rejoin_rows values ('common')")
	labtest.WaitFor(t, ctx, "node2 to replay the common row", func() bool {
		conn, err := labtest.TryConnect(ctx, p.next)
		if err != nil {
			return false
		}
		defer conn.Close(ctx)
		var n int
		return conn.QueryRow(ctx, "select count(*) from rejoin_rows").Scan(&n) == nil && n == 1
	})
	// Until the checkpoint a promotion requests has ended, the new primary's
	// control file still names timeline 1, and pg_rewind, which reads the
	// timeline there, reports "no rewind required" for a server that
	// diverged. That checkpoint usually takes well under a second; a frozen
	// checkpointer keeps the window open until Rejoin's own CHECKPOINT.
	freezeCheckpointerUntilCheckpoint(t, ctx, p.next)
	if err := p.next.Promote(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	labtest.Exec(t, ctx, p.old, "insert into rejoin_rows values ('divergent 1'), ('divergent 2')")
	labtest.Exec(t, ctx, p.next, "insert into rejoin_rows values ('new primary before rejoin')")
	if err := p.next.EnsureSlot(ctx, "node1"); err != nil {
		t.Fatal(err)
	}
	p.oldMarker = "rejoin-test-marker-" + p.old.Name
	p.nextMarker = "rejoin-test-marker-" + p.next.Name
	labtest.Exec(t, ctx, p.old, fmt.Sprintf("do $$ begin raise log '%s'; end $$", p.oldMarker))
	labtest.Exec(t, ctx, p.next, fmt.Sprintf("do $$ begin raise log '%s'; end $$", p.nextMarker))
	for _, n := range []struct{ file, marker string }{{p.oldNode.LogFile, p.oldMarker}, {p.nextNode.LogFile, p.nextMarker}} {
		labtest.WaitFor(t, ctx, "marker in "+n.file, func() bool {
			data, err := os.ReadFile(n.file)
			return err == nil && strings.Contains(string(data), n.marker)
		})
	}
	return p
}

// freezeCheckpointerUntilCheckpoint stops s's checkpointer (SIGSTOP) and
// resumes it once a CHECKPOINT command waits for it, or after a minute, so
// that a Rejoin that never asks for one cannot hang the test.
func freezeCheckpointerUntilCheckpoint(t *testing.T, ctx context.Context, s *database.Server) {
	t.Helper()
	var pid int
	if _, err := fmt.Sscan(labtest.QueryString(t, ctx, s, "select pid::text from pg_stat_activity where backend_type = 'checkpointer'"), &pid); err != nil || pid <= 0 {
		t.Fatalf("checkpointer of %s: pid %d, %v", s.Name, pid, err)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resume := func() { _ = syscall.Kill(pid, syscall.SIGCONT) }
	t.Cleanup(resume)
	go func() {
		defer resume()
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) && ctx.Err() == nil {
			conn, err := labtest.TryConnect(ctx, s)
			if err == nil {
				var n int
				err = conn.QueryRow(ctx, "select count(*) from pg_stat_activity where query ilike 'checkpoint' and state = 'active'").Scan(&n)
				conn.Close(ctx)
				if err == nil && n > 0 {
					return
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
}

// rows lists rejoin_rows on s, sorted.
func rows(t *testing.T, ctx context.Context, s *database.Server) string {
	t.Helper()
	qctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return labtest.QueryString(t, qctx, s, "select string_agg(v, ',' order by v) from rejoin_rows")
}

// checkRejoined proves that old streams from next, holds exactly next's
// rows, keeps its own configuration and log, and receives new writes.
func (p divergedPair) checkRejoined(t *testing.T, ctx context.Context) {
	t.Helper()
	o := labtest.Observe(t, ctx, p.old)
	if !o.InRecovery || o.Timeline != 2 || o.WALReceiver == nil || o.WALReceiver.Status != "streaming" ||
		o.WALReceiver.SenderPort != p.next.Conn.Port || o.WALReceiver.SlotName != "node1" {
		t.Errorf("%s after rejoin: in_recovery=%v timeline=%d receiver=%+v, want streaming on timeline 2 from port %d through slot node1",
			p.old.Name, o.InRecovery, o.Timeline, o.WALReceiver, p.next.Conn.Port)
	}
	want := "common,new primary before rejoin" // rows sorts them
	labtest.WaitFor(t, ctx, "the new primary's rows on "+p.old.Name, func() bool { return rows(t, ctx, p.old) == want })
	if got := rows(t, ctx, p.old); got != want {
		t.Errorf("rows on %s = %q, want %q (the divergent rows gone)", p.old.Name, got, want)
	}
	labtest.Exec(t, ctx, p.next, "insert into rejoin_rows values ('after rejoin')")
	want = "after rejoin," + want
	labtest.WaitFor(t, ctx, "a row written after the rejoin to reach "+p.old.Name, func() bool { return rows(t, ctx, p.old) == want })

	// Both tools copy the upstream's configuration and log: the node's own
	// must be back (its port is proved by the connections above).
	if got := labtest.QueryString(t, ctx, p.old, "show cluster_name"); got != p.old.Name {
		t.Errorf("cluster_name on %s = %q: the upstream's configuration was kept", p.old.Name, got)
	}
	if got := labtest.QueryString(t, ctx, p.old, "show primary_conninfo"); !strings.Contains(got, fmt.Sprintf("port=%d", p.next.Conn.Port)) || strings.Contains(got, "password") {
		t.Errorf("primary_conninfo on %s = %q", p.old.Name, got)
	}
	log, err := os.ReadFile(p.oldNode.LogFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), p.oldMarker) || strings.Contains(string(log), p.nextMarker) {
		t.Errorf("%s's log file: own marker kept %v, upstream's marker present %v; want its own log, not the upstream's copy",
			p.old.Name, strings.Contains(string(log), p.oldMarker), strings.Contains(string(log), p.nextMarker))
	}
	held, _ := filepath.Glob(filepath.Join(filepath.Dir(p.oldNode.DataDir), "*-log.vigil-rejoin-*"))
	if len(held) > 0 {
		t.Errorf("log directories left outside the data directory: %v", held)
	}
}

// checkNoOp proves that a second Rejoin of a streaming standby changes nothing.
func (p divergedPair) checkNoOp(t *testing.T, ctx context.Context, o rejoin.Options) {
	t.Helper()
	_, pidBefore, err := p.old.Ctl.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res, steps, err := run(ctx, p.old, p.up, o)
	if err != nil {
		t.Fatalf("second rejoin: %v", err)
	}
	if res.Method != rejoin.None || !strings.Contains(res.Evidence, "already streams") || len(steps) != 1 {
		t.Errorf("second rejoin = method %q evidence %q steps %+v, want a no-op that says so", res.Method, res.Evidence, steps)
	}
	if _, pidAfter, err := p.old.Ctl.Status(ctx); err != nil || pidAfter != pidBefore {
		t.Errorf("postmaster %d before the no-op rejoin, %d after (%v): want it untouched", pidBefore, pidAfter, err)
	}
}

func stepNamed(steps []timeline.Step, name string) (timeline.Step, bool) {
	i := slices.IndexFunc(steps, func(s timeline.Step) bool { return s.Name == name })
	if i < 0 {
		return timeline.Step{}, false
	}
	return steps[i], true
}

// run rejoins s to up and returns the steps recorded.
func run(ctx context.Context, s *database.Server, up database.Upstream, o rejoin.Options) (rejoin.Result, []timeline.Step, error) {
	rec := timeline.New("rejoin", "test", s.Name, "", nil, nil)
	res, err := rejoin.Run(ctx, s, up, o, rec)
	return res, rec.Record().Steps, err
}

func tempPassDirs(t *testing.T) []string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(os.TempDir(), "vigil-rejoin-*"))
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

// TestRejoinRewindsDivergedPrimary rejoins an old primary that committed
// rows after the failover: the rewind discards them and the node follows
// the new primary. Running: Rejoin stops it first. Crashed: pg_rewind
// recovers it in single-user mode first.
func TestRejoinRewindsDivergedPrimary(t *testing.T) {
	for _, crashed := range []bool{false, true} {
		name := map[bool]string{false: "running", true: "crashed"}[crashed]
		t.Run(name, func(t *testing.T) {
			ctx := labtest.Context(t, 5*time.Minute)
			p := newDivergedPair(t, ctx)
			if crashed {
				if err := p.lab.Kill(ctx, p.oldNode); err != nil {
					t.Fatal(err)
				}
				// And the new primary never saw it as a member: no slot.
				labtest.Exec(t, ctx, p.next, "select pg_drop_replication_slot('node1')")
			}
			// The rewind account's password is given as an agent has it,
			// resolved in memory; it must reach pg_rewind through a
			// temporary pgpass file only.
			o := rejoin.Options{
				Method:        rejoin.Auto,
				RewindConn:    database.ConnConfig{User: p.old.Conn.User, Password: p.old.Conn.Password, ConnectTimeout: 5 * time.Second},
				StreamTimeout: time.Minute,
			}
			passDirsBefore := tempPassDirs(t)
			began := time.Now()
			res, steps, err := run(ctx, p.old, p.up, o)
			t.Logf("rejoin took %s: %s", time.Since(began).Round(time.Millisecond), res.Evidence)
			for _, s := range steps {
				t.Logf("  %-20s %8s %s %s", s.Name, s.Duration().Round(time.Millisecond), s.Evidence, s.Error)
			}
			if err != nil {
				t.Fatalf("rejoin: %v", err)
			}
			if res.Method != rejoin.Rewind || res.RewindError != "" || res.MovedDataDir != "" {
				t.Errorf("method %q (rewind error %q, moved %q), want a rewind", res.Method, res.RewindError, res.MovedDataDir)
			}
			rw := res.Rewind
			if rw == nil || !rw.Required || rw.DivergedTimeline != 1 || rw.DivergedAt == 0 || rw.CommonCheckpoint == 0 ||
				rw.CommonCheckpoint > rw.DivergedAt || rw.CopiedKB <= 0 || !strings.HasPrefix(res.Evidence, "rewound: diverged at") {
				t.Errorf("rewind report %+v, evidence %q: want a rewind from timeline 1 with what it copied", rw, res.Evidence)
			}
			// Its own reading of the histories agrees with pg_rewind's.
			d := res.Divergence
			wantVerdict := []database.DivergenceVerdict{database.Diverged}
			if crashed {
				wantVerdict = append(wantVerdict, database.Unknown)
			}
			if d == nil || !slices.Contains(wantVerdict, d.Verdict) || d.TargetTimeline != 1 || d.UpstreamTimeline != 2 ||
				(rw != nil && d.SwitchPoint != rw.DivergedAt) {
				t.Errorf("divergence %+v, rewind %+v: want verdict in %v, timelines 1 and 2, switch point = pg_rewind's divergence", d, rw, wantVerdict)
			}
			if st, ok := stepNamed(steps, rejoin.StepUpstreamSlot); !ok || strings.Contains(st.Evidence, `replication slot "node1" created on the upstream`) != crashed {
				t.Errorf("upstream_slot step %+v: the slot must be made on the upstream exactly when it lacked it (crashed %v)", st, crashed)
			}
			if st, ok := stepNamed(steps, rejoin.StepCheckpointUp); !ok || !strings.Contains(st.Evidence, "CHECKPOINT in") {
				t.Errorf("checkpoint_upstream step %+v: want a CHECKPOINT of the just-promoted upstream", st)
			}
			if st, ok := stepNamed(steps, rejoin.StepStop); !ok || strings.HasPrefix(st.Evidence, "stopped") == crashed {
				t.Errorf("stop step %+v (crashed %v)", st, crashed)
			}
			if res.Took <= 0 || len(steps) < 9 {
				t.Errorf("took %s with %d steps", res.Took, len(steps))
			}
			js, _ := json.Marshal(struct {
				Result rejoin.Result
				Steps  []timeline.Step
			}{res, steps})
			if strings.Contains(string(js), p.old.Conn.Password) {
				t.Error("the rewind password is in the result or the steps")
			}
			if after := tempPassDirs(t); len(after) > len(passDirsBefore) {
				t.Errorf("temporary pgpass directories left: %v (before %v)", after, passDirsBefore)
			}
			p.checkRejoined(t, ctx)
			p.checkNoOp(t, ctx, o)
		})
	}
}

// TestRejoinFallsBackToBaseBackupWhenRewindImpossible removes the old
// primary's WAL from around the divergence point, which pg_rewind must read
// to find the last common checkpoint: a rewind is then impossible, RejoinRewind
// fails without touching the data directory, and RejoinAuto takes a base
// backup, keeping the old directory.
func TestRejoinFallsBackToBaseBackupWhenRewindImpossible(t *testing.T) {
	ctx := labtest.Context(t, 5*time.Minute)
	p := newDivergedPair(t, ctx)
	// More segments after the divergence, so that the one holding it is
	// not the one holding the shutdown checkpoint.
	for range 2 {
		labtest.Exec(t, ctx, p.old, "insert into rejoin_rows select 'divergent ' || pg_switch_wal()::text")
	}
	if err := p.old.Stop(ctx, pgctl.Fast); err != nil {
		t.Fatal(err)
	}

	history, err := os.ReadFile(filepath.Join(p.nextNode.DataDir, "pg_wal", "00000002.history"))
	if err != nil {
		t.Fatal(err)
	}
	switches, err := database.ParseTimelineHistory(string(history))
	if err != nil || len(switches) != 1 || switches[0].Timeline != 1 {
		t.Fatalf("node2's history %q: %+v, %v", history, switches, err)
	}
	cd, err := p.old.Ctl.ControlData(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkpoint, err := wal.ParseLSN(cd.CheckpointLSN)
	if err != nil {
		t.Fatal(err)
	}
	divergenceSeg, checkpointSeg := walSegment(1, switches[0].SwitchPoint), walSegment(cd.Timeline, checkpoint)
	if divergenceSeg >= checkpointSeg {
		t.Fatalf("divergence in segment %s, shutdown checkpoint in %s: the test needs them apart", divergenceSeg, checkpointSeg)
	}
	walDir := filepath.Join(p.oldNode.DataDir, "pg_wal")
	entries, err := os.ReadDir(walDir)
	if err != nil {
		t.Fatal(err)
	}
	var removed []string
	for _, e := range entries {
		if walName.MatchString(e.Name()) && e.Name() < checkpointSeg {
			if err := os.Remove(filepath.Join(walDir, e.Name())); err != nil {
				t.Fatal(err)
			}
			removed = append(removed, e.Name())
		}
	}
	if !slices.Contains(removed, divergenceSeg) {
		t.Fatalf("removed %v, which does not include the divergence's segment %s", removed, divergenceSeg)
	}

	// The rewind account from a pgpass file this time.
	o := rejoin.Options{
		RewindConn:     database.ConnConfig{User: p.old.Conn.User},
		RewindPassFile: p.lab.SuperuserPassFile(),
		StreamTimeout:  time.Minute,
	}
	o.Method = rejoin.Rewind
	res, steps, err := run(ctx, p.old, p.up, o)
	if err == nil || !strings.Contains(err.Error(), divergenceSeg) || res.Method != "" || res.MovedDataDir != "" {
		t.Fatalf("rewind-only rejoin without the WAL at the divergence: method %q moved %q err %v; want a failure naming segment %s",
			res.Method, res.MovedDataDir, err, divergenceSeg)
	}
	if st, ok := stepNamed(steps, rejoin.StepRewind); !ok || st.OK {
		t.Errorf("rewind step %+v, want it failed", st)
	}
	if _, ok := stepNamed(steps, rejoin.StepBaseBackup); ok {
		t.Error("a rewind-only rejoin took a base backup")
	}
	if res.Divergence == nil || res.Divergence.Verdict != database.Diverged {
		t.Errorf("divergence %+v, want diverged", res.Divergence)
	}
	if running, _, err := p.old.Ctl.Status(ctx); err != nil || running {
		t.Errorf("after a failed rewind-only rejoin the server runs=%v (%v): want it left stopped", running, err)
	}
	conf, err := os.ReadFile(filepath.Join(p.oldNode.DataDir, "vigil-lab.conf"))
	if err != nil || !strings.Contains(string(conf), fmt.Sprintf("port = %d", p.old.Conn.Port)) {
		t.Errorf("node1's own settings after a failed rewind: %v\n%s", err, conf)
	}

	o.Method = rejoin.Auto
	began := time.Now()
	res, steps, err = run(ctx, p.old, p.up, o)
	t.Logf("rejoin took %s: %s", time.Since(began).Round(time.Millisecond), res.Evidence)
	for _, s := range steps {
		t.Logf("  %-20s %8s %s %s", s.Name, s.Duration().Round(time.Millisecond), s.Evidence, s.Error)
	}
	if err != nil {
		t.Fatalf("auto rejoin: %v", err)
	}
	if res.Method != rejoin.BaseBackup || !strings.Contains(res.RewindError, divergenceSeg) ||
		!strings.Contains(res.Evidence, "rewind failed: could not open file") || !strings.Contains(res.Evidence, res.MovedDataDir) {
		t.Errorf("method %q, rewind error %q, evidence %q: want a base backup after the failed rewind", res.Method, res.RewindError, res.Evidence)
	}
	if st, ok := stepNamed(steps, rejoin.StepBaseBackup); !ok || !regexp.MustCompile(`copied \d+ kB`).MatchString(st.Evidence) {
		t.Errorf("basebackup step %+v", st)
	}

	// The old data directory is kept whole beside the new one.
	if filepath.Dir(res.MovedDataDir) != filepath.Dir(p.oldNode.DataDir) || !strings.Contains(filepath.Base(res.MovedDataDir), ".vigil-rejoin-") {
		t.Errorf("old data directory moved to %q, want beside %s", res.MovedDataDir, p.oldNode.DataDir)
	}
	for _, f := range []string{"PG_VERSION", "global/pg_control", "pg_wal/" + checkpointSeg, "vigil-lab.conf"} {
		if _, err := os.Stat(filepath.Join(res.MovedDataDir, f)); err != nil {
			t.Errorf("kept data directory: %v", err)
		}
	}
	keptCD, err := (func() (pgctl.ControlData, error) {
		c := p.old.Ctl
		c.DataDir = res.MovedDataDir
		return c.ControlData(ctx)
	})()
	if err != nil || keptCD.CheckpointLSN != cd.CheckpointLSN {
		t.Errorf("kept data directory's control file: %+v %v, want the old server's (checkpoint %s)", keptCD, err, cd.CheckpointLSN)
	}
	// The new one is the server's, 0700 like the server demands.
	fi, err := os.Stat(p.oldNode.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := os.Stat(res.MovedDataDir)
	if fi.Mode().Perm() != 0o700 || fi.Sys().(*syscall.Stat_t).Uid != old.Sys().(*syscall.Stat_t).Uid {
		t.Errorf("new data directory mode %v uid %d, old uid %d: want 0700 and the same owner", fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Uid, old.Sys().(*syscall.Stat_t).Uid)
	}
	p.checkRejoined(t, ctx)
	p.checkNoOp(t, ctx, o)
}

// TestRejoinWithoutDivergenceNeedsNoRewind: an old primary stopped cleanly
// before the failover sent all its WAL to the standby that was promoted;
// its history is a prefix of the new primary's, and Rejoin says so.
func TestRejoinWithoutDivergenceNeedsNoRewind(t *testing.T) {
	ctx := labtest.Context(t, 3*time.Minute)
	l := labtest.New(t, lab.Options{Nodes: 2})
	old, next := labtest.Server(t, l, "node1"), labtest.Server(t, l, "node2")
	replUser, _, err := l.Replication()
	if err != nil {
		t.Fatal(err)
	}
	labtest.Exec(t, ctx, old, "create table rejoin_rows (v text primary key)")
	labtest.Exec(t, ctx, old, "insert into rejoin_rows values ('common')")
	if err := old.Stop(ctx, pgctl.Fast); err != nil {
		t.Fatal(err)
	}
	if err := next.Promote(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	labtest.Exec(t, ctx, next, "insert into rejoin_rows values ('new primary')")
	if err := next.EnsureSlot(ctx, "node1"); err != nil {
		t.Fatal(err)
	}
	up := database.Upstream{Host: next.Conn.Host, Port: next.Conn.Port, User: replUser, PassFile: l.PassFile(), SlotName: "node1"}
	res, steps, err := run(ctx, old, up, rejoin.Options{
		Method:         rejoin.Rewind,
		RewindConn:     database.ConnConfig{User: old.Conn.User},
		RewindPassFile: l.SuperuserPassFile(),
	})
	t.Logf("rejoin: %s", res.Evidence)
	if err != nil {
		t.Fatal(err)
	}
	if res.Method != rejoin.Rewind || res.Rewind == nil || res.Rewind.Required || res.Rewind.CopiedKB != 0 ||
		!strings.HasPrefix(res.Evidence, "no rewind required") {
		t.Errorf("method %q, rewind %+v, evidence %q: want a rewind that found nothing to do", res.Method, res.Rewind, res.Evidence)
	}
	if d := res.Divergence; d == nil || d.Verdict != database.NotDiverged || d.TargetCheckpoint >= d.SwitchPoint {
		t.Errorf("divergence %+v, want not diverged: the shutdown checkpoint before the switch point", d)
	}
	if st, ok := stepNamed(steps, rejoin.StepRewind); !ok || !st.OK || !strings.Contains(st.Evidence, "no rewind required") {
		t.Errorf("rewind step %+v, want one that found nothing to rewind", st)
	}
	labtest.WaitFor(t, ctx, "the new primary's row on node1", func() bool { return rows(t, ctx, old) == "common,new primary" })
	if got := labtest.QueryString(t, ctx, old, "show cluster_name"); got != "node1" {
		t.Errorf("cluster_name = %q", got)
	}
}

var walName = regexp.MustCompile(`^[0-9A-F]{24}$`)

// walSegment names the 16 MB WAL segment holding lsn.
func walSegment(tli uint32, lsn wal.LSN) string {
	return fmt.Sprintf("%08X%08X%08X", tli, uint64(lsn)>>32, (uint64(lsn)&0xFFFFFFFF)>>24)
}

// TestRejoinRefusesBeforeTouchingAnything: a bad method or the server
// itself as upstream fail before any command runs (the server here does not
// exist, so any command would fail differently).
func TestRejoinRefusesBeforeTouchingAnything(t *testing.T) {
	ctx := labtest.Context(t, 30*time.Second)
	s := &database.Server{Name: "ghost", Flavor: flavor.MustLookup(flavor.Postgres),
		Conn: database.ConnConfig{Host: "127.0.0.1", Port: 5999}}
	up := database.Upstream{Host: "127.0.0.1", Port: 6000, User: "replicator"}
	cases := []struct {
		name string
		up   database.Upstream
		o    rejoin.Options
		want string
	}{
		{"unknown method", up, rejoin.Options{Method: "rsync"}, `unknown rejoin method "rsync"`},
		{"upstream is the server", database.Upstream{Host: "127.0.0.1", Port: 5999}, rejoin.Options{}, "is the server itself"},
		{"rewind source is the server", up, rejoin.Options{RewindConn: database.ConnConfig{Port: 5999}}, "is the server itself"},
		{"no upstream address", database.Upstream{}, rejoin.Options{}, "upstream has no address"},
	}
	for _, c := range cases {
		_, steps, err := run(ctx, s, c.up, c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) || len(steps) != 0 {
			t.Errorf("%s: err %v, steps %+v; want %q before any step", c.name, err, steps, c.want)
		}
	}
}
