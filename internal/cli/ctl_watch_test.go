package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vigil-ha/vigil/internal/agent"
	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
	"github.com/vigil-ha/vigil/internal/failover"
	"github.com/vigil-ha/vigil/internal/timeline"
	"github.com/vigil-ha/vigil/internal/wal"
)

func watchTestView() dcs.View {
	member := func(name string, role decision.Role, upstream string, lsn wal.LSN) dcs.Member {
		return dcs.Member{Member: decision.Member{Name: name, Role: role, Reachable: true, InRecovery: role == decision.RoleStandby,
			Writable: role == decision.RolePrimary, Timeline: 3, WAL: lsn, Upstream: upstream},
			Host: "198.18.0." + name[len(name)-1:], Port: 5432}
	}
	return dcs.View{
		Revision: 10, Leader: "node2", Primary: &dcs.Primary{Node: "node2"},
		Status: dcs.Status{Leader: "node2", WAL: "0/5000000", Timeline: 3},
		Members: map[string]dcs.Member{
			"node1": member("node1", decision.RoleStandby, "node2", 0x4F00000),
			"node2": member("node2", decision.RolePrimary, "", 0x5000000),
			"node3": member("node3", decision.RoleStandby, "node1", 0x4000000),
		},
	}
}

func TestWatchFrameFitsTheTerminalWidth(t *testing.T) {
	list := buildList("prod", watchTestView())
	at := time.Date(2026, 12, 2, 16, 30, 1, 0, time.UTC)
	f := watchFrame{At: at, Interval: time.Second, List: &list, ListAt: at}

	wide := renderFrame(f, 0)
	if !strings.Contains(wide, "MEMBER") || !strings.Contains(wide, "198.18.0.2:5432") {
		t.Fatalf("unlimited width: want the member table:\n%s", wide)
	}
	tableWidth := widest(wide)
	if got := renderFrame(f, tableWidth); got != wide {
		t.Errorf("width %d (the table's): want the same table\n%s\ngot\n%s", tableWidth, wide, got)
	}

	for _, width := range []int{tableWidth - 1, 60, 40, 24} {
		narrow := renderFrame(f, width)
		if strings.Contains(narrow, "MEMBER") {
			t.Errorf("width %d: the table does not fit, want compact lines:\n%s", width, narrow)
		}
		memberLines := 0
		for l := range strings.Lines(narrow) {
			l = strings.TrimSuffix(l, "\n")
			if n := utf8.RuneCountInString(l); n > width {
				t.Errorf("width %d: line of %d characters: %q", width, n, l)
			}
			if strings.HasPrefix(l, "node") {
				memberLines++
			}
		}
		if memberLines != 3 {
			t.Errorf("width %d: %d member lines, want one per member:\n%s", width, memberLines, narrow)
		}
	}
	compact := renderFrame(f, tableWidth-1)
	for _, want := range []string{"node2* primary tl 3 lag 0B routes writable primary", "node1 standby tl 3 lag 1.0MB streaming from node2",
		"node3 standby tl 3 lag 17MB standby, upstream node1 (not the leader)"} {
		if !strings.Contains(compact, want+"\n") {
			t.Errorf("width %d: want the line %q in\n%s", tableWidth-1, want, compact)
		}
	}
	if tiny := renderFrame(f, 24); !strings.Contains(tiny, "node3 standby tl 3 lag …\n") {
		t.Errorf("width 24: want node3's line cut with an ellipsis:\n%s", tiny)
	}
}

func TestWatchFrameShowsAnUnreadDCSAndTheLastList(t *testing.T) {
	list := buildList("prod", watchTestView())
	at := time.Date(2026, 12, 2, 16, 30, 1, 0, time.UTC)
	f := watchFrame{At: at.Add(3 * time.Second), Interval: time.Second, Error: "read cluster state from DCS: context deadline exceeded", List: &list, ListAt: at}
	got := renderFrame(f, 0)
	for _, want := range []string{"DCS NOT READ: read cluster state from DCS: context deadline exceeded", "last read at 16:30:01 UTC", "node3"} {
		if !strings.Contains(got, want) {
			t.Errorf("want %q in\n%s", want, got)
		}
	}
}

func TestShortBytes(t *testing.T) {
	for n, want := range map[uint64]string{0: "0B", 999: "999B", 1000: "1.0kB", 1536: "1.5kB", 12_000_000: "12MB", 3_100_000_000: "3.1GB"} {
		if got := shortBytes(n); got != want {
			t.Errorf("shortBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestCurrentOperationFollowsASwitchover walks the DCS through the states
// of a switchover from node1 to node2 and checks the step shown at each.
func TestCurrentOperationFollowsASwitchover(t *testing.T) {
	created := time.Date(2026, 12, 2, 16, 0, 0, 0, time.UTC)
	now := created.Add(1500 * time.Millisecond)
	req := &dcs.Request{Kind: decision.RequestSwitchover, From: "node1", To: "node2", Created: created, Actor: dcs.Actor{By: "alice"}}
	base := dcs.View{Leader: "node1", Primary: &dcs.Primary{Node: "node1"}, Status: dcs.Status{Leader: "node1"}, Request: req}
	step := func(name string, ok bool) timeline.Step {
		return timeline.Step{Name: name, Start: created.Add(time.Second), End: created.Add(time.Second), OK: ok}
	}
	oldSide := timeline.Record{ID: "s1", Kind: "switchover", Node: "node1", Start: created.Add(100 * time.Millisecond), OK: true,
		Steps: []timeline.Step{step(agent.StepRoutesDown, true), step(agent.StepHandOver, true)}}
	newSide := timeline.Record{ID: "f1", Kind: "failover", Node: "node2", Start: created.Add(time.Second), OK: true,
		Steps: []timeline.Step{step(failover.StepPublish, true), step(failover.StepStandbysFollow, true)}}
	before := timeline.Record{ID: "old", Kind: "failover", Node: "node2", Start: created.Add(-time.Hour), OK: false,
		Steps: []timeline.Step{step(failover.StepPromote, false)}}

	cases := []struct {
		name   string
		edit   func(v *dcs.View)
		recs   []timeline.Record
		step   string
		node   string
		status string
	}{
		{name: "requested", edit: func(*dcs.View) {}, recs: []timeline.Record{before}, status: stepWaiting},
		{name: "routes down", edit: func(v *dcs.View) { v.Primary = nil }, step: agent.StepRoutesDown, node: "node1", status: stepDone},
		{name: "handed over", edit: func(v *dcs.View) {
			v.Primary, v.Leader = nil, ""
			r := *req
			r.HandedOver = true
			v.Request = &r
		}, step: agent.StepHandOver, node: "node1", status: stepDone},
		{name: "old side recorded", edit: func(v *dcs.View) { v.Primary, v.Leader = nil, "" }, recs: []timeline.Record{before, oldSide},
			step: agent.StepHandOver, node: "node1", status: stepDone},
		{name: "key taken", edit: func(v *dcs.View) { v.Primary, v.Leader = nil, "node2" }, recs: []timeline.Record{oldSide},
			step: failover.StepAcquireLeader, node: "node2", status: stepDone},
		{name: "published", edit: func(v *dcs.View) { v.Primary, v.Leader = &dcs.Primary{Node: "node2"}, "node2" }, recs: []timeline.Record{oldSide},
			step: failover.StepPublish, node: "node2", status: stepDone},
		{name: "new side recorded", edit: func(v *dcs.View) { v.Primary, v.Leader = &dcs.Primary{Node: "node2"}, "node2" },
			recs: []timeline.Record{oldSide, newSide}, step: failover.StepStandbysFollow, node: "node2", status: stepDone},
	}
	for _, c := range cases {
		v := base
		c.edit(&v)
		op := currentOperation(v, c.recs, now)
		if op == nil {
			t.Fatalf("%s: no operation", c.name)
		}
		if op.Kind != "switchover" || op.From != "node1" || op.To != "node2" || op.RequestedBy != "alice" || op.Since != created {
			t.Errorf("%s: operation %+v", c.name, op)
		}
		if op.Step != c.step || op.Node != c.node || op.Status != c.status {
			t.Errorf("%s: step %q on %q %s, want %q on %q %s", c.name, op.Step, op.Node, op.Status, c.step, c.node, c.status)
		}
		line := op.describe(now)
		if !strings.HasPrefix(line, "IN PROGRESS: switchover node1 -> node2, 1.5s, requested by alice; ") || !strings.Contains(line, c.step) {
			t.Errorf("%s: %q", c.name, line)
		}
	}

	// Done: the request is cleared and the new leader published its status.
	done := dcs.View{Leader: "node2", Primary: &dcs.Primary{Node: "node2"}, Status: dcs.Status{Leader: "node2"}}
	if op := currentOperation(done, []timeline.Record{oldSide, newSide}, now); op != nil {
		t.Errorf("after the switchover: %+v", op)
	}
	// A failed step of the old side is shown as failed, with its error.
	failed := oldSide
	failed.Steps = []timeline.Step{{Name: agent.StepTargetCaughtUp, OK: false, Error: "node2 did not receive WAL"}}
	if op := currentOperation(base, []timeline.Record{failed}, now); op.Step != agent.StepTargetCaughtUp || op.Status != stepFailed ||
		!strings.Contains(op.describe(now), "node2 did not receive WAL") {
		t.Errorf("failed step: %+v", op)
	}
	// An expired request is no operation.
	if op := currentOperation(base, nil, created.Add(decision.RequestTimeout+time.Second)); op != nil {
		t.Errorf("expired request: %+v", op)
	}
}

func TestCurrentOperationSeesAnAutomaticFailover(t *testing.T) {
	now := time.Date(2026, 12, 2, 16, 0, 0, 0, time.UTC)
	healthy := dcs.View{Leader: "node1", Primary: &dcs.Primary{Node: "node1"}, Status: dcs.Status{Leader: "node1"}}
	if op := currentOperation(healthy, nil, now); op != nil {
		t.Fatalf("healthy cluster: %+v", op)
	}
	fresh := dcs.View{}
	if op := currentOperation(fresh, nil, now); op != nil {
		t.Errorf("a cluster that never had a leader: %+v", op)
	}
	free := dcs.View{Status: dcs.Status{Leader: "node1"}}
	if op := currentOperation(free, nil, now); op == nil || op.Kind != "failover" || op.From != "node1" || op.Status != stepWaiting {
		t.Errorf("leader key free: %+v", op)
	}
	free.Config.Paused = true
	if op := currentOperation(free, nil, now); op == nil || !strings.Contains(op.Evidence, "paused") {
		t.Errorf("leader key free, paused: %+v", op)
	}
	taken := dcs.View{Leader: "node3", Status: dcs.Status{Leader: "node1"}}
	op := currentOperation(taken, nil, now)
	if op == nil || op.To != "node3" || op.Step != failover.StepAcquireLeader || op.Node != "node3" {
		t.Fatalf("leader key taken by node3: %+v", op)
	}
	op.Since, op.SinceSeen = now.Add(-2*time.Second), true
	if got := op.describe(now); got != "IN PROGRESS: failover node1 -> node3, seen for 2s; step acquire_leader done on node3 (it holds the leader key; promotion and readiness gate follow)" {
		t.Errorf("describe: %q", got)
	}
}

// TestCurrentOperationShowsTheStepAnAgentReports: an agent's progress key
// names the step running now, which wins over what the keys prove; with
// nothing else to go by, a procedure in progress is the operation.
func TestCurrentOperationShowsTheStepAnAgentReports(t *testing.T) {
	now := time.Date(2026, 12, 2, 16, 0, 0, 0, time.UTC)
	progress := func(p timeline.Progress) json.RawMessage {
		data, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	running := timeline.Progress{Record: timeline.Record{Kind: "failover", Node: "node3", From: "node1", Start: now.Add(-time.Second),
		Steps: []timeline.Step{{Name: failover.StepAcquireLeader, OK: true}}}, Running: failover.StepPromote, RunningSince: now}
	taken := dcs.View{Leader: "node3", Status: dcs.Status{Leader: "node1"}, Progress: map[string]json.RawMessage{"node3": progress(running)}}
	op := currentOperation(taken, nil, now)
	if op == nil || op.Step != failover.StepPromote || op.Status != stepRunning || op.Node != "node3" || !strings.Contains(op.Evidence, "step 2, live") {
		t.Fatalf("failover with node3 promoting: %+v", op)
	}

	ended := running
	ended.Running, ended.RunningSince = "", time.Time{}
	ended.Steps = append(ended.Steps, timeline.Step{Name: failover.StepPromote, OK: false, Error: "timeout"})
	alone := dcs.View{Leader: "node1", Primary: &dcs.Primary{Node: "node1"}, Status: dcs.Status{Leader: "node1"},
		Progress: map[string]json.RawMessage{"node3": progress(ended)}}
	op = currentOperation(alone, nil, now)
	if op == nil || op.Kind != "failover" || op.To != "node3" || op.Step != failover.StepPromote || op.Status != stepFailed {
		t.Fatalf("a procedure the keys do not show: %+v", op)
	}
	alone.Progress["node3"] = json.RawMessage(`{"garbage"`)
	if op := currentOperation(alone, nil, now); op != nil {
		t.Errorf("undecodable progress taken for an operation: %+v", op)
	}
}

func TestCurrentOperationOfARejoin(t *testing.T) {
	created := time.Date(2026, 12, 2, 16, 0, 0, 0, time.UTC)
	v := dcs.View{Leader: "node2", Primary: &dcs.Primary{Node: "node2"}, Status: dcs.Status{Leader: "node2"},
		Request: &dcs.Request{Kind: decision.RequestRejoin, To: "node1", Created: created}}
	op := currentOperation(v, nil, created.Add(time.Second))
	if op == nil || op.Kind != "rejoin" || op.To != "node1" || op.Status != stepUnderWay || op.RequestedBy != dcs.Unknown {
		t.Fatalf("rejoin: %+v", op)
	}
	if got := op.describe(created.Add(time.Second)); !strings.HasPrefix(got, "IN PROGRESS: rejoin of node1, 1s, requested by unknown; under way (node1's agent") {
		t.Errorf("describe: %q", got)
	}
	rec := timeline.Record{ID: "r1", Kind: "rejoin", Node: "node1", Start: created.Add(time.Second),
		Steps: []timeline.Step{{Name: "pg_rewind", OK: false, Error: "source and target clusters are from different systems"}}}
	op = currentOperation(v, []timeline.Record{rec}, created.Add(2*time.Second))
	if op.Step != "pg_rewind" || op.Node != "node1" || op.Status != stepFailed || !strings.Contains(op.Evidence, "different systems") {
		t.Errorf("rejoin with its record: %+v", op)
	}
}

// waitOutput waits until the file out has more than from bytes and what
// follows them holds want, and returns its length.
func waitOutput(t *testing.T, out string, from int, want ...string) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if s := string(data); len(s) > from && containsEvery(s[from:], want...) {
			return len(s)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the output after byte %d:\n%s", want, from, data)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func containsEvery(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// TestCtlListWatchWithoutATerminal runs `ctl list --watch` into a plain
// writer against a real etcd: frames follow separator lines, the etcd
// going away is shown in the frames while the watch goes on, and
// cancelling the context ends the command without an error.
func TestCtlListWatchWithoutATerminal(t *testing.T) {
	peer, client := loopbackURL(t), loopbackURL(t)
	etcd, err := dcs.StartMember(dcs.MemberConfig{Name: "m1", DataDir: t.TempDir(), PeerURL: peer, ClientURL: client,
		InitialCluster: map[string]string{"m1": peer}, ClusterToken: "watch-test", TickMs: 10, ElectionMs: 100,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { etcd.Close(5 * time.Second) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := etcd.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	store, err := dcs.Open(dcs.Options{Endpoints: []string{client}, Cluster: "w", LeaseTTL: 10 * time.Second, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	node1 := dcs.Member{Member: decision.Member{Name: "node1", Role: decision.RolePrimary, Reachable: true, Writable: true, Timeline: 1},
		Host: "127.0.0.1", Port: 5432}
	if err := store.PublishMember(ctx, node1); err != nil {
		t.Fatal(err)
	}

	watchCtx, stop := context.WithCancel(ctx)
	defer stop()
	outPath, done := startWatch(t, watchCtx, "--endpoints", client, "--cluster", "w", "--timeout", "300ms", "list", "--watch", "--interval", "50ms")
	jsonCtx, stopJSON := context.WithCancel(ctx)
	defer stopJSON()
	jsonPath, jsonDone := startWatch(t, jsonCtx, "--endpoints", client, "--cluster", "w", "--timeout", "300ms", "-o", "json", "list", "--watch", "--interval", "50ms")

	mark := waitOutput(t, outPath, 0, frameSeparator+"\nevery 50ms: vigil ctl list", "cluster w, leader -", "node1", "primary")
	if data, _ := os.ReadFile(outPath); bytes.Contains(data, []byte(clearScreen)) {
		t.Errorf("the screen is cleared in a file:\n%q", data)
	}
	etcd.Close(5 * time.Second)
	mark = waitOutput(t, outPath, mark, frameSeparator+"\n", "DCS NOT READ: ", "last read at ", "node1")
	// Still running: frames keep coming after the error.
	waitOutput(t, outPath, mark, "DCS NOT READ: ")
	select {
	case err := <-done:
		t.Fatalf("the watch ended when the DCS went away: %v", err)
	default:
	}
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ctl list --watch, cancelled: %v, want no error (exit 0)", err)
		}
	case <-ctx.Done():
		t.Fatal("ctl list --watch did not end when its context was cancelled")
	}

	// -o json: one JSON object per read, the failed reads included.
	waitOutput(t, jsonPath, 0, `"error": "`)
	stopJSON()
	if err := <-jsonDone; err != nil {
		t.Errorf("ctl -o json list --watch, cancelled: %v", err)
	}
	data, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var read, failed int
	for {
		var f struct {
			Error string `json:"error"`
			List  *struct {
				Members []memberRow `json:"members"`
			} `json:"list"`
		}
		if err := dec.Decode(&f); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("-o json frame %d: %v\n%s", read+failed, err, data)
		}
		switch {
		case f.Error != "":
			failed++
		case f.List != nil && len(f.List.Members) == 1 && f.List.Members[0].Name == "node1":
			read++
		default:
			t.Errorf("-o json frame %+v", f)
		}
	}
	if read == 0 || failed == 0 {
		t.Errorf("-o json: %d frames read the cluster, %d did not; want both", read, failed)
	}
}

// startWatch runs `vigil ctl ARGS` until ctx ends, its output into a file
// (an *os.File that is no terminal); done receives what it returns.
func startWatch(t *testing.T, ctx context.Context, args ...string) (outPath string, done <-chan error) {
	t.Helper()
	outPath = filepath.Join(t.TempDir(), "watch.out")
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	cmd := newRootCmd()
	cmd.SetArgs(append([]string{"ctl"}, args...))
	cmd.SetOut(out)
	cmd.SetErr(io.Discard)
	ended := make(chan error, 1)
	go func() { ended <- cmd.ExecuteContext(ctx) }()
	return outPath, ended
}

// TestWatcherDatesAnOperationByItsFirstSight: a hand-over rewrites the
// switchover request with a new time, and an automatic failover has none.
func TestWatcherDatesAnOperationByItsFirstSight(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 16, 0, 0, 0, time.UTC)
	var w watcher
	op := func(kind, from, to string, since time.Time) *operation {
		return &operation{Kind: kind, From: from, To: to, Since: since}
	}
	steps := []struct {
		op        *operation
		at        time.Time
		since     time.Time
		sinceSeen bool
	}{
		{op("switchover", "node1", "node2", t0), t0.Add(time.Second), t0, false},
		{op("switchover", "node1", "node2", t0.Add(3*time.Second)), t0.Add(4 * time.Second), t0, false}, // handed over
		{nil, t0.Add(5 * time.Second), time.Time{}, false},
		{op("failover", "node2", "", time.Time{}), t0.Add(9 * time.Second), t0.Add(9 * time.Second), true},
		{op("failover", "node2", "node3", time.Time{}), t0.Add(10 * time.Second), t0.Add(9 * time.Second), true}, // node3 took the key
		{op("switchover", "node3", "node1", t0.Add(20*time.Second)), t0.Add(21 * time.Second), t0.Add(20 * time.Second), false},
	}
	for i, s := range steps {
		w.track(s.op, s.at)
		if s.op == nil {
			continue
		}
		if !s.op.Since.Equal(s.since) || s.op.SinceSeen != s.sinceSeen {
			t.Errorf("step %d: since %s (seen %v), want %s (seen %v)", i, s.op.Since, s.op.SinceSeen, s.since, s.sinceSeen)
		}
	}
}

func TestCtlListWatchRefusesANonPositiveInterval(t *testing.T) {
	var stderr bytes.Buffer
	code := Main([]string{"ctl", "--endpoints", "http://127.0.0.1:9", "--cluster", "w", "list", "--watch", "--interval", "0s"}, io.Discard, &stderr)
	if code != ExitUsage || !strings.Contains(stderr.String(), "--interval 0s: must be positive") {
		t.Errorf("exit %d, %q; want %d and the reason", code, stderr.String(), ExitUsage)
	}
}
