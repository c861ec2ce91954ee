// Package report renders an analysis: coloured text for a terminal, JSON
// for programs, and a self-contained HTML page with an SVG timeline.
package report

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/internal/analyze"
	"github.com/vigil-ha/vigil/internal/analyze/event"
)

// palette holds the escape sequences used; empty when colour is off.
type palette struct{ bold, dim, red, green, yellow, cyan, reset string }

func colours(on bool) palette {
	if !on {
		return palette{}
	}
	return palette{bold: "\x1b[1m", dim: "\x1b[2m", red: "\x1b[31m", green: "\x1b[32m", yellow: "\x1b[33m", cyan: "\x1b[36m", reset: "\x1b[0m"}
}

// Text writes the report for a person at a terminal.
func Text(w io.Writer, rep *analyze.Report, colour bool) error {
	c := colours(colour)
	var b strings.Builder
	fmt.Fprintf(&b, "%sFiles%s (times shown in %s)\n", c.bold, c.reset, rep.Zone)
	for _, f := range rep.Files {
		if f.Problem != "" {
			fmt.Fprintf(&b, "  %s%-28s%s %sskipped: %s%s\n", c.cyan, f.Source, c.reset, c.red, f.Problem, c.reset)
			continue
		}
		fmt.Fprintf(&b, "  %s%-28s%s %-18s %8d lines", c.cyan, f.Source, c.reset, f.Format, f.Lines)
		if !f.First.IsZero() {
			fmt.Fprintf(&b, "  %s .. %s", f.First.Format("2006-01-02 15:04:05"), f.Last.Format("15:04:05"))
		}
		fmt.Fprintf(&b, "  %d milestones, %d client errors\n", f.Milestones, f.Errors)
		if f.Zone != "" {
			fmt.Fprintf(&b, "  %28s %szone: %s%s\n", "", c.dim, f.Zone, c.reset)
		}
		for _, wn := range f.Warnings {
			fmt.Fprintf(&b, "  %28s %swarning: %s%s\n", "", c.yellow, wn, c.reset)
		}
	}
	for _, wn := range rep.Warnings {
		fmt.Fprintf(&b, "%swarning:%s %s\n", c.yellow, c.reset, wn)
	}
	if len(rep.Milestones) > 0 {
		fmt.Fprintf(&b, "\n%sTimeline%s\n", c.bold, c.reset)
		for _, e := range timelineRows(rep) {
			colour := ""
			switch {
			case event.IsClientError(e.Kind):
				colour = c.red
			case e.Kind == event.Ready || e.Kind == event.WriteCommitted:
				colour = c.green
			case e.Kind == event.VIPAdded || e.Kind == event.RouteUp:
				colour = c.yellow
			}
			fmt.Fprintf(&b, "  %s  %s%-16s%s %s%-26s%s %s\n", stamp(e.Time, e.Precision), c.cyan, trim(e.Source, 16), c.reset, colour, e.Kind, c.reset, trim(e.Text, 110))
		}
	}
	if len(rep.ClientErrors) > 0 {
		fmt.Fprintf(&b, "\n%sClient errors%s\n", c.bold, c.reset)
		for _, s := range rep.ClientErrors {
			fmt.Fprintf(&b, "  %s%-22s%s %7d in %-16s first %s (%s:%d), last %s%s\n", c.red, s.Kind, c.reset, s.Count, trim(s.Source, 16),
				stamp(s.First.Time, s.First.Precision), s.First.File, s.First.Line, stamp(s.Last.Time, s.Last.Precision), commands(s.Commands))
		}
	}
	if len(rep.Failovers) == 0 {
		fmt.Fprintf(&b, "\n%sNo failover (promotion) was found in these logs.%s\n", c.bold, c.reset)
	}
	for _, f := range rep.Failovers {
		writeFindings(&b, f, len(rep.Failovers), c)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeFindings(b *strings.Builder, f *analyze.Findings, n int, c palette) {
	fmt.Fprintf(b, "\n%sFindings", c.bold)
	if n > 1 {
		fmt.Fprintf(b, " (failover %d of %d)", f.Index, n)
	}
	fmt.Fprintf(b, "%s\n", c.reset)
	row := func(name, value, colour string) {
		fmt.Fprintf(b, "  %-30s %s%s%s\n", name, colour, value, c.reset)
	}
	if f.ReadOnlyWindowS != nil {
		colour := c.green
		if *f.ReadOnlyWindowS > 0 {
			colour = c.red
		}
		v := fmt.Sprintf("%.1f s", *f.ReadOnlyWindowS)
		if f.RouteUp != nil && f.Writable != nil {
			v += fmt.Sprintf("  %s %s (%s) -> writable %s (%s)", f.RouteUp.Kind, f.RouteUp.Clock(), f.RouteUp.Where(), f.Writable.Clock(), f.Writable.Where())
		}
		if f.WindowOpen {
			v += "  (still read-only when the logs end)"
		}
		row("read-only exposure window", v, colour)
	} else {
		row("read-only exposure window", "unknown (no VIP/route change or no writable line in the logs)", c.dim)
	}
	colour := c.green
	if f.ReadOnlyErrors > 0 {
		colour = c.red
	}
	row("statements failed read-only", fmt.Sprintf("%d (counted from %s; placed within %s)", f.ReadOnlyErrors, f.ReadOnlyErrorsFrom, dur(f.ErrorPrecisionS)), colour)
	if f.ConnectionErrors > 0 {
		row("connections refused or cut", fmt.Sprint(f.ConnectionErrors), c.red)
	}
	if f.WriteOutageS != nil {
		row("write outage", fmt.Sprintf("%.1f s  %s %s (%s) -> writable %s", *f.WriteOutageS, f.Failure.Kind, f.Failure.Clock(), f.Failure.Where(), f.Writable.Clock()), "")
	} else {
		row("write outage", "unknown (no failure or no writable line in the logs)", c.dim)
	}
	if f.Replay != nil {
		v := fmt.Sprintf("%.1f s", f.Replay.S)
		if f.Replay.From != nil && f.Replay.To != nil {
			v += fmt.Sprintf("  %s (%s) -> %s (%s)", f.Replay.From.Clock(), f.Replay.From.Where(), f.Replay.To.Clock(), f.Replay.To.Where())
		}
		row("replay after promote", v, "")
		row("  likely cause", f.Replay.Cause, c.dim)
	}
	if len(f.ChecksPassedReadOnly) > 0 {
		row("checks passed while read-only", fmt.Sprint(len(f.ChecksPassedReadOnly)), c.yellow)
		for _, m := range f.ChecksPassedReadOnly {
			fmt.Fprintf(b, "    %s  %s  %s\n", m.Clock(), m.Where(), trim(m.Text, 90))
		}
	}
	fmt.Fprintf(b, "\n%sVerdict%s\n%s\n", c.bold, c.reset, wrap(f.Verdict, 78, "  "))
	if len(f.Advice) > 0 {
		fmt.Fprintf(b, "\n%sWhat to change%s\n", c.bold, c.reset)
		for _, a := range f.Advice {
			fmt.Fprintf(b, "%s\n", wrap("- "+a, 78, "  "))
		}
	}
	if len(f.Evidence) > 0 {
		fmt.Fprintf(b, "\n%sEvidence:%s %s\n", c.dim, c.reset, strings.Join(f.Evidence, " "))
	}
}

// timelineRows merges milestones with the first and last of each client
// error, in time order.
func timelineRows(rep *analyze.Report) []event.Event {
	rows := append([]event.Event(nil), rep.Milestones...)
	for _, s := range rep.ClientErrors {
		first := s.First
		first.Text = fmt.Sprintf("first of %d: %s", s.Count, first.Text)
		rows = append(rows, first)
		if s.Count > 1 {
			last := s.Last
			last.Text = fmt.Sprintf("last of %d: %s", s.Count, last.Text)
			rows = append(rows, last)
		}
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Time.Before(rows[j].Time) })
	return rows
}

func commands(m map[string]int64) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || m[keys[i]] == m[keys[j]] && keys[i] < keys[j] })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return "  [" + strings.Join(parts, ", ") + "]"
}

func stamp(t time.Time, prec time.Duration) string {
	if prec >= time.Second {
		return t.Format("2006-01-02 15:04:05    ")
	}
	return t.Format("2006-01-02 15:04:05.000")
}

func dur(s float64) string {
	if s == 0 {
		return "-"
	}
	return (time.Duration(s * float64(time.Second))).String()
}

func trim(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func wrap(s string, width int, indent string) string {
	var b strings.Builder
	line := indent
	for _, w := range strings.Fields(s) {
		if len(line) > len(indent) && len(line)+1+len(w) > width {
			b.WriteString(strings.TrimRight(line, " ") + "\n")
			line = indent + "  "
		}
		if len(line) > len(indent) && !strings.HasSuffix(line, " ") {
			line += " "
		}
		line += w
	}
	b.WriteString(line)
	return b.String()
}
