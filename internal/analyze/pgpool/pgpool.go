// Package pgpool reads Pgpool-II logs (and kingbasecluster's, its fork in
// KingbaseES V8R3) for the failover's view from the proxy: health checks
// failing, degeneration, the failover command, the new primary.
package pgpool

import (
	"bytes"
	"context"
	"regexp"

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

// Parse reads a Pgpool-II log into sink. Its times are placed as a server
// log's are (pglog.Placer). Cancellation comes through lines
// (input.NewLinesContext).
func Parse(_ context.Context, lines *input.Lines, sink *event.Sink, res *clock.Resolver) error {
	pl := pglog.NewPlacer(sink, res)
	for {
		b, ok := lines.Next()
		if !ok {
			break
		}
		n := lines.Line()
		if len(b) == 0 || b[0] == '\t' {
			continue
		}
		l, ok := pglog.Split(b)
		if !ok || !l.HasStamp {
			sink.Unrecognised(n)
			continue
		}
		pl.Timed(l.Stamp)
		for _, r := range rules {
			if !bytes.Contains(l.Message, r.text) {
				continue
			}
			if t, ok := pl.Place(l.Stamp); ok {
				var attrs map[string]string
				if r.step != "" {
					attrs = map[string]string{"step": r.step}
				}
				sink.Add(event.Event{Time: t, Kind: r.kind, Line: n, Text: string(b), Precision: l.Stamp.Precision, Attrs: attrs})
			}
			break
		}
	}
	pl.Finish()
	return lines.Canceled()
}
