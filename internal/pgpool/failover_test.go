package pgpool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/analyze"
	"github.com/vigil-ha/vigil/internal/analyze/clock"
	"github.com/vigil-ha/vigil/internal/analyze/event"
	"github.com/vigil-ha/vigil/internal/analyze/input"
	"github.com/vigil-ha/vigil/internal/analyze/kingbase"
	"github.com/vigil-ha/vigil/internal/flavor"
	"github.com/vigil-ha/vigil/internal/host"
	"github.com/vigil-ha/vigil/internal/remote"
	"github.com/vigil-ha/vigil/internal/timeline"
)

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// analyzeLogs runs `vigil analyze` on the human log and the step log.
func analyzeLogs(t *testing.T, human, steps []byte) *analyze.Report {
	t.Helper()
	srcs := []input.Source{input.FromReader("failover.log", bytes.NewReader(human))}
	if steps != nil {
		srcs = append(srcs, input.FromReader("steps.jsonl", bytes.NewReader(steps)))
	}
	rep, err := analyze.Run(testCtx(t, 30*time.Second), srcs, analyze.Options{TZ: time.Local, Local: time.Local})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// parseHuman reads the human log with the analyzer's failover_stream.sh
// parser alone: the milestones in line order and the unrecognised lines.
// (The whole analysis, analyze.Run, cannot take a log without a promotion
// yet: its verdict dereferences the missing promotion.)
func parseHuman(t *testing.T, human []byte) ([]event.Kind, int64) {
	t.Helper()
	sink := event.NewSink("failover.log", "failover.log", kingbase.Format)
	if err := kingbase.Parse(testCtx(t, 10*time.Second), input.NewLines(bytes.NewReader(human), 0), sink, clock.NewResolver(time.Local, time.Local)); err != nil {
		t.Fatal(err)
	}
	var kinds []event.Kind
	for _, e := range sink.Events {
		kinds = append(kinds, e.Kind)
	}
	return kinds, sink.Unparsed
}

// milestones lists the kinds read from one file, in time order.
func milestones(rep *analyze.Report, source string) []event.Kind {
	var out []event.Kind
	for _, m := range rep.Milestones {
		if strings.HasPrefix(m.Source, source) || m.File == source {
			out = append(out, m.Kind)
		}
	}
	return out
}

func stepNames(r timeline.Record) []string {
	var out []string
	for _, s := range r.Steps {
		out = append(out, s.Name)
		if !s.OK {
			out[len(out)-1] += "!"
		}
	}
	return out
}

// before fails the test unless the first event with a comes before the
// first with b.
func before(t *testing.T, events []string, a, b []string) {
	t.Helper()
	i, j := index(events, a...), index(events, b...)
	if i < 0 || j < 0 || i >= j {
		t.Errorf("want %q (at %d) before %q (at %d); events:\n%s", a, i, b, j, strings.Join(events, "\n"))
	}
}

func TestFailoverFixesTheSeedsOrder(t *testing.T) {
	c := seedCluster(t, flavor.MustLookup(flavor.Postgres))
	// The promoted server keeps refusing writes for a while (the seed's
	// 35 s), and its commits wait for the old primary (synchronous).
	c.nodes["10.0.0.2"].refuse = 4
	c.nodes["10.0.0.2"].syncNames = "node1"
	var human, steps bytes.Buffer
	out := Failover(testCtx(t, time.Minute), fakeOptions(c, &human, &steps), seedArgs(t))
	if out.Exit != ExitOK || out.Err != nil {
		t.Fatalf("exit %d: %v\n%s", out.Exit, out.Err, human.String())
	}
	ev := c.Events()
	// Fence, asynchronous before the promotion (no commit of the new
	// primary may wait for the old one), promote, a committed write, the
	// VIP, and only then the CHECKPOINT, off the write path.
	before(t, ev, []string{"10.0.0.1:", "pg_ctl -D /data stop -m immediate"}, []string{"10.0.0.1:", "ip addr del 10.0.0.100/24"})
	before(t, ev, []string{"10.0.0.1:", "ip addr del"}, []string{"db 10.0.0.2: async"})
	before(t, ev, []string{"db 10.0.0.2: async"}, []string{"db 10.0.0.2: promoted"})
	before(t, ev, []string{"db 10.0.0.2: promoted"}, []string{"db 10.0.0.2: probe refused while replaying"})
	before(t, ev, []string{"db 10.0.0.2: probe refused while replaying"}, []string{"db 10.0.0.2: probe committed"})
	before(t, ev, []string{"db 10.0.0.2: probe committed"}, []string{"10.0.0.2:", "arping -D"})
	before(t, ev, []string{"10.0.0.2:", "arping -D"}, []string{"10.0.0.2:", "ip addr add 10.0.0.100/24 dev eth0 label eth0:2"})
	before(t, ev, []string{"ip addr add"}, []string{"10.0.0.2:", "arping -U 10.0.0.100"})
	before(t, ev, []string{"arping -U"}, []string{"via 10.0.0.100: probe committed"})
	before(t, ev, []string{"via 10.0.0.100: probe committed"}, []string{"db 10.0.0.2: checkpoint"})
	if c.vipOn != "10.0.0.2" || c.nodes["10.0.0.1"].running || c.nodes["10.0.0.2"].inRecovery {
		t.Errorf("end state: VIP on %q, old primary running %v, new primary in recovery %v", c.vipOn, c.nodes["10.0.0.1"].running, c.nodes["10.0.0.2"].inRecovery)
	}
	want := []string{"isolation_guard", "decide", "fence_old_primary", "sync_to_async", "synchronous_replication", "promote", "readiness_gate", "routes_up", "checkpoint"}
	if got := stepNames(out.Record); !slices.Equal(got, want) {
		t.Errorf("steps %v, want %v", got, want)
	}

	// The human log keeps failover_stream.sh's shape: vigil analyze
	// recognises every line, and reads the seed's milestones from it.
	rep := analyzeLogs(t, human.Bytes(), nil)
	if f := rep.Files[0]; f.Format != "kingbase-failover" || f.Unknown != 0 {
		t.Errorf("human log read as %s with %d unrecognised lines:\n%s", f.Format, f.Unknown, human.String())
	}
	wantKinds := []event.Kind{event.FailoverStart, event.TrustedPingOK, event.FailureDetected, event.OldPrimaryStop, event.VIPDeleted,
		event.SyncToAsync, event.Step, event.PromoteRequested, event.VIPAdded, event.GratuitousARP, event.CheckpointRequest, event.CheckpointDone, event.FailoverEnd}
	if got := milestones(rep, "failover.log"); !slices.Equal(got, wantKinds) {
		t.Errorf("milestones of the human log:\n got %v\nwant %v\n%s", got, wantKinds, human.String())
	}
	for _, line := range []string{"failover beging", "ping trust ip 10.0.0.254 success", "master down, let 10.0.0.2 become new primary",
		"stop the old primary db", "DEL VIP NOW AT", "promote begin...let 10.0.0.2 become master", "execute promote",
		"readiness gate: write not committed on 10.0.0.2 (still in recovery), replay backlog", "readiness gate passed: write committed",
		"sync to async", "make checkpoint", "\nCHECKPOINT\n", "ADD VIP NOW AT", "failover end"} {
		if !strings.Contains(human.String(), line) {
			t.Errorf("human log lacks %q:\n%s", line, human.String())
		}
	}
	// With the step log, the analyzer sees the write commit before the VIP.
	rep = analyzeLogs(t, human.Bytes(), steps.Bytes())
	f := rep.Findings
	if f == nil || f.Writable == nil || f.RouteUp == nil || f.ReadOnlyWindowS == nil || *f.ReadOnlyWindowS != 0 {
		t.Fatalf("findings: %+v", f)
	}
	if !strings.Contains(f.Verdict, "never reached a read-only primary") {
		t.Errorf("verdict: %s", f.Verdict)
	}
	t.Logf("failover log:\n%s\nsteps:\n%s", human.String(), timeline.Format(out.Record))
}

func TestFailoverRepeatedCallIsANoOp(t *testing.T) {
	c := seedCluster(t, flavor.MustLookup(flavor.Postgres))
	var human bytes.Buffer
	o := fakeOptions(c, &human, nil)
	if out := Failover(testCtx(t, time.Minute), o, seedArgs(t)); out.Exit != ExitOK {
		t.Fatalf("first call: exit %d: %v", out.Exit, out.Err)
	}
	first := len(c.Events())
	human.Reset()
	out := Failover(testCtx(t, time.Minute), o, seedArgs(t))
	if out.Exit != ExitOK || out.Plan.Case != CaseAlreadyDone {
		t.Fatalf("second call: exit %d case %s: %v", out.Exit, out.Plan.Case, out.Err)
	}
	for _, e := range c.Events()[first:] {
		for _, change := range []string{" stop ", "promote", "addr add", "addr del", "arping", "async", "checkpoint"} {
			if strings.Contains(e, change) {
				t.Errorf("the repeated call changed something: %s", e)
			}
		}
	}
	if !strings.Contains(human.String(), "nothing to do") || strings.Contains(human.String(), "execute promote") {
		t.Errorf("repeated call's log:\n%s", human.String())
	}
}

func TestFailoverInterruptedCallFinishes(t *testing.T) {
	// A first call promoted node 2 and died before the VIP step.
	c := seedCluster(t, flavor.MustLookup(flavor.Postgres))
	c.nodes["10.0.0.2"].inRecovery = false
	c.nodes["10.0.0.1"].running = false
	c.vipOn = ""
	var human bytes.Buffer
	out := Failover(testCtx(t, time.Minute), fakeOptions(c, &human, nil), seedArgs(t))
	if out.Exit != ExitOK || out.Plan.PromoteVia != "" || c.vipOn != "10.0.0.2" {
		t.Fatalf("exit %d via %q VIP on %q: %v\n%s", out.Exit, out.Plan.PromoteVia, c.vipOn, out.Err, human.String())
	}
	if index(c.Events(), "promoted") >= 0 {
		t.Error("promoted a second time")
	}
	// The old primary was down already: the stop says so, the status proves it.
	if !strings.Contains(human.String(), "does not exist") {
		t.Errorf("log lacks the control binary's answer for a stopped server:\n%s", human.String())
	}
}

func TestFailoverTrustedIPUnreachable(t *testing.T) {
	c := seedCluster(t, flavor.MustLookup(flavor.Postgres))
	var human bytes.Buffer
	o := fakeOptions(c, &human, nil)
	o.TrustedDialer = trustedDialer{answer: false}
	out := Failover(testCtx(t, time.Minute), o, seedArgs(t))
	if out.Exit != ExitIsolated || out.Err == nil || !strings.Contains(out.Err.Error(), "no trusted IP answered") {
		t.Fatalf("exit %d: %v", out.Exit, out.Err)
	}
	if ev := c.Events(); len(ev) != 0 {
		t.Errorf("did something without a trusted IP: %v", ev)
	}
	if !c.nodes["10.0.0.2"].inRecovery || !c.nodes["10.0.0.1"].running || c.vipOn != "10.0.0.1" {
		t.Error("the cluster changed")
	}
	got, unknown := parseHuman(t, human.Bytes())
	if want := []event.Kind{event.FailoverStart, event.TrustedPingFailed, event.StepFailed, event.FailoverEnd}; !slices.Equal(got, want) || unknown != 0 {
		t.Errorf("milestones %v (%d lines unrecognised), want %v\n%s", got, unknown, want, human.String())
	}
}

func TestFailoverStandbyFailureDetachesOnly(t *testing.T) {
	c := seedCluster(t, flavor.MustLookup(flavor.Postgres))
	var human bytes.Buffer
	args := placeholders(t, "2", "10.0.0.3", "5432", "/data", "0", "10.0.0.1", "0", "0", "5432", "/data", "10.0.0.1", "5432")
	out := Failover(testCtx(t, time.Minute), fakeOptions(c, &human, nil), args)
	if out.Exit != ExitOK || out.Plan.Case != CaseStandbyDown {
		t.Fatalf("exit %d case %s: %v", out.Exit, out.Plan.Case, out.Err)
	}
	if ev := c.Events(); len(ev) != 0 {
		t.Errorf("a standby failure did something: %v", ev)
	}
}

func TestFailoverNoNewPrimary(t *testing.T) {
	c := seedCluster(t, flavor.MustLookup(flavor.Postgres))
	var human bytes.Buffer
	args := placeholders(t, "0", "10.0.0.1", "5432", "/data", "-1", "", "0", "0", "", "", "10.0.0.1", "5432")
	out := Failover(testCtx(t, time.Minute), fakeOptions(c, &human, nil), args)
	if out.Exit != ExitNoCandidate || len(c.Events()) != 0 {
		t.Fatalf("exit %d, events %v: %v", out.Exit, c.Events(), out.Err)
	}
	if !strings.Contains(human.String(), "failover failed (exit 4)") {
		t.Errorf("log:\n%s", human.String())
	}
}

func TestFailoverFence(t *testing.T) {
	unreachable := host.Unreachable(&net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded})
	hostKey := fmt.Errorf("ssh root@10.0.0.1:22: %w", remote.ErrUnknownHostKey)
	tests := []struct {
		name       string
		err        error
		policy     string
		stillOnOld bool // the unreachable old primary still answers for the VIP
		exit       int
		promoted   bool
		vipOn      string
	}{
		{"unreachable, abort: nothing promoted", unreachable, FenceAbort, false, ExitFenceFailed, false, ""},
		{"unreachable, continue on the guard", unreachable, FenceContinue, false, ExitOK, true, "10.0.0.2"},
		{"unreachable, continue, but it still holds the VIP", unreachable, FenceContinue, true, ExitVIPFailed, true, "10.0.0.1"},
		{"unknown host key: never continue", hostKey, FenceContinue, false, ExitFenceFailed, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := seedCluster(t, flavor.MustLookup(flavor.Postgres))
			c.runErr["10.0.0.1"] = tt.err
			if !tt.stillOnOld {
				c.vipOn = ""
			}
			var human bytes.Buffer
			o := fakeOptions(c, &human, nil)
			o.FenceIfUnreachable = tt.policy
			out := Failover(testCtx(t, time.Minute), o, seedArgs(t))
			if out.Exit != tt.exit {
				t.Fatalf("exit %d, want %d: %v\n%s", out.Exit, tt.exit, out.Err, human.String())
			}
			if promoted := !c.nodes["10.0.0.2"].inRecovery; promoted != tt.promoted {
				t.Errorf("promoted = %v, want %v", promoted, tt.promoted)
			}
			if c.vipOn != tt.vipOn && !(tt.vipOn == "" && c.vipOn == "") {
				t.Errorf("VIP on %q, want %q", c.vipOn, tt.vipOn)
			}
			if tt.exit == ExitFenceFailed && index(c.Events(), "db 10.0.0.2") >= 0 {
				t.Errorf("touched the new primary after a failed fence: %v", c.Events())
			}
		})
	}
}

// TestFailoverFenceRefuses: the old primary's host answers, but the fence
// does not hold, and nothing is promoted.
func TestFailoverFenceRefuses(t *testing.T) {
	for _, tt := range []struct {
		name string
		// fails: the command on the old primary with this word fails
		// with out, and changes nothing.
		fails, out, want string
		// shows: how often the human log shows its address list.
		shows int
	}{
		// A control binary that "stops" nothing: status still says running.
		{"a running old primary", "stop", "server does not shut down", "still running", 1},
		// The address stays: vip.Remove reads the list again before it
		// reports the failure.
		{"the VIP stays on the old primary", "del", "RTNETLINK answers: Operation not permitted", "VIP is still on the old primary", 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := seedCluster(t, flavor.MustLookup(flavor.Postgres))
			var human bytes.Buffer
			o := fakeOptions(c, &human, nil)
			o.Runner = runnerFunc(func(ctx context.Context, host string, argv []string) (Result, error) {
				if host == "10.0.0.1" && slices.Contains(argv, tt.fails) {
					return Result{ExitCode: 2, Output: []byte(tt.out)}, nil
				}
				return c.Run(ctx, host, argv)
			})
			out := Failover(testCtx(t, time.Minute), o, seedArgs(t))
			if out.Exit != ExitFenceFailed || !strings.Contains(out.Err.Error(), tt.want) || !c.nodes["10.0.0.2"].inRecovery {
				t.Fatalf("exit %d: %v\n%s", out.Exit, out.Err, human.String())
			}
			if n := strings.Count(human.String(), "addr show dev eth0"); n != tt.shows {
				t.Errorf("the log shows the address list %d times, want %d:\n%s", n, tt.shows, human.String())
			}
		})
	}
}

type runnerFunc func(ctx context.Context, host string, argv []string) (Result, error)

func (f runnerFunc) Run(ctx context.Context, host string, argv []string) (Result, error) {
	return f(ctx, host, argv)
}

func TestFailoverReadinessGateTimesOut(t *testing.T) {
	c := seedCluster(t, flavor.MustLookup(flavor.Postgres))
	c.nodes["10.0.0.2"].refuse = 1 << 30
	var human bytes.Buffer
	o := fakeOptions(c, &human, nil)
	o.ReadinessTimeout = 300 * time.Millisecond
	out := Failover(testCtx(t, time.Minute), o, seedArgs(t))
	if out.Exit != ExitNotReady || !strings.Contains(out.Err.Error(), "no write committed") {
		t.Fatalf("exit %d: %v", out.Exit, out.Err)
	}
	if c.vipOn != "" || index(c.Events(), "arping") >= 0 {
		t.Errorf("the VIP moved to a server that never committed a write (on %q)", c.vipOn)
	}
	rep := analyzeLogs(t, human.Bytes(), nil)
	if got := milestones(rep, "failover.log"); !slices.Contains(got, event.StepFailed) || slices.Contains(got, event.VIPAdded) {
		t.Errorf("milestones %v", got)
	}
}

func TestFailoverTotalTimeout(t *testing.T) {
	c := seedCluster(t, flavor.MustLookup(flavor.Postgres))
	c.nodes["10.0.0.2"].refuse = 1 << 30
	var human bytes.Buffer
	o := fakeOptions(c, &human, nil)
	o.Total = 500 * time.Millisecond
	start := time.Now()
	out := Failover(testCtx(t, time.Minute), o, seedArgs(t))
	if out.Exit != ExitTimeout {
		t.Fatalf("exit %d: %v", out.Exit, out.Err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("a 500ms bound took %s", d)
	}
}

func TestFailoverDryRunChangesNothing(t *testing.T) {
	c := seedCluster(t, flavor.MustLookup(flavor.Postgres))
	var human bytes.Buffer
	o := fakeOptions(c, &human, nil)
	o.DryRun = true
	out := Failover(testCtx(t, time.Minute), o, seedArgs(t))
	if out.Exit != ExitOK || out.Plan.Case != CasePrimaryDown {
		t.Fatalf("exit %d case %s: %v", out.Exit, out.Plan.Case, out.Err)
	}
	for _, e := range c.Events() {
		if !strings.Contains(e, "addr show") && !strings.Contains(e, "probe") {
			t.Errorf("dry run did %s", e)
		}
	}
	if !strings.Contains(human.String(), "dry run: promote") || !c.nodes["10.0.0.2"].inRecovery {
		t.Errorf("dry run log:\n%s", human.String())
	}
}

// TestHostsKeepsTheDialersClassification: the dialler (remote.Dial) says
// which failures are the network's (host.ErrUnreachable); Hosts keeps
// that through its wrapping and adds no guess of its own, so host key and
// authentication failures never count as unreachable and
// fence.if_unreachable: continue never promotes past them.
func TestHostsKeepsTheDialersClassification(t *testing.T) {
	for _, tt := range []struct {
		err         error
		unreachable bool
	}{
		{host.Unreachable(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), true},
		{host.Unreachable(fmt.Errorf("ssh: connect: %w", context.DeadlineExceeded)), true},
		{fmt.Errorf("ssh root@h:22: %w", remote.ErrUnknownHostKey), false},
		{fmt.Errorf("ssh root@h:22: %w", remote.ErrHostKeyChanged), false},
		{fmt.Errorf("ssh root@h:22: %w", remote.ErrAuthFailed), false},
	} {
		h := &Hosts{Dial: func(ctx context.Context, host string) (Shell, error) { return nil, tt.err }}
		_, err := h.Run(context.Background(), "10.0.0.1", []string{"true"})
		if got := errors.Is(err, host.ErrUnreachable); err == nil || got != tt.unreachable || !errors.Is(err, tt.err) {
			t.Errorf("dial error %v: run error %v, unreachable %v, want %v", tt.err, err, got, tt.unreachable)
		}
	}
}

// fakeShell is an SSH session that records command lines.
type fakeShell struct {
	cmds   []string
	status int
	closed bool
}

func (s *fakeShell) Run(ctx context.Context, cmd string) ([]byte, []byte, error) {
	s.cmds = append(s.cmds, cmd)
	if s.status != 0 {
		return []byte("out"), []byte("err"), &remote.ExitError{Status: s.status, Command: cmd}
	}
	return []byte("out"), nil, nil
}

func (s *fakeShell) Close() error { s.closed = true; return nil }

func TestHostsRunsRemoteCommandsQuotedAndLocalOnesHere(t *testing.T) {
	sh := &fakeShell{status: 3}
	dials := 0
	h := &Hosts{
		IsLocal: func(host string) bool { return host == "127.0.0.1" },
		Dial:    func(ctx context.Context, host string) (Shell, error) { dials++; return sh, nil },
	}
	res, err := h.Run(context.Background(), "10.0.0.1", []string{"/opt/bin/sys_ctl", "-D", "/data dir", "status"})
	if err != nil || res.ExitCode != 3 || string(res.Output) != "outerr" {
		t.Fatalf("remote run: %+v, %v", res, err)
	}
	if _, err := h.Run(context.Background(), "10.0.0.1", []string{"true"}); err != nil || dials != 1 {
		t.Errorf("second command: %v, %d dials (want the session reused)", err, dials)
	}
	if sh.cmds[0] != "/opt/bin/sys_ctl -D '/data dir' status" {
		t.Errorf("command line %q", sh.cmds[0])
	}
	res, err = h.Run(context.Background(), "127.0.0.1", []string{"sh", "-c", "echo here; exit 3"})
	if err != nil || res.ExitCode != 3 || strings.TrimSpace(string(res.Output)) != "here" {
		t.Errorf("local run: %+v, %v", res, err)
	}
	if err := h.Close(); err != nil || !sh.closed {
		t.Errorf("close: %v, closed %v", err, sh.closed)
	}
}

func TestFollowRepointsAStandby(t *testing.T) {
	c := seedCluster(t, flavor.MustLookup(flavor.Postgres))
	c.nodes["10.0.0.1"].running = false
	c.nodes["10.0.0.2"].inRecovery = false
	var human, steps bytes.Buffer
	o := fakeOptions(c, &human, &steps)
	s := FollowSettings{ReplicationUser: "replicator", Passfile: "/etc/vigil/pgpass", UseSlots: true,
		AttachCommand: []string{"pcp_attach_node", "-w", "-n", "{node_id}"}}
	args := placeholders(t, "2", "10.0.0.3", "5432", "/data", "1", "10.0.0.2", "0", "0", "5432", "/data", "10.0.0.1", "5432")
	out := Follow(testCtx(t, time.Minute), o, s, args)
	if out.Exit != ExitOK {
		t.Fatalf("exit %d: %v\n%s", out.Exit, out.Err, human.String())
	}
	ev := c.Events()
	before(t, ev, []string{"db 10.0.0.2: slot node3"}, []string{"db 10.0.0.3: follow 10.0.0.2 slot \"node3\" app \"node3\""})
	before(t, ev, []string{"follow 10.0.0.2"}, []string{"localhost: pcp_attach_node -w -n 2"})
	// Called again, it finds the standby following and only attaches.
	n := len(ev)
	if out := Follow(testCtx(t, time.Minute), o, s, args); out.Exit != ExitOK || out.Plan.Case != CaseFollowDone {
		t.Fatalf("second call: exit %d case %s", out.Exit, out.Plan.Case)
	}
	if later := c.Events()[n:]; index(later, "follow") >= 0 || index(later, "pcp_attach_node") < 0 {
		t.Errorf("second call did %v", later)
	}
}

func TestFollowLeavesADownStandbyAlone(t *testing.T) {
	c := seedCluster(t, flavor.MustLookup(flavor.Postgres))
	c.nodes["10.0.0.3"].running = false
	var human bytes.Buffer
	args := placeholders(t, "2", "10.0.0.3", "5432", "/data", "1", "10.0.0.2", "0", "0", "5432", "/data", "10.0.0.1", "5432")
	out := Follow(testCtx(t, time.Minute), fakeOptions(c, &human, nil), FollowSettings{AttachCommand: []string{"pcp_attach_node"}}, args)
	if out.Exit != ExitOK || out.Plan.Case != CaseFollowSkip || len(c.Events()) != 0 {
		t.Fatalf("exit %d case %s events %v", out.Exit, out.Plan.Case, c.Events())
	}
}
