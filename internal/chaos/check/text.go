package check

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-ha/vigil/internal/chaos/history"
)

// textLostRows bounds the lost writes listed on a terminal; report.json
// lists them all.
const textLostRows = 50

// PrintText writes the report for a person at a terminal: the verdict, a
// table per fault type, the lost writes, the violations with what
// reproduces them, and the history's own flaws.
func PrintText(w io.Writer, h history.History, r Result) error {
	var b strings.Builder
	verdict := "PASS"
	if !r.Passed() {
		verdict = fmt.Sprintf("FAIL, %d violation(s)", len(r.Violations))
	}
	fmt.Fprintf(&b, "chaos campaign seed %d: sync mode %s, dcs %s, %d node(s), %s: %s\n",
		h.Run.Seed, h.Run.SyncMode, h.Run.DCS, len(h.Run.Nodes), time.Duration(h.Run.Duration), verdict)
	if h.Run.Command != "" {
		fmt.Fprintf(&b, "reproduce: %s\n", h.Run.Command)
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "fault type\tinjected\trecovered\trecovery s from heal\tfrom injection\twrite outage s\tclient errors\tviolations")
	fmt.Fprintln(tw, "\t\t\tmin/med/p95/max\tmin/med/p95/max\tmed/max\t\t")
	for _, t := range slices.Sorted(maps.Keys(r.Faults)) {
		fs := r.Faults[t]
		rec := fmt.Sprint(fs.Recovered)
		if fs.Late > 0 {
			rec += fmt.Sprintf(" (%d late)", fs.Late)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%d\n", t, fs.Injected, rec, spread(fs.RecoveryS), spread(fs.FromInjectedS),
			medMax(fs.WriteOutageS), outcomes(fs.Errors), fs.Violations)
	}
	tw.Flush()
	fmt.Fprintf(&b, "\nwrites: %s\nerrors between faults: %s\n", outcomes(r.Writes), outcomes(r.Between))
	textLost(&b, h, r.Lost)
	if len(r.Violations) > 0 {
		fmt.Fprintf(&b, "\nVIOLATIONS (%d)\n", len(r.Violations))
	}
	for _, v := range r.Violations {
		fmt.Fprintf(&b, "  %s  %s  %s\n    %s\n", clock(v.At), v.Kind, reproducer(v), v.Message)
		if len(v.Writes) > 0 {
			fmt.Fprintf(&b, "    writes (%d): %s\n", len(v.Writes), idList(v.Writes, 20))
		}
	}
	for _, wn := range r.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", wn)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

func textLost(b *strings.Builder, h history.History, lost []Lost) {
	if len(lost) == 0 {
		b.WriteString("lost acknowledged writes: none\n")
		return
	}
	within := 0
	for _, l := range lost {
		if l.WithinBound {
			within++
		}
	}
	fmt.Fprintf(b, "lost acknowledged writes: %d, %d within maximum_lag_on_failover (%d bytes)\n", len(lost), within, h.Run.MaxLag)
	for _, l := range lost[:min(len(lost), textLostRows)] {
		fmt.Fprintf(b, "  %s\n", lostLine(l))
	}
	if len(lost) > textLostRows {
		fmt.Fprintf(b, "  … and %d more (%s lists them all)\n", len(lost)-textLostRows, JSONFile)
	}
}

// lostLine describes one lost write.
func lostLine(l Lost) string {
	size := fmt.Sprintf("%d bytes", l.Bytes)
	if l.Bytes < 0 {
		size = "not measurable: " + l.Unmeasured
	}
	within := "beyond the bound"
	if l.WithinBound {
		within = "within the bound"
	}
	return fmt.Sprintf("write %d acked %s on timeline %d at %s: loss %s, %s (step %d)", l.ID, clock(l.Acked), l.Timeline, l.LSN, size, within, l.Step)
}

// reproducer says what reproduces a violation.
func reproducer(v Violation) string {
	if v.Step == 0 {
		return fmt.Sprintf("seed %d", v.Seed)
	}
	return fmt.Sprintf("seed %d step %d (%s)", v.Seed, v.Step, v.Fault)
}

func spread(s Stats) string {
	if s.N == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f/%.1f/%.1f/%.1f", s.Min, s.Median, s.P95, s.Max)
}

func medMax(s Stats) string {
	if s.N == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f/%.1f", s.Median, s.Max)
}

// outcomes renders counts by outcome, in a fixed order.
func outcomes(m map[history.Outcome]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// idList renders the first n ids and how many more there are.
func idList(ids []int64, n int) string {
	parts := make([]string, 0, min(len(ids), n))
	for _, id := range ids[:min(len(ids), n)] {
		parts = append(parts, fmt.Sprint(id))
	}
	s := strings.Join(parts, ", ")
	if len(ids) > n {
		s += fmt.Sprintf(" … and %d more", len(ids)-n)
	}
	return s
}
