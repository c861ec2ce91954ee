package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/vigil-ha/vigil/internal/agent"
	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
	"github.com/vigil-ha/vigil/internal/failover"
	"github.com/vigil-ha/vigil/internal/timeline"
)

const (
	// clearScreen redraws a terminal from its top-left corner, as watch(1)
	// does: cursor home, then erase the whole screen.
	clearScreen = "\x1b[H\x1b[2J"
	// frameSeparator comes before each frame where the output is no
	// terminal (a file, a pipe), which keeps every frame.
	frameSeparator = "----"
	// keptRecords is how many of the newest history records a watch
	// keeps: enough to find those of the operation in progress.
	keptRecords = 32
)

// watchFrame is one read of the cluster by `ctl list --watch`.
type watchFrame struct {
	At       time.Time     `json:"at"`
	Interval time.Duration `json:"-"`
	// Error is why the DCS could not be read this time; List is then the
	// last list read, at ListAt.
	Error     string           `json:"error,omitempty"`
	ListAt    time.Time        `json:"list_at,omitzero"`
	Operation *operation       `json:"operation,omitempty"`
	Last      *timeline.Record `json:"last_record,omitempty"`
	List      *listOutput      `json:"list,omitempty"`
}

// watcher reads the cluster again and again and remembers across reads
// what one read cannot tell: the records already seen, and since when an
// operation without a start of its own (an automatic failover) is seen.
type watcher struct {
	o        *ctlOptions
	s        *dcs.Store
	interval time.Duration

	recs      []timeline.Record
	recsSince int64 // the revision of the last view: older records are kept
	list      *listOutput
	listAt    time.Time
	// The operation of the previous frame, and since when it runs.
	opKey   string
	opSince time.Time
	opSeen  bool
}

// watchList is `ctl list --watch`: a frame every interval until ctx ends.
func (o *ctlOptions) watchList(ctx context.Context, s *dcs.Store, out io.Writer, interval time.Duration) error {
	w := &watcher{o: o, s: s, interval: interval}
	width, onTerminal := terminalWidth(out)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		f := w.read(ctx)
		if ctx.Err() != nil {
			return nil // interrupted: the last frame stays on the screen
		}
		var err error
		switch {
		case o.output == "json":
			err = writeJSON(out, f)
		case onTerminal:
			_, err = io.WriteString(out, clearScreen+renderFrame(f, width()))
		default:
			_, err = io.WriteString(out, frameSeparator+"\n"+renderFrame(f, 0))
		}
		if err != nil {
			return fmt.Errorf("write the list: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// terminalWidth reports whether out is a terminal and, if so, a function
// that reads its width now (it changes when the window is resized).
func terminalWidth(out io.Writer) (width func() int, ok bool) {
	f, isFile := out.(*os.File)
	if !isFile || !term.IsTerminal(int(f.Fd())) {
		return nil, false
	}
	return func() int {
		w, _, err := term.GetSize(int(f.Fd()))
		if err != nil {
			return 0
		}
		return w
	}, true
}

// read makes one frame. The view is read before the records, and the
// next frame asks for the records written after this view: one written
// between the view and the records comes twice and is kept once, none is
// missed.
func (w *watcher) read(ctx context.Context) watchFrame {
	f := watchFrame{At: time.Now(), Interval: w.interval}
	v, err := w.o.snapshot(ctx, w.s)
	var recs []timeline.Record
	if err == nil {
		recs, err = w.o.records(ctx, w.s, w.recsSince)
	}
	if err != nil {
		f.Error, f.List, f.ListAt = err.Error(), w.list, w.listAt
		return f
	}
	w.addRecords(recs)
	w.recsSince = v.Revision
	list := buildList(w.o.clusterName, v)
	w.list, w.listAt = &list, f.At
	f.List, f.ListAt = w.list, w.listAt
	f.Operation = currentOperation(v, w.recs, f.At)
	w.track(f.Operation, f.At)
	if n := len(w.recs); n > 0 {
		f.Last = &w.recs[n-1]
	}
	return f
}

// track dates op, seen at at, by the operation of the frames before: an
// automatic failover has no time of its own, so it runs since this watch
// first saw it; a switchover's hand-over rewrites the request with a new
// time, and the operation still began at the first request's.
func (w *watcher) track(op *operation, at time.Time) {
	if op == nil {
		w.opKey = ""
		return
	}
	// An automatic failover gets its target once one takes the key: the
	// replaced leader is what names it.
	key := op.Kind + " " + op.From
	if op.From == "" {
		key += " " + op.To
	}
	switch {
	case key != w.opKey && op.Since.IsZero():
		w.opKey, w.opSince, w.opSeen = key, at, true
	case key != w.opKey || !op.Since.IsZero() && op.Since.Before(w.opSince):
		w.opKey, w.opSince, w.opSeen = key, op.Since, false
	}
	op.Since, op.SinceSeen = w.opSince, w.opSeen
}

func (w *watcher) addRecords(recs []timeline.Record) {
	seen := make(map[string]bool, len(w.recs))
	for _, r := range w.recs {
		seen[r.ID] = true
	}
	for _, r := range recs {
		if !seen[r.ID] {
			w.recs = append(w.recs, r)
		}
	}
	if n := len(w.recs); n > keptRecords {
		w.recs = append([]timeline.Record(nil), w.recs[n-keptRecords:]...)
	}
}

// renderFrame draws a frame for a terminal width columns wide (0: no
// limit). The member table becomes one compact line per member when it
// would not fit, and every line is cut to the width, so that a frame never
// wraps and the next one redraws it in place.
func renderFrame(f watchFrame, width int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "every %s: vigil ctl list    %s\n", f.Interval, f.At.UTC().Format("2006-01-02 15:04:05 MST"))
	if f.Error != "" {
		fmt.Fprintf(&b, "DCS NOT READ: %s\n", f.Error)
		if f.List != nil {
			fmt.Fprintf(&b, "last read at %s:\n", f.ListAt.UTC().Format("15:04:05 MST"))
		}
	}
	if f.List != nil {
		printListHeader(&b, *f.List)
	}
	if op := f.Operation; op != nil {
		b.WriteString(op.describe(f.At) + "\n")
	} else if f.Last != nil {
		fmt.Fprintf(&b, "no operation in progress; last: %s\n", describeRecord(*f.Last))
	}
	if f.List != nil {
		var table bytes.Buffer
		printMemberTable(&table, f.List.Members)
		if width > 0 && widest(table.String()) > width {
			table.Reset()
			for _, r := range f.List.Members {
				table.WriteString(compactMember(r) + "\n")
			}
		}
		b.Write(table.Bytes())
		printListProblems(&b, f.List.Problems)
	}
	if width <= 0 {
		return b.String()
	}
	lines := strings.SplitAfter(b.String(), "\n")
	for i, l := range lines {
		lines[i] = cutLine(l, width)
	}
	return strings.Join(lines, "")
}

// compactMember is a member in one short line, for a narrow terminal:
// "node2* primary tl 3 lag 0B routes writable primary".
func compactMember(r memberRow) string {
	s := fmt.Sprintf("%s %s tl %d lag %s", r.label(), r.Role, r.Timeline, shortBytes(r.LagBytes))
	if r.Sync {
		s += " sync"
	}
	if r.Routes {
		s += " routes"
	}
	return s + " " + r.State
}

// shortBytes writes n in at most a handful of characters: 0B, 512B, 1.5kB, 12MB.
func shortBytes(n uint64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	v, prefixes := float64(n)/unit, "kMGTPE"
	i := 0
	for ; v >= unit && i < len(prefixes)-1; i++ {
		v /= unit
	}
	if v < 10 {
		return fmt.Sprintf("%.1f%cB", v, prefixes[i])
	}
	return fmt.Sprintf("%.0f%cB", v, prefixes[i])
}

func widest(text string) int {
	most := 0
	for l := range strings.Lines(text) {
		most = max(most, utf8.RuneCountInString(strings.TrimSuffix(l, "\n")))
	}
	return most
}

// cutLine shortens line (its newline kept) to width characters, the last
// one an ellipsis when something was cut.
func cutLine(line string, width int) string {
	text, nl := strings.CutSuffix(line, "\n")
	if utf8.RuneCountInString(text) <= width {
		return line
	}
	cut := []rune(text)[:width-1]
	s := string(cut) + "…"
	if nl {
		s += "\n"
	}
	return s
}

// operation is a failover, switchover, rejoin or reinit under way, as far
// as the DCS shows it. The step is the one an agent reports running (or
// last ended) in its progress key while its procedure runs; without one,
// the last step of a record written for it, or else the step that the DCS
// keys prove done: the writable-primary record withdrawn (routes_down),
// the request handed over (hand_over), the leader key taken
// (acquire_leader), the new primary published (publish_writable).
type operation struct {
	Kind string `json:"kind"`
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// Since is when it began: the request's time, or for an automatic
	// failover when this watch first saw it (SinceSeen).
	Since       time.Time `json:"since,omitzero"`
	SinceSeen   bool      `json:"since_seen,omitempty"`
	RequestedBy string    `json:"requested_by,omitempty"`
	// Step ran on Node with Status (stepDone, stepFailed; stepWaiting or
	// stepUnderWay with no step known yet); Evidence is what shows it.
	Step     string `json:"step,omitempty"`
	Node     string `json:"node,omitempty"`
	Status   string `json:"status"`
	Evidence string `json:"evidence,omitempty"`
}

// Step statuses.
const (
	stepDone    = "done"
	stepFailed  = "FAILED"
	stepWaiting = "waiting"
	// stepUnderWay: the agent may be at work, its steps are not known yet.
	stepUnderWay = "under way"
	// stepRunning: the agent reports the step running now.
	stepRunning = "running"
)

func (op operation) describe(now time.Time) string {
	s := "IN PROGRESS: " + op.Kind
	switch {
	case op.From != "" && op.To != "":
		s += fmt.Sprintf(" %s -> %s", op.From, op.To)
	case op.To != "":
		s += " of " + op.To
	case op.From != "":
		s += " replacing " + op.From
	}
	if !op.Since.IsZero() {
		elapsed := now.Sub(op.Since).Round(100 * time.Millisecond)
		if op.SinceSeen {
			s += fmt.Sprintf(", seen for %s", elapsed)
		} else {
			s += fmt.Sprintf(", %s", elapsed)
		}
	}
	if op.RequestedBy != "" {
		s += ", requested by " + op.RequestedBy
	}
	if op.Step != "" {
		s += fmt.Sprintf("; step %s %s on %s", op.Step, op.Status, op.Node)
	} else {
		s += "; " + op.Status
	}
	if op.Evidence != "" {
		s += " (" + op.Evidence + ")"
	}
	return s
}

// describeRecord is a finished record in one line.
func describeRecord(rec timeline.Record) string {
	s := fmt.Sprintf("%s %s on %s at %s", rec.Kind, okWord(rec.OK), rec.Node, rec.Start.UTC().Format("15:04:05 MST"))
	if !rec.End.IsZero() {
		s += fmt.Sprintf(" (%s)", rec.End.Sub(rec.Start).Round(10*time.Millisecond))
	}
	return s
}

func okWord(ok bool) string {
	if ok {
		return "succeeded"
	}
	return "failed"
}

// currentOperation is the operation under way in view v at now, nil for
// none; recs are the newest history records, oldest first.
func currentOperation(v dcs.View, recs []timeline.Record, now time.Time) *operation {
	var op *operation
	if r := v.Request; r != nil && decision.RequestActive(r.Created, r.At, now) {
		op = requestedOperation(v, *r, recs, now)
	} else {
		op = automaticFailover(v)
	}
	return withLiveStep(op, v)
}

// withLiveStep sets the step an agent reports running now (its progress
// key), which is better evidence than the keys: the target's procedure
// first (it comes later in a switchover), then the old leader's. With no
// operation known from the keys, a procedure in progress is one.
func withLiveStep(op *operation, v dcs.View) *operation {
	var nodes []string
	if op != nil {
		nodes = []string{op.To, op.From}
	} else {
		for node := range v.Progress {
			nodes = append(nodes, node)
		}
		slices.Sort(nodes)
	}
	for _, node := range nodes {
		raw, ok := v.Progress[node]
		if node == "" || !ok {
			continue
		}
		var p timeline.Progress
		if json.Unmarshal(raw, &p) != nil || p.Kind == "" {
			continue
		}
		if op == nil {
			op = &operation{Kind: p.Kind, From: p.From, To: p.Node, Since: p.Start}
		}
		op.Node = p.Node
		switch {
		case p.Running != "":
			op.Step, op.Status, op.Evidence = p.Running, stepRunning, fmt.Sprintf("%s's %s, step %d, live", p.Node, p.Kind, len(p.Steps)+1)
		case len(p.Steps) > 0:
			op.fromRecord(p.Record)
			op.Evidence = fmt.Sprintf("%s's %s, live", p.Node, p.Kind)
		}
		return op
	}
	return op
}

func requestedOperation(v dcs.View, r dcs.Request, recs []timeline.Record, now time.Time) *operation {
	op := &operation{Kind: r.Kind, From: r.From, To: r.To, Since: r.Created, RequestedBy: r.Actor.OrUnknown().By}
	// A record of this request is one its agent wrote after it was made.
	lastRecord := func(node string) *timeline.Record {
		for i := len(recs) - 1; i >= 0; i-- {
			if rec := recs[i]; rec.Node == node && node != "" && !rec.Start.Before(r.Created) && len(rec.Steps) > 0 {
				return &recs[i]
			}
		}
		return nil
	}
	if r.At.After(now) {
		op.Since = r.At
		op.Status, op.Evidence = stepWaiting, "scheduled for "+r.At.UTC().Format(time.RFC3339)
		return op
	}
	switch r.Kind {
	case decision.RequestRejoin, decision.RequestReinit:
		if rec := lastRecord(r.To); rec != nil {
			op.fromRecord(*rec)
			return op
		}
		op.Status, op.Evidence = stepUnderWay, r.To+"'s agent records its steps when it is done"
		return op
	}
	// A failover or a switchover: the target's record is the last word,
	// then what the keys show of the target's part, then the old leader's
	// record, then what the keys show of the old leader's part.
	if rec := lastRecord(r.To); rec != nil {
		op.fromRecord(*rec)
		return op
	}
	target := r.To
	switch {
	case target != "" && v.Leader == target && v.Primary != nil && v.Primary.Node == target:
		op.proved(failover.StepPublish, target, "writable-primary record published")
		return op
	case target != "" && v.Leader == target:
		op.proved(failover.StepAcquireLeader, target, "it holds the leader key; promotion and readiness gate follow")
		return op
	}
	if rec := lastRecord(r.From); rec != nil && r.Kind == decision.RequestSwitchover {
		op.fromRecord(*rec)
		return op
	}
	switch {
	case r.HandedOver:
		op.proved(agent.StepHandOver, r.From, "leader key released to "+orDash(target))
	case r.Kind == decision.RequestSwitchover && v.Leader == r.From && (v.Primary == nil || v.Primary.Node != r.From):
		op.proved(agent.StepRoutesDown, r.From, "writable-primary record withdrawn; clean stop, catch-up and hand-over follow")
	case r.Kind == decision.RequestSwitchover:
		op.Status, op.Evidence = stepWaiting, "for "+orDash(v.Leader)+"'s agent to start"
	case v.Leader == "":
		op.Status, op.Evidence = stepWaiting, "leader key free, for "+orDash(target)+"'s agent to take it"
	default:
		op.Status, op.Evidence = stepWaiting, "for the leader "+v.Leader+" to give up its key"
	}
	return op
}

// automaticFailover is a failover the agents started by themselves: the
// leader key is free after a leader was known, or a new leader holds it
// and has not published a writable primary yet.
func automaticFailover(v dcs.View) *operation {
	old := v.Status.Leader
	switch {
	case v.Leader == "" && old != "" && v.Config.Paused:
		return &operation{Kind: decision.RequestFailover, From: old, Status: stepWaiting, Evidence: "leader key free, but the cluster is paused: no automatic failover"}
	case v.Leader == "" && old != "":
		return &operation{Kind: decision.RequestFailover, From: old, Status: stepWaiting, Evidence: "leader key free, for a standby to take it"}
	case v.Leader != "" && v.Leader != old && (v.Primary == nil || v.Primary.Node != v.Leader):
		op := &operation{Kind: decision.RequestFailover, From: old, To: v.Leader}
		op.proved(failover.StepAcquireLeader, v.Leader, "it holds the leader key; promotion and readiness gate follow")
		return op
	}
	return nil
}

// proved sets the step that the DCS keys show done.
func (op *operation) proved(step, node, evidence string) {
	op.Step, op.Node, op.Status, op.Evidence = step, node, stepDone, evidence
}

// fromRecord sets the last step of a record its agent wrote.
func (op *operation) fromRecord(rec timeline.Record) {
	st := rec.Steps[len(rec.Steps)-1]
	op.Step, op.Node, op.Status, op.Evidence = st.Name, rec.Node, stepDone, rec.Kind+" record"
	if !st.OK {
		op.Status = stepFailed
		op.Evidence += ": " + st.Error
	}
}
