package pglog

import (
	"github.com/vigil-ha/vigil/internal/analyze/clock"
	"github.com/vigil-ha/vigil/internal/analyze/event"
)

// state is what every server-log shape shares: placing times (Placer),
// and turning classified messages into events or counts.
type state struct {
	*Placer
	sink      *event.Sink
	cls       *classifier
	untimed   int64
	lastError struct {
		kind event.Kind
		line int64
	}
}

func newState(sink *event.Sink, res *clock.Resolver) *state {
	return &state{Placer: NewPlacer(sink, res), sink: sink, cls: newClassifier()}
}

// message turns a classified message into an event or a client error.
func (st *state) message(s clock.Stamp, sev severity, msg []byte, sqlstate string, line int64, text []byte) {
	kind, command, ok := st.cls.classify(sev, msg, sqlstate)
	if !ok {
		return
	}
	t, ok := st.Place(s)
	if !ok {
		return
	}
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
func (st *state) finish(format string) {
	st.Finish()
	if st.untimed > 0 && st.sink.Timed == 0 {
		st.sink.Warnf("%d %s lines have no timestamp (log_line_prefix without %%m or %%t): they cannot be placed on the timeline", st.untimed, format)
	} else if st.untimed > 0 {
		st.sink.Warnf("%d lines without a timestamp were left out", st.untimed)
	}
}
