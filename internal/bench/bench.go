// Package bench measures failovers: it runs the demo's scenario many times,
// for several scenarios and with the seed's legacy order as a baseline in
// the same run, and summarises what the application saw. It measures; the
// tests assert.
package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

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
	Progress      io.Writer
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
}

// Run performs every scenario Runs times, interleaved so that drift in the
// machine's load affects all scenarios alike.
func Run(ctx context.Context, o Options) (Report, error) {
	host, _ := os.Hostname()
	rep := Report{Started: time.Now(), Host: host, Runs: map[string][]demo.Result{}, Errors: map[string][]string{}}
	for i := range o.Runs {
		for _, sc := range o.Scenarios {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			if o.Progress != nil {
				fmt.Fprintf(o.Progress, "run %d/%d: %s\n", i+1, o.Runs, sc.Name)
			}
			res, err := demo.Run(ctx, demo.Options{
				Dir: filepath.Join(o.Dir, "lab"), Binary: o.Binary, Scenario: sc.Crash, SyncMode: sc.SyncMode,
				LagMB: sc.LagMB, Rate: o.Rate, Legacy: sc.Legacy, BackgroundTPS: o.BackgroundTPS,
				LeaseTTL: o.LeaseTTL, LoopInterval: o.LoopInterval,
			})
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
	for _, sc := range o.Scenarios {
		rep.Summary = append(rep.Summary, summarize(sc, rep.Runs[sc.Name], len(rep.Errors[sc.Name])))
	}
	return rep, nil
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
	fmt.Fprintf(&b, "%-24s %4s  %-25s %-22s %-22s %-22s %8s %8s\n", "scenario", "runs", "write outage s (min/med/p95/max)", "detect s (med/max)", "promote s (med/max)", "gate s (med/max)", "ro-errs", "lost")
	for _, s := range rep.Summary {
		fmt.Fprintf(&b, "%-24s %4d  %-32s %-22s %-22s %-22s %8d %8d\n", s.Scenario.Name, s.Runs,
			fmt.Sprintf("%.2f/%.2f/%.2f/%.2f", s.WriteOutageS.Min, s.WriteOutageS.Median, s.WriteOutageS.P95, s.WriteOutageS.Max),
			fmt.Sprintf("%.2f/%.2f", s.DetectS.Median, s.DetectS.Max),
			fmt.Sprintf("%.2f/%.2f", s.PromoteS.Median, s.PromoteS.Max),
			fmt.Sprintf("%.2f/%.2f", s.GateS.Median, s.GateS.Max),
			s.ReadOnlyTotal, s.AckedLostTotal)
		if s.Failed > 0 {
			fmt.Fprintf(&b, "%-24s %d run(s) failed, see the JSON report\n", "", s.Failed)
		}
	}
	return b.String()
}

// SVG draws, per scenario, the client's writes around the crash: committed
// writes per 250 ms bin above the axis, failed ones (read-only in red,
// others in grey) below it, over every run of the scenario.
func SVG(rep Report) string {
	const (
		bin     = 0.25
		from    = -3.0
		to      = 12.0
		width   = 900
		laneH   = 150
		marginL = 190
	)
	nbins := int((to - from) / bin)
	var b strings.Builder
	height := laneH*len(rep.Summary) + 40
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width+marginL+20, height)
	fmt.Fprintf(&b, `<text x="10" y="16">Writes through the VIP around the crash (t=0), %g s bins, all runs: committed above, failed below (red: read-only)</text>`+"\n", bin)
	x := func(t float64) float64 { return marginL + (t-from)/(to-from)*width }
	for lane, s := range rep.Summary {
		top := 30 + lane*laneH
		mid := float64(top + laneH/2)
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
		scale := float64(laneH/2-8) / float64(peak)
		fmt.Fprintf(&b, `<text x="10" y="%.0f">%s</text>`+"\n", mid, s.Scenario.Name)
		fmt.Fprintf(&b, `<text x="10" y="%.0f" fill="#555">%d runs, %d read-only errors</text>`+"\n", mid+16, s.Runs, s.ReadOnlyTotal)
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
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#000" stroke-dasharray="3,3"/>`+"\n", x(0), top+4, x(0), top+laneH-4)
	}
	for t := from; t <= to; t += 3 {
		fmt.Fprintf(&b, `<text x="%.0f" y="%d" text-anchor="middle" fill="#555">%+.0fs</text>`+"\n", x(t), height-6, t)
	}
	b.WriteString("</svg>\n")
	return b.String()
}
