package analyze

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/internal/analyze/clock"
	"github.com/vigil-ha/vigil/internal/analyze/event"
	"github.com/vigil-ha/vigil/internal/analyze/input"
)

// Options shape an analysis.
type Options struct {
	// Format forces a format for every file ("" or "auto": detect).
	Format string
	// TZ is the zone of times written without one, and the zone that
	// decides ambiguous abbreviations; nil: see Report.Zone.
	TZ *time.Location
	// Local is the machine's zone (time.Local when nil).
	Local *time.Location
	// Since and Until narrow the timeline (zero: unbounded).
	Since, Until time.Time
	// MaxLine cuts longer lines (input.DefaultMaxLine when 0).
	MaxLine int
	// Workers parse files in parallel (GOMAXPROCS when 0).
	Workers int
	Logger  *slog.Logger
}

// File is what was read from one input.
type File struct {
	Name     string    `json:"file"`
	Source   string    `json:"source"`
	Format   string    `json:"format,omitempty"`
	Encoding string    `json:"encoding,omitempty"`
	Gzip     bool      `json:"gzip,omitempty"`
	Lines    int64     `json:"lines"`
	Timed    int64     `json:"timed_lines"`
	Unknown  int64     `json:"unrecognised_lines"`
	LongCut  int64     `json:"long_lines_cut,omitempty"`
	First    time.Time `json:"first,omitzero"`
	Last     time.Time `json:"last,omitzero"`
	// Zone says how the file's times were placed.
	Zone       string   `json:"zone,omitempty"`
	Milestones int      `json:"milestones"`
	Errors     int64    `json:"client_errors"`
	Warnings   []string `json:"warnings,omitempty"`
	// Problem is why nothing could be read from the file.
	Problem string `json:"problem,omitempty"`
	// Tool: the file is a failover tool's log (failover_stream.sh, Vigil's
	// steps, Pgpool-II), drawn in the cluster's lanes rather than as a
	// database server.
	Tool bool `json:"-"`
}

// ErrorSummary is one kind of client error in one file.
type ErrorSummary struct {
	Kind     event.Kind       `json:"kind"`
	Source   string           `json:"source"`
	File     string           `json:"file"`
	Count    int64            `json:"count"`
	First    event.Event      `json:"first"`
	Last     event.Event      `json:"last"`
	Commands map[string]int64 `json:"commands,omitempty"`
	Samples  []event.Event    `json:"samples,omitempty"`
	// Buckets is the count over time, for charts.
	Buckets []event.Bucket `json:"-"`
	hist    *event.Histogram
}

// Report is the whole analysis.
type Report struct {
	Files        []File          `json:"files"`
	Milestones   []event.Event   `json:"milestones"`
	ClientErrors []*ErrorSummary `json:"client_errors"`
	Failovers    []*Findings     `json:"failovers"`
	// Findings are those of the last failover found (nil: none found).
	Findings *Findings `json:"findings"`
	Warnings []string  `json:"warnings,omitempty"`
	// Zone is the zone times are shown in.
	Zone string         `json:"zone"`
	Loc  *time.Location `json:"-"`
}

// Readable reports whether any file gave anything to analyse.
func (r *Report) Readable() bool {
	for _, f := range r.Files {
		if f.Problem == "" {
			return true
		}
	}
	return false
}

type parsed struct {
	file File
	sink *event.Sink
}

// Run reads every source and analyses them together. It fails only when
// ctx ends; a file that cannot be read is reported in its File.Problem.
func Run(ctx context.Context, sources []input.Source, o Options) (*Report, error) {
	if o.Local == nil {
		o.Local = time.Local
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	var forced *format
	if o.Format != "" && o.Format != "auto" {
		f, err := lookupFormat(o.Format)
		if err != nil {
			return nil, err
		}
		forced = &f
	}
	names := make([]string, len(sources))
	for i, s := range sources {
		names[i] = s.Name
	}
	lbl := labels(names)
	results := make([]parsed, len(sources))
	workers := o.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	sem := make(chan struct{}, workers)
	var wg sync.WaitGroup
	for i, src := range sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			start := time.Now()
			results[i] = parseSource(ctx, src, lbl[i], forced, o)
			o.Logger.Debug("parsed", "file", src.Name, "format", results[i].file.Format, "lines", results[i].file.Lines, "elapsed", time.Since(start))
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("analyze: %w", err)
	}
	return assemble(results, o), nil
}

func parseSource(ctx context.Context, src input.Source, label string, forced *format, o Options) parsed {
	f := File{Name: src.Name, Source: label}
	rc, err := src.Open()
	if err != nil {
		f.Problem = fmt.Sprintf("cannot open: %v", err)
		return parsed{file: f}
	}
	defer rc.Close()
	r, info, err := input.Prepare(rc)
	if err != nil {
		if errors.Is(err, input.ErrBinary) {
			f.Problem = "binary data, not a text log"
		} else {
			f.Problem = fmt.Sprintf("cannot read: %v", err)
		}
		return parsed{file: f}
	}
	f.Gzip, f.Encoding = info.Gzip, string(info.Encoding)
	if info.Empty {
		f.Problem = "empty file"
		return parsed{file: f}
	}
	lines := input.NewLinesContext(ctx, r, o.MaxLine)
	var fm format
	if forced != nil {
		fm = *forced
	} else {
		var score int
		fm, score = detect(src.Name, lines.Peek(64<<10))
		if score == 0 {
			f.Problem = "format not recognised: no failover-log markers, JSON step lines or timestamped server-log lines in its first 64 KiB (use --format to force one)"
			return parsed{file: f}
		}
	}
	f.Format, f.Tool = fm.name, fm.tool
	sink := event.NewSink(src.Name, label, fm.name)
	sink.Since, sink.Until = o.Since, o.Until
	res := clock.NewResolver(o.TZ, o.Local)
	if err := fm.parse(ctx, lines, sink, res); err != nil {
		f.Problem = fmt.Sprintf("stopped: %v", err)
		return parsed{file: f}
	}
	for _, z := range slices.Sorted(maps.Keys(res.Guesses)) {
		sink.Warnf("%s", res.Guesses[z])
	}
	f.Lines, f.Timed, f.Unknown, f.LongCut = lines.Line(), sink.Timed, sink.Unparsed, lines.Long()
	if err := lines.Err(); err != nil {
		sink.Warnf("read error after line %d: %v (what came before is used)", lines.Line(), err)
	} else if lines.Truncated {
		sink.Warnf("the file does not end with a newline: its last line may be cut")
	}
	if f.LongCut > 0 {
		sink.Warnf("%d lines longer than %d KiB were cut to that length", f.LongCut, maxLine(o)>>10)
	}
	if sink.Unparsed > 0 {
		sink.Warnf("%d of %d lines are not %s (first at line %d): mixed formats, or lines this version does not know", sink.Unparsed, f.Lines, fm.name, sink.FirstUnparsed)
	}
	if sink.Dropped > 0 {
		sink.Warnf("%d more milestones were left out (limits: %d per kind, %d per file): narrow the time range with --since/--until", sink.Dropped, event.MaxPerKind, event.MaxEvents)
	}
	if f.Encoding == string(input.GBK) {
		sink.Warnf("text decoded from GBK")
	}
	if sink.Timed == 0 && len(sink.Events) == 0 {
		f.Problem = fmt.Sprintf("no line could be read as %s", fm.name)
	}
	return parsed{file: f, sink: sink}
}

func maxLine(o Options) int {
	if o.MaxLine > 0 {
		return o.MaxLine
	}
	return input.DefaultMaxLine
}

// assemble places floating times, merges the files and finds failovers.
func assemble(results []parsed, o Options) *Report {
	rep := &Report{}
	floatLoc, floatNote := floatingZone(results, o)
	rep.Loc = o.TZ
	if rep.Loc == nil {
		rep.Loc = floatLoc
	}
	rep.Zone = rep.Loc.String()
	tools := map[string]bool{}
	for i := range results {
		p := &results[i]
		s := p.sink
		if s == nil {
			rep.Files = append(rep.Files, p.file)
			continue
		}
		if s.Floating {
			place(s, floatLoc)
			p.file.Zone = "none written: " + floatNote
		} else {
			p.file.Zone = zoneList(s.Zones)
		}
		tools[s.Source] = p.file.Tool
		p.file.First, p.file.Last = s.First, s.Last
		for _, e := range s.Events {
			if inRange(e.Time, o) {
				rep.Milestones = append(rep.Milestones, e)
				p.file.Milestones++
			}
		}
		for _, st := range s.SortedErrors() {
			p.file.Errors += st.Count
			rep.ClientErrors = append(rep.ClientErrors, &ErrorSummary{Kind: st.Kind, Source: st.Source, File: st.File, Count: st.Count,
				First: st.First, Last: st.Last, Commands: st.Commands, Samples: st.Samples, Buckets: st.Hist.Buckets(), hist: st.Hist})
		}
		p.file.Warnings = s.Warnings
		rep.Files = append(rep.Files, p.file)
	}
	sort.SliceStable(rep.Milestones, func(i, j int) bool { return rep.Milestones[i].Time.Before(rep.Milestones[j].Time) })
	// Everything is shown in one zone.
	for i := range rep.Milestones {
		rep.Milestones[i].Time = rep.Milestones[i].Time.In(rep.Loc)
	}
	for _, s := range rep.ClientErrors {
		s.First.Time, s.Last.Time = s.First.Time.In(rep.Loc), s.Last.Time.In(rep.Loc)
		for i := range s.Samples {
			s.Samples[i].Time = s.Samples[i].Time.In(rep.Loc)
		}
	}
	for i := range rep.Files {
		if !rep.Files[i].First.IsZero() {
			rep.Files[i].First, rep.Files[i].Last = rep.Files[i].First.In(rep.Loc), rep.Files[i].Last.In(rep.Loc)
		}
	}
	rep.Warnings = append(rep.Warnings, zoneWarnings(results, o, floatLoc)...)
	rep.Warnings = append(rep.Warnings, skewWarnings(rep.Milestones, tools)...)
	rep.Failovers = findFailovers(rep, tools)
	if n := len(rep.Failovers); n > 0 {
		rep.Findings = rep.Failovers[n-1]
	}
	return rep
}

func inRange(t time.Time, o Options) bool {
	return (o.Since.IsZero() || !t.Before(o.Since)) && (o.Until.IsZero() || !t.After(o.Until))
}

// place moves a floating file's wall-clock times into loc.
func place(s *event.Sink, loc *time.Location) {
	f := func(t time.Time) time.Time { return clock.Place(t, loc) }
	for i := range s.Events {
		s.Events[i].Time = f(s.Events[i].Time)
	}
	if !s.First.IsZero() {
		s.First, s.Last = f(s.First), f(s.Last)
	}
	for _, st := range s.Errors {
		st.First.Time, st.Last.Time = f(st.First.Time), f(st.Last.Time)
		for i := range st.Samples {
			st.Samples[i].Time = f(st.Samples[i].Time)
		}
		h := event.NewHistogram(event.DefaultBuckets)
		h.Merge(st.Hist, f)
		st.Hist = h
	}
}

// floatingZone decides where times written without a zone are placed:
// --tz; else the zone every zoned file agrees on (a failover script runs
// on the database hosts, in their zone); else the machine's.
func floatingZone(results []parsed, o Options) (*time.Location, string) {
	if o.TZ != nil {
		return o.TZ, "read in " + o.TZ.String() + " (--tz)"
	}
	res := clock.NewResolver(nil, o.Local)
	offsets := map[int]string{}
	var loc *time.Location
	for _, p := range results {
		if p.sink == nil || p.sink.Floating || p.sink.First.IsZero() {
			continue
		}
		for z := range p.sink.Zones {
			if z == "" {
				continue
			}
			t, ok, err := res.Resolve(clock.Stamp{Wall: p.sink.First.UTC(), Zone: z})
			if err != nil || !ok {
				continue
			}
			_, off := t.Zone()
			offsets[off] = z
			loc = t.Location()
		}
	}
	if len(offsets) == 1 && loc != nil {
		for off, z := range offsets {
			if loc == o.Local {
				return o.Local, "read in " + o.Local.String() + ", the zone of the other logs (" + z + ")"
			}
			return time.FixedZone(z, off), fmt.Sprintf("read in %s (UTC%s), the zone of the other logs; name it with --tz if that is wrong", z, clock.FormatOffset(off))
		}
	}
	return o.Local, "read as local time (" + o.Local.String() + "); name the zone with --tz"
}

func zoneList(z map[string]int64) string {
	var out string
	for _, k := range slices.Sorted(maps.Keys(z)) {
		if out != "" {
			out += ", "
		}
		if k == "" {
			k = "(none)"
		}
		out += k
	}
	return out
}

// zoneWarnings says when files were written in different zones, and when
// zone-less files had to be read in the machine's zone beside zoned ones.
func zoneWarnings(results []parsed, o Options, floatLoc *time.Location) []string {
	var out []string
	offsets := map[int][]string{}
	floating := 0
	res := clock.NewResolver(o.TZ, o.Local)
	for _, p := range results {
		if p.sink == nil {
			continue
		}
		if p.sink.Floating {
			floating++
			continue
		}
		for z := range p.sink.Zones {
			if z == "" || p.sink.First.IsZero() {
				continue
			}
			if t, ok, err := res.Resolve(clock.Stamp{Wall: p.sink.First, Zone: z}); err == nil && ok {
				_, off := t.Zone()
				offsets[off] = append(offsets[off], p.sink.Source+" ("+z+")")
			}
		}
	}
	if len(offsets) > 1 {
		var parts string
		for _, off := range slices.Sorted(maps.Keys(offsets)) {
			parts += fmt.Sprintf("; UTC%s: %v", clock.FormatOffset(off), offsets[off])
		}
		out = append(out, "the files were written in different time zones"+parts+": all times are converted, but check the servers' log_timezone")
	}
	if floating > 0 && len(offsets) > 1 && o.TZ == nil {
		out = append(out, fmt.Sprintf("%d file(s) have no time zone and the other logs disagree: they were read in %s; name the zone with --tz", floating, floatLoc))
	}
	return out
}
