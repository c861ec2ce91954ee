package check

import (
	"fmt"
	"html/template"
	"io"
	"time"

	"github.com/vigil-ha/vigil/internal/chaos/history"
)

// htmlLostRows bounds the lost writes tabled in the page; report.json
// lists them all.
const htmlLostRows = 1000

// pageSource is the HTML report: one file, no external asset, so that it
// can be mailed around and opened offline. Every text goes through
// html/template's escaping.
const pageSource = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>vigil chaos: seed {{.R.Seed}}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1d232a}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0}td,th{border-bottom:1px solid #dde2e6;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f5f7}.num{text-align:right}.bad{color:#b3261e;font-weight:600}.ok{color:#1b7f3b;font-weight:600}
.warn{color:#8a5a00}code,.mono{font-family:ui-monospace,monospace;font-size:12px}svg{background:#fff;border:1px solid #dde2e6}
.sw{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px;border-radius:2px}
</style></head><body>
<h1>Chaos campaign, seed {{.R.Seed}}: {{if .R.Passed}}<span class="ok">pass</span>{{else}}<span class="bad">{{len .R.Violations}} violation(s)</span>{{end}}</h1>
<table>
<tr><th>reproduce</th><td class="mono">{{.R.Command}}</td></tr>
<tr><th>sync mode, dcs</th><td>{{.R.SyncMode}}, {{.R.DCS}}; maximum_lag_on_failover {{.R.MaxLag}} bytes</td></tr>
<tr><th>nodes</th><td>{{range .R.Nodes}}{{.}} {{end}}</td></tr>
<tr><th>run</th><td class="mono">{{clock .R.Started}} to {{clock .R.Ended}} ({{dur .R.Duration}})</td></tr>
<tr><th>final primary</th><td>{{if .R.Primary}}{{.R.Primary}}{{else}}<span class="bad">none</span>{{end}}{{if not .R.Settled}} <span class="bad">(no final state: interrupted run)</span>{{end}}</td></tr>
<tr><th>writes</th><td>{{outcomes .R.Writes}}; errors between faults: {{outcomes .R.Between}}</td></tr>
</table>
{{with .C}}
<svg width="{{f .Width}}" height="{{f .Height}}" viewBox="0 0 {{f .Width}} {{f .Height}}" font-family="system-ui,sans-serif" font-size="11">
{{range .Rows}}<rect x="0" y="{{f .Y}}" width="{{f $.C.Width}}" height="{{f .H}}" fill="{{if .Shade}}#f6f8fa{{else}}#ffffff{{end}}"/><text x="6" y="{{f .TextY}}" font-weight="600"><title>{{.Title}}</title>{{.Label}}</text>
{{end}}{{range .Bands}}<g><title>{{.Title}}</title><rect x="{{f .X}}" y="{{f $.C.RowsTop}}" width="{{f .W}}" height="{{f (sub $.C.RowsBottom $.C.RowsTop)}}" fill="{{.Colour}}" fill-opacity="0.22"/><rect x="{{f .RX}}" y="{{f $.C.RowsTop}}" width="{{f .RW}}" height="{{f (sub $.C.RowsBottom $.C.RowsTop)}}" fill="{{.Colour}}" fill-opacity="0.08"/></g>
{{end}}{{range .LaneLabels}}<text x="{{f .X}}" y="{{f .Y}}" fill="{{.Colour}}" font-size="8" text-anchor="end">{{.Text}}</text>
{{end}}{{range .Labels}}<text x="{{f .X}}" y="{{f .Y}}" fill="{{.Colour}}" font-size="10" font-weight="600">{{.Text}}</text>
{{end}}{{range .Ticks}}<line x1="{{f .X}}" y1="{{f $.C.RowsTop}}" x2="{{f .X}}" y2="{{f $.C.RowsBottom}}" stroke="#c9d1d9" stroke-width="0.5"/><text x="{{f .X}}" y="{{f (add $.C.RowsBottom 14)}}" text-anchor="middle" fill="#555">{{.Text}}</text>
{{end}}{{range .Marks}}<rect x="{{f .X}}" y="{{f (add .Y -3)}}" width="1.6" height="6" fill="{{.Colour}}"><title>{{.Title}}</title></rect>
{{end}}{{range .Violations}}<g><title>{{.Title}}</title><line x1="{{f .X}}" y1="{{f $.C.RowsTop}}" x2="{{f .X}}" y2="{{f $.C.RowsBottom}}" stroke="#d93025" stroke-width="1.5" stroke-dasharray="4 2"/><path d="M{{f (add .X -5)}} {{f $.C.RowsBottom}} l5 -8 l5 8 z" fill="#d93025"/></g>
{{end}}{{range .Rings}}<circle cx="{{f .X}}" cy="{{f .Y}}" r="4" fill="none" stroke="#d93025" stroke-width="1.2"><title>{{.Title}}</title></circle>
{{end}}</svg>
<p>{{range .Types}}<span class="sw" style="background:{{.Colour | css}}"></span>{{.Name}}{{end}}</p>
<p>{{range .Outcomes}}<span class="sw" style="background:{{.Colour | css}}"></span>{{.Name}}{{end}} <span class="sw" style="background:#d93025"></span>violation (ringed writes, dashed line)</p>
<p>Bands: a fault from injection to heal (darker), then until the cluster recovered (lighter). Rows: one per server identity (node, system, timeline), then the writes no server acknowledged.</p>
{{end}}
<h2>Per fault type</h2>
<table><tr><th>fault type</th><th class="num">injected</th><th class="num">recovered</th><th>recovery s from heal<br>min/med/p95/max</th><th>from injection<br>min/med/p95/max</th><th>write outage s<br>med/max</th><th>client errors</th><th class="num">violations</th></tr>
{{range $t, $s := .R.Faults}}<tr><td>{{$t}}</td><td class="num">{{$s.Injected}}</td><td class="num">{{$s.Recovered}}{{if $s.Late}} ({{$s.Late}} late){{end}}</td><td class="mono">{{spread $s.RecoveryS}}</td><td class="mono">{{spread $s.FromInjectedS}}</td><td class="mono">{{medMax $s.WriteOutageS}}</td><td>{{outcomes $s.Errors}}</td><td class="num{{if $s.Violations}} bad{{end}}">{{$s.Violations}}</td></tr>
{{end}}</table>
<h2>Violations</h2>
{{if not .R.Violations}}<p class="ok">none</p>{{else}}<table><tr><th>at</th><th>kind</th><th>reproduce</th><th>what</th><th>writes</th></tr>
{{range .R.Violations}}<tr><td class="mono">{{clock .At}}</td><td class="bad">{{.Kind}}</td><td class="mono">{{reproducer .}}</td><td>{{.Message}}</td><td class="mono">{{ids .Writes}}</td></tr>
{{end}}</table>{{end}}
<h2>Lost acknowledged writes</h2>
{{if not .R.Lost}}<p>none</p>{{else}}<ul class="mono">{{range .Lost}}<li{{if not .WithinBound}} class="bad"{{end}}>{{lost .}}</li>{{end}}</ul>{{if gt (len .R.Lost) (len .Lost)}}<p>… {{len .R.Lost}} in all: report.json lists them.</p>{{end}}{{end}}
<h2>Faults</h2>
<table><tr><th class="num">step</th><th>type</th><th>target</th><th>injected</th><th>healed</th><th>recovered</th><th class="num">recovery s</th><th class="num">outage s</th><th>primary</th><th>client errors</th></tr>
{{range .R.Steps}}<tr><td class="num">{{.Step}}</td><td>{{.Type}}</td><td>{{.Target}}</td><td class="mono">{{clock .Injected}}</td><td class="mono">{{stamp .Healed}}</td><td class="mono">{{stamp .Recovered}}</td><td class="num">{{if .RecoveryS}}{{f .RecoveryS}}{{else}}<span class="bad">-</span>{{end}}</td><td class="num">{{f .WriteOutageS}}</td><td>{{.PrimaryBefore}} &rarr; {{.PrimaryAfter}}</td><td>{{outcomes .Errors}}</td></tr>
{{end}}</table>
{{range .R.Warnings}}<p class="warn">warning: {{.}}</p>{{end}}
<p>Generated by <code>vigil chaos check</code>.</p>
</body></html>
`

// WriteHTML writes the self-contained HTML report with its SVG timeline.
func WriteHTML(w io.Writer, h history.History, r Result) error {
	page, err := template.New("report").Funcs(template.FuncMap{
		"f": func(v any) string {
			switch n := v.(type) {
			case *float64:
				return fmt.Sprintf("%.1f", *n)
			case float64:
				return fmt.Sprintf("%.1f", n)
			}
			return fmt.Sprint(v)
		},
		"dur":        func(d history.Duration) time.Duration { return time.Duration(d) },
		"add":        func(a, b float64) float64 { return a + b },
		"sub":        func(a, b float64) float64 { return a - b },
		"clock":      stamp,
		"stamp":      stamp,
		"outcomes":   outcomes,
		"spread":     spread,
		"medMax":     medMax,
		"reproducer": reproducer,
		"lost":       lostLine,
		"ids":        func(ids []int64) string { return idList(ids, 50) },
		"css":        func(s string) template.CSS { return template.CSS(s) },
	}).Parse(pageSource)
	if err != nil {
		return fmt.Errorf("parse HTML template: %w", err)
	}
	rep := NewReport(h, r)
	data := struct {
		R    Report
		C    chart
		Lost []Lost
	}{rep, newChart(h, r), rep.Lost[:min(len(rep.Lost), htmlLostRows)]}
	if err := page.Execute(w, data); err != nil {
		return fmt.Errorf("write HTML report: %w", err)
	}
	return nil
}
