package analyze_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/analyze"
	"github.com/vigil-ha/vigil/internal/analyze/event"
	"github.com/vigil-ha/vigil/internal/analyze/input"
	"github.com/vigil-ha/vigil/internal/timeline"
	"golang.org/x/text/encoding/simplifiedchinese"
)

const (
	seedFailover = "testdata/seed/failover.log"
	seedSysLog   = "testdata/seed/sys_log/kingbase-2023-09-19_090002.log"
)

func shanghai(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func run(t testing.TB, o analyze.Options, paths ...string) *analyze.Report {
	t.Helper()
	srcs, errs := input.Expand(paths, strings.NewReader(""))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return runSources(t, o, srcs...)
}

func runSources(t testing.TB, o analyze.Options, srcs ...input.Source) *analyze.Report {
	t.Helper()
	if o.Local == nil {
		o.Local = time.UTC
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := analyze.Run(ctx, srcs, o)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestSeedIncident is the seed reconstructed: the failover_stream.sh log and
// the new primary's sys_log. The analysis must find the VIP up at 15:12:01,
// the database writable at 15:12:36, the 35 s window, the 140 statements
// refused in it, and the five checks that passed while it was read-only.
func TestSeedIncident(t *testing.T) {
	loc := shanghai(t)
	for _, tt := range []struct {
		name string
		o    analyze.Options
	}{
		{"with --tz", analyze.Options{TZ: loc}},
		// Without --tz the failover log, which has no zone, is read in
		// the zone of the server log (CST) — on a machine in UTC.
		{"zone from the server log", analyze.Options{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rep := run(t, tt.o, seedFailover, filepath.Dir(seedSysLog))
			if len(rep.Failovers) != 1 || rep.Findings == nil {
				t.Fatalf("%d failovers", len(rep.Failovers))
			}
			f := rep.Findings
			at := func(m *analyze.Mark) string {
				if m == nil {
					return "<nil>"
				}
				return m.Time.In(loc).Format("2006-01-02 15:04:05")
			}
			if at(f.RouteUp) != "2023-09-19 15:12:01" || f.RouteUp.Kind != event.VIPAdded || f.RouteUp.Line != 16 {
				t.Errorf("route up = %s %+v", at(f.RouteUp), f.RouteUp)
			}
			if at(f.Writable) != "2023-09-19 15:12:36" || f.Writable.Kind != event.Ready || f.Writable.File != seedSysLog {
				t.Errorf("writable = %s %+v", at(f.Writable), f.Writable)
			}
			if f.ReadOnlyWindowS == nil || *f.ReadOnlyWindowS != 35 {
				t.Errorf("read-only window = %v, want 35 s", f.ReadOnlyWindowS)
			}
			if f.ReadOnlyErrors != 140 || f.ReadOnlyErrorsFrom != "route_up" {
				t.Errorf("read-only errors = %d from %s, want 140 from route_up", f.ReadOnlyErrors, f.ReadOnlyErrorsFrom)
			}
			if f.WriteOutageS == nil || *f.WriteOutageS != 40 || f.Failure.Kind != event.UpstreamLost {
				t.Errorf("write outage = %v from %+v, want 40 s from the lost WAL stream", f.WriteOutageS, f.Failure)
			}
			if f.ReplayS == nil || *f.ReplayS != 34 {
				t.Errorf("replay = %v, want 34 s (promote 15:12:01 -> redo done 15:12:35)", f.ReplayS)
			}
			if len(f.ChecksPassedReadOnly) != 5 {
				t.Errorf("%d checks passed while read-only, want 5", len(f.ChecksPassedReadOnly))
			}
			if f.PromotedServer != "kingbase-2023-09-19_090002.log" {
				t.Errorf("promoted server = %q", f.PromotedServer)
			}
			for _, want := range []string{"The VIP came up at 15:12:01", "35 s before", "140 statements failed", "select 33333, CHECKPOINT"} {
				if !strings.Contains(f.Verdict, want) {
					t.Errorf("verdict lacks %q:\n%s", want, f.Verdict)
				}
			}
			if len(f.Advice) < 3 {
				t.Errorf("advice = %v", f.Advice)
			}
			for _, ev := range []string{seedFailover + ":16", seedSysLog + ":300"} {
				if !strings.Contains(strings.Join(f.Evidence, " "), ev) {
					t.Errorf("evidence %v lacks %s", f.Evidence, ev)
				}
			}
			if len(rep.Warnings) != 0 {
				t.Errorf("warnings: %v", rep.Warnings)
			}
		})
	}
}

// TestSeedWrongZone: the failover log read in UTC beside a server log in
// CST puts the promote request 8 hours away from its receipt. The report
// says so, instead of inventing a timeline.
func TestSeedWrongZone(t *testing.T) {
	rep := run(t, analyze.Options{TZ: time.UTC}, seedFailover, seedSysLog)
	var found bool
	for _, w := range rep.Warnings {
		if strings.Contains(w, "clocks disagree") && strings.Contains(w, "time-zone mismatch") && strings.Contains(w, "8h0m0s") {
			found = true
		}
	}
	if !found {
		t.Errorf("no time-zone warning in %v", rep.Warnings)
	}
}

// TestSeedClusterLogAlone: the script's log alone cannot show when the
// database became writable; the verdict says which log is missing.
func TestSeedClusterLogAlone(t *testing.T) {
	rep := run(t, analyze.Options{TZ: shanghai(t)}, "testdata/seed/failover-2023-09-21-noload.log")
	f := rep.Findings
	if f == nil || f.Writable != nil || f.ReadOnlyWindowS != nil || f.PromotedServer != "" {
		t.Fatalf("findings = %+v", f)
	}
	if len(f.ChecksPassedReadOnly) != 5 || !strings.Contains(f.Verdict, "no server log") {
		t.Errorf("checks %d verdict %q", len(f.ChecksPassedReadOnly), f.Verdict)
	}
}

// TestAbortedFailover: a failover_stream.sh log that stops before the
// promotion (the trusted-IP check failed, or the log is cut) is reported as
// such, not as a crash.
func TestAbortedFailover(t *testing.T) {
	data, err := os.ReadFile(seedFailover)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	path := filepath.Join(t.TempDir(), "aborted.log")
	if err := os.WriteFile(path, []byte(strings.Join(lines[:6], "")), 0o644); err != nil {
		t.Fatal(err)
	}
	rep := run(t, analyze.Options{TZ: shanghai(t)}, path)
	if f := rep.Findings; f == nil || !strings.Contains(f.Verdict, "No promotion appears in these logs") {
		t.Fatalf("findings = %+v", rep.Findings)
	}
}

func stepLog(t *testing.T, legacy bool, t0 time.Time) string {
	t.Helper()
	var b bytes.Buffer
	r := timeline.New("failover", "main", "node2", "node1", &b, nil)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	steps := []timeline.Step{{Name: "isolation_guard", Start: at(0), End: at(1), OK: true}, {Name: "acquire_leader", Start: at(1), End: at(4), OK: true}}
	if legacy {
		steps = append(steps,
			timeline.Step{Name: "routes_up", Start: at(5), End: at(6), OK: true, Evidence: "legacy order: routes up before the promotion"},
			timeline.Step{Name: "promote", Start: at(6), End: at(30), OK: true},
			timeline.Step{Name: "liveness_check", Start: at(30), End: at(35), OK: true},
			timeline.Step{Name: "checkpoint", Start: at(35), End: at(90), OK: true})
	} else {
		steps = append(steps,
			timeline.Step{Name: "promote", Start: at(5), End: at(7005), OK: true, Evidence: "left recovery: timeline 1 -> 2, WAL 0/C059F28 (replay backlog before: 134346824 bytes)"},
			timeline.Step{Name: "readiness_gate", Start: at(7005), End: at(7013), OK: true},
			timeline.Step{Name: "publish_writable", Start: at(7013), End: at(7015), OK: true},
			timeline.Step{Name: "routes_up", Start: at(7015), End: at(7500), OK: true})
	}
	for _, s := range steps {
		r.Add(s)
	}
	return b.String()
}

// serverLog writes a PostgreSQL 15 log of a promotion that became writable
// 7 s after the request, with read-only errors every 100 ms until then.
func serverLog(t0 time.Time) string {
	var b strings.Builder
	line := func(d time.Duration, pid int, sev, msg string) {
		b.WriteString(t0.Add(d).UTC().Format("2006-01-02 15:04:05.000 UTC"))
		b.WriteString(" [")
		b.WriteString(strconv.Itoa(pid))
		b.WriteString("] " + sev + ":  " + msg + "\n")
	}
	line(-5*time.Second, 700, "FATAL", "could not receive data from WAL stream: server closed the connection unexpectedly")
	line(10*time.Millisecond, 701, "LOG", "received promote request")
	for i := 1; i <= 69; i++ {
		line(10*time.Millisecond+time.Duration(i)*100*time.Millisecond, 900+i, "ERROR", "cannot execute INSERT in a read-only transaction")
	}
	line(6990*time.Millisecond, 701, "LOG", "redo done at 0/C059F28 system usage: CPU: user: 3.1 s, system: 1.2 s, elapsed: 309.39 s")
	line(7000*time.Millisecond, 700, "LOG", "database system is ready to accept connections")
	return b.String()
}

func TestVigilOrderHasNoExposure(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	rep := runSources(t, analyze.Options{},
		input.FromReader("node2.steps.jsonl", strings.NewReader(stepLog(t, false, t0))),
		input.FromReader("node2/postgresql.log", strings.NewReader(serverLog(t0))))
	f := rep.Findings
	if f == nil || f.ReadOnlyWindowS == nil || *f.ReadOnlyWindowS != 0 {
		t.Fatalf("findings %+v", f)
	}
	// Writable at the server's "ready" (7.000 s), before the gate's commit
	// (7.013 s): the earliest proof counts.
	if f.Writable.Kind != event.Ready || !f.Writable.Time.Equal(t0.Add(7*time.Second)) {
		t.Errorf("writable = %+v", f.Writable)
	}
	if f.RouteUp.Kind != event.RouteUp || f.ReadOnlyErrors != 0 {
		t.Errorf("route %+v errors %d", f.RouteUp, f.ReadOnlyErrors)
	}
	if f.Replay == nil || f.Replay.BacklogBytes != 134346824 || !strings.Contains(f.Replay.Cause, "128.1 MB") {
		t.Errorf("replay = %+v", f.Replay)
	}
	if f.WriteOutageS == nil || *f.WriteOutageS != 12 {
		t.Errorf("write outage = %v, want 12 s (WAL stream lost at -5 s)", f.WriteOutageS)
	}
	if !strings.Contains(f.Verdict, "never reached a read-only primary") {
		t.Errorf("verdict: %s", f.Verdict)
	}
}

func TestLegacyOrderIsExposed(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	rep := runSources(t, analyze.Options{},
		input.FromReader("node2.steps.jsonl", strings.NewReader(stepLog(t, true, t0))),
		input.FromReader("postgresql.log", strings.NewReader(serverLog(t0))))
	f := rep.Findings
	if f == nil || f.ReadOnlyWindowS == nil || *f.ReadOnlyWindowS != 6.994 {
		t.Fatalf("window = %v", f.ReadOnlyWindowS)
	}
	if f.ReadOnlyErrors != 69 || len(f.ChecksPassedReadOnly) != 2 {
		t.Errorf("errors %d checks %d", f.ReadOnlyErrors, len(f.ChecksPassedReadOnly))
	}
}

// TestRedoRange: a server that restarted its recovery near the failover
// tells how much WAL it replayed.
func TestRedoRange(t *testing.T) {
	log := `2025-03-01 10:00:00.000 UTC [1] LOG:  database system was interrupted while in recovery at log time 2025-03-01 09:55:00 UTC
2025-03-01 10:00:00.100 UTC [1] LOG:  redo starts at 0/10000028
2025-03-01 10:00:01.000 UTC [1] LOG:  received promote request
2025-03-01 10:00:21.000 UTC [1] LOG:  redo done at 0/50000028
2025-03-01 10:00:21.100 UTC [0] LOG:  database system is ready to accept connections
`
	rep := runSources(t, analyze.Options{}, input.FromReader("pg.log", strings.NewReader(log)))
	r := rep.Findings.Replay
	if r == nil || r.Bytes != 1<<30 || r.S != 20 || !strings.Contains(r.Cause, "0/10000028 to 0/50000028: 1.00 GB") {
		t.Fatalf("replay = %+v", r)
	}
}

func TestTwoFailoversAreSeparate(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	log := serverLog(t0) + serverLog(t0.Add(time.Hour))
	rep := runSources(t, analyze.Options{}, input.FromReader("pg.log", strings.NewReader(log)))
	if len(rep.Failovers) != 2 || rep.Findings != rep.Failovers[1] || rep.Failovers[0].ReadOnlyErrors != 69 || rep.Failovers[1].ReadOnlyErrors != 69 {
		t.Fatalf("failovers %d", len(rep.Failovers))
	}
	narrowed := runSources(t, analyze.Options{Since: t0.Add(30 * time.Minute)}, input.FromReader("pg.log", strings.NewReader(log)))
	if len(narrowed.Failovers) != 1 {
		t.Errorf("--since: %d failovers", len(narrowed.Failovers))
	}
}

func gbk(t *testing.T, s string) []byte {
	t.Helper()
	b, err := simplifiedchinese.GBK.NewEncoder().Bytes([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBadInput: every kind of bad file gets a clear message of its own,
// the good files are still analysed, and nothing hangs.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	seedLog, err := os.ReadFile(seedSysLog)
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(seedLog)
	zw.Close()
	huge := "2025-03-01 10:00:00.000 UTC [1] LOG:  " + strings.Repeat("x", 1<<20) + "\n2025-03-01 10:00:01.000 UTC [1] LOG:  received promote request\n"
	files := map[string]struct {
		data    []byte
		problem string // File.Problem, or "" for a file that is read
		warning string // a warning the file must carry
		check   func(*testing.T, analyze.File)
	}{
		"empty.log":     {data: nil, problem: "empty file"},
		"binary.bin":    {data: []byte("\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00"), problem: "binary data"},
		"prose.txt":     {data: []byte("just some notes\nabout nothing\n"), problem: "format not recognised"},
		"truncated.log": {data: seedLog[:len(seedLog)-20], warning: "does not end with a newline"},
		"cut.log.gz":    {data: gz.Bytes()[:gz.Len()*2/3], warning: "read error"},
		"gbk.log": {data: gbk(t, "-----------------2023-09-19 15:11:57 failover beging-----\n检查网关通信\nADD VIP NOW AT 2023-09-19 15:12:01 ON enp0s3\n"), warning: "GBK",
			check: func(t *testing.T, f analyze.File) {
				if f.Encoding != "gbk" || f.Milestones != 2 {
					t.Errorf("gbk file: %+v", f)
				}
			}},
		"mixed.log": {data: append(append([]byte{}, seedLog[:2000]...), []byte("\n{\"json\": true}\nexecute promote\nADD VIP NOW AT 2023-09-19 15:12:01 ON enp0s3\n")...), warning: "mixed formats"},
		"huge-line.log": {data: []byte(huge), warning: "longer than",
			check: func(t *testing.T, f analyze.File) {
				if f.LongCut != 1 || f.Milestones != 1 {
					t.Errorf("1 MB line: %+v", f)
				}
			}},
	}
	var paths []string
	for name, f := range files {
		paths = append(paths, write(name, f.data))
	}
	paths = append(paths, seedFailover)
	start := time.Now()
	rep := run(t, analyze.Options{TZ: shanghai(t)}, paths...)
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("took %s", d)
	}
	byName := map[string]analyze.File{}
	for _, f := range rep.Files {
		byName[filepath.Base(f.Name)] = f
	}
	for name, want := range files {
		got, ok := byName[name]
		if !ok {
			t.Errorf("%s: not reported", name)
			continue
		}
		if want.problem == "" && got.Problem != "" || !strings.Contains(got.Problem, want.problem) {
			t.Errorf("%s: problem %q, want %q", name, got.Problem, want.problem)
		}
		if want.warning != "" && !strings.Contains(strings.Join(got.Warnings, "|"), want.warning) {
			t.Errorf("%s: warnings %q lack %q", name, got.Warnings, want.warning)
		}
		if want.check != nil {
			want.check(t, got)
		}
	}
	if !rep.Readable() || rep.Findings == nil {
		t.Error("the good files were not analysed")
	}
}

func TestNothingReadable(t *testing.T) {
	rep := runSources(t, analyze.Options{}, input.FromReader("-", strings.NewReader("")))
	if rep.Readable() || len(rep.Files) != 1 || rep.Files[0].Problem != "empty file" || rep.Findings != nil {
		t.Errorf("report %+v", rep.Files)
	}
}

func TestForcedFormat(t *testing.T) {
	rep := run(t, analyze.Options{Format: "client"}, seedSysLog)
	// As an application log: 140 read-only errors and the two failed
	// connections to the old primary, no server milestones.
	if rep.Files[0].Format != "client" || rep.Files[0].Errors != 142 || len(rep.Milestones) != 0 {
		t.Errorf("forced client format: %+v", rep.Files[0])
	}
	if _, err := analyze.Run(context.Background(), nil, analyze.Options{Format: "nope"}); err == nil {
		t.Error("unknown format accepted")
	}
}

func TestLanesAreUnique(t *testing.T) {
	rep := runSources(t, analyze.Options{},
		input.FromReader("/tmp/lab/node1/data/log/postgresql.log", strings.NewReader(serverLog(time.Now()))),
		input.FromReader("/tmp/lab/node2/data/log/postgresql.log", strings.NewReader(serverLog(time.Now()))))
	if rep.Files[0].Source != "node1/postgresql.log" || rep.Files[1].Source != "node2/postgresql.log" {
		t.Errorf("lanes %q %q", rep.Files[0].Source, rep.Files[1].Source)
	}
}

// TestPgpoolZone: a Pgpool-II log stamped CST says which zone the
// failover script's zone-less log is in, as a server log would.
func TestPgpoolZone(t *testing.T) {
	const pgpoolLog = `2023-09-19 15:11:55 CST: pid 12345: LOG:  health check failed on node 0 (timeout:0)
2023-09-19 15:11:56 CST: pid 12300: LOG:  starting degeneration. shutdown host 192.168.1.201(54321)
2023-09-19 15:12:02 CST: pid 12300: LOG:  failover done. shutdown host 192.168.1.201(54321)
`
	failover, err := os.Open(seedFailover)
	if err != nil {
		t.Fatal(err)
	}
	defer failover.Close()
	rep := runSources(t, analyze.Options{},
		input.FromReader("pgpool.log", strings.NewReader(pgpoolLog)),
		input.FromReader("failover.log", failover))
	pg, fo := rep.Files[0], rep.Files[1]
	if pg.Format != "pgpool" || pg.Zone != "CST" || !pg.Tool {
		t.Errorf("pgpool file: %+v", pg)
	}
	if fo.Format != "kingbase-failover" || !strings.Contains(fo.Zone, "CST (UTC+08:00)") || !fo.Tool {
		t.Errorf("failover file: %+v", fo)
	}
	if want := time.Date(2023, 9, 19, 7, 11, 57, 0, time.UTC); !fo.First.Equal(want) {
		t.Errorf("failover log starts at %s, want %s", fo.First.UTC(), want)
	}
}
