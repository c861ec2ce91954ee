package browsercheck

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestOverlapping(t *testing.T) {
	box := func(group, text string, left, top, w, h float64) Box {
		return Box{Group: group, Text: text, Left: left, Top: top, Right: left + w, Bottom: top + h}
	}
	boxes := []Box{
		box("lane1", "a", 0, 0, 50, 10),
		box("lane1", "b", 49, 9, 50, 10),  // overlaps a by one pixel square
		box("lane1", "c", 100, 0, 50, 10), // touches b's right edge only
		box("lane2", "d", 0, 0, 50, 10),   // on top of a, another lane
		box("lane2", "e", 0, 10, 50, 10),  // just below d
	}
	got := Overlapping(boxes)
	if len(got) != 1 || got[0][0].Text != "a" || got[0][1].Text != "b" {
		t.Fatalf("overlapping = %+v, want only a and b", got)
	}
}

// TestOpenFindsWhatAReaderWouldSee loads a page with labels drawn on top
// of each other (the timeline's old layout: labels of one second at one x),
// a script error, a console error and an image from elsewhere: the real
// browser must report every one, or the report checks could not fail.
func TestOpenFindsWhatAReaderWouldSee(t *testing.T) {
	page := filepath.Join(t.TempDir(), "bad.html")
	if err := os.WriteFile(page, []byte(`<!DOCTYPE html><html><body>
<svg xmlns="http://www.w3.org/2000/svg" width="400" height="100" font-size="10">
<text class="label" data-lane="failover.log" x="100" y="40">vip_added</text>
<text class="label" data-lane="failover.log" x="100" y="46">promote_requested</text>
<text class="label" data-lane="failover.log" x="300" y="40">ready</text>
<text class="label" data-lane="sys_log" x="100" y="40">promote_received</text>
</svg>
<img src="http://198.18.0.1/logo.png">
<script>console.error("drawn badly"); undefinedFunction();</script>
</body></html>`), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := Open(ctx, page, Query{Selector: "text.label", GroupAttr: "data-lane"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Boxes) != 4 {
		t.Fatalf("boxes = %+v", p.Boxes)
	}
	for _, b := range p.Boxes {
		if b.Right <= b.Left || b.Bottom <= b.Top {
			t.Errorf("empty box %+v", b)
		}
	}
	overlaps := Overlapping(p.Boxes)
	if len(overlaps) != 1 || overlaps[0][0].Text != "vip_added" || overlaps[0][1].Text != "promote_requested" || overlaps[0][0].Group != "failover.log" {
		t.Errorf("overlapping = %+v", overlaps)
	}
	all := strings.Join(p.Faults(), "\n")
	// ERR_PROXY_CONNECTION_FAILED: the request went to the dead loopback proxy, not out.
	for _, want := range []string{"drawn badly", "undefinedFunction", "ERR_PROXY_CONNECTION_FAILED (http://198.18.0.1/logo.png", `"vip_added"`} {
		if !strings.Contains(all, want) {
			t.Errorf("faults lack %q:\n%s", want, all)
		}
	}
}

func TestOpenPassesACleanPage(t *testing.T) {
	page := filepath.Join(t.TempDir(), "good.svg")
	if err := os.WriteFile(page, []byte(`<svg xmlns="http://www.w3.org/2000/svg" width="400" height="100" font-size="10">
<text class="tick" x="100" y="40">1 s</text><text class="tick" x="200" y="40">2 s</text></svg>`), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := Open(ctx, page, Query{Selector: ".tick"})
	if err != nil {
		t.Fatal(err)
	}
	if f := p.Faults(); len(f) > 0 || len(p.Boxes) != 2 || p.Boxes[0].Text != "1 s" || p.Boxes[0].Right > p.Boxes[1].Left {
		t.Fatalf("faults %q, boxes %+v", f, p.Boxes)
	}
}
