// Package synth writes synthetic PostgreSQL server logs of any size for
// measuring `vigil analyze`: a busy server's ordinary lines (statements
// with durations, connections, errors, checkpoints) with a promotion in
// the middle, read-only errors while it replays, and the line that says it
// is ready. What it wrote is returned, so a measurement can check that the
// analysis found exactly that.
package synth

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"time"
)

// Formats written.
const (
	Stderr = "stderr"
	CSV    = "csvlog"
	JSON   = "jsonlog"
)

// Options shape a synthetic log.
type Options struct {
	// Bytes is the size to write (at least one line is written).
	Bytes int64
	// Format is Stderr (log_line_prefix '%m [%p] '), CSV or JSON.
	Format string
	// Start is the first line's time (UTC).
	Start time.Time
	// Step is the time between lines.
	Step time.Duration
	// ReadOnlyFor is how long the promoted server refuses writes.
	ReadOnlyFor time.Duration
	Seed        uint64
}

// Stats say what was written.
type Stats struct {
	Bytes          int64
	Lines          int64
	ReadOnlyErrors int64
	PromoteAt      time.Time
	ReadyAt        time.Time
}

var statements = []string{
	"SELECT id, status, amount FROM orders WHERE customer_id = $1 ORDER BY created_at DESC LIMIT 20",
	"UPDATE accounts SET balance = balance - $1 WHERE id = $2",
	"INSERT INTO events (kind, payload, created_at) VALUES ($1, $2, now())",
	"SELECT count(*) FROM sessions WHERE last_seen > now() - interval '5 minutes'",
	"DELETE FROM carts WHERE updated_at < now() - interval '30 days'",
}

type writer struct {
	w      *bufio.Writer
	o      Options
	st     Stats
	buf    []byte
	rng    *rand.Rand
	now    time.Time
	pid    int
	cached int64 // second of tsBuf
	tsBuf  []byte
}

// Write writes a synthetic log of about o.Bytes to w.
func Write(w io.Writer, o Options) (Stats, error) {
	if o.Format == "" {
		o.Format = Stderr
	}
	if o.Format != Stderr && o.Format != CSV && o.Format != JSON {
		return Stats{}, fmt.Errorf("synth: unknown format %q", o.Format)
	}
	if o.Start.IsZero() {
		o.Start = time.Date(2023, 9, 19, 0, 0, 0, 0, time.UTC)
	}
	if o.Step <= 0 {
		o.Step = 7 * time.Millisecond
	}
	if o.ReadOnlyFor <= 0 {
		o.ReadOnlyFor = 35 * time.Second
	}
	g := &writer{w: bufio.NewWriterSize(w, 1<<20), o: o, rng: rand.New(rand.NewPCG(o.Seed, 0x5eed)), now: o.Start.UTC(), pid: 4000, cached: -1}
	half := o.Bytes / 2
	promoted := false
	for g.st.Bytes < o.Bytes || g.st.Lines == 0 {
		if !promoted && g.st.Bytes >= half {
			promoted = true
			g.failover()
			continue
		}
		g.ordinary()
	}
	if err := g.w.Flush(); err != nil {
		return g.st, fmt.Errorf("synth: write: %w", err)
	}
	return g.st, nil
}

func (g *writer) tick() { g.now = g.now.Add(g.o.Step) }

func (g *writer) ordinary() {
	g.tick()
	switch r := g.rng.IntN(100); {
	case r < 75:
		s := statements[g.rng.IntN(len(statements))]
		g.line("LOG", "", "duration: "+strconv.FormatFloat(g.rng.Float64()*20, 'f', 3, 64)+" ms  statement: "+s, "")
	case r < 82:
		g.pid++
		g.line("LOG", "", "connection received: host=10.0.3."+strconv.Itoa(g.rng.IntN(250))+" port="+strconv.Itoa(30000+g.rng.IntN(30000)), "")
	case r < 89:
		g.line("LOG", "", "connection authorized: user=app database=shop application_name=api", "")
	case r < 95:
		g.line("LOG", "", "disconnection: session time: 0:00:0"+strconv.Itoa(g.rng.IntN(10))+".123 user=app database=shop host=10.0.3.7 port=41234", "")
	case r < 99:
		g.line("ERROR", "23505", "duplicate key value violates unique constraint \"orders_pkey\"", "INSERT INTO orders (id) VALUES (42)")
	default:
		g.line("LOG", "", "checkpoint complete: wrote 1843 buffers (11.2%); 0 WAL file(s) added, 0 removed, 3 recycled; write=26.931 s, sync=0.004 s, total=26.951 s", "")
	}
}

// failover writes the promotion: refused writes while the backlog is
// replayed, then ready.
func (g *writer) failover() {
	g.tick()
	g.line("FATAL", "XX000", "could not receive data from WAL stream: server closed the connection unexpectedly", "")
	g.now = g.now.Add(5 * time.Second)
	g.st.PromoteAt = g.now
	g.line("LOG", "", "received promote request", "")
	end := g.now.Add(g.o.ReadOnlyFor)
	for g.now.Add(100 * time.Millisecond).Before(end) {
		g.now = g.now.Add(100 * time.Millisecond)
		g.line("ERROR", "25006", "cannot execute INSERT in a read-only transaction", "INSERT INTO events (kind, payload, created_at) VALUES ($1, $2, now())")
		g.st.ReadOnlyErrors++
	}
	g.now = end.Add(-50 * time.Millisecond)
	g.line("LOG", "", "redo done at 3/5E7FFF90 system usage: CPU: user: 21.40 s, system: 6.10 s, elapsed: 35.01 s", "")
	g.line("LOG", "", "selected new timeline ID: 2", "")
	g.line("LOG", "", "archive recovery complete", "")
	g.now = end
	g.st.ReadyAt = g.now
	g.line("LOG", "", "database system is ready to accept connections", "")
}

// line writes one message (and its STATEMENT) in the chosen format.
func (g *writer) line(sev, state, msg, stmt string) {
	b := g.buf[:0]
	switch g.o.Format {
	case Stderr:
		b = g.stderr(b, sev, msg)
		if stmt != "" {
			b = g.stderr(b, "STATEMENT", stmt)
		}
	case CSV:
		b = g.stamp(b)
		b = append(b, `,"app","shop",`...)
		b = strconv.AppendInt(b, int64(g.pid), 10)
		b = append(b, `,"10.0.3.7:41234",64f1a2b3.fa0,1,"INSERT",2023-09-19 00:00:00 UTC,3/0,0,`...)
		b = append(b, sev...)
		b = append(b, ',')
		b = append(b, state...)
		b = append(b, `,"`...)
		b = append(b, msg...)
		b = append(b, `",,,,,,"`...)
		b = append(b, stmt...)
		b = append(b, `",,,"api","client backend",,0`...)
		b = append(b, '\n')
	case JSON:
		b = append(b, `{"timestamp":"`...)
		b = g.stamp(b)
		b = append(b, `","user":"app","dbname":"shop","pid":`...)
		b = strconv.AppendInt(b, int64(g.pid), 10)
		b = append(b, `,"remote_host":"10.0.3.7","session_id":"64f1a2b3.fa0","line_num":1,"error_severity":"`...)
		b = append(b, sev...)
		if state != "" {
			b = append(b, `","state_code":"`...)
			b = append(b, state...)
		}
		b = append(b, `","message":`...)
		b = strconv.AppendQuote(b, msg)
		if stmt != "" {
			b = append(b, `,"statement":`...)
			b = strconv.AppendQuote(b, stmt)
		}
		b = append(b, `,"backend_type":"client backend"}`...)
		b = append(b, '\n')
	}
	g.buf = b
	g.w.Write(b)
	g.st.Bytes += int64(len(b))
	g.st.Lines++
}

func (g *writer) stderr(b []byte, sev, msg string) []byte {
	b = g.stamp(b)
	b = append(b, " ["...)
	b = strconv.AppendInt(b, int64(g.pid), 10)
	b = append(b, "] "...)
	b = append(b, sev...)
	b = append(b, ":  "...)
	b = append(b, msg...)
	return append(b, '\n')
}

// stamp writes "2006-01-02 15:04:05.000 UTC" (%m), formatting the seconds
// once per second: the generator must outrun the analyzer it feeds.
func (g *writer) stamp(b []byte) []byte {
	sec := g.now.Unix()
	if sec != g.cached {
		g.cached = sec
		g.tsBuf = g.now.AppendFormat(g.tsBuf[:0], "2006-01-02 15:04:05")
	}
	b = append(b, g.tsBuf...)
	ms := g.now.Nanosecond() / 1e6
	b = append(b, '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
	return append(b, " UTC"...)
}
