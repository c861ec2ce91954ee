package event

import (
	"fmt"
	"sort"
	"time"
)

// Limits that keep a file's result bounded however large the file is.
const (
	// MaxEvents is how many milestones one file contributes; a log with
	// more (months of checkpoints) is narrowed with --since/--until.
	MaxEvents = 20000
	// MaxPerKind keeps a routine kind (a checkpoint every few minutes)
	// from crowding out the rare ones a failover is read from.
	MaxPerKind = 2000
	// MaxSamples is how many lines of each client error are kept as
	// evidence.
	MaxSamples = 3
	// MaxWarnings per file.
	MaxWarnings = 20
)

// ErrorStats counts one kind of client error in one file.
type ErrorStats struct {
	Kind   Kind   `json:"kind"`
	Source string `json:"source"`
	File   string `json:"file"`
	Count  int64  `json:"count"`
	First  Event  `json:"first"`
	Last   Event  `json:"last"`
	// Samples are the first lines, for evidence.
	Samples []Event `json:"samples,omitempty"`
	// Commands counts statements by command ("INSERT", "UPDATE") when the
	// message names it.
	Commands map[string]int64 `json:"commands,omitempty"`
	Hist     *Histogram       `json:"-"`
}

// Sink collects what one parser reads from one file.
type Sink struct {
	File   string
	Source string
	Format string
	// Floating: the file's times carry no zone; they are wall-clock fields
	// held as UTC until the analysis places them in a zone.
	Floating bool
	// Zones counts the zone names the file's timestamps carried.
	Zones map[string]int64
	// Lines with a timestamp, and lines the format did not recognise (with
	// the first such line number).
	Timed, Unparsed int64
	FirstUnparsed   int64
	First, Last     time.Time
	Events          []Event
	Dropped         int64
	perKind         map[Kind]int
	Errors          map[Kind]*ErrorStats
	Warnings        []string
	// Since and Until bound what is kept (zero: unbounded). Floating files
	// are bounded loosely here and exactly once placed.
	Since, Until time.Time
}

// NewSink returns a sink for one file.
func NewSink(file, source, format string) *Sink {
	return &Sink{File: file, Source: source, Format: format, Zones: map[string]int64{}, Errors: map[Kind]*ErrorStats{}}
}

// slack widens --since/--until for floating files: no zone is more than
// 14 hours from UTC.
const slack = 14 * time.Hour

func (s *Sink) inRange(t time.Time) bool {
	var d time.Duration
	if s.Floating {
		d = slack
	}
	if !s.Since.IsZero() && t.Before(s.Since.Add(-d)) {
		return false
	}
	if !s.Until.IsZero() && t.After(s.Until.Add(d)) {
		return false
	}
	return true
}

// Seen records a timestamped line: it is counted, and widens the file's
// time range.
func (s *Sink) Seen(t time.Time) {
	s.Timed++
	s.Extend(t)
}

// Extend widens the file's time range without counting a line.
func (s *Sink) Extend(t time.Time) {
	if s.First.IsZero() || t.Before(s.First) {
		s.First = t
	}
	if t.After(s.Last) {
		s.Last = t
	}
}

// Add keeps a milestone.
func (s *Sink) Add(e Event) {
	if !s.inRange(e.Time) {
		return
	}
	if e.Source == "" {
		e.Source = s.Source
	}
	e.File = s.File
	e.Text = Cut(e.Text)
	if s.perKind == nil {
		s.perKind = map[Kind]int{}
	}
	if len(s.Events) >= MaxEvents || s.perKind[e.Kind] >= MaxPerKind {
		s.Dropped++
		return
	}
	s.perKind[e.Kind]++
	s.Events = append(s.Events, e)
}

// ClientError counts a client error. command is the statement's command
// when the message names it.
func (s *Sink) ClientError(kind Kind, t time.Time, prec time.Duration, line int64, text, command string) {
	if !s.inRange(t) {
		return
	}
	st := s.Errors[kind]
	ev := func() Event {
		return Event{Time: t, Kind: kind, Source: s.Source, File: s.File, Line: line, Text: Cut(text), Precision: prec}
	}
	if st == nil {
		st = &ErrorStats{Kind: kind, Source: s.Source, File: s.File, First: ev(), Hist: NewHistogram(DefaultBuckets)}
		s.Errors[kind] = st
	}
	st.Count++
	if t.Before(st.First.Time) {
		st.First = ev()
	}
	if !t.Before(st.Last.Time) {
		st.Last = ev()
	}
	if len(st.Samples) < MaxSamples {
		st.Samples = append(st.Samples, ev())
	}
	if command != "" {
		if st.Commands == nil {
			st.Commands = map[string]int64{}
		}
		if len(st.Commands) < 32 || st.Commands[command] > 0 {
			st.Commands[command]++
		}
	}
	st.Hist.Add(t, 1)
}

// Unrecognised counts a line the format did not recognise.
func (s *Sink) Unrecognised(line int64) {
	s.Unparsed++
	if s.FirstUnparsed == 0 {
		s.FirstUnparsed = line
	}
}

// Warnf adds a warning about the file.
func (s *Sink) Warnf(format string, args ...any) {
	if len(s.Warnings) < MaxWarnings {
		s.Warnings = append(s.Warnings, fmt.Sprintf(format, args...))
	}
}

// Zone records a zone name seen in the file.
func (s *Sink) Zone(z string) {
	if len(s.Zones) < 16 || s.Zones[z] > 0 {
		s.Zones[z]++
	}
}

// SortedErrors returns the error stats in a stable order.
func (s *Sink) SortedErrors() []*ErrorStats {
	out := make([]*ErrorStats, 0, len(s.Errors))
	for _, e := range s.Errors {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Kind < out[j].Kind })
	return out
}

// AttachStatement adds the statement that failed to the sample of the
// error logged at line, when that error was kept as a sample.
func (s *Sink) AttachStatement(kind Kind, line int64, stmt string) {
	st := s.Errors[kind]
	if st == nil {
		return
	}
	for i := range st.Samples {
		if st.Samples[i].Line == line {
			st.Samples[i].Text = Cut(st.Samples[i].Text + " | STATEMENT: " + stmt)
			if st.Samples[i].Attrs == nil {
				st.Samples[i].Attrs = map[string]string{}
			}
			st.Samples[i].Attrs["statement"] = Cut(stmt)
		}
	}
	if st.First.Line == line && st.First.Attrs == nil {
		st.First.Attrs = map[string]string{"statement": Cut(stmt)}
	}
}
