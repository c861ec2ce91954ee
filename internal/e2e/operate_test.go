package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/api"
	"github.com/vigil-ha/vigil/internal/control"
	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/demo"
	"github.com/vigil-ha/vigil/internal/labcluster"
	"github.com/vigil-ha/vigil/internal/timeline"
)

// ctl runs `vigil ctl ARGS` against the cluster through node1's
// configuration (node3 survives every test here: with embedded etcd, ctl
// talks to the member of the node whose configuration it reads) and
// returns its output and exit code.
func (c *cluster) ctl(ctx context.Context, args ...string) (string, int) {
	c.t.Helper()
	cmd := exec.CommandContext(ctx, vigilBin, append([]string{"ctl", "--config", c.ConfigPath("node3")}, args...)...)
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			c.t.Fatalf("vigil ctl %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return string(out), code
}

// ctlList is `vigil ctl list -o json`, decoded.
type ctlList struct {
	Leader  string `json:"leader"`
	Paused  bool   `json:"paused"`
	Members []struct {
		Name     string `json:"name"`
		Role     string `json:"role"`
		Leader   bool   `json:"leader"`
		Writable bool   `json:"writable"`
		Upstream string `json:"upstream"`
		Timeline uint32 `json:"timeline"`
		Routes   bool   `json:"holds_routes"`
		State    string `json:"state"`
	} `json:"members"`
	Problems []string `json:"problems"`
}

func (c *cluster) list(ctx context.Context) (ctlList, int) {
	c.t.Helper()
	cmd := exec.CommandContext(ctx, vigilBin, "ctl", "--config", c.ConfigPath("node3"), "list", "-o", "json")
	out, err := cmd.Output()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatal(err)
	}
	var l ctlList
	if err := json.Unmarshal(out, &l); err != nil {
		c.t.Fatalf("ctl list -o json: %v\n%s", err, out)
	}
	return l, code
}

// TestSwitchoverLosesNothingAndMovesTheVIP: `vigil ctl switchover` under a
// client writing through the VIP in synchronous mode. No acknowledged
// write is lost, the client never meets a read-only server, the VIP ends
// on the new primary only, and the old primary streams from it.
func TestSwitchoverLosesNothingAndMovesTheVIP(t *testing.T) {
	ctx := testCtx(t, 6*time.Minute)
	res, err := demo.Run(ctx, demo.Options{Dir: demoDir(t), Binary: vigilBin, Scenario: demo.Switchover, SyncMode: "on", Rate: 100})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s\n%s", demo.Format(res), res.OperatorOutput)
	if res.NewPrimary == "" || res.NewPrimary == res.OldLeader {
		t.Fatalf("new primary %q, old %q", res.NewPrimary, res.OldLeader)
	}
	if res.ReadOnlyErrors != 0 || res.OtherErrors != 0 {
		t.Errorf("%d read-only and %d other errors through the VIP, want 0", res.ReadOnlyErrors, res.OtherErrors)
	}
	if res.AckedWritesLost != 0 || res.AckedWrites < 100 {
		t.Errorf("%d of %d acknowledged writes lost", res.AckedWritesLost, res.AckedWrites)
	}
	if res.WriteOutageS <= 0 {
		t.Error("no write committed through the VIP after the switchover")
	}
	if res.VIPHolder != res.NewPrimary {
		t.Errorf("VIP on %q, want %s only", res.VIPHolder, res.NewPrimary)
	}
	if want := "streaming standby of " + res.NewPrimary; res.OldPrimaryState != want {
		t.Errorf("old primary %s is %q, want %q", res.OldLeader, res.OldPrimaryState, want)
	}
	if !strings.Contains(res.OperatorOutput, "write outage:") {
		t.Errorf("ctl switchover did not report the write outage:\n%s", res.OperatorOutput)
	}
	order := map[string]int{}
	for i, s := range res.Steps {
		if _, seen := order[s.Name]; !seen {
			order[s.Name] = i
		}
		if !s.OK {
			t.Errorf("step %s failed: %s", s.Name, s.Error)
		}
	}
	for _, pair := range [][2]string{{"routes_down", "clean_stop"}, {"clean_stop", "target_caught_up"}, {"hand_over", "promote"},
		{"promote", "readiness_gate"}, {"readiness_gate", "routes_up"}} {
		a, okA := order[pair[0]]
		b, okB := order[pair[1]]
		if !okA || !okB || a >= b {
			t.Errorf("steps %v: want %s before %s", res.Steps, pair[0], pair[1])
		}
	}
}

// TestPauseBlocksFailoverAndResumeAllowsIt: with the cluster paused, a
// killed primary is not replaced for several lease TTLs; `ctl list` shows
// the pause; `ctl resume` lets the failover happen.
func TestPauseBlocksFailoverAndResumeAllowsIt(t *testing.T) {
	c := newCluster(t, clusterOptions{nodes: 3})
	ctx := testCtx(t, 4*time.Minute)
	for _, n := range []string{"node1", "node2", "node3"} {
		c.startAgent(n)
	}
	s := c.store()
	if p := c.waitWritablePrimary(ctx, s); p != "node1" {
		t.Fatalf("initial primary = %s", p)
	}
	if out, code := c.ctl(ctx, "pause"); code != 0 {
		t.Fatalf("ctl pause: exit %d\n%s", code, out)
	}
	if out, code := c.ctl(ctx, "pause"); code != 0 {
		t.Fatalf("ctl pause twice must be harmless: exit %d\n%s", code, out)
	}
	if l, _ := c.list(ctx); !l.Paused {
		t.Fatalf("ctl list does not show the pause: %+v", l)
	}
	table, _ := c.ctl(ctx, "list")
	if !strings.Contains(table, "PAUSED") {
		t.Errorf("ctl list table does not show the pause:\n%s", table)
	}

	c.crashNode(ctx, "node1")
	// Several lease TTLs: a failover would have happened within one.
	deadline := time.Now().Add(4 * testTTL)
	for time.Now().Before(deadline) {
		for _, n := range []string{"node2", "node3"} {
			if v, err := c.queryOn(ctx, n, "SELECT pg_is_in_recovery()::text"); err == nil && v == "false" {
				t.Fatalf("%s was promoted while the cluster was paused", n)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	if out, code := c.ctl(ctx, "resume"); code != 0 {
		t.Fatalf("ctl resume: exit %d\n%s", code, out)
	}
	resumed := time.Now()
	p := c.waitWritablePrimary(ctx, s, "node1")
	t.Logf("%s writable %s after resume", p, time.Since(resumed).Round(time.Millisecond))

	// Audit: the lab's etcd has no TLS, so ctl names its OS user; each
	// pause and the resume are in the history, and an agent's log says
	// who paused and resumed.
	by := ctlOperator(t)
	var kinds []string
	for _, rec := range historyRecords(ctx, t, s) {
		if rec.Kind != control.PauseRecordKind && rec.Kind != control.ResumeRecordKind {
			continue
		}
		kinds = append(kinds, rec.Kind)
		if rec.RequestedBy != by.By || rec.RequestedFrom != by.From {
			t.Errorf("%s record requested by %q from %q, want %q from %q", rec.Kind, rec.RequestedBy, rec.RequestedFrom, by.By, by.From)
		}
	}
	if strings.Join(kinds, ",") != "pause,pause,resume" {
		t.Errorf("history holds %v of pauses and resumes, want pause,pause,resume", kinds)
	}
	for _, msg := range []string{"cluster paused by an operator: no automatic failover until resumed", "cluster resumed by an operator: automatic failover again"} {
		if err := eventually(ctx, 15*time.Second, func() error { return agentLogged(t, c, "node2", msg, by, nil) }); err != nil {
			t.Error(err)
		}
	}
	out, code := c.ctl(ctx, "history")
	if code != 0 || !strings.Contains(out, "pause (maintenance mode on") || !strings.Contains(out, "requested by "+by.By+" from "+by.From) {
		t.Errorf("ctl history: exit %d, want the pauses and who asked:\n%s", code, out)
	}
}

// ctlOperator is who `vigil ctl` without a client certificate or etcd
// user says it is: this test's OS user on this host.
func ctlOperator(t *testing.T) dcs.Actor {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return control.OperatorActor("", "", u.Username, host)
}

// historyRecords reads the cluster's history, oldest first.
func historyRecords(ctx context.Context, t *testing.T, s *dcs.Store) []timeline.Record {
	t.Helper()
	raw, err := s.History(ctx)
	if err != nil {
		t.Fatal(err)
	}
	recs := make([]timeline.Record, 0, len(raw))
	for _, r := range raw {
		var rec timeline.Record
		if err := json.Unmarshal(r, &rec); err != nil {
			t.Fatalf("history record %s: %v", r, err)
		}
		recs = append(recs, rec)
	}
	return recs
}

// agentLogged says what is missing unless node's agent logged msg naming
// by: who asked exactly, and from where, or from an address whose host
// fromHost accepts when it is not nil (a client's port is not known).
func agentLogged(t *testing.T, c *cluster, node, msg string, by dcs.Actor, fromHost func(string) bool) error {
	t.Helper()
	var seen []string
	for _, line := range logLinesSince(t, c, node, 0) {
		var e struct {
			Msg  string `json:"msg"`
			By   string `json:"requested_by"`
			From string `json:"requested_from"`
		}
		if json.Unmarshal([]byte(line), &e) != nil || e.Msg != msg {
			continue
		}
		if e.By == by.By && (e.From == by.From || fromHost != nil && fromHost(e.From)) {
			return nil
		}
		seen = append(seen, line)
	}
	return fmt.Errorf("%s's agent did not log %q requested by %q from %q; lines with that message: %q", node, msg, by.By, by.From, seen)
}

// fromLoopback accepts a client address on 127.0.0.1, where a loopback
// lab's test connects from.
func fromLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && host == "127.0.0.1"
}

// apiGet returns the status code and body of GET url.
func apiGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func apiPost(t *testing.T, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// TestAPIAndCtlListAgainstTheRealCluster checks every role endpoint on
// every node, the token on the POST endpoints, and `ctl list` against what
// the servers themselves say. A leader whose server stops committing
// writes (default_transaction_read_only, the seed's symptom) keeps the key
// but fails /primary with 503 and is flagged by `ctl list` as an error.
func TestAPIAndCtlListAgainstTheRealCluster(t *testing.T) {
	c := newCluster(t, clusterOptions{nodes: 3, api: true})
	ctx := testCtx(t, 4*time.Minute)
	for _, n := range []string{"node1", "node2", "node3"} {
		c.startAgent(n)
	}
	s := c.store()
	if p := c.waitWritablePrimary(ctx, s); p != "node1" {
		t.Fatalf("initial primary = %s", p)
	}
	// The standbys' agents report streaming within a loop or two.
	want := map[string]map[string]int{
		"node1": {"/primary": 200, "/read-write": 200, "/replica": 503, "/read-only": 200, "/health": 200},
		"node2": {"/primary": 503, "/read-write": 503, "/replica": 200, "/read-only": 200, "/health": 200, "/replica?lag=0": 200},
		"node3": {"/primary": 503, "/read-write": 503, "/replica": 200, "/read-only": 200, "/health": 200},
	}
	if err := eventually(ctx, 20*time.Second, func() error {
		for node, paths := range want {
			for path, code := range paths {
				req, _ := http.NewRequest(http.MethodGet, c.APIURL(node)+path, nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return err
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != code {
					return fmt.Errorf("%s GET %s = %d, want %d: %s", node, path, resp.StatusCode, code, body)
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if code, body := apiGet(t, c.APIURL("node2")+"/replica?lag=abc"); code != 400 {
		t.Errorf("GET /replica?lag=abc = %d, want 400: %s", code, body)
	}
	code, body := apiGet(t, c.APIURL("node3")+"/cluster")
	if code != 200 || !strings.Contains(body, `"node1"`) {
		t.Errorf("GET /cluster = %d: %s", code, body)
	}
	code, body = apiGet(t, c.APIURL("node1")+"/metrics")
	if code != 200 || !containsAll(body, "vigil_", `node="node1"`) {
		t.Errorf("GET /metrics = %d, missing vigil_ metrics labelled node1:\n%s", code, tail(body, 20))
	}

	// ctl list against the servers' own answers.
	l, exit := c.list(ctx)
	if exit != 0 || l.Leader != "node1" || len(l.Problems) != 0 || len(l.Members) != 3 {
		t.Fatalf("ctl list: exit %d, %+v", exit, l)
	}
	for _, m := range l.Members {
		inRecovery, err := c.queryOn(ctx, m.Name, "SELECT pg_is_in_recovery()::text")
		if err != nil {
			t.Fatal(err)
		}
		wantRole := map[string]string{"false": "primary", "true": "standby"}[inRecovery]
		if m.Role != wantRole || m.Leader != (m.Name == "node1") || m.Writable != (m.Name == "node1") {
			t.Errorf("ctl list row %+v; the server says in recovery = %s", m, inRecovery)
		}
		if m.Name != "node1" && (m.Upstream != "node1" || !strings.HasPrefix(m.State, "streaming from node1")) {
			t.Errorf("ctl list row %+v: want streaming from node1", m)
		}
		if inRecovery == "true" {
			status, err := c.queryOn(ctx, m.Name, "SELECT status FROM pg_stat_wal_receiver")
			if err != nil || status != "streaming" {
				t.Errorf("%s: wal receiver %q (%v)", m.Name, status, err)
			}
		}
	}

	// Mutating endpoints: no token, a wrong token, the right one.
	if code, body := apiPost(t, c.APIURL("node2")+"/pause", "", ""); code != http.StatusUnauthorized {
		t.Errorf("POST /pause without a token = %d, want 401: %s", code, body)
	}
	if code, body := apiPost(t, c.APIURL("node2")+"/pause", "wrong-token-wrong-token", ""); code != http.StatusUnauthorized {
		t.Errorf("POST /pause with a wrong token = %d, want 401: %s", code, body)
	}
	if l, _ := c.list(ctx); l.Paused {
		t.Fatal("an unauthenticated POST /pause paused the cluster")
	}
	if code, body := apiPost(t, c.APIURL("node2")+"/pause", labcluster.APIToken, ""); code != 200 {
		t.Fatalf("POST /pause with the token = %d: %s", code, body)
	}
	if l, _ := c.list(ctx); !l.Paused {
		t.Error("POST /pause did not pause the cluster")
	}
	if code, body := apiPost(t, c.APIURL("node2")+"/resume", labcluster.APIToken, ""); code != 200 {
		t.Fatalf("POST /resume = %d: %s", code, body)
	}
	// Audit of the pause and resume: the token's name (never the token)
	// from the test's address, in the history and in every agent's log.
	byToken := dcs.Actor{By: "token:" + api.TokenName(labcluster.APIToken)}
	var kinds []string
	for _, rec := range historyRecords(ctx, t, s) {
		if rec.Kind != control.PauseRecordKind && rec.Kind != control.ResumeRecordKind {
			continue
		}
		kinds = append(kinds, rec.Kind)
		if rec.RequestedBy != byToken.By || !fromLoopback(rec.RequestedFrom) {
			t.Errorf("%s record requested by %q from %q, want %q from 127.0.0.1", rec.Kind, rec.RequestedBy, rec.RequestedFrom, byToken.By)
		}
	}
	if strings.Join(kinds, ",") != "pause,resume" {
		t.Errorf("history holds %v, want pause,resume", kinds)
	}
	for _, n := range []string{"node1", "node2"} {
		if err := eventually(ctx, 10*time.Second, func() error {
			return agentLogged(t, c, n, "cluster resumed by an operator: automatic failover again", byToken, fromLoopback)
		}); err != nil {
			t.Error(err)
		}
	}
	if err := agentLogged(t, c, "node2", "pause requested", byToken, fromLoopback); err != nil {
		t.Errorf("the API's own log: %v", err)
	}
	if code, body := apiPost(t, c.APIURL("node2")+"/failover", labcluster.APIToken, `{"to":"node3"}`); code != http.StatusConflict {
		t.Errorf("POST /failover with a healthy primary = %d, want 409: %s", code, body)
	}

	// The leader stops committing writes: it keeps the key, but /primary
	// fails and ctl list flags it.
	setReadOnly := func(on string) {
		t.Helper()
		conn, err := connect(ctx, c.server("node1").Conn.Host, c.server("node1").Conn.Port, c.server("node1").Conn.User, c.server("node1").Conn.Password, c.server("node1").Conn.Database)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		for _, q := range []string{"ALTER SYSTEM SET default_transaction_read_only = " + on, "SELECT pg_reload_conf()"} {
			if _, err := conn.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
	}
	setReadOnly("on")
	if err := eventually(ctx, 15*time.Second, func() error {
		code, body := apiGet(t, c.APIURL("node1")+"/primary")
		var st struct {
			HoldsLeader bool `json:"holds_leader"`
			Writable    bool `json:"writable"`
		}
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			return err
		}
		if code != 503 || !st.HoldsLeader || st.Writable {
			return fmt.Errorf("read-only leader: GET /primary = %d %s", code, body)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	l, exit = c.list(ctx)
	if exit == 0 || len(l.Problems) == 0 || !strings.Contains(strings.Join(l.Problems, ";"), "write probe fails") {
		t.Errorf("ctl list with a read-only leader: exit %d, problems %v", exit, l.Problems)
	}
	setReadOnly("off")
	if err := eventually(ctx, 15*time.Second, func() error {
		if code, body := apiGet(t, c.APIURL("node1")+"/primary"); code != 200 {
			return fmt.Errorf("GET /primary = %d %s", code, body)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// A switchover through the API.
	if code, body := apiPost(t, c.APIURL("node3")+"/switchover", labcluster.APIToken, `{"to":"node2"}`); code != 200 {
		t.Fatalf("POST /switchover = %d: %s", code, body)
	}
	if p := c.waitWritablePrimary(ctx, s, "node1"); p != "node2" {
		t.Errorf("after the switchover to node2 the primary is %s", p)
	}
	// Audit of the switchover asked of node3's API: both sides' records
	// and both acting agents' logs name the token and the test's address.
	if err := eventually(ctx, 20*time.Second, func() error {
		done := map[string]bool{}
		for _, rec := range historyRecords(ctx, t, s) {
			if rec.Kind == "switchover" && rec.Node == "node1" || rec.Kind == "failover" && rec.Node == "node2" {
				if rec.RequestedBy != byToken.By || !fromLoopback(rec.RequestedFrom) {
					return fmt.Errorf("%s record of %s requested by %q from %q, want %q from 127.0.0.1", rec.Kind, rec.Node, rec.RequestedBy, rec.RequestedFrom, byToken.By)
				}
				done[rec.Node] = true
			}
		}
		if !done["node1"] || !done["node2"] {
			return fmt.Errorf("switchover records found for %v, want node1's and node2's", done)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	for _, n := range []string{"node1", "node2"} {
		if err := agentLogged(t, c, n, "acting on an operator's request", byToken, fromLoopback); err != nil {
			t.Error(err)
		}
	}
	for _, n := range []string{"node1", "node2", "node3"} {
		if strings.Contains(readFile(t, agentLog(c, n)), labcluster.APIToken) {
			t.Errorf("%s's agent log holds the API token", n)
		}
	}
	if raw, err := s.History(ctx); err != nil || strings.Contains(fmt.Sprintf("%s", raw), labcluster.APIToken) {
		t.Errorf("the history holds the API token (or cannot be read: %v)", err)
	}
	if err := eventually(ctx, 20*time.Second, func() error {
		for node, code := range map[string]int{"node1": 503, "node2": 200, "node3": 503} {
			if got, body := apiGet(t, c.APIURL(node)+"/primary"); got != code {
				return fmt.Errorf("%s GET /primary = %d, want %d: %s", node, got, code, body)
			}
		}
		if got, body := apiGet(t, c.APIURL("node1")+"/replica"); got != 200 {
			return fmt.Errorf("old primary node1 GET /replica = %d: %s", got, body)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}
