package check

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/vigil-ha/vigil/internal/chaos/history"
)

// chart is the geometry of the SVG timeline, computed here so that the
// template only places what it is given (and escapes every text).
type chart struct {
	Width, Height, Left, Right float64
	RowsTop, RowsBottom        float64
	Bands                      []band
	Labels                     []label
	LaneLabels                 []label // of the failure row's lanes
	Rows                       []row
	Marks                      []mark
	Rings                      []mark
	Violations                 []vline
	Ticks                      []tick
	Types                      []swatch // fault types, for the legend
	Outcomes                   []swatch
}

type band struct {
	X, W, RX, RW float64 // fault (injected to healed), then recovery
	Colour       string
	Title        string
}

type label struct {
	X, Y   float64
	Text   string
	Colour string
}

type row struct {
	Y, H, TextY float64
	Label       string
	Title       string
	Shade       bool
}

type mark struct {
	X, Y   float64
	Colour string
	Title  string
}

type vline struct {
	X     float64
	Title string
}

type tick struct {
	X    float64
	Text string
}

type swatch struct{ Name, Colour string }

// Chart dimensions, in pixels.
const (
	chartWidth  = 1200.0
	chartLeft   = 220.0
	chartRight  = 20.0
	rowHeight   = 22.0
	subLane     = 10.0
	labelLine   = 13.0
	labelLanes  = 6
	charWidth   = 6.2 // of the label font, to stack labels without overlap
	ringsPerVio = 200 // rings drawn per violation; its table row lists them all
)

// bandColour is the colour of the i-th fault type.
func bandColour(i int) string {
	palette := [...]string{"#1f6feb", "#e0a100", "#a371f7", "#1b7f3b", "#0a7ea4", "#bf3989", "#8a5a00", "#57606a", "#2da44e", "#cf222e"}
	return palette[i%len(palette)]
}

// lostColour marks an acknowledged write missing at the end.
const lostColour = "#e8710a"

func outcomeColour(o history.Outcome) string {
	switch o {
	case history.OK:
		return "#1b7f3b"
	case history.ReadOnly:
		return "#d93025"
	case history.Connection:
		return "#8c959f"
	case history.Unknown:
		return "#a371f7"
	}
	return "#6e4b00"
}

// failureLanes are the sub-rows of the row of writes no server
// acknowledged; any other outcome goes to the last.
func failureLanes() []history.Outcome {
	return []history.Outcome{history.ReadOnly, history.Connection, history.Unknown, history.Other}
}

// newChart lays out the campaign: a row per server identity (the old
// primary and its successor apart), one row with a lane per failure
// outcome, faults as bands over them, violations as red lines. Writes are
// binned per pixel column so that a long campaign stays a small file.
func newChart(h history.History, r Result) chart {
	ch := chart{Width: chartWidth, Left: chartLeft, Right: chartRight}
	c := newChecker(h, Options{})
	lo, hi := span(h, c.horizon)
	x := func(t time.Time) float64 {
		return chartLeft + (chartWidth-chartLeft-chartRight)*t.Sub(lo).Seconds()/hi.Sub(lo).Seconds()
	}
	colours := typeColours(h.Faults)
	ch.RowsTop = 8 + labelLine*float64(ch.faultLabels(h.Faults, x, colours))
	servers := c.servers()
	lanes := failureLanes()
	rowOf := map[identity]int{}
	y := ch.RowsTop
	for i, s := range servers {
		rowOf[s.id] = i
		ch.Rows = append(ch.Rows, row{Y: y, H: rowHeight, TextY: y + 15, Label: trim(fmt.Sprintf("%s tl %d", s.id.Server, s.id.Timeline), 32),
			Title: fmt.Sprintf("%s: %d acknowledged writes", s.id, len(s.writes)), Shade: i%2 == 1})
		y += rowHeight
	}
	failTop := y
	ch.Rows = append(ch.Rows, row{Y: y, H: subLane * float64(len(lanes)), TextY: y + 24, Label: "not acknowledged",
		Title: "failed writes, one lane per outcome: read_only, connection, unknown, other", Shade: len(servers)%2 == 1})
	for i, o := range lanes {
		ch.LaneLabels = append(ch.LaneLabels, label{X: chartLeft - 4, Y: y + subLane*float64(i+1) - 2, Text: string(o), Colour: outcomeColour(o)})
	}
	ch.RowsBottom = y + subLane*float64(len(lanes))
	ch.Height = ch.RowsBottom + 24
	ch.bands(h.Faults, x, colours)
	lost := map[int64]bool{}
	for _, l := range r.Lost {
		lost[l.ID] = true
	}
	// where places a write: its row's middle (its lane's for a failure).
	where := func(w history.Write) (float64, float64, string) {
		if w.Outcome == history.OK {
			colour := outcomeColour(history.OK)
			if lost[w.ID] {
				colour = lostColour
			}
			return x(w.End), ch.Rows[rowOf[identityOf(w)]].Y + rowHeight/2, colour
		}
		lane := slices.Index(lanes, w.Outcome)
		if lane < 0 {
			lane = len(lanes) - 1
		}
		return x(w.End), failTop + subLane*(float64(lane)+0.5), outcomeColour(lanes[lane])
	}
	ch.binWrites(h.Writes, where, func(w history.Write) bool {
		_, known := rowOf[identityOf(w)]
		return w.Outcome != history.OK || known
	})
	ch.violations(h.Writes, r.Violations, where, x)
	ch.axis(lo, hi, x)
	for _, t := range slices.Sorted(maps.Keys(colours)) {
		ch.Types = append(ch.Types, swatch{t, colours[t]})
	}
	for _, o := range append([]history.Outcome{history.OK}, lanes...) {
		ch.Outcomes = append(ch.Outcomes, swatch{string(o), outcomeColour(o)})
	}
	ch.Outcomes = append(ch.Outcomes, swatch{"acknowledged, then lost", lostColour})
	return ch
}

// span is the time the chart covers: the whole run, never empty.
func span(h history.History, horizon time.Time) (time.Time, time.Time) {
	lo := h.Run.Started
	for _, w := range h.Writes {
		if lo.IsZero() || w.Start.Before(lo) {
			lo = w.Start
		}
	}
	for _, f := range h.Faults {
		if lo.IsZero() || f.Injected.Before(lo) {
			lo = f.Injected
		}
	}
	hi := horizon
	if !hi.After(lo) {
		hi = lo.Add(time.Second)
	}
	return lo, hi
}

func typeColours(faults []history.Fault) map[string]string {
	out := map[string]string{}
	var types []string
	for _, f := range faults {
		if !slices.Contains(types, f.Type) {
			types = append(types, f.Type)
		}
	}
	slices.Sort(types)
	for i, t := range types {
		out[t] = bandColour(i)
	}
	return out
}

// faultLabels stacks one label per fault above the rows, each in the first
// lane free at its x, and returns how many lanes it used.
func (ch *chart) faultLabels(faults []history.Fault, x func(time.Time) float64, colours map[string]string) int {
	sorted := slices.SortedStableFunc(slices.Values(faults), func(a, b history.Fault) int { return a.Injected.Compare(b.Injected) })
	ends := make([]float64, labelLanes)
	used := 1
	for _, f := range sorted {
		text := fmt.Sprintf("#%d %s %s", f.Step, f.Type, f.Target)
		px := x(f.Injected)
		lane := slices.IndexFunc(ends, func(e float64) bool { return e < px })
		if lane < 0 {
			lane = slices.Index(ends, slices.Min(ends)) // crowded: overlap the lane that frees first
		}
		ends[lane] = px + charWidth*float64(len(text)) + 4
		used = max(used, lane+1)
		ch.Labels = append(ch.Labels, label{X: px + 2, Y: 8 + labelLine*float64(lane+1) - 3, Text: text, Colour: colours[f.Type]})
	}
	return used
}

func (ch *chart) bands(faults []history.Fault, x func(time.Time) float64, colours map[string]string) {
	for _, f := range faults {
		healed := latest(f.Healed, f.Injected)
		if f.Healed.IsZero() {
			healed = latest(f.Injected, f.Recovered)
		}
		recovered := latest(f.Recovered, healed)
		title := fmt.Sprintf("step %d: %s on %s %s\ninjected %s, healed %s, recovered %s", f.Step, f.Type, f.Target, f.Detail,
			clock(f.Injected), stamp(f.Healed), stamp(f.Recovered))
		ch.Bands = append(ch.Bands, band{X: x(f.Injected), W: max(1, x(healed)-x(f.Injected)), RX: x(healed),
			RW: x(recovered) - x(healed), Colour: colours[f.Type], Title: title})
	}
}

// binWrites draws one mark per row, pixel column and colour, titled with
// its count.
func (ch *chart) binWrites(ws []history.Write, where func(history.Write) (float64, float64, string), keep func(history.Write) bool) {
	type key struct {
		px     int
		y      float64
		colour string
	}
	type bin struct {
		n     int
		first time.Time
	}
	bins := map[key]*bin{}
	names := map[string]string{}
	for _, w := range ws {
		if !keep(w) {
			continue
		}
		px, y, c := where(w)
		k := key{int(px), y, c}
		if bins[k] == nil {
			bins[k] = &bin{first: w.End}
		}
		bins[k].n++
		names[c] = string(w.Outcome)
		if c == lostColour {
			names[c] = "acknowledged, then lost"
		}
	}
	keys := slices.SortedFunc(maps.Keys(bins), func(a, b key) int {
		return cmp.Or(cmp.Compare(a.y, b.y), cmp.Compare(a.px, b.px), cmp.Compare(a.colour, b.colour))
	})
	for _, k := range keys {
		ch.Marks = append(ch.Marks, mark{X: float64(k.px), Y: k.y, Colour: k.colour,
			Title: fmt.Sprintf("%s: %d %s", clock(bins[k].first), bins[k].n, names[k.colour])})
	}
}

// violations draws a line at each violation and rings its writes.
func (ch *chart) violations(ws []history.Write, vs []Violation, where func(history.Write) (float64, float64, string), x func(time.Time) float64) {
	byID := make(map[int64]history.Write, len(ws))
	for _, w := range ws {
		byID[w.ID] = w
	}
	for _, v := range vs {
		ch.Violations = append(ch.Violations, vline{X: x(v.At), Title: fmt.Sprintf("%s (%s): %s", v.Kind, reproducer(v), v.Message)})
		for _, id := range v.Writes[:min(len(v.Writes), ringsPerVio)] {
			if w, ok := byID[id]; ok {
				px, y, _ := where(w)
				ch.Rings = append(ch.Rings, mark{X: px, Y: y, Title: fmt.Sprintf("write %d, %s: %s", id, v.Kind, clock(w.End))})
			}
		}
	}
}

// axis ticks the time axis at a round step, a dozen ticks at most.
func (ch *chart) axis(lo, hi time.Time, x func(time.Time) float64) {
	steps := []time.Duration{time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute,
		5 * time.Minute, 10 * time.Minute, 30 * time.Minute, time.Hour, 6 * time.Hour}
	i := slices.IndexFunc(steps, func(s time.Duration) bool { return hi.Sub(lo)/s <= 12 })
	if i < 0 {
		i = len(steps) - 1
	}
	step := steps[i]
	for t := lo.Truncate(step).Add(step); !t.After(hi); t = t.Add(step) {
		ch.Ticks = append(ch.Ticks, tick{X: x(t), Text: t.Format("15:04:05")})
	}
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return clock(t)
}

func trim(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
