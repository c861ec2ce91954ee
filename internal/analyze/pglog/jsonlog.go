package pglog

import (
	"bytes"
	"context"
	"encoding/json"

	"github.com/vigil-ha/vigil/internal/analyze/clock"
	"github.com/vigil-ha/vigil/internal/analyze/event"
	"github.com/vigil-ha/vigil/internal/analyze/input"
)

var (
	jsonTimestamp = []byte(`"timestamp":"`)
	jsonSeverity  = []byte(`"error_severity":"`)
)

// SniffJSON scores how much sample looks like a jsonlog.
func SniffJSON(sample []byte) int {
	if bytes.Contains(sample, jsonTimestamp) && bytes.Contains(sample, jsonSeverity) {
		return 95
	}
	return 0
}

type jsonLine struct {
	Timestamp string `json:"timestamp"`
	Severity  string `json:"error_severity"`
	State     string `json:"state_code"`
	Message   string `json:"message"`
	Statement string `json:"statement"`
}

// ParseJSON reads a jsonlog into sink. Every line's time and severity are
// read in place; only lines that may matter are decoded in full.
// Cancellation comes through lines (input.NewLinesContext).
func ParseJSON(_ context.Context, lines *input.Lines, sink *event.Sink, res *clock.Resolver) error {
	st := newState(sink, res)
	for {
		b, ok := lines.Next()
		if !ok {
			break
		}
		n := lines.Line()
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			continue
		}
		ts := rawField(b, jsonTimestamp)
		s, _, okTS := clock.Parse(ts)
		sevRaw := rawField(b, jsonSeverity)
		sev := severityOf(sevRaw)
		if b[0] != '{' || !okTS || sev == sevNone {
			sink.Unrecognised(n)
			continue
		}
		st.Timed(s)
		switch sev {
		case sevLog, sevInfo, sevNotice, sevWarning, sevError, sevFatal, sevPanic:
		default:
			continue
		}
		msg := rawField(b, []byte(`"message":"`))
		code := string(rawField(b, []byte(`"state_code":"`)))
		if _, _, ok := st.cls.classify(sev, msg, code); !ok {
			continue
		}
		var l jsonLine
		if err := json.Unmarshal(b, &l); err != nil {
			sink.Unrecognised(n)
			continue
		}
		st.message(s, sev, []byte(l.Message), l.State, n, b)
		if l.Statement != "" {
			st.statement(n, []byte(l.Statement))
		}
	}
	st.finish("jsonlog")
	return lines.Canceled()
}

// rawField returns a string field's raw (still escaped) value, up to its
// closing quote.
func rawField(b, key []byte) []byte {
	i := bytes.Index(b, key)
	if i < 0 {
		return nil
	}
	v := b[i+len(key):]
	for j := 0; j < len(v); j++ {
		switch v[j] {
		case '\\':
			j++
		case '"':
			return v[:j]
		}
	}
	return v
}
