package report

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/analyze"
	"github.com/vigil-ha/vigil/internal/analyze/input"
)

func seedReport(t *testing.T) *analyze.Report {
	t.Helper()
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	srcs, errs := input.Expand([]string{"../testdata/seed/failover.log", "../testdata/seed/sys_log"}, nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	srcs = append(srcs, input.FromReader("notes.txt", strings.NewReader("just some notes\n")))
	rep, err := analyze.Run(context.Background(), srcs, analyze.Options{TZ: loc, Local: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestText(t *testing.T) {
	rep := seedReport(t)
	var plain, coloured bytes.Buffer
	if err := Text(&plain, rep, false); err != nil {
		t.Fatal(err)
	}
	if err := Text(&coloured, rep, true); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(plain.String(), "\x1b[") {
		t.Error("escape codes in plain text")
	}
	if !strings.Contains(coloured.String(), "\x1b[31m") {
		t.Error("no colour in coloured text")
	}
	for _, want := range []string{"read-only exposure window      35.0 s", "statements failed read-only    140", "2023-09-19 15:12:36", "notes.txt", "skipped: format not recognised", "Verdict", "What to change"} {
		if !strings.Contains(plain.String(), want) {
			t.Errorf("text lacks %q", want)
		}
	}
}

func TestJSON(t *testing.T) {
	var b bytes.Buffer
	if err := JSON(&b, seedReport(t)); err != nil {
		t.Fatal(err)
	}
	var out struct {
		Milestones []map[string]any `json:"milestones"`
		Findings   map[string]any   `json:"findings"`
	}
	if err := json.Unmarshal(b.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Milestones) == 0 {
		t.Fatal("no milestones")
	}
	for _, k := range []string{"time", "kind", "source", "file", "line"} {
		if _, ok := out.Milestones[0][k]; !ok {
			t.Errorf("milestone lacks %q", k)
		}
	}
	f := out.Findings
	if f["read_only_window_s"] != 35.0 || f["read_only_errors"] != 140.0 || f["write_outage_s"] != 40.0 || f["verdict"] == "" {
		t.Errorf("findings = %v %v %v", f["read_only_window_s"], f["read_only_errors"], f["write_outage_s"])
	}
}

func TestHTMLIsSelfContained(t *testing.T) {
	var b bytes.Buffer
	if err := HTML(&b, seedReport(t)); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	// No asset from anywhere else: no src, no stylesheet link, no URL but
	// the SVG namespace.
	if regexp.MustCompile(`(?i)<(script|link|img|iframe)\b|\bsrc=|@import|url\(`).MatchString(page) {
		t.Error("the page loads something")
	}
	for _, u := range regexp.MustCompile(`https?://[^"' <]+`).FindAllString(page, -1) {
		if u != "http://www.w3.org/2000/svg" {
			t.Errorf("external reference %s", u)
		}
	}
	// The SVG is well-formed, has a lane per file and the shaded window.
	start, end := strings.Index(page, "<svg"), strings.Index(page, "</svg>")
	if start < 0 || end < 0 {
		t.Fatal("no svg")
	}
	svg := page[start : end+len("</svg>")]
	d := xml.NewDecoder(strings.NewReader(svg))
	for {
		if _, err := d.Token(); err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("svg is not well-formed: %v", err)
			}
			break
		}
	}
	for _, want := range []string{"failover.log</text>", ">kingbase-2023-09-19_09", "clients</text>", "read-only exposure 35.0 s, 140 failed statements", `fill-opacity="0.14"`} {
		if !strings.Contains(svg, want) {
			t.Errorf("svg lacks %q", want)
		}
	}
}

func TestSVGEscapesText(t *testing.T) {
	srcs := []input.Source{input.FromReader("<b>.log", strings.NewReader("2025-03-01 10:00:00.000 UTC [1] LOG:  received promote request <script>\n"))}
	rep, err := analyze.Run(context.Background(), srcs, analyze.Options{Local: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	svg := SVG(rep, rep.Findings)
	if strings.Contains(svg, "<script>") || strings.Contains(svg, "<b>") {
		t.Error("log text reached the SVG unescaped")
	}
}
