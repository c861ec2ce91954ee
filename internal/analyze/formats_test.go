package analyze

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/analyze/clock"
	"github.com/vigil-ha/vigil/internal/analyze/event"
	"github.com/vigil-ha/vigil/internal/analyze/input"
)

// TestParsersStopWithTheContext: every parser reports a read its context
// cut short, through the lines it was given.
func TestParsersStopWithTheContext(t *testing.T) {
	data := bytes.Repeat([]byte("2023-09-19 15:11:55 CST: pid 1: LOG:  failover done\n"), 10000)
	for _, f := range formats() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		lines := input.NewLinesContext(ctx, bytes.NewReader(data), 0)
		err := f.parse(ctx, lines, event.NewSink("x", "x", f.name), clock.NewResolver(nil, time.UTC))
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s: err = %v, want context.Canceled", f.name, err)
		}
		lines = input.NewLines(bytes.NewReader(data), 0)
		if err := f.parse(context.Background(), lines, event.NewSink("x", "x", f.name), clock.NewResolver(nil, time.UTC)); err != nil || lines.Line() != 10000 {
			t.Errorf("%s: err = %v after %d lines", f.name, err, lines.Line())
		}
	}
}
