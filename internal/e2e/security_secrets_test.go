package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/lab"
	"github.com/vigil-ha/vigil/internal/lab/labtest"
	"github.com/vigil-ha/vigil/internal/labcluster"
	"github.com/vigil-ha/vigil/internal/timeline"
)

// newSecureCluster is a netns lab closed as a deployment should be: etcd
// with mutual TLS, the agents' APIs over TLS taking the operator's client
// certificate or the token, and, with agentRole, the agents connecting to
// their servers as that least-privilege role. edit, when not nil, changes
// a node's configuration.
func newSecureCluster(t *testing.T, agentRole string, edit func(node string, cfg map[string]any)) *cluster {
	t.Helper()
	l := labtest.New(t, lab.Options{Nodes: 3, Netns: true})
	lc, err := labcluster.New(l, labcluster.Options{
		Binary: vigilBin, Cluster: "e2e", API: true, APITLS: true, AgentRole: agentRole, Edit: edit,
		LeaseTTL: testTTL, LoopInterval: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if lc.CertDir() == "" {
		t.Fatal("the netns lab runs etcd without TLS")
	}
	c := &cluster{Cluster: lc, t: t, lab: l, dir: lc.Dir}
	t.Cleanup(c.stopAll)
	return c
}

// labSecrets are the passwords and the token of the lab: name → value.
func labSecrets(t *testing.T, c *cluster) map[string]string {
	t.Helper()
	secrets := map[string]string{"API token": labcluster.APIToken}
	_, super, err := c.lab.Superuser()
	if err != nil {
		t.Fatal(err)
	}
	secrets["superuser password"] = super
	_, repl, err := c.lab.Replication()
	if err != nil {
		t.Fatal(err)
	}
	secrets["replication password"] = repl
	if f := c.AgentRolePasswordFile(); f != "" {
		secrets["agent role password"] = strings.TrimSpace(readFile(t, f))
	}
	for name, v := range secrets {
		if len(v) < 16 {
			t.Fatalf("%s is %d characters: too short to grep for without false alarms", name, len(v))
		}
	}
	return secrets
}

// leakScanner collects every place a secret was found.
type leakScanner struct {
	secrets map[string]string
	mu      sync.Mutex
	leaks   []string
	scanned int
}

func (k *leakScanner) scan(where string, data []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.scanned++
	// Never a secret itself in the test's output, not even in where.
	for name, v := range k.secrets {
		where = strings.ReplaceAll(where, v, "<"+name+">")
	}
	for name, v := range k.secrets {
		if bytes.Contains(data, []byte(v)) {
			k.leaks = append(k.leaks, fmt.Sprintf("%s holds the %s", where, name))
		}
	}
}

// scanFiles scans every regular file under dir but those skip names
// (the files whose job is to hold a secret).
func (k *leakScanner) scanFiles(t *testing.T, dir string, skip func(path string, d fs.DirEntry) bool) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if skip(path, d) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		k.scan(path, data)
		return nil
	})
	if err != nil {
		t.Fatalf("scan %s: %v", dir, err)
	}
}

// cmdlineSampler reads the command line of every process on the machine,
// over and over, for the whole run: pg_basebackup and pg_rewind live for
// a second or so, SSH commands and psql for less.
type cmdlineSampler struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	seen map[string]bool
	// rounds counts full passes over /proc.
	rounds int
}

func startCmdlineSampler() *cmdlineSampler {
	p := &cmdlineSampler{stop: make(chan struct{}), done: make(chan struct{}), seen: map[string]bool{}}
	go func() {
		defer close(p.done)
		for {
			p.sample()
			select {
			case <-p.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return p
}

func (p *cmdlineSampler) sample() {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	var lines []string
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(data) == 0 {
			continue // gone, or a kernel thread
		}
		lines = append(lines, strings.ReplaceAll(strings.TrimRight(string(data), "\x00"), "\x00", " "))
	}
	p.mu.Lock()
	for _, l := range lines {
		p.seen[l] = true
	}
	p.rounds++
	p.mu.Unlock()
}

// finish stops sampling and returns every command line seen, sorted.
func (p *cmdlineSampler) finish() ([]string, int) {
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.seen))
	for l := range p.seen {
		out = append(out, l)
	}
	sort.Strings(out)
	return out, p.rounds
}

// TestLeastPrivilegeAgentsFailOverSwitchOverAndRejoinLeakingNoSecret: on
// a cluster closed everywhere (etcd with mutual TLS, the APIs over TLS
// with client certificates) whose agents run their SQL as the role that
// `vigil setup-role` makes, not as a superuser, a failover, a rejoin
// (`vigil ctl rejoin`, by base backup as the replication role) and a
// switchover through the API with the operator's certificate all work.
// Then nothing the run produced holds a password or the token: no agent,
// server or step log, no command line of any process seen while it ran
// (sampled from /proc throughout), no answer of any GET route of the API,
// no `vigil ctl list -o json` or `ctl history`, no history record and no
// etcd value of the cluster; primary_conninfo names a passfile.
func TestLeastPrivilegeAgentsFailOverSwitchOverAndRejoinLeakingNoSecret(t *testing.T) {
	const role = "vigil"
	// node1 tries pg_rewind first, as the agent's role: it is given no
	// rewind account (rejoin.rewind), and the role may not read the new
	// primary's files, so the rewind fails and a base backup follows. Both
	// tools then run, and their command lines are sampled.
	c := newSecureCluster(t, role, func(node string, cfg map[string]any) {
		if node == "node1" {
			cfg["rejoin"] = map[string]any{"method": "auto"}
		}
	})
	ctx := testCtx(t, 10*time.Minute)
	secrets := labSecrets(t, c)
	procs := startCmdlineSampler()
	sampled := false
	t.Cleanup(func() {
		if !sampled {
			procs.finish()
		}
	})

	if err := c.CreateAgentRole(ctx); err != nil {
		t.Fatal(err)
	}
	s := c.startAgents(ctx)
	if super, err := c.queryOn(ctx, "node1", "SELECT rolsuper::text FROM pg_roles WHERE rolname = $1", role); err != nil || super != "false" {
		t.Fatalf("role %s: superuser %q (%v), want a role without superuser", role, super, err)
	}
	checkAgentSessionsRunAs(ctx, t, c, "node1", role)

	operator := apiClient(t, c, true)
	// Failover: node1's agent and server die together.
	n1, err := c.lab.Node("node1")
	if err != nil {
		t.Fatal(err)
	}
	c.killAgent("node1")
	if err := c.lab.Kill(ctx, n1); err != nil {
		t.Fatal(err)
	}
	p := c.waitWritablePrimary(ctx, s, "node1")
	checkAgentSessionsRunAs(ctx, t, c, p, role)

	// Rejoin of node1, asked for by an operator.
	c.startAgent("node1")
	if err := eventually(ctx, 30*time.Second, func() error {
		v, err := s.Snapshot(ctx)
		if err != nil {
			return err
		}
		if _, ok := v.Members["node1"]; !ok {
			return fmt.Errorf("node1's agent is not a member yet")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	out, code := c.ctl(ctx, "rejoin", "node1")
	t.Logf("ctl rejoin node1 (exit %d):\n%s", code, out)
	if code != 0 {
		t.Fatalf("ctl rejoin node1: exit %d", code)
	}
	if err := waitStreamsFrom(ctx, c, "node1", p); err != nil {
		t.Fatal(err)
	}

	// Switchover back to node1 through the API, authorised by the
	// operator's client certificate alone.
	if code, body := apiDo(ctx, t, operator, http.MethodPost, c.APIURL(p)+"/switchover", "", `{"to":"node1"}`); code != http.StatusOK {
		t.Fatalf("POST /switchover with the operator's certificate = %d: %s", code, body)
	}
	if got := c.waitWritablePrimary(ctx, s, p); got != "node1" {
		t.Fatalf("after the switchover to node1 the primary is %s", got)
	}
	for _, n := range []string{"node2", "node3"} {
		if err := waitStreamsFrom(ctx, c, n, "node1"); err != nil {
			t.Fatal(err)
		}
	}
	checkAgentSessionsRunAs(ctx, t, c, "node1", role)
	kinds := map[string]bool{}
	raw, err := s.History(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range raw {
		var rec timeline.Record
		if err := json.Unmarshal(r, &rec); err != nil {
			continue // an audit entry or another record shape
		}
		if (rec.Kind == "failover" || rec.Kind == "rejoin" || rec.Kind == "switchover") && !rec.OK {
			t.Errorf("history: %s on %s failed: %s", rec.Kind, rec.Node, timeline.Format(rec))
		}
		kinds[rec.Kind] = true
	}
	for _, k := range []string{"failover", "rejoin", "switchover"} {
		if !kinds[k] {
			t.Errorf("no %s recorded in the history (kinds %v)", k, kinds)
		}
	}

	// The scan. What every process's command line said during the run:
	lines, rounds := procs.finish()
	sampled = true
	k := &leakScanner{secrets: secrets}
	var sawAgent, sawBaseBackup, sawRewind bool
	for _, l := range lines {
		k.scan("the command line "+firstWords(l, 6), []byte(l))
		sawAgent = sawAgent || strings.Contains(l, vigilBin+" agent")
		sawBaseBackup = sawBaseBackup || strings.Contains(l, "pg_basebackup ")
		sawRewind = sawRewind || strings.Contains(l, "pg_rewind ")
	}
	t.Logf("%d distinct command lines in %d passes over /proc", len(lines), rounds)
	if !sawAgent || !sawBaseBackup || !sawRewind {
		t.Errorf("the sampler missed processes of the run (agent seen %v, pg_basebackup seen %v, pg_rewind seen %v): it proves nothing", sawAgent, sawBaseBackup, sawRewind)
	}

	// Every log and record the agents wrote, and the servers' logs.
	holdsSecret := map[string]bool{c.AgentRolePasswordFile(): true, filepath.Join(c.Dir, "api.token"): true}
	c.scanLabFiles(t, k, holdsSecret)

	// Every GET route, on every node, with and without a certificate.
	anonymous := apiClient(t, c, false)
	for _, r := range apiRoutes(t) {
		if r.Mutating() {
			continue
		}
		for _, n := range c.lab.Nodes() {
			for who, client := range map[string]*http.Client{"anonymous": anonymous, "operator": operator} {
				code, body := apiDo(ctx, t, client, r.RequestMethod(), c.APIURL(n.Name)+r.RequestPath(), "", "")
				if code == http.StatusNotFound || code == http.StatusMethodNotAllowed {
					t.Errorf("%s %s on %s = %d: the route read from the mux is not served", r.RequestMethod(), r.RequestPath(), n.Name, code)
				}
				k.scan(fmt.Sprintf("%s %s on %s (%s)", r.RequestMethod(), r.RequestPath(), n.Name, who), []byte(body))
			}
		}
	}

	// The operator's tools, the history and every etcd value.
	for _, args := range [][]string{{"list", "-o", "json"}, {"history", "-o", "json"}, {"history"}} {
		out, code := c.ctl(ctx, args...)
		if code != 0 && args[0] == "history" {
			t.Errorf("vigil ctl %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		k.scan("vigil ctl "+strings.Join(args, " "), []byte(out))
	}
	for i, r := range raw {
		k.scan(fmt.Sprintf("history record %d", i), r)
	}
	// Every key etcd holds, the cluster's prefix and any other.
	resp, err := s.Client().Get(ctx, "\x00", clientv3.WithFromKey())
	if err != nil {
		t.Fatal(err)
	}
	var clusterKeys int
	for _, kv := range resp.Kvs {
		if strings.HasPrefix(string(kv.Key), "/vigil/e2e/") {
			clusterKeys++
		}
		k.scan("etcd key "+string(kv.Key), kv.Value)
	}
	if clusterKeys == 0 {
		t.Fatal("no etcd key under /vigil/e2e/: the scan would prove nothing")
	}

	// primary_conninfo: written by Vigil on every standby, with a passfile.
	for _, n := range []string{"node2", "node3"} {
		conninfo, err := c.queryOn(ctx, n, "SELECT current_setting('primary_conninfo')")
		if err != nil {
			t.Fatal(err)
		}
		kv := database.ParseConninfo(conninfo)
		if kv["passfile"] == "" || kv["password"] != "" {
			t.Errorf("%s: primary_conninfo %q: want a passfile and no password", n, conninfo)
		}
		k.scan(n+" primary_conninfo", []byte(conninfo))
	}
	for _, n := range c.lab.Nodes() {
		for _, f := range []string{"postgresql.auto.conf", "recovery.conf", "postgresql.conf", "standby.signal"} {
			data, err := os.ReadFile(filepath.Join(n.DataDir, f))
			if err != nil {
				continue
			}
			if strings.Contains(strings.ToLower(string(data)), "password=") {
				t.Errorf("%s/%s holds a password= in a connection string", n.Name, f)
			}
			k.scan(n.Name+" "+f, data)
		}
	}

	// Control: the files that hold the secrets, scanned the same way,
	// show every one of them, so the scan above can find what it looks for.
	control := &leakScanner{secrets: secrets}
	for _, path := range append(slices.Collect(maps.Keys(holdsSecret)), c.lab.SuperuserPasswordFile(), c.lab.ReplicationPasswordFile()) {
		control.scan(path, []byte(readFile(t, path)))
	}
	for name := range secrets {
		if !slices.ContainsFunc(control.leaks, func(l string) bool { return strings.HasSuffix(l, "holds the "+name) }) {
			t.Errorf("control: the %s is not found in the files that hold it: the scan cannot see it", name)
		}
	}

	t.Logf("scanned %d sources for %d secrets", k.scanned, len(secrets))
	for _, l := range k.leaks {
		t.Error("secret leaked: " + l)
	}
}

// scanLabFiles scans the agents' directory (logs, step logs,
// configurations) and each node's server logs, skipping the files that
// exist to hold a secret and etcd's own data (its values are scanned
// through etcd).
func (c *cluster) scanLabFiles(t *testing.T, k *leakScanner, holdsSecret map[string]bool) {
	t.Helper()
	k.scanFiles(t, c.Dir, func(path string, d fs.DirEntry) bool {
		return holdsSecret[path] || (d.IsDir() && (strings.HasPrefix(d.Name(), "etcd-") || d.Name() == "certs"))
	})
	for _, n := range c.lab.Nodes() {
		for _, f := range []string{n.LogFile, n.StartupLog, filepath.Join(n.DataDir, "vigil-startup.log")} {
			data, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			k.scan(f, data)
		}
		logDir := filepath.Join(n.DataDir, c.lab.Flavor().LogDir)
		if _, err := os.Stat(logDir); err == nil {
			k.scanFiles(t, logDir, func(string, fs.DirEntry) bool { return false })
		}
	}
}

// checkAgentSessionsRunAs waits for a session of node's agent on its
// server (application_name vigil) and fails on any such session of
// another user: the agent's SQL runs as role, not as the superuser.
func checkAgentSessionsRunAs(ctx context.Context, t *testing.T, c *cluster, node, role string) {
	t.Helper()
	err := eventually(ctx, 30*time.Second, func() error {
		users, err := c.queryOn(ctx, node, "SELECT coalesce(string_agg(DISTINCT usename, ','), '') FROM pg_stat_activity WHERE application_name = 'vigil'")
		if err != nil {
			return err
		}
		switch users {
		case role:
			return nil
		case "":
			return fmt.Errorf("no session of the agent seen on %s yet", node)
		}
		t.Fatalf("the agent's sessions on %s run as %q, want only %s", node, users, role)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// apiClient is a client of the agents' APIs over TLS trusting the lab's
// CA, with the operator's client certificate when operator is set.
func apiClient(t *testing.T, c *cluster, operator bool) *http.Client {
	t.Helper()
	cfg, err := c.APIClientTLS(operator)
	if err != nil || cfg == nil {
		t.Fatalf("API client TLS: %v (nil: %v)", err, cfg == nil)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
}

// apiDo sends one request and returns the status and body; it fails the
// test when no answer comes.
func apiDo(ctx context.Context, t *testing.T, client *http.Client, method, url, token, body string) (int, string) {
	t.Helper()
	code, out, err := apiTry(ctx, client, method, url, token, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return code, out
}

// apiTry sends one request; err is a refusal before any answer (a TLS
// handshake refused, a reset).
func apiTry(ctx context.Context, client *http.Client, method, url, token, body string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out), err
}

func firstWords(s string, n int) string {
	f := strings.Fields(s)
	if len(f) > n {
		f = append(f[:n], "...")
	}
	return strings.Join(f, " ")
}
