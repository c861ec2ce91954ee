package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
	"github.com/vigil-ha/vigil/internal/timeline"
)

var auditNow = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time                             { return c.t }
func (c fixedClock) Sleep(context.Context, time.Duration) error { return nil }

// auditAgent is node2's agent with its log in buf: enough for the audit
// helpers, which read the view they are given and nothing else.
func auditAgent(buf *bytes.Buffer) *Agent {
	return &Agent{o: Options{Node: "node2"}, clock: fixedClock{auditNow}, log: slog.New(slog.NewJSONHandler(buf, nil))}
}

var bob = dcs.Actor{By: "token:sha256:0a1b2c3d", From: "192.0.2.4:50100"}

// TestRecordsNameWhoAsked: the history record of an action names the
// operator whose request it carried out (the decision marks such actions
// Requested: TestDecideMarksRequestedActions), "unknown" for a request
// written before requests named anyone, and nobody for what the agent did
// on its own.
func TestRecordsNameWhoAsked(t *testing.T) {
	fresh := auditNow.Add(-time.Second)
	tests := []struct {
		name    string
		req     *dcs.Request
		act     decision.Action
		wantBy  string
		wantFro string
	}{
		{"manual failover to this node", &dcs.Request{Kind: decision.RequestFailover, To: "node2", Created: fresh, Actor: bob},
			decision.Action{Kind: decision.Failover, Requested: true}, bob.By, bob.From},
		{"the old leader's side of a switchover", &dcs.Request{Kind: decision.RequestSwitchover, From: "node2", Created: fresh, Actor: bob},
			decision.Action{Kind: decision.Switchover, Target: "node3", Requested: true}, bob.By, bob.From},
		{"reinit of this node", &dcs.Request{Kind: decision.RequestReinit, To: "node2", Created: fresh, Actor: bob},
			decision.Action{Kind: decision.Reinit, Requested: true}, bob.By, bob.From},
		{"a request from before the audit", &dcs.Request{Kind: decision.RequestRejoin, To: "node2", Created: fresh},
			decision.Action{Kind: decision.Rejoin, Requested: true}, dcs.Unknown, dcs.Unknown},
		{"automatic failover, no request", nil, decision.Action{Kind: decision.Failover}, "", ""},
		{"automatic rejoin while another node's rejoin is pending", &dcs.Request{Kind: decision.RequestRejoin, To: "node3", Created: fresh, Actor: bob},
			decision.Action{Kind: decision.Rejoin}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			a := auditAgent(&buf)
			view := dcs.View{Request: tt.req}
			a.startAction(view, tt.act)
			// The record is finished after the request may have expired:
			// what counts is the request the action started on.
			a.clock = fixedClock{auditNow.Add(10 * decision.RequestTimeout)}
			var rec timeline.Record
			a.attribute(&rec)
			if rec.RequestedBy != tt.wantBy || rec.RequestedFrom != tt.wantFro {
				t.Errorf("record requested by %q from %q, want %q from %q", rec.RequestedBy, rec.RequestedFrom, tt.wantBy, tt.wantFro)
			}
			line := logged(t, &buf, "acting on an operator's request")
			if (tt.wantBy != "") != (line != nil) {
				t.Fatalf("log line %v, want one: %v", line, tt.wantBy != "")
			}
			if line != nil && (line["requested_by"] != tt.wantBy || line["requested_from"] != tt.wantFro) {
				t.Errorf("log line %v, want requested_by %q requested_from %q", line, tt.wantBy, tt.wantFro)
			}
		})
	}
}

// TestPauseAndResumeAreLogged: an agent logs each pause and resume it
// reads, with who asked, but not the configuration it finds at start.
func TestPauseAndResumeAreLogged(t *testing.T) {
	var buf bytes.Buffer
	a := auditAgent(&buf)
	paused := dcs.ClusterConfig{Paused: true, ChangedBy: bob, ChangedAt: auditNow}
	a.noticeConfigChange(paused)
	if buf.Len() != 0 {
		t.Fatalf("the configuration found at start was logged as a change:\n%s", buf.String())
	}
	a.noticeConfigChange(paused)
	if buf.Len() != 0 {
		t.Fatalf("an unchanged configuration was logged:\n%s", buf.String())
	}
	resumed := dcs.ClusterConfig{ChangedBy: bob, ChangedAt: auditNow.Add(time.Minute)}
	a.noticeConfigChange(resumed)
	if l := logged(t, &buf, "cluster resumed by an operator: automatic failover again"); l == nil || l["requested_by"] != bob.By || l["requested_from"] != bob.From {
		t.Errorf("resume logged as %v, want it to name %+v", l, bob)
	}
	// Paused again, by a tool that names nobody.
	buf.Reset()
	a.noticeConfigChange(dcs.ClusterConfig{Paused: true})
	if l := logged(t, &buf, "cluster paused by an operator: no automatic failover until resumed"); l == nil || l["requested_by"] != dcs.Unknown {
		t.Errorf("pause logged as %v, want it attributed to %q", l, dcs.Unknown)
	}
}

// logged returns the last JSON log line in buf whose msg is msg.
func logged(t *testing.T, buf *bytes.Buffer, msg string) map[string]any {
	t.Helper()
	var found map[string]any
	for line := range bytes.Lines(buf.Bytes()) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == msg {
			found = m
		}
	}
	return found
}
