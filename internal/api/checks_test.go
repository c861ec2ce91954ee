package api

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/agent"
	"github.com/vigil-ha/vigil/internal/decision"
)

func TestRoleEndpoints(t *testing.T) {
	const mib = 1 << 20
	stale := func(st agent.Status) agent.Status {
		return with(st, func(s *agent.Status) { s.UpdatedAt = time.Now().Add(-time.Minute) })
	}
	states := map[string]agent.Status{
		"writable primary":         writablePrimary(),
		"promoting leader":         promotingLeader(),
		"leader in readiness gate": gatedLeader(),
		// Writable without the key cannot come from the agent; if it ever
		// did, the key decides.
		"writable without key": with(writablePrimary(), func(s *agent.Status) { s.HoldsLeader = false }),
		"primary without key":  with(writablePrimary(), func(s *agent.Status) { s.HoldsLeader, s.Writable, s.Leader = false, false, "node2" }),
		"stale primary":        stale(writablePrimary()),
		"standby 512KiB":       standby(512 << 10),
		"standby 2MiB":         standby(2 * mib),
		"standby 32MiB":        standby(32 * mib),
		"paused standby":       with(standby(0), func(s *agent.Status) { s.Paused = true }),
		"standby not streaming": with(standby(0), func(s *agent.Status) {
			s.Streaming = false
		}),
		"stale standby": stale(standby(0)),
		"stopped":       with(standby(0), func(s *agent.Status) { s.Role, s.Streaming = decision.RoleStopped, false }),
		"unknown":       with(standby(0), func(s *agent.Status) { s.Role, s.Streaming = decision.RoleUnknown, false }),
		"no loop yet":   {},
	}
	tests := []struct {
		state  string
		path   string
		want   int
		reason string // substring of the "reason" field
	}{
		{"writable primary", "/primary", 200, "write probe committed"},
		{"writable primary", "/read-write", 200, ""},
		{"writable primary", "/read-only", 200, ""},
		{"writable primary", "/replica", 503, "not standby"},
		{"writable primary", "/health", 200, "runs as primary"},

		{"promoting leader", "/primary", 503, "in_recovery"},
		{"promoting leader", "/read-write", 503, "not writable yet"},
		{"leader in readiness gate", "/primary", 503, "sync_wait"},
		{"leader in readiness gate", "/read-write", 503, "readiness gate"},
		{"leader in readiness gate", "/health", 200, ""},
		{"writable without key", "/primary", 503, "without the leader key"},
		{"primary without key", "/primary", 503, "without the leader key"},
		{"primary without key", "/read-only", 503, ""},
		{"primary without key", "/health", 200, ""},
		{"stale primary", "/primary", 503, "last loop was"},
		{"stale primary", "/read-only", 503, ""},
		{"stale primary", "/health", 503, "last loop was"},

		{"standby 512KiB", "/replica", 200, "within the limit of 16777216"},
		{"standby 512KiB", "/replica?lag=1MB", 200, "within the limit of 1048576"},
		{"standby 512KiB", "/read-only", 200, ""},
		{"standby 512KiB", "/primary", 503, "the leader is node1"},
		{"standby 512KiB", "/read-write", 503, ""},
		{"standby 512KiB", "/health", 200, "runs as standby"},
		{"standby 2MiB", "/replica", 200, ""},
		{"standby 2MiB", "/replica?lag=1MB", 503, "exceeds the limit of 1048576"},
		{"standby 2MiB", "/replica?lag=2097152", 200, ""},
		{"standby 2MiB", "/replica?lag=1GB", 200, ""},
		{"standby 2MiB", "/read-only?lag=1MB", 503, "exceeds"},
		{"standby 32MiB", "/replica", 503, "exceeds the limit of 16777216"},
		{"standby 32MiB", "/read-only", 503, ""},
		{"paused standby", "/replica", 200, ""},
		{"standby not streaming", "/replica", 503, "not streaming"},
		{"standby not streaming", "/read-only", 503, "not streaming"},
		{"standby not streaming", "/health", 200, ""},
		{"stale standby", "/replica", 503, "last loop was"},

		{"stopped", "/health", 503, "stopped"},
		{"stopped", "/replica", 503, "role is stopped"},
		{"stopped", "/primary", 503, ""},
		{"unknown", "/health", 503, "does not answer SQL"},
		{"no loop yet", "/health", 503, "not completed a loop"},
		{"no loop yet", "/primary", 503, "not completed a loop"},
		{"no loop yet", "/replica", 503, "not completed a loop"},
	}
	for _, tc := range tests {
		t.Run(tc.state+" "+tc.path, func(t *testing.T) {
			st, ok := states[tc.state]
			if !ok {
				t.Fatalf("no state %q", tc.state)
			}
			s := newServer(t, st, nil)
			for _, method := range []string{http.MethodGet, http.MethodOptions} {
				r := do(t, s, method, tc.path, "", nil)
				if r.code != tc.want {
					t.Fatalf("%s %s = %d, want %d\n%s", method, tc.path, r.code, tc.want, r.body)
				}
				if got := r.header.Get("Content-Type"); got != "application/json" {
					t.Errorf("Content-Type = %q", got)
				}
				if got := r.json(t)["reason"].(string); !strings.Contains(got, tc.reason) {
					t.Errorf("reason = %q, want it to contain %q", got, tc.reason)
				}
			}
		})
	}
}

func TestHeadAnswersTheSameCode(t *testing.T) {
	for _, tc := range []struct {
		st   agent.Status
		want int
	}{{writablePrimary(), 200}, {promotingLeader(), 503}} {
		r := do(t, newServer(t, tc.st, nil), http.MethodHead, "/primary", "", nil)
		if r.code != tc.want {
			t.Errorf("HEAD /primary = %d, want %d", r.code, tc.want)
		}
	}
}

func TestStatusBody(t *testing.T) {
	s := newServer(t, writablePrimary(), nil)
	body := do(t, s, http.MethodGet, "/primary", "", nil).json(t)
	want := map[string]any{
		"node":            "node1",
		"role":            "primary",
		"writable":        true,
		"holds_leader":    true,
		"timeline":        float64(3),
		"wal":             "0/3000060",
		"decision_reason": "leader renewed",
		"reason":          "holds the leader key and its last write probe committed",
	}
	for k, v := range want {
		if body[k] != v {
			t.Errorf("%s = %#v, want %#v", k, body[k], v)
		}
	}
	if got := do(t, s, http.MethodGet, "/health", "", nil).header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
}

func TestDefaultMaxLagOption(t *testing.T) {
	tests := []struct {
		name  string
		limit uint64
		lag   uint64
		want  int
	}{
		{"zero means the package default", 0, DefaultMaxLagBytes, 200},
		{"zero means the package default, over", 0, DefaultMaxLagBytes + 1, 503},
		{"configured limit", 1 << 20, 2 << 20, 503},
		{"configured limit, within", 4 << 20, 2 << 20, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, standby(tc.lag), func(o *Options) { o.DefaultMaxLagBytes = tc.limit })
			for _, path := range []string{"/replica", "/read-only"} {
				if r := do(t, s, http.MethodGet, path, "", nil); r.code != tc.want {
					t.Errorf("%s = %d, want %d: %s", path, r.code, tc.want, r.body)
				}
			}
		})
	}
}

func TestStaleAfterOption(t *testing.T) {
	st := with(writablePrimary(), func(s *agent.Status) { s.UpdatedAt = time.Now().Add(-2 * time.Second) })
	tests := []struct {
		staleAfter time.Duration
		want       int
	}{
		{0, 200}, // default 30 s
		{time.Minute, 200},
		{time.Second, 503},
	}
	for _, tc := range tests {
		s := newServer(t, st, func(o *Options) { o.StaleAfter = tc.staleAfter })
		for _, path := range []string{"/health", "/primary"} {
			if r := do(t, s, http.MethodGet, path, "", nil); r.code != tc.want {
				t.Errorf("StaleAfter %s: %s = %d, want %d", tc.staleAfter, path, r.code, tc.want)
			}
		}
	}
}

func TestBadLagParameter(t *testing.T) {
	s := newServer(t, standby(0), nil)
	for _, path := range []string{"/replica?lag=lots", "/read-only?lag=-1", "/replica?lag=16XB"} {
		r := do(t, s, http.MethodGet, path, "", nil)
		if r.code != http.StatusBadRequest {
			t.Errorf("%s = %d, want 400", path, r.code)
		}
		if msg, _ := r.json(t)["error"].(string); !strings.Contains(msg, "lag") {
			t.Errorf("%s: error %q does not mention lag", path, msg)
		}
	}
}

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in      string
		want    uint64
		wantErr bool
	}{
		{"0", 0, false},
		{"1048576", 1 << 20, false},
		{"512B", 512, false},
		{"512kB", 512 << 10, false},
		{"16MB", 16 << 20, false},
		{"16mb", 16 << 20, false},
		{"16 MiB", 16 << 20, false},
		{"1GB", 1 << 30, false},
		{"2TB", 2 << 40, false},
		{" 3 gib ", 3 << 30, false},
		{"18446744073709551615", 1<<64 - 1, false},
		{"", 0, true},
		{"MB", 0, true},
		{"-1", 0, true},
		{"1.5GB", 0, true},
		{"16XB", 0, true},
		{"18446744073709551616", 0, true},
		{"99999999TB", 0, true},
	}
	for _, tc := range tests {
		got, err := parseBytes(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestRouting(t *testing.T) {
	s := newServer(t, writablePrimary(), func(o *Options) { o.Token = testToken; o.Control = &fakeControl{} })
	tests := []struct {
		method, path string
		want         int
		allow        string // substring of the Allow header on 405
	}{
		{http.MethodPost, "/primary", 405, "GET"},
		{http.MethodPut, "/health", 405, "OPTIONS"},
		{http.MethodDelete, "/cluster", 405, "GET"},
		{http.MethodPost, "/metrics", 405, "GET"},
		{http.MethodGet, "/switchover", 405, "POST"},
		{http.MethodGet, "/pause", 405, "POST"},
		{http.MethodGet, "/nope", 404, ""},
		{http.MethodGet, "/", 404, ""},
		{http.MethodGet, "/primary/extra", 404, ""},
	}
	for _, tc := range tests {
		r := do(t, s, tc.method, tc.path, "", nil)
		if r.code != tc.want {
			t.Errorf("%s %s = %d, want %d", tc.method, tc.path, r.code, tc.want)
		}
		if tc.want == 405 && !strings.Contains(r.header.Get("Allow"), tc.allow) {
			t.Errorf("%s %s: Allow = %q, want it to contain %s", tc.method, tc.path, r.header.Get("Allow"), tc.allow)
		}
	}
}
