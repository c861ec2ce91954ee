// Package e2e runs whole clusters: a real lab (PostgreSQL 15), real vigil
// agent processes with embedded etcd, real SIGKILLs and, in netns mode, real
// network partitions. These tests are what "the failover works" rests on.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"gopkg.in/yaml.v3"

	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/lab"
	"github.com/vigil-ha/vigil/internal/lab/labtest"
)

// vigilBin is the binary under test, built once by TestMain.
var vigilBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vigil-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755)
	vigilBin = filepath.Join(dir, "vigil")
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	build := exec.Command("go", "build", "-o", vigilBin, "./cmd/vigil")
	build.Dir = root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build vigil:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Timings for tests: fast, and inside every rule config check enforces.
const (
	testTTL  = 3 * time.Second
	testLoop = 300 * time.Millisecond
)

type clusterOptions struct {
	nodes    int
	netns    bool
	syncMode string
	witness  bool
	// priorities by node name; 100 when absent.
	priorities map[string]int
	// endpoints, when set, replaces the embedded etcd (external DCS).
	endpoints []string
	// edit changes a node's configuration before it is written.
	edit func(node string, cfg map[string]any)
}

type agentProc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

type cluster struct {
	t       *testing.T
	lab     *lab.Lab
	opts    clusterOptions
	dir     string
	configs map[string]string
	peers   map[string]string // etcd peer URLs
	clients map[string]string // etcd client URLs
	// trusted is the address every agent checks for isolation.
	trusted string

	mu      sync.Mutex
	agents  map[string]*agentProc
	witness *agentProc
}

func newCluster(t *testing.T, o clusterOptions) *cluster {
	t.Helper()
	l := labtest.New(t, lab.Options{Nodes: o.nodes, Netns: o.netns})
	c := &cluster{
		t: t, lab: l, opts: o, dir: filepath.Join(l.Dir(), "e2e"),
		configs: map[string]string{}, peers: map[string]string{}, clients: map[string]string{},
		agents: map[string]*agentProc{},
	}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range l.Nodes() {
		if o.netns {
			c.peers[n.Name] = fmt.Sprintf("http://%s:2380", n.Host)
			c.clients[n.Name] = fmt.Sprintf("http://%s:2379", n.Host)
		} else {
			c.peers[n.Name] = fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
			c.clients[n.Name] = fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
		}
	}
	if o.witness {
		if o.netns {
			t.Fatal("witness tests run in loopback mode")
		}
		c.peers["witness"] = fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
		c.clients["witness"] = fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	}
	// A trusted address that answers with a TCP reset: on loopback for
	// loopback labs, the bridge's host address for netns labs (so a node
	// whose link is down cannot reach it).
	c.trusted = "127.0.0.1:1"
	if o.netns {
		c.trusted = bridgeAddress(t, l) + ":1"
	}
	for _, n := range l.Nodes() {
		c.configs[n.Name] = c.writeConfig(n)
	}
	t.Cleanup(c.stopAll)
	return c
}

func bridgeAddress(t *testing.T, l *lab.Lab) string {
	t.Helper()
	ip, _, err := net.ParseCIDR(l.Subnet())
	if err != nil {
		t.Fatalf("lab subnet %q: %v", l.Subnet(), err)
	}
	ip4 := ip.To4()
	return fmt.Sprintf("%d.%d.%d.1", ip4[0], ip4[1], ip4[2])
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func (c *cluster) writeConfig(n lab.Node) string {
	superUser, _, err := c.lab.Superuser()
	if err != nil {
		c.t.Fatal(err)
	}
	priority := 100
	if p, ok := c.opts.priorities[n.Name]; ok {
		priority = p
	}
	syncMode := c.opts.syncMode
	if syncMode == "" {
		syncMode = "off"
	}
	db := map[string]any{
		"flavor": "postgres", "bin_dir": c.lab.BinDir(), "data_dir": n.DataDir, "port": n.Port,
		"connect_host": n.Host,
		"superuser":    map[string]any{"user": superUser, "database": "postgres", "password_file": c.lab.SuperuserPasswordFile()},
		"replication":  map[string]any{"user": lab.ReplicationUser, "password_file": c.lab.ReplicationPasswordFile()},
	}
	if os.Geteuid() == 0 {
		db["os_user"] = lab.DefaultOSUser
	}
	dcsCfg := map[string]any{}
	if len(c.opts.endpoints) > 0 {
		dcsCfg["endpoints"] = c.opts.endpoints
	} else {
		dcsCfg["embedded"] = map[string]any{
			"enabled": true, "peer_url": c.peers[n.Name], "client_url": c.clients[n.Name],
			"data_dir": filepath.Join(c.dir, "etcd-"+n.Name), "initial_cluster": c.peers,
			"tick_ms": 50, "election_ms": 500,
		}
	}
	cfg := map[string]any{
		"cluster":     "e2e",
		"node":        map[string]any{"name": n.Name, "host": n.Host, "priority": priority},
		"database":    db,
		"dcs":         dcsCfg,
		"trusted_ips": []string{c.trusted},
		"timing": map[string]any{
			"lease_ttl": testTTL.String(), "loop_interval": testLoop.String(),
			"dcs_timeout": "1s", "db_timeout": "2s", "promote_timeout": "60s", "readiness_timeout": "120s",
		},
		"failover": map[string]any{"synchronous_mode": syncMode, "maximum_lag_on_failover": 64 << 20},
	}
	if c.opts.edit != nil {
		c.opts.edit(n.Name, cfg)
	}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	path := filepath.Join(c.dir, n.Name+".yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		c.t.Fatal(err)
	}
	return path
}

// startAgent starts node's agent as its own process (inside the node's
// namespace in netns mode).
func (c *cluster) startAgent(name string) {
	c.t.Helper()
	n, err := c.lab.Node(name)
	if err != nil {
		c.t.Fatal(err)
	}
	args := []string{"agent", "--config", c.configs[name], "--log-format", "json", "--log-level", "debug",
		"--step-log", filepath.Join(c.dir, name+".steps.jsonl")}
	c.startProc(name, n.Netns, args, filepath.Join(c.dir, name+".agent.log"), func(p *agentProc) {
		c.mu.Lock()
		c.agents[name] = p
		c.mu.Unlock()
	})
}

func (c *cluster) startWitness() {
	c.t.Helper()
	var initial []string
	for name, u := range c.peers {
		initial = append(initial, name+"="+u)
	}
	args := []string{"witness", "--cluster", "e2e", "--name", "witness", "--data-dir", filepath.Join(c.dir, "etcd-witness"),
		"--peer-url", c.peers["witness"], "--client-url", c.clients["witness"], "--initial-cluster", strings.Join(initial, ","),
		"--tick-ms", "50", "--election-ms", "500"}
	c.startProc("witness", "", args, filepath.Join(c.dir, "witness.log"), func(p *agentProc) {
		c.mu.Lock()
		c.witness = p
		c.mu.Unlock()
	})
}

func (c *cluster) startProc(name, netns string, args []string, logPath string, register func(*agentProc)) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	var cmd *exec.Cmd
	if netns != "" {
		cmd = exec.Command("nsenter", append([]string{"--net=/run/netns/" + netns, "--", vigilBin}, args...)...)
	} else {
		cmd = exec.Command(vigilBin, args...)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", name, err)
	}
	p := &agentProc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	register(p)
}

// killAgent sends SIGKILL to node's agent (and its embedded etcd member).
func (c *cluster) killAgent(name string) {
	c.mu.Lock()
	p := c.agents[name]
	delete(c.agents, name)
	c.mu.Unlock()
	if p == nil {
		return
	}
	p.cmd.Process.Kill()
	<-p.done
}

func (c *cluster) killWitness() {
	c.mu.Lock()
	p := c.witness
	c.witness = nil
	c.mu.Unlock()
	if p != nil {
		p.cmd.Process.Kill()
		<-p.done
	}
}

// signalAgent sends sig to node's agent without forgetting it.
func (c *cluster) signalAgent(name string, sig syscall.Signal) {
	c.mu.Lock()
	p := c.agents[name]
	c.mu.Unlock()
	if p != nil {
		p.cmd.Process.Signal(sig)
	}
}

// crashNode kills a node's agent and its postmaster together: a node crash.
func (c *cluster) crashNode(ctx context.Context, name string) {
	c.t.Helper()
	n, _ := c.lab.Node(name)
	c.mu.Lock()
	p := c.agents[name]
	c.mu.Unlock()
	if p != nil {
		p.cmd.Process.Kill()
	}
	if err := c.lab.Kill(ctx, n); err != nil {
		c.t.Errorf("kill postmaster of %s: %v", name, err)
	}
	c.killAgent(name)
}

func (c *cluster) stopAll() {
	c.mu.Lock()
	procs := []*agentProc{}
	for _, p := range c.agents {
		procs = append(procs, p)
	}
	if c.witness != nil {
		procs = append(procs, c.witness)
	}
	c.agents = map[string]*agentProc{}
	c.witness = nil
	c.mu.Unlock()
	for _, p := range procs {
		p.cmd.Process.Kill()
		<-p.done
	}
	if c.t.Failed() {
		c.dumpLogs()
	}
}

// dumpLogs prints the end of every agent log to help with a failure.
func (c *cluster) dumpLogs() {
	entries, _ := os.ReadDir(c.dir)
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".log") {
			continue
		}
		data, _ := os.ReadFile(filepath.Join(c.dir, e.Name()))
		lines := strings.Split(string(data), "\n")
		if len(lines) > 60 {
			lines = lines[len(lines)-60:]
		}
		c.t.Logf("==== %s (last %d lines)\n%s", e.Name(), len(lines), strings.Join(lines, "\n"))
	}
}

// store opens a DCS client on every member, as an operator's tool would.
func (c *cluster) store() *dcs.Store {
	c.t.Helper()
	var eps []string
	if len(c.opts.endpoints) > 0 {
		eps = c.opts.endpoints
	}
	for _, u := range c.clients {
		eps = append(eps, u)
	}
	s, err := dcs.Open(dcs.Options{Endpoints: eps, Cluster: "e2e", LeaseTTL: testTTL, DialTimeout: time.Second})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { s.Close() })
	return s
}

func (c *cluster) server(name string) *database.Server {
	return labtest.Server(c.t, c.lab, name)
}

// waitWritablePrimary waits until the DCS names a writable primary other
// than any of exclude and returns its name.
func (c *cluster) waitWritablePrimary(ctx context.Context, s *dcs.Store, exclude ...string) string {
	c.t.Helper()
	for {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		v, err := s.Snapshot(sctx)
		cancel()
		if err == nil && v.Primary != nil && v.Leader == v.Primary.Node && !contains(exclude, v.Primary.Node) {
			if r := c.server(v.Primary.Node).ProbeWrite(ctx); r.Writable() {
				return v.Primary.Node
			}
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("no writable primary (excluding %v) in time; last view: leader=%q primary=%+v err=%v", exclude, v.Leader, v.Primary, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// splitBrainChecker tries a real write on every node, in rounds, for the
// whole test; two nodes committing in the same round is two primaries.
type splitBrainChecker struct {
	c       *cluster
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	rounds  int
	writes  map[string]int
	overlap []string
}

func (c *cluster) startSplitBrainChecker() *splitBrainChecker {
	k := &splitBrainChecker{c: c, stop: make(chan struct{}), done: make(chan struct{}), writes: map[string]int{}}
	servers := map[string]*database.Server{}
	for _, n := range c.lab.Nodes() {
		servers[n.Name] = c.server(n.Name)
	}
	go func() {
		defer close(k.done)
		for {
			select {
			case <-k.stop:
				return
			default:
			}
			var wg sync.WaitGroup
			var mu sync.Mutex
			var committed []string
			for name, s := range servers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if checkerWrite(s) == nil {
						mu.Lock()
						committed = append(committed, name)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			k.mu.Lock()
			k.rounds++
			for _, n := range committed {
				k.writes[n]++
			}
			if len(committed) > 1 {
				k.overlap = append(k.overlap, fmt.Sprintf("round %d at %s: %v", k.rounds, time.Now().Format("15:04:05.000"), committed))
			}
			k.mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return k
}

// checkerWrite commits a write without waiting for synchronous standbys,
// so that the checker never blocks on them.
func checkerWrite(s *database.Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	conn, err := connect(ctx, s.Conn.Host, s.Conn.Port, s.Conn.User, s.Conn.Password, s.Conn.Database)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = local"); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "CREATE TEMP TABLE IF NOT EXISTS split_check (x int) ON COMMIT DROP"); err != nil {
		return err
	}
	// A temporary table is refused on a standby like any write, and leaves
	// no trace that could diverge two servers' histories.
	if _, err := tx.Exec(ctx, "INSERT INTO split_check VALUES (1)"); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// waitCommits waits until the checker has seen node commit, which proves
// the checker can see a writable node at all.
func (k *splitBrainChecker) waitCommits(t *testing.T, node string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		k.mu.Lock()
		n := k.writes[node]
		k.mu.Unlock()
		if n > 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the split-brain checker never saw %s commit", node)
}

// finish stops the checker and fails the test on any overlap.
func (k *splitBrainChecker) finish(t *testing.T) {
	t.Helper()
	close(k.stop)
	<-k.done
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.overlap) > 0 {
		t.Errorf("two nodes accepted writes at the same time: %v", k.overlap)
	}
	if k.rounds < 10 {
		t.Errorf("split-brain checker ran only %d rounds", k.rounds)
	}
	t.Logf("split-brain checker: %d rounds, commits per node %v", k.rounds, k.writes)
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// queryOn runs a query returning one text value on node.
func (c *cluster) queryOn(ctx context.Context, name, q string, args ...any) (string, error) {
	s := c.server(name)
	conn, err := connect(ctx, s.Conn.Host, s.Conn.Port, s.Conn.User, s.Conn.Password, s.Conn.Database)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	var v string
	err = conn.QueryRow(ctx, q, args...).Scan(&v)
	return v, err
}

func connect(ctx context.Context, host string, port int, user, password, db string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=%s dbname=%s connect_timeout=2", host, port, user, db))
	if err != nil {
		return nil, err
	}
	cfg.Password = password
	return pgx.ConnectConfig(ctx, cfg)
}

var errTimeout = errors.New("timed out")

// eventually polls f until it returns nil or d passes.
func eventually(ctx context.Context, d time.Duration, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", errTimeout, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
