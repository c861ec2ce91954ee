package pglog

import (
	"bytes"
	"context"
	"time"

	"github.com/vigil-ha/vigil/internal/analyze/clock"
	"github.com/vigil-ha/vigil/internal/analyze/event"
	"github.com/vigil-ha/vigil/internal/analyze/input"
)

// Formats read by this package, as --format names them.
const (
	FormatStderr = "stderr"
	FormatSysLog = "sys_log"
	FormatCSV    = "csvlog"
	FormatJSON   = "jsonlog"
	FormatClient = "client"
)

// sep ends a severity: PostgreSQL writes "LOG:  message", two spaces.
var sep = []byte(":  ")

// Line is a server log line taken apart.
type Line struct {
	Stamp    clock.Stamp
	HasStamp bool
	// Prefix is what log_line_prefix wrote after the timestamp.
	Prefix   []byte
	Severity []byte
	Message  []byte
}

// Split takes apart a line written with a log_line_prefix: a timestamp
// somewhere near the start (%m, %t, or %n as Unix epoch), anything else,
// then "SEVERITY:  message". ok is false when the line has no severity.
func Split(b []byte) (Line, bool) {
	var l Line
	rest := b
	if s, n, ok := stampAt(b); ok {
		l.Stamp, l.HasStamp = s, true
		rest = b[n:]
	}
	i := bytes.Index(rest, sep)
	if i <= 0 {
		return l, false
	}
	j := i
	for j > 0 && rest[j-1] != ' ' && rest[j-1] != ']' && rest[j-1] != '>' && rest[j-1] != ':' && rest[j-1] != '\t' {
		j--
	}
	l.Prefix, l.Severity, l.Message = rest[:j], rest[j:i], rest[i+len(sep):]
	return l, true
}

// stampAt finds a prefix's timestamp: a date and time, or a Unix epoch
// with milliseconds (%n).
func stampAt(b []byte) (clock.Stamp, int, bool) {
	if len(b) >= 14 && b[10] == '.' && allDigits(b[:10]) && allDigits(b[11:14]) {
		sec, ms := atoi(b[:10]), atoi(b[11:14])
		return clock.Stamp{Wall: time.Unix(int64(sec), int64(ms)*1e6).UTC(), Zone: "Z", Precision: time.Millisecond}, 14, true
	}
	return clock.Find(b)
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

func atoi(b []byte) int {
	v := 0
	for _, c := range b {
		v = v*10 + int(c-'0')
	}
	return v
}

// sqlState finds a SQLSTATE that %e put in the prefix. Only the codes the
// analysis uses are looked for, and not inside "[...]" where %p goes.
func sqlState(prefix []byte) string {
	for _, code := range []string{"25006", "57P01", "57P02", "57P03"} {
		i := bytes.Index(prefix, []byte(code))
		if i < 0 {
			continue
		}
		before := byte(' ')
		if i > 0 {
			before = prefix[i-1]
		}
		after := byte(' ')
		if i+5 < len(prefix) {
			after = prefix[i+5]
		}
		if isAlnum(before) || isAlnum(after) || before == '[' && (after == ']' || after == '-') {
			continue
		}
		return code
	}
	return ""
}

func isAlnum(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
}

// SniffStderr scores how much sample looks like a stderr server log.
func SniffStderr(sample []byte) int {
	var lines, good int
	for _, l := range sampleLines(sample) {
		if len(l) == 0 || l[0] == '\t' {
			continue
		}
		lines++
		if s, ok := Split(l); ok && s.HasStamp && severityOf(s.Severity) != sevNone {
			good++
		}
	}
	if lines == 0 || good == 0 {
		return 0
	}
	return 30 + 55*good/lines
}

// IsKingbase tells a KingbaseES sys_log from a PostgreSQL log by the names
// it uses.
func IsKingbase(name string, sample []byte) bool {
	if bytes.Contains([]byte(name), []byte("sys_log")) || bytes.Contains([]byte(name), []byte("kingbase")) {
		return true
	}
	for _, m := range []string{"KingbaseES", "kingbase", "sys_wal", "sys_ctl", "sys_log"} {
		if bytes.Contains(sample, []byte(m)) {
			return true
		}
	}
	return false
}

func sampleLines(sample []byte) [][]byte {
	ls := bytes.Split(sample, []byte("\n"))
	if len(ls) > 1 {
		ls = ls[:len(ls)-1] // the last may be cut
	}
	if len(ls) > 200 {
		ls = ls[:200]
	}
	return ls
}

// ParseStderr reads a stderr (or sys_log) server log into sink.
// Cancellation comes through lines (input.NewLinesContext).
func ParseStderr(_ context.Context, lines *input.Lines, sink *event.Sink, res *clock.Resolver) error {
	st := newState(sink, res)
	for {
		b, ok := lines.Next()
		if !ok {
			break
		}
		n := lines.Line()
		if len(b) == 0 || b[0] == '\t' {
			continue // blank, or the continuation of a multi-line message
		}
		l, ok := Split(b)
		if !ok {
			sink.Unrecognised(n)
			continue
		}
		sev := severityOf(l.Severity)
		if sev == sevNone {
			sink.Unrecognised(n)
			continue
		}
		if !l.HasStamp {
			st.untimed++
			continue
		}
		st.Timed(l.Stamp)
		switch sev {
		case sevStatement:
			st.statement(n, l.Message)
		case sevDetail, sevDebug:
		default:
			code := ""
			if sev == sevError || sev == sevFatal {
				code = sqlState(l.Prefix)
			}
			st.message(l.Stamp, sev, l.Message, code, n, b)
		}
	}
	st.finish("server log")
	return lines.Canceled()
}
