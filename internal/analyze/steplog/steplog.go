// Package steplog reads Vigil's own failover records: the JSON lines an
// agent writes with --step-log (timeline.StepLine), and the same steps as
// they appear in an agent's JSON log (--log-format json).
package steplog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/vigil-ha/vigil/internal/analyze/clock"
	"github.com/vigil-ha/vigil/internal/analyze/event"
	"github.com/vigil-ha/vigil/internal/analyze/input"
	"github.com/vigil-ha/vigil/internal/timeline"
)

// Format is the name --format uses.
const Format = "vigil-steps"

// Step names written by the agent (internal/agent). They are repeated here
// rather than imported: the analyzer reads logs of other versions too, and
// must not pull the agent into its build.
const (
	stepIsolationGuard = "isolation_guard"
	stepFence          = "fence_old_primary"
	stepPromote        = "promote"
	stepReadinessGate  = "readiness_gate"
	stepSyncToAsync    = "sync_to_async"
	stepCheckpoint     = "checkpoint"
	stepPublish        = "publish_writable"
	stepRoutesUp       = "routes_up"
	stepLiveness       = "liveness_check"
)

var backlogRe = regexp.MustCompile(`replay backlog before: (\d+) bytes`)

// Sniff scores how much sample looks like Vigil step lines (0-100).
func Sniff(sample []byte) int {
	switch {
	case bytes.Contains(sample, []byte(`"msg":"`+timeline.StepLineMsg+`"`)):
		return 100
	case bytes.Contains(sample, []byte(`"failover_id"`)) && bytes.Contains(sample, []byte(`"step"`)):
		return 90
	}
	return 0
}

// line is the union of a step line and an agent's JSON log line.
type line struct {
	Time      time.Time `json:"time"`
	Msg       string    `json:"msg"`
	ID        string    `json:"failover_id"`
	Kind      string    `json:"kind"`
	Node      string    `json:"node"`
	Step      string    `json:"step"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	OK        *bool     `json:"ok"`
	MS        *int64    `json:"ms"`
	Evidence  string    `json:"evidence"`
	Error     string    `json:"error"`
	Replacing string    `json:"replacing"`
	Reason    string    `json:"reason"`
}

type record struct {
	end     event.Event
	started bool
}

// maxRecords bounds the failovers tracked in one file.
const maxRecords = 1000

// Parse reads step lines into sink.
// Cancellation comes through lines (input.NewLinesContext).
func Parse(_ context.Context, lines *input.Lines, sink *event.Sink, _ *clock.Resolver) error {
	records := map[string]*record{}
	var order []string
	for {
		b, ok := lines.Next()
		if !ok {
			break
		}
		n := lines.Line()
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			continue
		}
		var l line
		if b[0] != '{' || json.Unmarshal(b, &l) != nil {
			sink.Unrecognised(n)
			continue
		}
		if l.Time.IsZero() {
			sink.Unrecognised(n)
			continue
		}
		sink.Seen(l.Time)
		sink.Zone(zoneName(l.Time))
		if l.Msg == "starting failover" {
			sink.Add(event.Event{Time: l.Time, Kind: event.FailureDetected, Line: n, Text: string(b), Precision: time.Microsecond,
				Attrs: map[string]string{"replacing": l.Replacing, "reason": l.Reason}})
			continue
		}
		if l.Step == "" || l.ID == "" || l.OK == nil {
			continue // another agent message: not a step
		}
		// An agent log line has the end time and the duration.
		if l.End.IsZero() {
			l.End = l.Time
			if l.MS != nil {
				l.Start = l.End.Add(-time.Duration(*l.MS) * time.Millisecond)
			} else {
				l.Start = l.End
			}
		}
		if l.Start.IsZero() {
			l.Start = l.End
		}
		rec := records[l.ID]
		if rec == nil && len(records) < maxRecords {
			rec = &record{}
			records[l.ID] = rec
			order = append(order, l.ID)
		}
		steps(sink, l, n, string(b), rec)
	}
	for _, id := range order {
		if r := records[id]; r.started {
			sink.Add(r.end)
		}
	}
	return lines.Canceled()
}

func steps(sink *event.Sink, l line, n int64, text string, rec *record) {
	attrs := map[string]string{"step": l.Step, "failover_id": l.ID, "node": l.Node,
		"ms": strconv.FormatInt(l.End.Sub(l.Start).Milliseconds(), 10)}
	if l.Evidence != "" {
		attrs["evidence"] = l.Evidence
	}
	if l.Error != "" {
		attrs["error"] = l.Error
	}
	at := func(t time.Time, k event.Kind) {
		sink.Add(event.Event{Time: t, Kind: k, Line: n, Text: text, Precision: time.Microsecond, Attrs: attrs})
	}
	if rec != nil {
		if !rec.started && (l.Kind == "failover" || l.Kind == "") {
			at(l.Start, event.FailoverStart)
		}
		rec.started = true
		rec.end = event.Event{Time: l.End, Kind: event.FailoverEnd, Line: n, Text: text, Precision: time.Microsecond,
			Attrs: map[string]string{"failover_id": l.ID, "node": l.Node, "last_step": l.Step, "ok": fmt.Sprint(*l.OK)}}
	}
	if !*l.OK {
		at(l.End, event.StepFailed)
		return
	}
	switch l.Step {
	case stepIsolationGuard:
		at(l.End, event.TrustedPingOK)
	case stepFence:
		at(l.End, event.OldPrimaryStop)
	case stepPromote:
		at(l.Start, event.PromoteRequested)
		if m := backlogRe.FindStringSubmatch(l.Evidence); m != nil {
			attrs["replay_backlog_bytes"] = m[1]
		}
		at(l.End, event.Promoted)
	case stepReadinessGate:
		at(l.End, event.WriteCommitted)
	case stepLiveness:
		attrs["check"] = "select 33333"
		at(l.End, event.LivenessCheckOK)
	case stepCheckpoint:
		at(l.End, event.CheckpointDone)
	case stepSyncToAsync:
		at(l.End, event.SyncToAsync)
	case stepPublish:
		attrs["route"] = "writable primary published in the DCS"
		at(l.End, event.RouteUp)
	case stepRoutesUp:
		at(l.End, event.RouteUp)
	default:
		at(l.End, event.Step)
	}
}

func zoneName(t time.Time) string {
	_, off := t.Zone()
	return "UTC" + clock.FormatOffset(off)
}
