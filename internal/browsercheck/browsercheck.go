// Package browsercheck loads a local HTML or SVG file in headless Chromium
// and reports what a reader would see go wrong: console errors, uncaught
// exceptions, and where chosen elements were drawn, so that tests can check
// the layout of the reports Vigil writes.
package browsercheck

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
)

// Box is where the browser drew one element, in CSS pixels of the page.
type Box struct {
	// Group is the element's value of the query's group attribute:
	// boxes are compared only within one group.
	Group  string  `json:"group"`
	Text   string  `json:"text"`
	Left   float64 `json:"left"`
	Top    float64 `json:"top"`
	Right  float64 `json:"right"`
	Bottom float64 `json:"bottom"`
}

// Query names the elements whose boxes are wanted.
type Query struct {
	// Selector is a CSS selector, such as "text.milestone-label".
	Selector string
	// GroupAttr is the attribute that groups the boxes (empty: one group).
	GroupAttr string
}

// Page is what the browser made of a file.
type Page struct {
	// Problems are console errors, failed loads and uncaught exceptions.
	Problems []string
	// Boxes of the elements the query selected, in document order.
	Boxes []Box
}

// Chromium is the browser the checks need; Debian's package installs it
// here (scripts/install-deps.sh).
const Chromium = "chromium"

// Open loads file in a fresh headless Chromium, waits for the load event
// and measures the elements q selects. The browser sends no traffic: every
// network request goes to a proxy on a closed loopback port and fails, which
// also shows up as a problem, so a page that needs anything but itself does
// not pass.
func Open(ctx context.Context, file string, q Query) (Page, error) {
	browser, err := exec.LookPath(Chromium)
	if err != nil {
		return Page{}, fmt.Errorf("find the browser for the layout checks: %w", err)
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return Page{}, fmt.Errorf("open %s: %w", file, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.Flag("headless", "new"),
		chromedp.DisableGPU,
		chromedp.NoSandbox, // Chromium refuses to start as root with its sandbox.
		chromedp.WindowSize(1400, 1000),
		chromedp.ProxyServer("127.0.0.1:9"),
		chromedp.Flag("proxy-bypass-list", "<-loopback>"),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	tabCtx, cancelTab := chromedp.NewContext(allocCtx)
	defer cancelTab()
	// Start the browser first: messages are only seen from a subscription
	// made after the target exists and before the page loads.
	if err := chromedp.Do(tabCtx); err != nil {
		return Page{}, fmt.Errorf("start %s: %w", browser, err)
	}
	var (
		mu       sync.Mutex
		problems []string
		listened = make(chan struct{})
	)
	listenCtx, stopListening := context.WithCancel(tabCtx)
	messages := chromedp.Console(listenCtx)
	go func() {
		defer close(listened)
		for m, err := range messages {
			if err != nil {
				return
			}
			switch m.Type {
			case chromedp.ConsoleError, chromedp.ConsoleException, "assert":
				mu.Lock()
				problems = append(problems, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line+1))
				mu.Unlock()
			}
		}
	}()
	if err := chromedp.Do(tabCtx, chromedp.Navigate("file://"+filepath.ToSlash(abs))); err != nil {
		stopListening()
		<-listened
		return Page{}, fmt.Errorf("load %s: %w", abs, err)
	}
	boxes, err := chromedp.Run(tabCtx, chromedp.Evaluate[[]Box](boxesScript(q)))
	// The answer to the evaluation comes after every message the page wrote
	// before it, so the subscription has seen them all.
	stopListening()
	<-listened
	if err != nil {
		return Page{}, fmt.Errorf("measure %q in %s: %w", q.Selector, abs, err)
	}
	mu.Lock()
	defer mu.Unlock()
	return Page{Problems: problems, Boxes: boxes}, nil
}

func boxesScript(q Query) string {
	sel, _ := json.Marshal(q.Selector)
	attr, _ := json.Marshal(q.GroupAttr)
	return fmt.Sprintf(`Array.from(document.querySelectorAll(%s), e => {
	const r = e.getBoundingClientRect();
	return {group: (%s && e.getAttribute(%s)) || "", text: e.textContent, left: r.left, top: r.top, right: r.right, bottom: r.bottom};
})`, sel, attr, attr)
}

// Overlapping returns the pairs of boxes of one group that share some
// area. Boxes that only touch do not overlap.
func Overlapping(boxes []Box) [][2]Box {
	var pairs [][2]Box
	for i, a := range boxes {
		for _, b := range boxes[i+1:] {
			if a.Group == b.Group && a.Left < b.Right && b.Left < a.Right && a.Top < b.Bottom && b.Top < a.Bottom {
				pairs = append(pairs, [2]Box{a, b})
			}
		}
	}
	return pairs
}

// Faults are the page's problems and, one a line, every overlapping pair
// of its boxes: what a test fails on.
func (p Page) Faults() []string {
	faults := append([]string(nil), p.Problems...)
	for _, o := range Overlapping(p.Boxes) {
		faults = append(faults, fmt.Sprintf("%q %s and %q %s overlap in %q", o[0].Text, o[0].rect(), o[1].Text, o[1].rect(), o[0].Group))
	}
	return faults
}

func (b Box) rect() string {
	return fmt.Sprintf("[%.1f,%.1f %.1fx%.1f]", b.Left, b.Top, b.Right-b.Left, b.Bottom-b.Top)
}

// Check opens file as Open does and fails t if the browser could not load
// it, the page has a fault, or q selected nothing (a check of no element
// would pass whatever the page looks like).
func Check(ctx context.Context, t testing.TB, file string, q Query) Page {
	t.Helper()
	page, err := Open(ctx, file, q)
	if err != nil {
		t.Fatal(err)
	}
	if f := page.Faults(); len(f) > 0 {
		t.Fatalf("%s in a browser:\n%s", filepath.Base(file), strings.Join(f, "\n"))
	}
	if len(page.Boxes) == 0 {
		t.Fatalf("%s in a browser: nothing matches %q", filepath.Base(file), q.Selector)
	}
	return page
}
