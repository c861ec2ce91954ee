package pglog

import (
	"bytes"
	"context"

	"github.com/vigil-ha/vigil/internal/analyze/clock"
	"github.com/vigil-ha/vigil/internal/analyze/event"
	"github.com/vigil-ha/vigil/internal/analyze/input"
)

// What an application's log says when the database refused it. Drivers
// quote the server's message or describe the socket error.
var clientPatterns = []struct {
	text []byte
	kind event.Kind
}{
	{[]byte("read-only transaction"), event.ReadOnlyError},
	{[]byte("25006"), event.ReadOnlyError},
	{[]byte("during recovery"), event.ReadOnlyError},
	{[]byte("onnection refused"), event.ConnectionRefused},
	{[]byte("the database system is starting up"), event.ConnectionRefused},
	{[]byte("the database system is in recovery mode"), event.ConnectionRefused},
	{[]byte("the database system is not yet accepting connections"), event.ConnectionRefused},
	{[]byte("the database system is shutting down"), event.ConnectionRefused},
	{[]byte("terminating connection"), event.ConnectionTerminated},
	{[]byte("server closed the connection unexpectedly"), event.ConnectionTerminated},
	{[]byte("connection reset by peer"), event.ConnectionTerminated},
	{[]byte("unexpected EOF"), event.ConnectionTerminated},
}

// SniffClient scores any log whose lines start with a timestamp: the
// fallback for application logs.
func SniffClient(sample []byte) int {
	var lines, timed int
	for _, l := range sampleLines(sample) {
		if len(bytes.TrimSpace(l)) == 0 {
			continue
		}
		lines++
		if _, _, ok := clock.Find(l); ok {
			timed++
		}
	}
	if timed == 0 || timed*2 < lines {
		return 0
	}
	return 20
}

// ParseClient reads an application's log for the errors it got from the
// database. Only timestamped lines count; continuation lines (stack
// traces) are skipped.
// Cancellation comes through lines (input.NewLinesContext).
func ParseClient(_ context.Context, lines *input.Lines, sink *event.Sink, res *clock.Resolver) error {
	st := newState(sink, res)
	for {
		b, ok := lines.Next()
		if !ok {
			break
		}
		n := lines.Line()
		s, _, ok := clock.Find(b)
		if !ok {
			continue
		}
		st.Timed(s)
		for _, p := range clientPatterns {
			if bytes.Contains(b, p.text) {
				if t, ok := st.Instant(s); ok {
					sink.ClientError(p.kind, t, s.Precision, n, string(b), command(b))
				}
				break
			}
		}
	}
	st.finish("client log")
	return lines.Canceled()
}

// command finds "cannot execute X in a read-only transaction" in a line.
func command(b []byte) string {
	i := bytes.Index(b, cannotExec)
	if i < 0 {
		return ""
	}
	rest := b[i+len(cannotExec):]
	if j := bytes.Index(rest, readOnlyTail); j >= 0 && j < 40 {
		return string(rest[:j])
	}
	return ""
}
