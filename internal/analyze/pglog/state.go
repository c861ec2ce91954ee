package pglog

import (
	"time"

	"github.com/vigil-ha/vigil/internal/analyze/clock"
	"github.com/vigil-ha/vigil/internal/analyze/event"
	"github.com/vigil-ha/vigil/internal/analyze/input"
)

// state is what every server-log shape shares: placing times, keeping the
// first and last, and turning classified messages into events or counts.
type state struct {
	sink      *event.Sink
	res       *clock.Resolver
	cls       *classifier
	decided   bool
	floating  bool
	lastZone  string
	first     bool
	last      clock.Stamp
	haveLast  bool
	untimed   int64
	zoneWarn  bool
	lastError struct {
		kind event.Kind
		line int64
	}
}

func newState(sink *event.Sink, res *clock.Resolver) *state {
	return &state{sink: sink, res: res, cls: newClassifier()}
}

// instant places a stamp: an instant for a zoned file, wall-clock fields
// for a floating one (a file whose first timestamp had no zone).
func (st *state) instant(s clock.Stamp) (time.Time, bool) {
	if !st.decided {
		st.decided = true
		st.floating = s.Zone == ""
		st.sink.Floating = st.floating
	}
	if st.floating {
		return s.Wall, true
	}
	if s.Zone == "" {
		s.Zone = st.lastZone
	} else {
		st.lastZone = s.Zone
	}
	t, ok, err := st.res.Resolve(s)
	if err != nil {
		if !st.zoneWarn {
			st.sink.Warnf("%v", err)
			st.zoneWarn = true
		}
		return time.Time{}, false
	}
	return t, ok
}

// timed records a line's stamp for the file's time range. Only the first
// and last are placed, which keeps ordinary lines cheap.
func (st *state) timed(s clock.Stamp) {
	if !st.first {
		st.first = true
		if t, ok := st.instant(s); ok {
			st.sink.Extend(t, s.Precision)
			st.sink.Zone(s.Zone)
		}
	}
	st.last, st.haveLast = s, true
	st.sink.Timed++
}

// message turns a classified message into an event or a client error.
func (st *state) message(s clock.Stamp, sev severity, msg []byte, sqlstate string, line int64, text []byte) {
	kind, command, ok := st.cls.classify(sev, msg, sqlstate)
	if !ok {
		return
	}
	t, ok := st.instant(s)
	if !ok {
		return
	}
	st.sink.Zone(s.Zone)
	if event.IsClientError(kind) {
		st.sink.ClientError(kind, t, s.Precision, line, string(text), command)
		st.lastError.kind, st.lastError.line = kind, line
		return
	}
	st.sink.Add(event.Event{Time: t, Kind: kind, Line: line, Text: string(text), Precision: s.Precision, Attrs: attrs(kind, msg)})
}

// statement pairs a STATEMENT line with the error just before it.
func (st *state) statement(line int64, stmt []byte) {
	if st.lastError.kind != "" && line-st.lastError.line <= 3 {
		st.sink.AttachStatement(st.lastError.kind, st.lastError.line, string(stmt))
	}
	st.lastError.kind = ""
}

// finish places the last timestamp and reports what the file lacked.
func (st *state) finish(lines *input.Lines, format string) {
	if st.haveLast {
		if t, ok := st.instant(st.last); ok {
			st.sink.Extend(t, st.last.Precision)
		}
	}
	if st.untimed > 0 && st.sink.Timed == 0 {
		st.sink.Warnf("%d %s lines have no timestamp (log_line_prefix without %%m or %%t): they cannot be placed on the timeline", st.untimed, format)
	} else if st.untimed > 0 {
		st.sink.Warnf("%d lines without a timestamp were left out", st.untimed)
	}
}
