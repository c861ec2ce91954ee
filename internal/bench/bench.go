// Package bench measures failovers: it runs the demo's scenario many times,
// for several scenarios and with the seed's legacy order as a baseline in
// the same run, and summarises what the application saw. It measures; the
// tests assert.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/internal/bench/patroni"
	"github.com/vigil-ha/vigil/internal/demo"
	"github.com/vigil-ha/vigil/internal/workload"
)

// Scenario is one kind of failover.
type Scenario struct {
	Name     string `json:"name"`
	Crash    string `json:"crash"`
	LagMB    int    `json:"lag_mb"`
	Legacy   bool   `json:"legacy_order"`
	SyncMode string `json:"sync_mode"`
	// Patroni names the Patroni settings the scenario runs Patroni with
	// instead of Vigil (--compare patroni); empty for Vigil.
	Patroni string `json:"patroni,omitempty"`
}

// DefaultScenarios: node and database crashes, with and without replay
// lag, and the legacy baseline under lag.
func DefaultScenarios(lagMB int) []Scenario {
	return []Scenario{
		{Name: "node-crash", Crash: demo.NodeCrash, SyncMode: "on"},
		{Name: "node-crash+lag", Crash: demo.NodeCrash, LagMB: lagMB, SyncMode: "on"},
		{Name: "db-crash", Crash: demo.DBCrash, SyncMode: "on"},
		{Name: "db-crash+lag", Crash: demo.DBCrash, LagMB: lagMB, SyncMode: "on"},
		{Name: "switchover", Crash: demo.Switchover, SyncMode: "on"},
		{Name: "switchover+lag", Crash: demo.Switchover, LagMB: lagMB, SyncMode: "on"},
		{Name: "LEGACY node-crash+lag", Crash: demo.NodeCrash, LagMB: lagMB, Legacy: true, SyncMode: "on"},
	}
}

// Options configure a benchmark.
type Options struct {
	Runs      int
	Scenarios []Scenario
	Dir       string
	Binary    string
	Rate      int
	// LeaseTTL and LoopInterval override the configuration defaults.
	LeaseTTL, LoopInterval time.Duration
	// BackgroundTPS is the pgbench load alongside the client.
	BackgroundTPS int
	// Patroni runs Patroni with each of these settings beside Vigil's
	// node crash, interleaved with the scenarios (--compare patroni).
	Patroni  []patroni.Settings
	Progress io.Writer
}

// PatroniScenario is the scenario of Patroni with settings s: the node
// crash, as Vigil's node-crash scenario.
func PatroniScenario(s patroni.Settings) Scenario {
	return Scenario{Name: "PATRONI " + s.Name + " node-crash", Crash: demo.NodeCrash, SyncMode: "on", Patroni: s.Name}
}

// CompareScenarios are the Vigil scenarios a comparison with another
// system runs: the node crash, the fault every system gets.
func CompareScenarios() []Scenario {
	return []Scenario{{Name: "node-crash", Crash: demo.NodeCrash, SyncMode: "on"}}
}

// Ratio compares another system's median write outage with Vigil's in
// the same run.
type Ratio struct {
	Scenario string `json:"scenario"`
	Baseline string `json:"baseline"`
	// MedianOutage is the other system's median write outage divided by
	// Vigil's (NaN without runs of both).
	MedianOutage float64 `json:"median_outage_ratio"`
}

// Stats are min/median/p95/max of one measure.
type Stats struct {
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	P95    float64 `json:"p95"`
	Max    float64 `json:"max"`
}

// Summary aggregates one scenario's runs.
type Summary struct {
	Scenario         Scenario `json:"scenario"`
	Runs             int      `json:"runs"`
	Failed           int      `json:"failed_runs"`
	WriteOutageS     Stats    `json:"write_outage_s"`
	DetectS          Stats    `json:"detect_s"`
	PromoteS         Stats    `json:"promote_s"`
	GateS            Stats    `json:"readiness_gate_s"`
	ReadOnlyErrors   Stats    `json:"read_only_errors"`
	OtherErrors      Stats    `json:"other_errors"`
	AckedWritesLost  Stats    `json:"acked_writes_lost"`
	ReadOnlyTotal    int      `json:"read_only_errors_total"`
	AckedLostTotal   int      `json:"acked_writes_lost_total"`
	RunsWithReadOnly int      `json:"runs_with_read_only_errors"`
}

// Report is the whole benchmark.
type Report struct {
	Started time.Time                `json:"started"`
	Host    string                   `json:"host"`
	Runs    map[string][]demo.Result `json:"runs"`
	Errors  map[string][]string      `json:"errors,omitempty"`
	Summary []Summary                `json:"summary"`
	// Ratios compare Patroni with Vigil's node crash (--compare patroni).
	Ratios []Ratio `json:"ratios,omitempty"`
}

// Run performs every scenario Runs times, interleaved so that drift in the
// machine's load affects all scenarios alike.
func Run(ctx context.Context, o Options) (Report, error) {
	host, _ := os.Hostname()
	rep := Report{Started: time.Now(), Host: host, Runs: map[string][]demo.Result{}, Errors: map[string][]string{}}
	scenarios := append([]Scenario(nil), o.Scenarios...)
	settings := map[string]patroni.Settings{}
	for _, s := range o.Patroni {
		scenarios = append(scenarios, PatroniScenario(s))
		settings[s.Name] = s
	}
	for i := range o.Runs {
		for _, sc := range scenarios {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			if o.Progress != nil {
				fmt.Fprintf(o.Progress, "run %d/%d: %s\n", i+1, o.Runs, sc.Name)
			}
			res, err := runScenario(ctx, o, sc, settings)
			if err != nil {
				rep.Errors[sc.Name] = append(rep.Errors[sc.Name], err.Error())
				if o.Progress != nil {
					fmt.Fprintf(o.Progress, "  failed: %v\n", firstLine(err.Error()))
				}
				continue
			}
			rep.Runs[sc.Name] = append(rep.Runs[sc.Name], res)
			if o.Progress != nil {
				fmt.Fprintf(o.Progress, "  outage %.2fs, read-only errors %d, lost %d\n", res.WriteOutageS, res.ReadOnlyErrors, res.AckedWritesLost)
			}
		}
	}
	for _, sc := range scenarios {
		rep.Summary = append(rep.Summary, summarize(sc, rep.Runs[sc.Name], len(rep.Errors[sc.Name])))
	}
	rep.Ratios = ratios(rep.Summary)
	return rep, nil
}

// runScenario runs sc once: the demo for Vigil, package patroni for Patroni,
// with the same lab, client, load and fault.
func runScenario(ctx context.Context, o Options, sc Scenario, settings map[string]patroni.Settings) (demo.Result, error) {
	dir := filepath.Join(o.Dir, "lab")
	if sc.Patroni != "" {
		res, err := patroni.Run(ctx, patroni.Options{Dir: dir, Binary: o.Binary, Settings: settings[sc.Patroni], Rate: o.Rate, BackgroundTPS: o.BackgroundTPS})
		return res.Result, err
	}
	return demo.Run(ctx, demo.Options{
		Dir: dir, Binary: o.Binary, Scenario: sc.Crash, SyncMode: sc.SyncMode,
		LagMB: sc.LagMB, Rate: o.Rate, Legacy: sc.Legacy, BackgroundTPS: o.BackgroundTPS,
		LeaseTTL: o.LeaseTTL, LoopInterval: o.LoopInterval,
	})
}

// ratios divides each Patroni scenario's median write outage by that of
// Vigil's scenario with the same fault and no lag.
func ratios(sums []Summary) []Ratio {
	var out []Ratio
	for _, s := range sums {
		if s.Scenario.Patroni == "" {
			continue
		}
		for _, base := range sums {
			sc := base.Scenario
			if sc.Patroni != "" || sc.Legacy || sc.LagMB != 0 || sc.Crash != s.Scenario.Crash {
				continue
			}
			if s.Runs == 0 || base.Runs == 0 || base.WriteOutageS.Median <= 0 {
				break // no ratio without runs of both (and JSON has no NaN)
			}
			out = append(out, Ratio{Scenario: s.Scenario.Name, Baseline: sc.Name, MedianOutage: s.WriteOutageS.Median / base.WriteOutageS.Median})
			break
		}
	}
	return out
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func summarize(sc Scenario, runs []demo.Result, failed int) Summary {
	s := Summary{Scenario: sc, Runs: len(runs), Failed: failed}
	pick := func(f func(demo.Result) float64) Stats {
		v := make([]float64, len(runs))
		for i, r := range runs {
			v[i] = f(r)
		}
		return stats(v)
	}
	s.WriteOutageS = pick(func(r demo.Result) float64 { return r.WriteOutageS })
	s.DetectS = pick(func(r demo.Result) float64 { return r.DetectS })
	s.PromoteS = pick(func(r demo.Result) float64 { return r.PromoteS })
	s.GateS = pick(func(r demo.Result) float64 { return r.GateS })
	s.ReadOnlyErrors = pick(func(r demo.Result) float64 { return float64(r.ReadOnlyErrors) })
	s.OtherErrors = pick(func(r demo.Result) float64 { return float64(r.OtherErrors) })
	s.AckedWritesLost = pick(func(r demo.Result) float64 { return float64(r.AckedWritesLost) })
	for _, r := range runs {
		s.ReadOnlyTotal += r.ReadOnlyErrors
		s.AckedLostTotal += r.AckedWritesLost
		if r.ReadOnlyErrors > 0 {
			s.RunsWithReadOnly++
		}
	}
	return s
}

// MarshalJSON writes a measure without runs (NaN) as null: JSON has no NaN.
func (s Stats) MarshalJSON() ([]byte, error) {
	f := func(v float64) *float64 {
		if math.IsNaN(v) {
			return nil
		}
		return &v
	}
	return json.Marshal(struct {
		Min    *float64 `json:"min"`
		Median *float64 `json:"median"`
		P95    *float64 `json:"p95"`
		Max    *float64 `json:"max"`
	}{f(s.Min), f(s.Median), f(s.P95), f(s.Max)})
}

// Summarize is min/median/p95/max of v (NaN when empty), for other
// benchmarks' reports.
func Summarize(v []float64) Stats { return stats(v) }

// stats uses the nearest-rank percentile.
func stats(v []float64) Stats {
	if len(v) == 0 {
		return Stats{Min: math.NaN(), Median: math.NaN(), P95: math.NaN(), Max: math.NaN()}
	}
	sort.Float64s(v)
	rank := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(v)))) - 1
		return v[max(0, min(i, len(v)-1))]
	}
	return Stats{Min: v[0], Median: rank(0.5), P95: rank(0.95), Max: v[len(v)-1]}
}

// Table renders the summary for a terminal.
func Table(rep Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-26s %4s  %-25s %-22s %-22s %-22s %8s %8s\n", "scenario", "runs", "write outage s (min/med/p95/max)", "detect s (med/max)", "promote s (med/max)", "gate s (med/max)", "ro-errs", "lost")
	for _, s := range rep.Summary {
		fmt.Fprintf(&b, "%-26s %4d  %-32s %-22s %-22s %-22s %8d %8d\n", s.Scenario.Name, s.Runs,
			fmt.Sprintf("%.2f/%.2f/%.2f/%.2f", s.WriteOutageS.Min, s.WriteOutageS.Median, s.WriteOutageS.P95, s.WriteOutageS.Max),
			fmt.Sprintf("%.2f/%.2f", s.DetectS.Median, s.DetectS.Max),
			fmt.Sprintf("%.2f/%.2f", s.PromoteS.Median, s.PromoteS.Max),
			fmt.Sprintf("%.2f/%.2f", s.GateS.Median, s.GateS.Max),
			s.ReadOnlyTotal, s.AckedLostTotal)
		if s.Failed > 0 {
			fmt.Fprintf(&b, "%-26s %d run(s) failed, see the JSON report\n", "", s.Failed)
		}
	}
	for _, r := range rep.Ratios {
		fmt.Fprintf(&b, "%s / %s: median write outage ratio %.1f\n", r.Scenario, r.Baseline, r.MedianOutage)
	}
	return b.String()
}

// The chart's time axes: each lane has its own, so that the length of an
// outage can be read off next to it. Their tick labels carry this class and
// the lane's scenario in LaneAttr, for the layout checks in a browser.
const (
	TimeTickSelector = "text.time-tick"
	LaneAttr         = "data-lane"
)

// SVG draws, per scenario, the client's writes around the crash: committed
// writes per 250 ms bin above the axis, failed ones (read-only in red,
// others in grey) below it, over every run of the scenario, with a time
// axis in seconds since the crash under each scenario.
func SVG(rep Report) string {
	const (
		bin     = 0.25
		from    = -3.0
		to      = 12.0
		tick    = 1.0 // seconds between ticks
		width   = 900
		barsH   = 150 // committed and failed bars
		laneH   = barsH + 30
		marginL = 190
		top0    = 30
	)
	nbins := int((to - from) / bin)
	var b strings.Builder
	height := top0 + laneH*len(rep.Summary) + 30
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width+marginL+20, height)
	fmt.Fprintf(&b, `<text x="10" y="16">Writes through the VIP around the crash (t=0), %g s bins, all runs: committed above, failed below (red: read-only)</text>`+"\n", bin)
	x := func(t float64) float64 { return marginL + (t-from)/(to-from)*width }
	for lane, s := range rep.Summary {
		top := top0 + lane*laneH
		mid := float64(top + barsH/2)
		ok := make([]int, nbins)
		ro := make([]int, nbins)
		bad := make([]int, nbins)
		peak := 1
		for _, r := range rep.Runs[s.Scenario.Name] {
			for _, p := range r.Series {
				i := int((p.T - from) / bin)
				if i < 0 || i >= nbins {
					continue
				}
				switch p.Outcome {
				case workload.OK:
					ok[i]++
					peak = max(peak, ok[i])
				case workload.ReadOnly:
					ro[i]++
					peak = max(peak, ro[i]+bad[i])
				default:
					bad[i]++
					peak = max(peak, ro[i]+bad[i])
				}
			}
		}
		scale := float64(barsH/2-8) / float64(peak)
		name := html.EscapeString(s.Scenario.Name)
		fmt.Fprintf(&b, `<text x="10" y="%.0f">%s</text>`+"\n", mid, name)
		fmt.Fprintf(&b, `<text x="10" y="%.0f" fill="#555">%d runs, %d read-only errors</text>`+"\n", mid+16, s.Runs, s.ReadOnlyTotal)
		// Grid lines first, so that the bars are drawn over them.
		for t := from; t <= to; t += tick {
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e3e6e9"/>`+"\n", x(t), top+4, x(t), top+barsH)
		}
		fmt.Fprintf(&b, `<line x1="%d" y1="%.0f" x2="%d" y2="%.0f" stroke="#999"/>`+"\n", marginL, mid, marginL+width, mid)
		for i := range nbins {
			t := from + float64(i)*bin
			w := x(t+bin) - x(t) - 1
			if ok[i] > 0 {
				h := float64(ok[i]) * scale
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#2a7"/>`+"\n", x(t), mid-h, w, h)
			}
			if bad[i] > 0 {
				h := float64(bad[i]) * scale
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#aaa"/>`+"\n", x(t), mid, w, h)
			}
			if ro[i] > 0 {
				h := float64(ro[i]) * scale
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#d22"/>`+"\n", x(t), mid+float64(bad[i])*scale, w, h)
			}
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#000" stroke-dasharray="3,3"/>`+"\n", x(0), top+4, x(0), top+barsH)
		timeAxis(&b, x, from, to, tick, top+barsH, name)
	}
	fmt.Fprintf(&b, `<text class="axis-title" x="%.0f" y="%d" text-anchor="middle" fill="#333">seconds since the crash</text>`+"\n", x((from+to)/2), height-8)
	b.WriteString("</svg>\n")
	return b.String()
}

// timeAxis draws an axis at y with a labelled tick every step seconds;
// lane is the scenario's name, escaped.
func timeAxis(b *strings.Builder, x func(float64) float64, from, to, step float64, y int, lane string) {
	fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#555"/>`+"\n", x(from), y, x(to), y)
	for t := from; t <= to; t += step {
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#555"/>`+"\n", x(t), y, x(t), y+4)
		fmt.Fprintf(b, `<text class="time-tick" %s="%s" x="%.1f" y="%d" text-anchor="middle" font-size="11" fill="#555">%g s</text>`+"\n", LaneAttr, lane, x(t), y+16, t)
	}
}
