package e2e

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/lab"
	"github.com/vigil-ha/vigil/internal/workload"
	"github.com/vigil-ha/vigil/internal/workload/workloadtest"
)

// haproxyBin is HAProxy from Debian's haproxy package, which
// scripts/install-deps.sh installs.
const haproxyBin = "/usr/sbin/haproxy"

// haproxyWritePort is the write frontend's port, on 127.0.0.1 inside the
// client's namespace; haproxyBackend routes it on GET /primary.
const (
	haproxyWritePort = 5000
	haproxyBackend   = "vigil_primary"
)

// TestHAProxyRoutesWritesOnlyToAWritablePrimary is the seed incident with a
// real proxy in place of the VIP: HAProxy, in the client's namespace, routes
// a write frontend to the three nodes with `option httpchk GET /primary`
// against the agents' API. A client writes through HAProxy while the
// standbys are 96 MB behind on replay, then the primary node crashes. The
// promoted standby holds the leader key long before it can write (it must
// replay its backlog first); HAProxy must keep the client away from it until
// its agent has seen a write commit. The client must see no read-only
// error, its writes must resume on the new primary through HAProxy, and
// HAProxy must end with exactly one server UP: the new primary.
func TestHAProxyRoutesWritesOnlyToAWritablePrimary(t *testing.T) {
	if _, err := os.Stat(haproxyBin); err != nil {
		t.Fatalf("this test runs a real HAProxy: %v (install the haproxy package: scripts/install-deps.sh)", err)
	}
	c := newCluster(t, clusterOptions{nodes: 3, netns: true, syncMode: "on", api: true})
	ctx := testCtx(t, 8*time.Minute)
	client, err := c.lab.AddClient(ctx, "client")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"node1", "node2", "node3"} {
		c.startAgent(n)
	}
	s := c.store()
	if p := c.waitWritablePrimary(ctx, s); p != "node1" {
		t.Fatalf("initial primary = %s, want node1", p)
	}
	waitSynchronous(t, ctx, c, "node1")

	user, password, err := c.lab.Superuser()
	if err != nil {
		t.Fatal(err)
	}
	n1, _ := c.lab.Node("node1")
	direct := func(node string) workload.Options {
		n, err := c.lab.Node(node)
		if err != nil {
			t.Fatal(err)
		}
		return workload.Options{Host: n.Host, Port: n.Port, User: user, Password: password, Database: c.lab.Flavor().DefaultDatabase, Timeout: 5 * time.Second}
	}
	if err := workload.Prepare(ctx, direct("node1")); err != nil {
		t.Fatal(err)
	}

	hp := startHAProxy(t, c, client)
	if err := hp.waitOnlyUp(ctx, "node1"); err != nil {
		t.Fatalf("before the crash: %v", err)
	}
	sampler := hp.startSampler()
	defer sampler.stop()

	wl := startThroughHAProxy(t, c, client, user)
	// The client's writes arrive on node1: the path through HAProxy works,
	// so that what follows is not vacuous.
	if err := eventually(ctx, time.Minute, func() error {
		if id, err := maxWorkloadID(ctx, direct("node1")); err != nil || id <= 0 {
			return fmt.Errorf("no write through HAProxy has reached node1 yet (%v)", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// The seed's heavy load: replay paused on the standbys, 96 MB of WAL
	// that they receive but do not apply. The standby that is promoted
	// must replay it all before it can write.
	for _, name := range []string{"node2", "node3"} {
		n, _ := c.lab.Node(name)
		if err := c.lab.PauseReplay(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.lab.GenerateWAL(ctx, n1, 96); err != nil {
		t.Fatal(err)
	}
	end, err := c.server("node1").Observe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	backlog := map[string]uint64{}
	for _, name := range []string{"node2", "node3"} {
		if err := eventually(ctx, time.Minute, func() error {
			o, err := c.server(name).Observe(ctx)
			if err != nil {
				return err
			}
			if o.ReceivedLSN < end.CurrentLSN {
				return fmt.Errorf("%s received %s of %s", name, o.ReceivedLSN, end.CurrentLSN)
			}
			backlog[name] = o.ReplayBacklogBytes
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := hp.waitOnlyUp(ctx, "node1"); err != nil {
		t.Fatalf("just before the crash: %v", err)
	}

	crashAt := time.Now()
	c.crashNode(ctx, "node1")
	newPrimary := c.waitWritablePrimary(ctx, s, "node1")
	t.Logf("%s writable %s after the crash; replay backlog at the crash %v bytes", newPrimary, time.Since(crashAt).Round(time.Millisecond), backlog)
	if backlog[newPrimary] < 64<<20 {
		t.Errorf("%s had a replay backlog of %d bytes at the crash: the scenario did not reproduce the seed's load (a promoted standby that stays read-only while it replays)", newPrimary, backlog[newPrimary])
	}

	// Writes resume through HAProxy: the new primary receives rows with
	// ids above any it held after the crash (only the client writes them,
	// and only through HAProxy), and keeps receiving them: wait for
	// resumeWrites of them, so that the client's record covers a stretch
	// of steady writing on the new primary, not one lucky write.
	const resumeWrites = 25
	before, err := maxWorkloadID(ctx, direct(newPrimary))
	if err != nil {
		t.Fatal(err)
	}
	if err := eventually(ctx, 2*time.Minute, func() error {
		if n, err := workloadRowsAbove(ctx, direct(newPrimary), before); err != nil || n < resumeWrites {
			return fmt.Errorf("%d of %d writes through HAProxy on %s since the failover (%v)", n, resumeWrites, newPrimary, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := hp.waitOnlyUp(ctx, newPrimary); err != nil {
		t.Fatalf("after the failover: %v", err)
	}

	res := wl.Stop(t)
	samples, sampleErrs := sampler.stop()
	sum := res.Summarize(crashAt)
	t.Logf("through HAProxy: %s; %d samples of HAProxy's view (%d reads failed)", sum, len(samples), sampleErrs)

	if sum.ReadOnlyErrors != 0 {
		var ro []string
		for _, w := range res.Writes {
			if w.Outcome == workload.ReadOnly && len(ro) < 5 {
				ro = append(ro, fmt.Sprintf("write %d, %.3fs after the crash: %s", w.ID, w.At.Sub(crashAt).Seconds(), w.Error))
			}
		}
		t.Errorf("%d read-only errors through HAProxy, want 0: HAProxy sent writes to a server that could not write; the first:\n%s", sum.ReadOnlyErrors, strings.Join(ro, "\n"))
	}
	checkWriteServers(t, res, crashAt, n1.Host, nodeHost(t, c, newPrimary), newPrimary)
	lost, err := workload.Lost(ctx, direct(newPrimary), res.Acked())
	if err != nil {
		t.Fatal(err)
	}
	if len(lost) > 0 {
		t.Errorf("%d of %d writes acknowledged through HAProxy are missing on %s: %v", len(lost), len(res.Acked()), newPrimary, lost)
	}
	checkSamples(t, samples, crashAt, newPrimary)
}

// checkWriteServers: before the crash every write committed on node1
// (oldHost); after it, the client's writes committed on the new primary,
// and nowhere else once they had started there.
func checkWriteServers(t *testing.T, res workload.Result, crashAt time.Time, oldHost, newHost, newPrimary string) {
	t.Helper()
	var before, after int
	var onNew bool
	for _, w := range res.Writes {
		if w.Outcome != workload.OK {
			continue
		}
		switch {
		case w.At.Before(crashAt):
			before++
			if w.Server != oldHost {
				t.Errorf("write %d before the crash committed on %s: HAProxy must route to node1 (%s) only", w.ID, w.Server, oldHost)
			}
		case w.Server == newHost:
			after++
			onNew = true
		case w.Server == oldHost && !onNew:
			// Begun in the instant between the crash's start and node1's
			// link going down; acknowledged by node1, so not an error.
		default:
			t.Errorf("write %d, %.3fs after the crash, committed on %s: want %s (%s) only", w.ID, w.At.Sub(crashAt).Seconds(), w.Server, newPrimary, newHost)
		}
	}
	if before == 0 {
		t.Errorf("no write committed through HAProxy before the crash")
	}
	if after == 0 {
		t.Errorf("the client's record shows no write committed on %s after the crash", newPrimary)
	}
}

// checkSamples: HAProxy never had two servers UP at once, never one other
// than node1 before the crash, and after it never one other than the new
// primary, or node1 until its next check failed (node1 answers nothing
// then: it is down) and never again once the new primary was UP.
func checkSamples(t *testing.T, samples []haproxySample, crashAt time.Time, newPrimary string) {
	t.Helper()
	var afterCrash, newUp int
	for _, smp := range samples {
		at := smp.at.Format("15:04:05.000")
		switch {
		case len(smp.up) > 1:
			t.Errorf("at %s HAProxy had %v UP at once", at, smp.up)
			continue
		case len(smp.up) == 0:
			continue
		}
		up := smp.up[0]
		if smp.at.Before(crashAt) {
			if up != "node1" {
				t.Errorf("at %s, before the crash, HAProxy had %s UP: want node1 only", at, up)
			}
			continue
		}
		afterCrash++
		switch {
		case up == newPrimary:
			newUp++
		case up == "node1" && newUp == 0:
		default:
			t.Errorf("at %s, after the crash, HAProxy had %s UP (%s UP in %d samples before): want %s only", at, up, newPrimary, newUp, newPrimary)
		}
	}
	if afterCrash == 0 || newUp == 0 {
		t.Errorf("HAProxy's view was sampled %d times with a server UP after the crash, %d with %s UP: the sampler saw nothing of the failover", afterCrash, newUp, newPrimary)
	}
}

func nodeHost(t *testing.T, c *cluster, name string) string {
	t.Helper()
	n, err := c.lab.Node(name)
	if err != nil {
		t.Fatal(err)
	}
	return n.Host
}

// waitSynchronous waits until both standbys of primary are synchronous, so
// that every write acknowledged through HAProxy is on a standby too.
func waitSynchronous(t *testing.T, ctx context.Context, c *cluster, primary string) {
	t.Helper()
	if err := eventually(ctx, time.Minute, func() error {
		obs, err := c.server(primary).Observe(ctx)
		if err != nil {
			return err
		}
		if len(obs.Standbys) != 2 {
			return fmt.Errorf("%d standbys connected to %s", len(obs.Standbys), primary)
		}
		for _, sb := range obs.Standbys {
			if sb.SyncState == "async" || sb.SyncState == "" {
				return fmt.Errorf("standby %+v is not synchronous", sb)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// maxWorkloadID is the highest workload row on the server o reaches, 0
// when it has none.
func maxWorkloadID(ctx context.Context, o workload.Options) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := connect(ctx, o.Host, o.Port, o.User, o.Password, o.Database)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	var id int64
	err = conn.QueryRow(ctx, "SELECT coalesce(max(id), 0) FROM "+workload.Table).Scan(&id)
	return id, err
}

// workloadRowsAbove counts the workload rows above id on the server o
// reaches.
func workloadRowsAbove(ctx context.Context, o workload.Options, id int64) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := connect(ctx, o.Host, o.Port, o.User, o.Password, o.Database)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	var n int64
	err = conn.QueryRow(ctx, "SELECT count(*) FROM "+workload.Table+" WHERE id > $1", id).Scan(&n)
	return n, err
}

// haproxy is an HAProxy process in a client's namespace, configured and
// logging in the test's temporary directory.
type haproxy struct {
	t       *testing.T
	nodes   []string
	cmd     *exec.Cmd
	done    chan struct{}
	socket  string
	logPath string
}

// startHAProxy writes the configuration, starts HAProxy in client's
// namespace and waits until its stats socket answers. Cleanup kills it;
// its files go with the test's temporary directory.
func startHAProxy(t *testing.T, c *cluster, client lab.Client) *haproxy {
	t.Helper()
	dir := t.TempDir()
	h := &haproxy{t: t, done: make(chan struct{}), socket: filepath.Join(dir, "haproxy.sock"), logPath: filepath.Join(dir, "haproxy.log")}
	if len(h.socket) >= 108 { // sun_path
		t.Fatalf("stats socket path %s is too long for a unix socket: set a shorter TMPDIR", h.socket)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `global
    stats socket %s mode 600 level admin

defaults
    mode tcp
    timeout connect 1s
    timeout check 1s
    timeout client 1m
    timeout server 1m

frontend vigil_write
    bind 127.0.0.1:%d
    default_backend %s

backend %s
    option httpchk GET /primary
    http-check expect status 200
`, h.socket, haproxyWritePort, haproxyBackend, haproxyBackend)
	for _, n := range c.lab.Nodes() {
		apiHost, apiPort, err := net.SplitHostPort(c.APIAddress(n.Name))
		if err != nil || apiHost != n.Host {
			t.Fatalf("%s's API listens on %q: want %s:PORT, the node's own address", n.Name, c.APIAddress(n.Name), n.Host)
		}
		fmt.Fprintf(&b, "    server %s %s:%d check port %s inter 200ms fall 1 rise 1 on-marked-down shutdown-sessions\n", n.Name, n.Host, n.Port, apiPort)
		h.nodes = append(h.nodes, n.Name)
	}
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(h.logPath)
	if err != nil {
		t.Fatal(err)
	}
	// -db: foreground, one process, no daemon. nsenter execs HAProxy in
	// place, so the process started here is HAProxy itself.
	h.cmd = exec.Command("nsenter", "--net=/run/netns/"+client.Netns, "--", haproxyBin, "-db", "-f", cfgPath)
	h.cmd.Stdout, h.cmd.Stderr = logFile, logFile
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := h.cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start haproxy: %v", err)
	}
	go func() {
		h.cmd.Wait()
		logFile.Close()
		close(h.done)
	}()
	t.Cleanup(func() {
		h.cmd.Process.Kill()
		<-h.done
		if t.Failed() {
			t.Logf("haproxy output:\n%s", tail(readFile(t, h.logPath), 60))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := eventually(ctx, 30*time.Second, func() error {
		select {
		case <-h.done:
			return errors.New("haproxy exited")
		default:
		}
		_, err := h.servers()
		return err
	}); err != nil {
		t.Fatalf("haproxy did not start: %v\n%s", err, readFile(t, h.logPath))
	}
	return h
}

// servers reads HAProxy's view of the write backend from its stats socket
// (`show stat`): each server's status, UP, DOWN, MAINT...
func (h *haproxy) servers() (map[string]string, error) {
	conn, err := net.DialTimeout("unix", h.socket, time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(conn, "show stat\n"); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(conn)
	if err != nil {
		return nil, err
	}
	data = bytes.TrimPrefix(data, []byte("# "))
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil || len(rows) == 0 {
		return nil, fmt.Errorf("show stat: %v: %q", err, data)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	px, sv, st := col["pxname"], col["svname"], col["status"]
	if st == 0 {
		return nil, fmt.Errorf("show stat: no status column in %q", rows[0])
	}
	out := map[string]string{}
	for _, row := range rows[1:] {
		if len(row) > st && row[px] == haproxyBackend && slices.Contains(h.nodes, row[sv]) {
			out[row[sv]] = row[st]
		}
	}
	if len(out) != len(h.nodes) {
		return nil, fmt.Errorf("show stat: backend %s lists %v, want %v", haproxyBackend, out, h.nodes)
	}
	return out, nil
}

// up lists the servers HAProxy routes to, sorted.
func (h *haproxy) up() ([]string, map[string]string, error) {
	view, err := h.servers()
	if err != nil {
		return nil, nil, err
	}
	var up []string
	for name, status := range view {
		if status == "UP" {
			up = append(up, name)
		}
	}
	slices.Sort(up)
	return up, view, nil
}

// onlyUp fails unless node is UP and every other server DOWN.
func (h *haproxy) onlyUp(node string) error {
	_, view, err := h.up()
	if err != nil {
		return err
	}
	for name, status := range view {
		want := "DOWN"
		if name == node {
			want = "UP"
		}
		if status != want {
			return fmt.Errorf("HAProxy's view %v: want exactly %s UP, the others DOWN", view, node)
		}
	}
	return nil
}

func (h *haproxy) waitOnlyUp(ctx context.Context, node string) error {
	return eventually(ctx, time.Minute, func() error { return h.onlyUp(node) })
}

// haproxySample is HAProxy's set of UP servers at one moment.
type haproxySample struct {
	at time.Time
	up []string
}

// haproxySampler reads HAProxy's view every few milliseconds for the whole
// failover.
type haproxySampler struct {
	stopc   chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	samples []haproxySample
	errs    int
	stopped bool
}

func (h *haproxy) startSampler() *haproxySampler {
	s := &haproxySampler{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			select {
			case <-s.stopc:
				return
			case <-time.After(20 * time.Millisecond):
			}
			// The time is taken before the read: a sample shows a state
			// HAProxy was in at or after its time.
			at := time.Now()
			up, _, err := h.up()
			s.mu.Lock()
			if err != nil {
				s.errs++
			} else {
				s.samples = append(s.samples, haproxySample{at: at, up: up})
			}
			s.mu.Unlock()
		}
	}()
	return s
}

// stop ends the sampling (once) and returns the samples and the number
// of reads that failed.
func (s *haproxySampler) stop() ([]haproxySample, int) {
	s.mu.Lock()
	if !s.stopped {
		s.stopped = true
		close(s.stopc)
	}
	s.mu.Unlock()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples, s.errs
}

// startThroughHAProxy runs the client in its namespace, writing through
// HAProxy's frontend on 127.0.0.1 there.
func startThroughHAProxy(t *testing.T, c *cluster, client lab.Client, user string) *workloadtest.Client {
	t.Helper()
	return workloadtest.Start(t, vigilBin, workloadtest.Target{Netns: client.Netns, Host: "127.0.0.1", Port: haproxyWritePort,
		User: user, PasswordFile: c.lab.SuperuserPasswordFile(), Database: c.lab.Flavor().DefaultDatabase})
}
