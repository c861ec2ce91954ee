package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/agent"
	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
)

const testToken = "s3cret-token-value"

type fakeAgent struct {
	mu sync.Mutex
	st agent.Status
}

func (f *fakeAgent) Status() agent.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

type fakeCluster struct {
	view dcs.View
	err  error
	// block makes Snapshot wait for its context, like an unreachable etcd.
	block bool
}

func (f fakeCluster) Snapshot(ctx context.Context) (dcs.View, error) {
	if f.block {
		<-ctx.Done()
		return dcs.View{}, ctx.Err()
	}
	return f.view, f.err
}

type controlCall struct {
	op     string
	to     string
	at     time.Time
	paused bool
	// by is who the server said asked.
	by dcs.Actor
	// ctxErr and hasDeadline describe the context the call received.
	ctxErr      error
	hasDeadline bool
}

type fakeControl struct {
	msg string
	err error
	// release, when set, is waited for before answering.
	release chan struct{}
	started chan struct{}

	mu    sync.Mutex
	calls []controlCall
}

func (f *fakeControl) record(ctx context.Context, c controlCall) {
	_, c.hasDeadline = ctx.Deadline()
	if f.started != nil {
		close(f.started)
	}
	if f.release != nil {
		<-f.release
	}
	c.ctxErr = ctx.Err()
	f.mu.Lock()
	f.calls = append(f.calls, c)
	f.mu.Unlock()
}

func (f *fakeControl) Switchover(ctx context.Context, by dcs.Actor, to string, at time.Time) (string, error) {
	f.record(ctx, controlCall{op: "switchover", to: to, at: at, by: by})
	return f.msg, f.err
}

func (f *fakeControl) Failover(ctx context.Context, by dcs.Actor, to string) (string, error) {
	f.record(ctx, controlCall{op: "failover", to: to, by: by})
	return f.msg, f.err
}

func (f *fakeControl) SetPaused(ctx context.Context, by dcs.Actor, paused bool) error {
	f.record(ctx, controlCall{op: "pause", paused: paused, by: by})
	return f.err
}

func (f *fakeControl) Calls() []controlCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]controlCall(nil), f.calls...)
}

// newServer builds a server around st; edit adjusts the options.
func newServer(t *testing.T, st agent.Status, edit func(*Options)) *Server {
	t.Helper()
	o := Options{
		Listen:      "127.0.0.1:0",
		NodeName:    "node1",
		ClusterName: "main",
		Agent:       &fakeAgent{st: st},
		Cluster:     fakeCluster{},
	}
	if edit != nil {
		edit(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

type response struct {
	code   int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response body is not a JSON object: %v\n%s", err, r.body)
	}
	return m
}

func do(t *testing.T, s *Server, method, target, body string, header http.Header) response {
	t.Helper()
	return doCtx(t, context.Background(), s, method, target, body, header)
}

func doCtx(t *testing.T, ctx context.Context, s *Server, method, target, body string, header http.Header) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequestWithContext(ctx, method, target, rd)
	for k, vs := range header {
		req.Header[k] = vs
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return response{code: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

func bearer(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}

// Status fixtures, as the agent would report them.

func writablePrimary() agent.Status {
	return agent.Status{
		Node: "node1", Cluster: "main", Role: decision.RolePrimary, Leader: "node1",
		HoldsLeader: true, Writable: true, Timeline: 3, WAL: 0x3000060,
		LastProbe: &database.ProbeResult{Node: "node1", Class: database.ProbeOK, Latency: 4 * time.Millisecond},
		Reason:    "leader renewed", UpdatedAt: time.Now(),
	}
}

// promotingLeader holds the leader key but its server still replays WAL:
// the case a liveness-style check gets wrong.
func promotingLeader() agent.Status {
	st := writablePrimary()
	st.Role = decision.RoleStandby
	st.Writable = false
	st.LastProbe = &database.ProbeResult{Node: "node1", Class: database.ProbeInRecovery, SQLState: "25006"}
	st.Reason = "completing promotion"
	return st
}

// gatedLeader was promoted but has not passed its readiness gate yet.
func gatedLeader() agent.Status {
	st := writablePrimary()
	st.Writable = false
	st.LastProbe = &database.ProbeResult{Node: "node1", Class: database.ProbeSyncWait}
	return st
}

func standby(lag uint64) agent.Status {
	return agent.Status{
		Node: "node2", Cluster: "main", Role: decision.RoleStandby, Leader: "node1",
		Streaming: true, Upstream: "node1", LagBytes: lag, Timeline: 3,
		Reason: "following node1", UpdatedAt: time.Now(),
	}
}

func with(st agent.Status, f func(*agent.Status)) agent.Status {
	f(&st)
	return st
}

// logBuffer is a slog destination safe for the server's goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
