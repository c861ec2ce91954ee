// Package pgpool reads Pgpool-II logs (and kingbasecluster's, its fork in
// KingbaseES V8R3) for the failover's view from the proxy: health checks
// failing, degeneration, the failover command, the new primary.
package pgpool

import (
	"bytes"
	"context"
	"regexp"
	"time"

	"github.com/vigil-ha/vigil/internal/analyze/clock"
	"github.com/vigil-ha/vigil/internal/analyze/event"
	"github.com/vigil-ha/vigil/internal/analyze/input"
	"github.com/vigil-ha/vigil/internal/analyze/pglog"
)

// Format is the name --format uses.
const Format = "pgpool"

var pidTag = regexp.MustCompile(`^: pid \d+: `)

var rules = []struct {
	text []byte
	kind event.Kind
	step string
}{
	{[]byte("health check failed"), event.HealthCheckFailed, ""},
	{[]byte("failed to connect to PostgreSQL server"), event.HealthCheckFailed, ""},
	{[]byte("received degenerate backend request"), event.FailureDetected, ""},
	{[]byte("starting degeneration"), event.FailoverStart, ""},
	{[]byte("execute command:"), event.Step, "failover_command"},
	{[]byte("failover: set new primary node"), event.Step, "new_primary"},
	{[]byte("find_primary_node: primary node is"), event.Step, "find_primary_node"},
	{[]byte("failover done"), event.FailoverEnd, ""},
}

// Sniff scores how much sample looks like a Pgpool-II log: pgpool's
// default prefix is "%t: pid %p: ".
func Sniff(sample []byte) int {
	var lines, good int
	for _, l := range bytes.Split(sample, []byte("\n")) {
		_, n, ok := clock.Find(l)
		if !ok {
			continue
		}
		lines++
		if pidTag.Match(l[n:]) {
			good++
		}
	}
	if good == 0 {
		return 0
	}
	score := 50 + 40*good/lines
	if bytes.Contains(sample, []byte("pgpool")) || bytes.Contains(sample, []byte("health check")) || bytes.Contains(sample, []byte("child process")) {
		score += 5
	}
	return score
}

// Parse reads a Pgpool-II log into sink.
func Parse(ctx context.Context, lines *input.Lines, sink *event.Sink, res *clock.Resolver) error {
	decided, floating := false, false
	place := func(s clock.Stamp) (time.Time, bool) {
		if !decided {
			decided, floating = true, s.Zone == ""
			sink.Floating = floating
		}
		if floating {
			return s.Wall, true
		}
		t, ok, err := res.Resolve(s)
		return t, ok && err == nil
	}
	for {
		b, ok := lines.Next()
		if !ok {
			break
		}
		n := lines.Line()
		if n&4095 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if len(b) == 0 || b[0] == '\t' {
			continue
		}
		l, ok := pglog.Split(b)
		if !ok || !l.HasStamp {
			sink.Unrecognised(n)
			continue
		}
		t, ok := place(l.Stamp)
		if !ok {
			continue
		}
		sink.Seen(t, l.Stamp.Precision)
		for _, r := range rules {
			if bytes.Contains(l.Message, r.text) {
				var attrs map[string]string
				if r.step != "" {
					attrs = map[string]string{"step": r.step}
				}
				sink.Add(event.Event{Time: t, Kind: r.kind, Line: n, Text: string(b), Precision: l.Stamp.Precision, Attrs: attrs})
				break
			}
		}
	}
	return nil
}
