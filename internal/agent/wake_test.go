package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
	"github.com/vigil-ha/vigil/internal/isolation"
	"github.com/vigil-ha/vigil/internal/pgctl"
)

// wakeStore is a Store whose leadership watch the test drives.
type wakeStore struct {
	Store
	changes chan struct{}
}

func (s *wakeStore) Snapshot(context.Context) (dcs.View, error) {
	return dcs.View{Leader: "node1", Members: map[string]dcs.Member{}}, nil
}
func (s *wakeStore) PublishMember(context.Context, dcs.Member) error { return nil }
func (s *wakeStore) WithdrawMember(context.Context) error            { return nil }
func (s *wakeStore) WatchLeadership(context.Context) <-chan struct{} { return s.changes }

// pidControl reports a running server whose postmaster is pid.
type pidControl struct {
	Control
	pid int
}

func (c pidControl) Status(context.Context) (bool, int, error) { return true, c.pid, nil }
func (c pidControl) StandbyConfigured() bool                   { return true }
func (c pidControl) ControlData(context.Context) (pgctl.ControlData, error) {
	return pgctl.ControlData{}, errors.New("no control file in this test")
}

type standbyServer struct{ Server }

func (standbyServer) Observe(context.Context) (database.Observation, error) {
	return database.Observation{Reachable: true, InRecovery: true}, nil
}

type reachable struct{}

func (reachable) Check(context.Context) isolation.Result { return isolation.Result{Reachable: true} }

// syncBuffer is a log sink the agent's goroutines and the test share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestRunWakesOnEventsNotOnlyOnItsTicker: with a loop interval of an hour,
// a running agent decides again at once when the leader key changes (a
// lease expired, a key handed over) and when its postmaster exits: only
// the events can explain a second and a third decision, and the decision's
// log line names the event.
func TestRunWakesOnEventsNotOnlyOnItsTicker(t *testing.T) {
	postmaster := exec.Command("sleep", "600")
	if err := postmaster.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = postmaster.Process.Kill(); _ = postmaster.Wait() })

	decided := make(chan int, 16)
	calls := 0
	logs := &syncBuffer{}
	store := &wakeStore{changes: make(chan struct{}, 1)}
	a, err := New(Options{
		Node: "node2", Cluster: "c", Priority: 100,
		Server: standbyServer{}, Control: pidControl{pid: postmaster.Process.Pid}, Store: store, Trusted: reachable{},
		Decision: decision.Config{LeaseTTL: 3 * time.Hour, LoopInterval: time.Hour},
		Decide: func(in decision.Input) decision.Output {
			calls++
			decided <- calls
			// A new reason each time, so that each decision is logged.
			return decision.Output{Role: in.Self.Role(), Reason: "decision " + string(rune('0'+calls))}
		},
		Logger: slog.New(slog.NewJSONHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	next := func(what string) {
		t.Helper()
		select {
		case <-decided:
		case <-time.After(time.Minute):
			t.Fatalf("no decision after %s (the loop interval is an hour); log:\n%s", what, logs.String())
		}
	}
	next("the start")
	store.changes <- struct{}{}
	next("the leader key changed")
	if err := postmaster.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	next("the postmaster was killed")

	var causes []string
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var l struct {
			Msg     string `json:"msg"`
			WokenBy string `json:"woken_by"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "decision" {
			causes = append(causes, l.WokenBy)
		}
	}
	if want := []string{"", wokenByLeadership, wokenByPostmaster}; strings.Join(causes, "|") != strings.Join(want, "|") {
		t.Errorf("decisions woken by %q, want %q", causes, want)
	}
	// The killed postmaster is a zombie here (the test reaps it only at
	// the end), which the control binary would still call running: the
	// exit seen decides.
	if !strings.Contains(logs.String(), `"role":"stopped"`) {
		t.Errorf("the decision after the postmaster's exit did not see the server stopped:\n%s", logs.String())
	}
}
