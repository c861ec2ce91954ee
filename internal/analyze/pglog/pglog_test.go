package pglog

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/analyze/clock"
	"github.com/vigil-ha/vigil/internal/analyze/event"
	"github.com/vigil-ha/vigil/internal/analyze/input"
)

func TestSplitLogLinePrefixes(t *testing.T) {
	tests := []struct {
		prefix string // the log_line_prefix that wrote the line
		line   string
		stamp  string
		zone   string
		sev    string
		msg    string
	}{
		{"%m [%p] ", "2025-03-01 10:00:01.234 UTC [812] LOG:  received promote request", "10:00:01.234", "UTC", "LOG", "received promote request"},
		{"%t [%p]: [%l-1] user=%u,db=%d ", "2023-09-19 15:12:01 CST [3301]: [1-1] user=app,db=TEST ERROR:  cannot execute UPDATE in a read-only transaction", "15:12:01.000", "CST", "ERROR", "cannot execute UPDATE in a read-only transaction"},
		{"%t [%p-%l] %q%u@%d ", "2025-03-01 10:00:01 UTC [812-3] app@shop FATAL:  the database system is starting up", "10:00:01.000", "UTC", "FATAL", "the database system is starting up"},
		{"< %m > ", "< 2025-03-01 10:00:01.001 +08 > LOG:  database system is ready to accept connections", "10:00:01.001", "+08", "LOG", "database system is ready to accept connections"},
		{"%n [%p] ", "1740823201.250 [812] LOG:  redo done at 0/3000148", "10:00:01.250", "Z", "LOG", "redo done at 0/3000148"},
		{"%m [%p] %e ", "2025-03-01 10:00:01.234 UTC [812] 25006 ERROR:  cannot execute INSERT in a read-only transaction", "10:00:01.234", "UTC", "ERROR", "cannot execute INSERT in a read-only transaction"},
		{"%m %a ", "2025-03-01 10:00:01.234 UTC psql: x LOG:  y", "10:00:01.234", "UTC", "LOG", "y"},
		{"(none)", "LOG:  database system is shut down", "", "", "LOG", "database system is shut down"},
		{"zh_CN", "2023-09-19 15:12:36 CST [2088]: [2-1] user=,db= 日志:  数据库系统准备接受连接", "15:12:36.000", "CST", "日志", "数据库系统准备接受连接"},
	}
	for _, tt := range tests {
		l, ok := Split([]byte(tt.line))
		if !ok {
			t.Errorf("%s: not split: %q", tt.prefix, tt.line)
			continue
		}
		stamp := ""
		if l.HasStamp {
			stamp = l.Stamp.Wall.Format("15:04:05.000")
		}
		if stamp != tt.stamp || l.Stamp.Zone != tt.zone || string(l.Severity) != tt.sev || string(l.Message) != tt.msg {
			t.Errorf("%s: got stamp %q zone %q sev %q msg %q", tt.prefix, stamp, l.Stamp.Zone, l.Severity, l.Message)
		}
	}
	if _, ok := Split([]byte("just some text")); ok {
		t.Error("a line without a severity was split")
	}
}

func TestClassify(t *testing.T) {
	c := newClassifier()
	tests := []struct {
		sev   severity
		msg   string
		state string
		kind  event.Kind
		cmd   string
	}{
		{sevLog, "received promote request", "", event.PromoteReceived, ""},
		{sevLog, "redo done at 0/3000148 system usage: CPU: user: 0.00 s, system: 0.00 s, elapsed: 35.02 s", "", event.RedoDone, ""},
		{sevLog, "database system is ready to accept connections", "", event.Ready, ""},
		{sevLog, "database system is ready to accept read-only connections", "", event.ReadOnlyReady, ""},
		{sevLog, "database system is ready to accept read only connections", "", event.ReadOnlyReady, ""},
		{sevLog, "selected new timeline ID: 2", "", event.NewTimeline, ""},
		{sevLog, "checkpoint starting: end-of-recovery immediate wait", "", event.EndOfRecoveryCheckpoint, ""},
		{sevLog, "server process (PID 123) was terminated by signal 9: Killed", "", event.ServerCrash, ""},
		{sevLog, "received immediate shutdown request", "", event.ShutdownRequest, ""},
		{sevLog, "duration: 0.123 ms  statement: select 1", "", "", ""},
		{sevError, "cannot execute INSERT in a read-only transaction", "", event.ReadOnlyError, "INSERT"},
		{sevError, "cannot execute nextval() in a read-only transaction", "", event.ReadOnlyError, "nextval()"},
		{sevError, "cannot execute CREATE TABLE during recovery", "", event.ReadOnlyError, "CREATE TABLE"},
		{sevError, "在只读事务中不能执行INSERT", "25006", event.ReadOnlyError, ""},
		{sevError, "duplicate key value violates unique constraint", "23505", "", ""},
		{sevFatal, "the database system is starting up", "", event.ConnectionRefused, ""},
		{sevFatal, "the database system is not yet accepting connections", "", event.ConnectionRefused, ""},
		{sevFatal, "terminating connection due to administrator command", "", event.ConnectionTerminated, ""},
		{sevFatal, "could not receive data from WAL stream: server closed the connection unexpectedly", "", event.UpstreamLost, ""},
		{sevFatal, "数据库系统启动中", "57P03", event.ConnectionRefused, ""},
		{sevWarning, "terminating connection because of crash of another server process", "", event.ConnectionTerminated, ""},
		{sevPanic, "could not write to file", "", event.ServerCrash, ""},
		{sevStatement, "insert into t values (1)", "", "", ""},
	}
	for _, tt := range tests {
		kind, cmd, ok := c.classify(tt.sev, []byte(tt.msg), tt.state)
		if kind != tt.kind || cmd != tt.cmd || ok != (tt.kind != "") {
			t.Errorf("classify(%q) = %q %q %v, want %q %q", tt.msg, kind, cmd, ok, tt.kind, tt.cmd)
		}
	}
}

func TestSQLStateInPrefix(t *testing.T) {
	for _, tt := range []struct{ prefix, want string }{
		{"2025-03-01 10:00:01.234 UTC [812] 25006 ", "25006"},
		{" [25006] ", ""}, // a pid
		{" [25006-1] ", ""},
		{" 57P03 app@db ", "57P03"},
		{" 125006 ", ""},
	} {
		if got := sqlState([]byte(tt.prefix)); got != tt.want {
			t.Errorf("sqlState(%q) = %q, want %q", tt.prefix, got, tt.want)
		}
	}
}

type parseFn func(context.Context, *input.Lines, *event.Sink, *clock.Resolver) error

func run(t testing.TB, fn parseFn, data string) *event.Sink {
	t.Helper()
	s := event.NewSink("log", "log", "test")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := fn(ctx, input.NewLines(strings.NewReader(data), 0), s, clock.NewResolver(nil, time.UTC)); err != nil {
		t.Fatal(err)
	}
	return s
}

func kinds(s *event.Sink) string {
	var out []string
	for _, e := range s.Events {
		out = append(out, string(e.Kind))
	}
	return strings.Join(out, ",")
}

// A PostgreSQL 15 standby promoted while behind on replay, as its stderr
// log shows it.
const pg15 = `2025-03-01 10:00:00.100 UTC [800] LOG:  starting PostgreSQL 15.10 (Debian 15.10-0+deb12u1) on x86_64-pc-linux-gnu
2025-03-01 10:00:00.105 UTC [803] LOG:  entering standby mode
2025-03-01 10:00:00.110 UTC [803] LOG:  redo starts at 0/2000028
2025-03-01 10:00:00.120 UTC [800] LOG:  database system is ready to accept read-only connections
2025-03-01 10:05:00.000 UTC [805] FATAL:  could not receive data from WAL stream: server closed the connection unexpectedly
		This probably means the server terminated abnormally
		before or while processing the request.
2025-03-01 10:05:02.000 UTC [803] LOG:  received promote request
2025-03-01 10:05:02.300 UTC [900] ERROR:  cannot execute INSERT in a read-only transaction
2025-03-01 10:05:02.300 UTC [900] STATEMENT:  insert into t values (1)
2025-03-01 10:05:02.600 UTC [901] ERROR:  cannot execute UPDATE in a read-only transaction
2025-03-01 10:05:02.600 UTC [901] STATEMENT:  update t set x = 2
2025-03-01 10:05:09.500 UTC [803] LOG:  redo done at 0/C059F28 system usage: CPU: user: 3.10 s, system: 1.20 s, elapsed: 309.39 s
2025-03-01 10:05:09.500 UTC [803] LOG:  last completed transaction was at log time 2025-03-01 10:04:59.9+00
2025-03-01 10:05:09.510 UTC [803] LOG:  selected new timeline ID: 2
2025-03-01 10:05:09.600 UTC [803] LOG:  archive recovery complete
2025-03-01 10:05:09.610 UTC [801] LOG:  checkpoint starting: force
2025-03-01 10:05:09.620 UTC [800] LOG:  database system is ready to accept connections
2025-03-01 10:05:10.900 UTC [801] LOG:  checkpoint complete: wrote 3 buffers (0.0%); 0 WAL file(s) added, 0 removed, 0 recycled; write=0.003 s, sync=0.001 s, total=1.290 s
`

func TestParseStderr(t *testing.T) {
	if SniffStderr([]byte(pg15)) < 80 {
		t.Errorf("sniff = %d", SniffStderr([]byte(pg15)))
	}
	s := run(t, ParseStderr, pg15)
	want := "server_start,recovery_start,redo_starts,read_only_ready,upstream_lost,promote_received,redo_done,new_timeline,archive_recovery_complete,ready,checkpoint_complete"
	if got := kinds(s); got != want {
		t.Errorf("kinds = %s\nwant    %s", got, want)
	}
	st := s.Errors[event.ReadOnlyError]
	if st == nil || st.Count != 2 || st.Commands["INSERT"] != 1 || st.Commands["UPDATE"] != 1 {
		t.Fatalf("read-only errors = %+v", st)
	}
	if st.Samples[0].Attrs["statement"] != "insert into t values (1)" {
		t.Errorf("statement = %q", st.Samples[0].Attrs["statement"])
	}
	if s.Floating || s.Unparsed != 0 || s.Timed != 17 {
		t.Errorf("floating %v unparsed %d timed %d", s.Floating, s.Unparsed, s.Timed)
	}
	if !s.First.Equal(time.Date(2025, 3, 1, 10, 0, 0, 100e6, time.UTC)) || !s.Last.Equal(time.Date(2025, 3, 1, 10, 5, 10, 900e6, time.UTC)) {
		t.Errorf("range %s .. %s", s.First, s.Last)
	}
	for _, e := range s.Events {
		if e.Kind == event.RedoDone && (e.Attrs["lsn"] != "0/C059F28" || e.Attrs["elapsed_s"] != "309.39") {
			t.Errorf("redo done attrs = %v", e.Attrs)
		}
	}
}

func TestParseStderrWithoutTimestamps(t *testing.T) {
	s := run(t, ParseStderr, "LOG:  received promote request\nLOG:  database system is ready to accept connections\n")
	if len(s.Events) != 0 || len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], "no timestamp") {
		t.Errorf("events %d warnings %v", len(s.Events), s.Warnings)
	}
}

const csvLog = `2025-03-01 10:05:02.000 UTC,,,803,,67c2dc50.323,5,,2025-03-01 10:00:00 UTC,1/0,0,LOG,00000,"received promote request",,,,,,,,,"","startup",,0
2025-03-01 10:05:02.300 UTC,"app","shop",900,"127.0.0.1:5000",67c2dd8e.384,1,"INSERT",2025-03-01 10:05:02 UTC,3/2,0,ERROR,25006,"cannot execute INSERT in a read-only transaction",,,,,,"insert into t values (1)",,,"psql","client backend",,0
2025-03-01 10:05:02.400 UTC,"app","shop",901,"127.0.0.1:5001",67c2dd8e.385,1,"UPDATE",2025-03-01 10:05:02 UTC,3/3,0,ERROR,25006,"a message
that spans ""three""
lines",,,,,,"update t set x = 2",,,"psql","client backend",,0
2025-03-01 10:05:03.000 UTC,"app","shop",902,"127.0.0.1:5002",67c2dd8e.386,1,"",2025-03-01 10:05:02 UTC,3/4,0,ERROR,XX000,"a quote that never closes,,,
2025-03-01 10:05:09.620 UTC,,,800,,67c2dc50.320,3,,2025-03-01 10:00:00 UTC,,0,LOG,00000,"database system is ready to accept connections",,,,,,,,,"","postmaster",,0
`

func TestParseCSV(t *testing.T) {
	if SniffCSV([]byte(csvLog)) < 80 || SniffStderr([]byte(csvLog)) != 0 {
		t.Errorf("sniff csv %d stderr %d", SniffCSV([]byte(csvLog)), SniffStderr([]byte(csvLog)))
	}
	s := run(t, ParseCSV, csvLog)
	if got := kinds(s); got != "promote_received,ready" {
		t.Errorf("kinds = %s", got)
	}
	st := s.Errors[event.ReadOnlyError]
	if st == nil || st.Count != 2 {
		t.Fatalf("read-only errors = %+v", st)
	}
	if st.Samples[1].Attrs["statement"] != "update t set x = 2" || !strings.Contains(st.Samples[1].Text, `""three""`) {
		t.Errorf("multi-line record sample = %+v", st.Samples[1])
	}
	if s.Unparsed != 1 {
		t.Errorf("unparsed = %d, want the broken record", s.Unparsed)
	}
}

func TestCSVUnclosedQuoteIsBounded(t *testing.T) {
	data := `2025-03-01 10:05:03.000 UTC,"app","shop",902,,x,1,"",,,0,ERROR,XX000,"never closes` + "\n" + strings.Repeat("no timestamp here\n", 5000)
	s := run(t, ParseCSV, data)
	// The record is dropped after maxRecordLines; the lines after it are
	// not records either.
	if s.Unparsed != 1+5000-maxRecordLines || len(s.Warnings) == 0 || !strings.Contains(s.Warnings[0], "never closes") {
		t.Errorf("unparsed %d warnings %v", s.Unparsed, s.Warnings)
	}
}

func TestSplitCSV(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string
	}{
		{`a,b,,c`, []string{"a", "b", "", "c"}},
		{`"a,b","c""d",e`, []string{"a,b", `c"d`, "e"}},
		{`"",x`, []string{"", "x"}},
		{`"unterminated`, []string{"unterminated"}},
		{`x,`, []string{"x", ""}},
	} {
		var got []string
		for _, f := range splitCSV([]byte(tt.in), nil) {
			got = append(got, string(f))
		}
		if strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("splitCSV(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

const jsonLog = `{"timestamp":"2025-03-01 10:05:02.000 UTC","pid":803,"session_id":"67c2dc50.323","line_num":5,"error_severity":"LOG","message":"received promote request","backend_type":"startup","query_id":0}
{"timestamp":"2025-03-01 10:05:02.300 UTC","user":"app","dbname":"shop","pid":900,"error_severity":"ERROR","state_code":"25006","message":"cannot execute INSERT in a read-only transaction","statement":"insert into t values ('a \"quoted\" value')","backend_type":"client backend"}
{"timestamp":"2025-03-01 10:05:02.400 UTC","user":"app","pid":901,"error_severity":"LOG","message":"duration: 1.0 ms"}
{"timestamp":"2025-03-01 10:05:09.620 UTC","pid":800,"error_severity":"LOG","message":"database system is ready to accept connections","backend_type":"postmaster"}
{"timestamp":"2025-03-01 10:05:10.000 UTC","error_severity":"LOG","message":"cut in the mid
`

func TestParseJSON(t *testing.T) {
	if SniffJSON([]byte(jsonLog)) < 90 {
		t.Error("jsonlog not sniffed")
	}
	s := run(t, ParseJSON, jsonLog)
	if got := kinds(s); got != "promote_received,ready" {
		t.Errorf("kinds = %s", got)
	}
	st := s.Errors[event.ReadOnlyError]
	if st == nil || st.Count != 1 || st.Samples[0].Attrs["statement"] != `insert into t values ('a "quoted" value')` {
		t.Fatalf("errors = %+v", st)
	}
	if s.Timed != 5 || !s.Last.Equal(time.Date(2025, 3, 1, 10, 5, 10, 0, time.UTC)) {
		t.Errorf("timed %d last %s", s.Timed, s.Last)
	}
}

func TestParseClient(t *testing.T) {
	app := `2025-03-01 10:05:02,301 ERROR [http-7] o.h.e.j.s.SqlExceptionHelper : ERROR: cannot execute INSERT in a read-only transaction
	at org.postgresql.core.v3.QueryExecutorImpl.receiveErrorResponse(QueryExecutorImpl.java:2675)
2025-03-01 10:05:03,000 WARN  [http-8] pool : Connection refused (Connection refused)
2025-03-01 10:05:04,000 INFO  [http-9] ok
`
	if SniffClient([]byte(app)) == 0 {
		t.Error("client log not sniffed")
	}
	s := run(t, ParseClient, app)
	ro, refused := s.Errors[event.ReadOnlyError], s.Errors[event.ConnectionRefused]
	if ro == nil || ro.Count != 1 || ro.Commands["INSERT"] != 1 || refused == nil || refused.Count != 1 {
		t.Errorf("errors: read-only %+v refused %+v", ro, refused)
	}
	if !s.Floating {
		t.Error("an application log without a zone must be floating")
	}
}

func TestKingbaseNames(t *testing.T) {
	if !IsKingbase("/data/sys_log/kingbase-2023-09-19.log", nil) || !IsKingbase("x.log", []byte("starting KingbaseES V008R006")) || IsKingbase("postgresql.log", []byte(pg15)) {
		t.Error("IsKingbase")
	}
}

func fuzzParser(f *testing.F, fn parseFn, seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := event.NewSink("log", "log", "fuzz")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		lines := input.NewLines(bytes.NewReader(data), 256)
		if err := fn(ctx, lines, s, clock.NewResolver(nil, time.UTC)); err != nil {
			t.Fatal(err)
		}
		for _, e := range s.Events {
			if e.Time.IsZero() || e.Line < 1 || e.Line > lines.Line() {
				t.Fatalf("event %+v outside the %d lines read", e, lines.Line())
			}
		}
		var counted int64
		for _, st := range s.Errors {
			counted += st.Count
			if st.Hist.Total() != st.Count {
				t.Fatalf("histogram %d, count %d", st.Hist.Total(), st.Count)
			}
		}
		if counted > lines.Line() || s.Unparsed > lines.Line() {
			t.Fatalf("%d errors, %d unparsed in %d lines", counted, s.Unparsed, lines.Line())
		}
	})
}

func FuzzStderr(f *testing.F) {
	fuzzParser(f, ParseStderr, pg15, "1740823201.250 [1] LOG:  x\n", "2023-09-19 15:12:01 CST [1]: [1-1] 错误:  y\n\tz")
}

func FuzzCSV(f *testing.F) {
	fuzzParser(f, ParseCSV, csvLog, `"`, "2025-03-01 10:05:02.000 UTC,\"\n\n")
}

func FuzzJSON(f *testing.F) { fuzzParser(f, ParseJSON, jsonLog, `{"timestamp":"\`, "{}") }

func FuzzClient(f *testing.F) {
	fuzzParser(f, ParseClient, "2025-03-01 10:05:02,301 ERROR cannot execute INSERT in a read-only transaction\n")
}
