package workload

import (
	"errors"
	"fmt"
	"io"
	"testing"
	"time"
)

func TestOutageMeasures(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	writes := func(outcomes ...Outcome) Result {
		var r Result
		for i, o := range outcomes {
			r.Writes = append(r.Writes, Write{ID: int64(i), At: at(100 * i), Outcome: o})
		}
		return r
	}
	tests := []struct {
		name          string
		r             Result
		from          time.Time
		wantGap       time.Duration
		wantSinceFrom float64
	}{
		{"no failure", writes(OK, OK, OK, OK), at(150), 0, 0.05},
		{"a gap after the request", writes(OK, OK, OK, Connection, Connection, OK, OK), at(50), 300 * time.Millisecond, 0.45},
		{"failures before the request do not count", writes(OK, Connection, OK, OK, Other, OK), at(250), 200 * time.Millisecond, 0.25},
		{"no write after the failures", writes(OK, OK, Connection, Connection), at(50), 0, 0},
		{"read-only errors are part of the gap", writes(OK, ReadOnly, ReadOnly, OK), at(50), 300 * time.Millisecond, 0.25},
		{"a write in flight at the crash does not end the outage", writes(OK, OK, Connection, Connection, OK), at(50), 300 * time.Millisecond, 0.35},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.r.OutageAfter(tt.from); got != tt.wantGap {
				t.Errorf("OutageAfter = %s, want %s", got, tt.wantGap)
			}
			s := tt.r.Summarize(tt.from)
			if d := s.WriteOutageS - tt.wantSinceFrom; d > 1e-9 || d < -1e-9 {
				t.Errorf("Summarize outage = %.3f, want %.3f", s.WriteOutageS, tt.wantSinceFrom)
			}
		})
	}
}

func TestClassifyCutConnections(t *testing.T) {
	for _, err := range []error{io.ErrUnexpectedEOF, fmt.Errorf("read: %w", io.EOF)} {
		if got := classify(err); got != Connection {
			t.Errorf("classify(%v) = %s, want %s", err, got, Connection)
		}
	}
	if got := classify(errors.New("something else")); got != Other {
		t.Errorf("classify(other) = %s", got)
	}
}
