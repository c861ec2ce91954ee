package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/dcs"
)

func TestControlAuth(t *testing.T) {
	tests := []struct {
		name       string
		configured string // Options.Token
		nilControl bool
		header     http.Header
		want       int
		challenge  string // WWW-Authenticate, on 401
	}{
		{"no token configured", "", false, bearer(testToken), 403, ""},
		{"no token configured, no header", "", false, nil, 403, ""},
		{"missing header", testToken, false, nil, 401, `Bearer realm="vigil"`},
		{"wrong token", testToken, false, bearer("guess"), 401, `Bearer realm="vigil", error="invalid_token"`},
		{"token prefix", testToken, false, bearer(testToken[:5]), 401, `error="invalid_token"`},
		{"token with suffix", testToken, false, bearer(testToken + "x"), 401, `error="invalid_token"`},
		{"basic auth", testToken, false, http.Header{"Authorization": {"Basic " + testToken}}, 401, `Bearer realm="vigil"`},
		{"empty bearer", testToken, false, http.Header{"Authorization": {"Bearer "}}, 401, `Bearer realm="vigil"`},
		{"right token, nil controller", testToken, true, bearer(testToken), 501, ""},
		{"wrong token, nil controller", testToken, true, bearer("guess"), 401, "Bearer"},
		{"right token", testToken, false, bearer(testToken), 200, ""},
		{"lower-case scheme", testToken, false, http.Header{"Authorization": {"bearer " + testToken}}, 200, ""},
	}
	endpoints := []struct{ path, body string }{
		{"/switchover", `{"to": "node2"}`},
		{"/failover", `{"to": "node2"}`},
		{"/pause", ""},
		{"/resume", ""},
	}
	for _, tc := range tests {
		for _, ep := range endpoints {
			t.Run(tc.name+" "+ep.path, func(t *testing.T) {
				ctl := &fakeControl{msg: "ok"}
				s := newServer(t, writablePrimary(), func(o *Options) {
					o.Token = tc.configured
					if !tc.nilControl {
						o.Control = ctl
					}
				})
				r := do(t, s, http.MethodPost, ep.path, ep.body, tc.header)
				if r.code != tc.want {
					t.Fatalf("POST %s = %d, want %d: %s", ep.path, r.code, tc.want, r.body)
				}
				if got := r.header.Get("WWW-Authenticate"); got != tc.challenge && !(tc.challenge != "" && strings.Contains(got, tc.challenge)) {
					t.Errorf("WWW-Authenticate = %q, want %q", got, tc.challenge)
				}
				if calls := ctl.Calls(); (tc.want == 200) != (len(calls) == 1) {
					t.Errorf("controller calls = %v after a %d", calls, r.code)
				}
				if tc.want == 403 && !strings.Contains(string(r.body), "api.token_file") {
					t.Errorf("403 body does not say how to configure a token: %s", r.body)
				}
			})
		}
	}
}

func TestControlRequests(t *testing.T) {
	at := time.Date(2030, 5, 1, 2, 30, 0, 0, time.UTC)
	tests := []struct {
		name     string
		path     string
		body     string
		want     int
		wantCall *controlCall // nil: the controller must not be called
		wantMsg  string       // substring of "message" on 200, of "error" otherwise
	}{
		{"switchover to a node", "/switchover", `{"to":"node2"}`, 200, &controlCall{op: "switchover", to: "node2"}, "done"},
		{"switchover at a time", "/switchover", `{"to":"node3","at":"2030-05-01T04:30:00+02:00"}`, 200, &controlCall{op: "switchover", to: "node3", at: at}, "done"},
		{"switchover to any", "/switchover", `{}`, 200, &controlCall{op: "switchover"}, "done"},
		{"switchover, empty body", "/switchover", ``, 200, &controlCall{op: "switchover"}, "done"},
		{"switchover, bad time", "/switchover", `{"to":"node2","at":"tomorrow"}`, 400, nil, "RFC 3339"},
		{"switchover, misspelt field", "/switchover", `{"too":"node2"}`, 400, nil, "unknown field"},
		{"switchover, bad JSON", "/switchover", `{"to":`, 400, nil, "decode JSON"},
		{"switchover, two objects", "/switchover", `{"to":"node2"}{"to":"node3"}`, 400, nil, "after the first JSON object"},
		{"switchover, too large", "/switchover", `{"to":"` + strings.Repeat("x", maxBodyBytes) + `"}`, 400, nil, "too large"},
		{"failover", "/failover", `{"to":"node2"}`, 200, &controlCall{op: "failover", to: "node2"}, "done"},
		{"failover without target", "/failover", `{}`, 400, nil, "needs a target"},
		{"failover, blank target", "/failover", `{"to":"  "}`, 400, nil, "needs a target"},
		{"failover, empty body", "/failover", ``, 400, nil, "needs a target"},
		{"failover, bad JSON", "/failover", `to=node2`, 400, nil, "decode JSON"},
		{"pause", "/pause", ``, 200, &controlCall{op: "pause", paused: true}, "paused"},
		{"resume", "/resume", ``, 200, &controlCall{op: "pause", paused: false}, "resumed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctl := &fakeControl{msg: "done"}
			s := newServer(t, writablePrimary(), func(o *Options) { o.Token = testToken; o.Control = ctl })
			r := do(t, s, http.MethodPost, tc.path, tc.body, bearer(testToken))
			if r.code != tc.want {
				t.Fatalf("POST %s = %d, want %d: %s", tc.path, r.code, tc.want, r.body)
			}
			field := "error"
			if tc.want == 200 {
				field = "message"
			}
			if msg, _ := r.json(t)[field].(string); !strings.Contains(msg, tc.wantMsg) {
				t.Errorf("%s = %q, want it to contain %q", field, msg, tc.wantMsg)
			}
			calls := ctl.Calls()
			if tc.wantCall == nil {
				if len(calls) != 0 {
					t.Fatalf("controller called: %+v", calls)
				}
				return
			}
			if len(calls) != 1 {
				t.Fatalf("controller calls = %+v, want one", calls)
			}
			got := calls[0]
			if got.op != tc.wantCall.op || got.to != tc.wantCall.to || !got.at.Equal(tc.wantCall.at) || got.paused != tc.wantCall.paused {
				t.Errorf("controller call = %+v, want %+v", got, *tc.wantCall)
			}
			if !got.hasDeadline || got.ctxErr != nil {
				t.Errorf("controller context: deadline %v, err %v; want a live context with a deadline", got.hasDeadline, got.ctxErr)
			}
		})
	}
}

func TestControlErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"conflict", fmt.Errorf("node9 is not a member: %w", ErrConflict), 409},
		{"timeout", fmt.Errorf("wait for the new primary: %w", context.DeadlineExceeded), 504},
		{"other", errors.New("write request to the DCS: connection refused"), 500},
	}
	for _, tc := range tests {
		for _, ep := range []struct{ path, body string }{{"/switchover", `{"to":"node9"}`}, {"/failover", `{"to":"node9"}`}, {"/pause", ""}} {
			t.Run(tc.name+ep.path, func(t *testing.T) {
				s := newServer(t, writablePrimary(), func(o *Options) { o.Token = testToken; o.Control = &fakeControl{err: tc.err} })
				r := do(t, s, http.MethodPost, ep.path, ep.body, bearer(testToken))
				if r.code != tc.want {
					t.Fatalf("POST %s = %d, want %d", ep.path, r.code, tc.want)
				}
				if msg, _ := r.json(t)["error"].(string); !strings.Contains(msg, tc.err.Error()) {
					t.Errorf("error = %q, want the controller's %q", msg, tc.err)
				}
			})
		}
	}
}

// An operator's Ctrl-C must not abort a switchover half way.
func TestControlOutlivesTheClient(t *testing.T) {
	ctl := &fakeControl{msg: "done"}
	s := newServer(t, writablePrimary(), func(o *Options) {
		o.Token = testToken
		o.Control = ctl
		o.ControlTimeout = time.Hour
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	doCtx(t, ctx, s, http.MethodPost, "/failover", `{"to":"node2"}`, bearer(testToken))
	calls := ctl.Calls()
	if len(calls) != 1 {
		t.Fatalf("calls = %+v", calls)
	}
	if calls[0].ctxErr != nil || !calls[0].hasDeadline {
		t.Errorf("controller context: err %v, deadline %v; want not cancelled, with a deadline", calls[0].ctxErr, calls[0].hasDeadline)
	}
}

func TestTokenNeverLogged(t *testing.T) {
	var logs logBuffer
	ctl := &fakeControl{msg: "done"}
	s := newServer(t, writablePrimary(), func(o *Options) {
		o.Token = testToken
		o.Control = ctl
		o.Logger = logs.logger()
	})
	const wrong = "wrong-token-also-secret"
	for _, h := range []http.Header{bearer(testToken), bearer(wrong), nil} {
		for _, path := range []string{"/switchover", "/failover", "/pause", "/resume"} {
			do(t, s, http.MethodPost, path, `{"to":"node2"}`, h)
		}
	}
	out := logs.String()
	if !strings.Contains(out, "refused") || !strings.Contains(out, "failover requested") {
		t.Fatalf("expected the requests and refusals to be logged, got:\n%s", out)
	}
	for _, secret := range []string{testToken, wrong} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains a token:\n%s", out)
		}
	}
}

// TestControlRequestsNameTheCaller: every operator request reaches the
// controller with who asked (the token's name, never the token) and from
// where (the client's address), and the request's log line says the same.
func TestControlRequestsNameTheCaller(t *testing.T) {
	want := dcs.Actor{By: "token:" + TokenName(testToken), From: "192.0.2.9:51234"}
	for _, ep := range []struct{ path, body string }{
		{"/switchover", `{"to":"node2"}`}, {"/failover", `{"to":"node2"}`}, {"/pause", ""}, {"/resume", ""},
	} {
		t.Run(ep.path, func(t *testing.T) {
			var logs logBuffer
			ctl := &fakeControl{msg: "done"}
			s := newServer(t, writablePrimary(), func(o *Options) { o.Token, o.Control, o.Logger = testToken, ctl, logs.logger() })
			req := httptest.NewRequest(http.MethodPost, ep.path, strings.NewReader(ep.body))
			req.RemoteAddr = want.From
			req.Header.Set("Authorization", "Bearer "+testToken)
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			if rec.Code != 200 {
				t.Fatalf("POST %s = %d: %s", ep.path, rec.Code, rec.Body)
			}
			calls := ctl.Calls()
			if len(calls) != 1 || calls[0].by != want {
				t.Fatalf("controller calls %+v, want one by %+v", calls, want)
			}
			line := ""
			for l := range strings.Lines(logs.String()) {
				if strings.Contains(l, "requested") && !strings.Contains(l, "authorised") {
					line = l
				}
			}
			if !strings.Contains(line, "requested_by="+want.By) || !strings.Contains(line, "requested_from="+want.From) {
				t.Errorf("the request's log line does not name who asked and from where: %q\n%s", line, logs.String())
			}
			if strings.Contains(logs.String(), testToken) {
				t.Errorf("log contains the token:\n%s", logs.String())
			}
		})
	}
}

// TestTokenName: a token's name tells tokens apart, is stable, and holds
// nothing of the token.
func TestTokenName(t *testing.T) {
	if got := TokenName(""); got != "" {
		t.Errorf("TokenName(\"\") = %q, want none", got)
	}
	a, b := TokenName(testToken), TokenName(testToken+"x")
	if a == b || a != TokenName(testToken) {
		t.Errorf("names %q and %q: want stable and distinct", a, b)
	}
	if !strings.HasPrefix(a, "sha256:") || len(a) != len("sha256:")+8 {
		t.Errorf("name %q, want sha256: and 8 hex digits", a)
	}
	for i := 0; i+4 <= len(testToken); i++ {
		if strings.Contains(a, testToken[i:i+4]) {
			t.Errorf("name %q contains %q of the token", a, testToken[i:i+4])
		}
	}
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		header string
		want   string
		ok     bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer abc", "abc", true},
		{"BEARER  abc ", "abc", true},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Basic abc", "", false},
		{"", "", false},
		{"abc", "", false},
	}
	for _, tc := range tests {
		got, ok := bearerToken(tc.header)
		if got != tc.want || ok != tc.ok {
			t.Errorf("bearerToken(%q) = %q, %v; want %q, %v", tc.header, got, ok, tc.want, tc.ok)
		}
	}
	if !reflect.DeepEqual([]bool{tokenEqual("a", "a"), tokenEqual("a", "b"), tokenEqual("a", "aa")}, []bool{true, false, false}) {
		t.Error("tokenEqual is wrong")
	}
}

type fakeFailsafe struct {
	leaders []string
	err     error
}

func (f *fakeFailsafe) ConfirmFailsafe(leader string) (time.Duration, error) {
	f.leaders = append(f.leaders, leader)
	return 3 * time.Second, f.err
}

func TestFailsafePing(t *testing.T) {
	tests := []struct {
		name     string
		header   http.Header
		body     string
		refuse   error
		noAnswer bool
		want     int
		wantCall bool
	}{
		{"confirmed", bearer(testToken), `{"leader":"node1"}`, nil, false, 200, true},
		{"refused: this node may promote", bearer(testToken), `{"leader":"node1"}`, fmt.Errorf("%w: holds the key", errors.New("may promote")), false, 409, true},
		{"no token: nobody can silence a member", nil, `{"leader":"node1"}`, nil, false, 401, false},
		{"malformed body", bearer(testToken), `{`, nil, false, 400, false},
		{"agent does not answer pings", bearer(testToken), `{"leader":"node1"}`, nil, true, 501, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeFailsafe{err: tt.refuse}
			s := newServer(t, writablePrimary(), func(o *Options) {
				o.Token = testToken
				o.Control = &fakeControl{}
				if !tt.noAnswer {
					o.Failsafe = f
				}
			})
			r := do(t, s, http.MethodPost, "/failsafe", tt.body, tt.header)
			if r.code != tt.want {
				t.Fatalf("POST /failsafe = %d, want %d: %s", r.code, tt.want, r.body)
			}
			if called := len(f.leaders) > 0; called != tt.wantCall || called && f.leaders[0] != "node1" {
				t.Errorf("confirm calls = %v, want a call: %v", f.leaders, tt.wantCall)
			}
		})
	}
}
