package analyze

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/internal/analyze/event"
)

// Mark is one moment a finding rests on, with its evidence.
type Mark struct {
	Time   time.Time  `json:"time"`
	Kind   event.Kind `json:"kind"`
	Source string     `json:"source"`
	File   string     `json:"file"`
	Line   int64      `json:"line"`
	Text   string     `json:"text"`
	// Precision of the time, in seconds.
	PrecisionS float64 `json:"precision_s"`
}

// Where is "file:line".
func (m *Mark) Where() string { return fmt.Sprintf("%s:%d", m.File, m.Line) }

// Short is "lane:line", for prose.
func (m *Mark) Short() string {
	if m == nil {
		return "?"
	}
	return fmt.Sprintf("%s:%d", m.Source, m.Line)
}

// Clock is the time of day, to the millisecond when the log wrote that
// much ("?" for no mark).
func (m *Mark) Clock() string {
	if m == nil {
		return "?"
	}
	if m.PrecisionS >= 1 {
		return m.Time.Format("15:04:05")
	}
	return m.Time.Format("15:04:05.000")
}

func mark(e event.Event) *Mark {
	return &Mark{Time: e.Time, Kind: e.Kind, Source: e.Source, File: e.File, Line: e.Line, Text: e.Text, PrecisionS: e.Precision.Seconds()}
}

// Replay is how long the promoted server replayed WAL, and why.
type Replay struct {
	From  *Mark   `json:"from"`
	To    *Mark   `json:"to"`
	S     float64 `json:"seconds"`
	Start string  `json:"redo_start_lsn,omitempty"`
	End   string  `json:"redo_end_lsn,omitempty"`
	// Bytes is the redo range when the logs give both ends.
	Bytes int64 `json:"redo_bytes,omitempty"`
	// BacklogBytes is what a failover tool measured before promoting.
	BacklogBytes int64  `json:"replay_backlog_bytes,omitempty"`
	Cause        string `json:"likely_cause"`
}

// Findings are what one failover's logs prove.
type Findings struct {
	Index          int    `json:"index"`
	PromotedServer string `json:"promoted_server,omitempty"`
	Failure        *Mark  `json:"failure,omitempty"`
	Promote        *Mark  `json:"promote,omitempty"`
	RouteUp        *Mark  `json:"route_up,omitempty"`
	Writable       *Mark  `json:"writable,omitempty"`
	// ReadOnlyWindowS is route up -> writable (0 when the route came
	// after; null when either end is missing from the logs).
	ReadOnlyWindowS *float64 `json:"read_only_window_s"`
	// WindowOpen: no line shows the server writable; the window is
	// measured to the end of the logs.
	WindowOpen bool `json:"read_only_window_open,omitempty"`
	// ReadOnlyErrors are statements refused as read-only in the window
	// (or, with no route in the logs, between promote and writable).
	ReadOnlyErrors     int64  `json:"read_only_errors"`
	ReadOnlyErrorsFrom string `json:"read_only_errors_counted_from"`
	ConnectionErrors   int64  `json:"connection_errors"`
	// ErrorPrecisionS is how exactly errors could be placed against the
	// window's ends.
	ErrorPrecisionS float64  `json:"error_precision_s"`
	WriteOutageS    *float64 `json:"write_outage_s"`
	Replay          *Replay  `json:"replay,omitempty"`
	ReplayS         *float64 `json:"replay_s"`
	// ChecksPassedReadOnly are health checks that succeeded while the
	// database could not write.
	ChecksPassedReadOnly []*Mark  `json:"checks_passed_while_read_only"`
	Verdict              string   `json:"verdict"`
	Advice               []string `json:"advice"`
	// Evidence lists file:line of every line the findings rest on.
	Evidence []string  `json:"evidence"`
	From     time.Time `json:"-"`
	To       time.Time `json:"-"`
}

const (
	episodeGap    = 5 * time.Minute
	lookBack      = 10 * time.Minute
	lookAhead     = 30 * time.Minute
	skewTolerance = 2 * time.Second
)

func isPromote(k event.Kind) bool { return k == event.PromoteRequested || k == event.PromoteReceived }

// findFailovers groups promotions into failovers and works out each one's
// findings.
func findFailovers(rep *Report, tools map[string]bool) []*Findings {
	var anchors []time.Time
	for _, e := range rep.Milestones {
		if isPromote(e.Kind) {
			anchors = append(anchors, e.Time)
		}
	}
	if len(anchors) == 0 {
		for _, e := range rep.Milestones {
			if e.Kind == event.FailoverStart {
				anchors = append(anchors, e.Time)
			}
		}
	}
	if len(anchors) == 0 {
		return nil
	}
	sort.Slice(anchors, func(i, j int) bool { return anchors[i].Before(anchors[j]) })
	var groups []time.Time
	last := time.Time{}
	for _, a := range anchors {
		if len(groups) == 0 || a.Sub(last) > episodeGap {
			groups = append(groups, a)
		}
		last = a
	}
	var out []*Findings
	for i, p := range groups {
		lo, hi := p.Add(-lookBack), p.Add(lookAhead)
		if i > 0 && lo.Before(groups[i-1]) {
			lo = groups[i-1].Add(time.Nanosecond)
		}
		if i+1 < len(groups) && hi.After(groups[i+1]) {
			hi = groups[i+1].Add(-time.Nanosecond)
		}
		f := episode(rep, tools, p, lo, hi)
		f.Index = i + 1
		out = append(out, f)
	}
	return out
}

func within(t, lo, hi time.Time) bool { return !t.Before(lo) && !t.After(hi) }

func episode(rep *Report, tools map[string]bool, p, lo, hi time.Time) *Findings {
	f := &Findings{From: lo, To: hi, ChecksPassedReadOnly: []*Mark{}, Advice: []string{}}
	ev := func(pred func(event.Event) bool, from, to time.Time) []event.Event {
		var out []event.Event
		for _, e := range rep.Milestones {
			if within(e.Time, from, to) && pred(e) {
				out = append(out, e)
			}
		}
		return out
	}
	kinds := func(ks ...event.Kind) func(event.Event) bool {
		return func(e event.Event) bool {
			for _, k := range ks {
				if e.Kind == k {
					return true
				}
			}
			return false
		}
	}
	// The promotion: the tool's request if logged, else the server's.
	if ps := ev(kinds(event.PromoteRequested, event.PromoteReceived), p, p.Add(episodeGap)); len(ps) > 0 {
		f.Promote = mark(ps[0])
	}
	var received *event.Event
	if rs := ev(kinds(event.PromoteReceived), p, p.Add(episodeGap)); len(rs) > 0 {
		received = &rs[0]
		f.PromotedServer = rs[0].Source
	} else if nt := ev(kinds(event.NewTimeline), p, hi); len(nt) > 0 {
		f.PromotedServer = nt[0].Source
	}
	// Writable: the promoted server ready for writes, or a write committed.
	writable := ev(func(e event.Event) bool {
		return e.Kind == event.WriteCommitted || (e.Kind == event.Ready && (f.PromotedServer == "" || e.Source == f.PromotedServer))
	}, p, hi)
	if len(writable) > 0 {
		f.Writable = mark(writable[0])
	}
	// Routes: the first VIP or route change of the failover.
	if rs := ev(kinds(event.VIPAdded, event.RouteUp), lo, hi); len(rs) > 0 {
		f.RouteUp = mark(rs[0])
	}
	// Failure: the earliest sign before the promotion.
	if fs := ev(func(e event.Event) bool {
		switch e.Kind {
		case event.FailureDetected, event.FailoverStart, event.HealthCheckFailed, event.UpstreamLost, event.TrustedPingFailed:
			return true
		case event.ServerCrash, event.ShutdownRequest, event.ServerStopped:
			return e.Source != f.PromotedServer
		}
		return false
	}, lo, p); len(fs) > 0 {
		f.Failure = mark(fs[0])
	}

	var end time.Time
	if f.Writable != nil {
		end = f.Writable.Time
	} else {
		end = lastTime(rep, lo, hi)
	}
	// The read-only window.
	switch {
	case f.RouteUp != nil && f.Writable != nil:
		w := math.Max(0, f.Writable.Time.Sub(f.RouteUp.Time).Seconds())
		f.ReadOnlyWindowS = &w
	case f.RouteUp != nil && f.Writable == nil && f.PromotedServer != "":
		w := math.Max(0, end.Sub(f.RouteUp.Time).Seconds())
		f.ReadOnlyWindowS, f.WindowOpen = &w, true
	}
	from := p
	f.ReadOnlyErrorsFrom = "promote"
	if f.RouteUp != nil {
		from, f.ReadOnlyErrorsFrom = f.RouteUp.Time, "route_up"
	}
	if f.ReadOnlyWindowS == nil || *f.ReadOnlyWindowS > 0 {
		f.ReadOnlyErrors, f.ConnectionErrors, f.ErrorPrecisionS = countErrors(rep, from, end)
	}
	if f.Failure != nil && f.Writable != nil {
		o := f.Writable.Time.Sub(f.Failure.Time).Seconds()
		f.WriteOutageS = &o
	}
	f.Replay = replay(rep, f, received, lo, hi, ev)
	if f.Replay != nil {
		f.ReplayS = &f.Replay.S
	}
	// Checks that passed while the database could not write.
	for _, e := range ev(kinds(event.LivenessCheckOK, event.CheckpointDone), lo, end) {
		if f.Writable == nil || !e.Time.Add(e.Precision).After(f.Writable.Time) {
			f.ChecksPassedReadOnly = append(f.ChecksPassedReadOnly, mark(e))
		}
	}
	f.Evidence = evidence(f)
	verdict(f)
	return f
}

// lastTime is the latest milestone time in [lo, hi].
func lastTime(rep *Report, lo, hi time.Time) time.Time {
	t := lo
	for _, e := range rep.Milestones {
		if within(e.Time, lo, hi) && e.Time.After(t) {
			t = e.Time
		}
	}
	for _, s := range rep.ClientErrors {
		if within(s.Last.Time, lo, hi) && s.Last.Time.After(t) {
			t = s.Last.Time
		}
	}
	return t
}

// countErrors counts client errors in [from, to] over every file.
func countErrors(rep *Report, from, to time.Time) (readOnly, conn int64, prec float64) {
	for _, s := range rep.ClientErrors {
		n := s.hist.Count(from, to)
		if n == 0 {
			continue
		}
		if s.Kind == event.ReadOnlyError {
			readOnly += n
		} else {
			conn += n
		}
		prec = math.Max(prec, math.Max(s.hist.Resolution().Seconds(), s.First.Precision.Seconds()))
	}
	return readOnly, conn, prec
}

func replay(rep *Report, f *Findings, received *event.Event, lo, hi time.Time, ev func(func(event.Event) bool, time.Time, time.Time) []event.Event) *Replay {
	r := &Replay{}
	// A failover tool that measured the backlog before promoting says so.
	for _, e := range ev(func(e event.Event) bool { return e.Kind == event.Promoted && e.Attrs["replay_backlog_bytes"] != "" }, lo, hi) {
		r.BacklogBytes, _ = strconv.ParseInt(e.Attrs["replay_backlog_bytes"], 10, 64)
		break
	}
	if received == nil {
		if r.BacklogBytes == 0 {
			return nil
		}
		r.Cause = backlogCause(r, 0)
		return r
	}
	r.From = mark(*received)
	server := received.Source
	same := func(k event.Kind) func(event.Event) bool {
		return func(e event.Event) bool { return e.Kind == k && e.Source == server }
	}
	if done := ev(same(event.RedoDone), received.Time, hi); len(done) > 0 {
		r.To = mark(done[0])
		r.End = done[0].Attrs["lsn"]
	} else if f.Writable != nil {
		r.To = f.Writable
	} else {
		return nil
	}
	r.S = r.To.Time.Sub(r.From.Time).Seconds()
	// Redo that (re)started around the failover tells how much was replayed.
	if starts := ev(same(event.RedoStarts), lo, r.To.Time); len(starts) > 0 && r.End != "" {
		r.Start = starts[len(starts)-1].Attrs["lsn"]
		if a, ok1 := parseLSN(r.Start); ok1 {
			if b, ok2 := parseLSN(r.End); ok2 && b >= a {
				r.Bytes = int64(b - a)
			}
		}
	}
	r.Cause = backlogCause(r, r.S)
	return r
}

func backlogCause(r *Replay, secs float64) string {
	rate := func(b int64) string {
		if secs <= 0 {
			return ""
		}
		return fmt.Sprintf(" (%.1f MB/s)", float64(b)/1e6/secs)
	}
	switch {
	case r.BacklogBytes > 0:
		return fmt.Sprintf("the standby had %s of received WAL not yet replayed when it was promoted%s; it refuses writes until that is replayed", mb(r.BacklogBytes), rate(r.BacklogBytes))
	case r.Bytes > 0:
		return fmt.Sprintf("recovery replayed WAL from %s to %s: %s%s. A standby behind on replay (heavy write load on the old primary, long queries or a slow disk on the standby), or recovery restarted from an old checkpoint, must replay all of it before it accepts writes", r.Start, r.End, mb(r.Bytes), rate(r.Bytes))
	case secs > 5:
		return "the logs do not say how much WAL was left; a promotion this slow means the standby was behind on replay (heavy write load, long queries or a slow disk on the standby)"
	}
	return "replay was short: the standby was nearly caught up"
}

func mb(b int64) string {
	if b >= 1<<30 {
		return fmt.Sprintf("%.2f GB", float64(b)/(1<<30))
	}
	return fmt.Sprintf("%.1f MB", float64(b)/(1<<20))
}

// parseLSN reads "X/Y".
func parseLSN(s string) (uint64, bool) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, false
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return h<<32 | l, true
}

func evidence(f *Findings) []string {
	var out []string
	add := func(m *Mark) {
		if m != nil {
			out = append(out, m.Where())
		}
	}
	add(f.Failure)
	add(f.Promote)
	add(f.RouteUp)
	add(f.Writable)
	if f.Replay != nil {
		add(f.Replay.From)
		add(f.Replay.To)
	}
	for _, c := range f.ChecksPassedReadOnly {
		add(c)
	}
	seen := map[string]bool{}
	uniq := out[:0]
	for _, s := range out {
		if !seen[s] {
			seen[s] = true
			uniq = append(uniq, s)
		}
	}
	return uniq
}

// skewWarnings compares a failover tool's promote request with the
// server's "received promote request": the server cannot receive it
// before it was sent, nor long after.
func skewWarnings(ms []event.Event, tools map[string]bool) []string {
	var out []string
	seen := map[string]bool{}
	for _, srv := range ms {
		if srv.Kind != event.PromoteReceived {
			continue
		}
		var best *event.Event
		for i := range ms {
			req := &ms[i]
			if req.Kind != event.PromoteRequested || !tools[req.Source] || req.Source == srv.Source {
				continue
			}
			if best == nil || absDur(srv.Time.Sub(req.Time)) < absDur(srv.Time.Sub(best.Time)) {
				best = req
			}
		}
		if best == nil {
			continue
		}
		d := srv.Time.Sub(best.Time)
		key := srv.Source + "|" + best.Source
		tol := skewTolerance + best.Precision + srv.Precision
		if (d >= -tol && d <= 30*time.Second) || seen[key] || absDur(d) > 48*time.Hour {
			continue
		}
		seen[key] = true
		msg := fmt.Sprintf("clocks disagree: %s received the promote request %s %s %s sent it (%s:%d, %s:%d)",
			srv.Source, absDur(d).Round(time.Millisecond), map[bool]string{true: "before", false: "after"}[d < 0], best.Source,
			srv.File, srv.Line, best.File, best.Line)
		if h := absDur(d); h >= 30*time.Minute && absDur(h-h.Round(30*time.Minute)) < 2*time.Minute {
			msg += fmt.Sprintf("; %s is a whole number of half-hours: a time-zone mismatch (name the zone with --tz)", h.Round(30*time.Minute))
		} else {
			msg += "; the timeline lines them up as written"
		}
		out = append(out, msg)
	}
	return out
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
