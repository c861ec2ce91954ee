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
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
	"github.com/vigil-ha/vigil/internal/lab"
	"github.com/vigil-ha/vigil/internal/lab/labtest"
	"github.com/vigil-ha/vigil/internal/labcluster"
	"github.com/vigil-ha/vigil/internal/testbin"
)

// vigilBin is the binary under test, built once by TestMain.
var vigilBin string

func TestMain(m *testing.M) {
	bin, remove, err := testbin.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	vigilBin = bin
	code := m.Run()
	remove()
	os.Exit(code)
}

// testTTL is the lease TTL labcluster gives the agents by default.
const testTTL = 3 * time.Second

type clusterOptions struct {
	nodes    int
	netns    bool
	syncMode string
	witness  bool
	// priorities by node name; 100 when absent.
	priorities map[string]int
	// endpoints, when set, replaces the embedded etcd (external DCS).
	endpoints []string
	// vip is the service address's host number in a netns lab.
	vip int
	// edit changes a node's configuration before it is written.
	edit func(node string, cfg map[string]any)
	// api serves each agent's HTTP API.
	api bool
	// empty leaves the nodes without data directories: the agents build
	// the cluster.
	empty bool
}

// cluster is a labcluster.Cluster whose failures fail the test.
type cluster struct {
	*labcluster.Cluster
	t   *testing.T
	lab *lab.Lab
	dir string
}

func newCluster(t *testing.T, o clusterOptions) *cluster {
	t.Helper()
	l := labtest.New(t, lab.Options{Nodes: o.nodes, Netns: o.netns, Empty: o.empty})
	lc, err := labcluster.New(l, labcluster.Options{
		Binary: vigilBin, Cluster: "e2e", SyncMode: o.syncMode, Priorities: o.priorities,
		Endpoints: o.endpoints, Witness: o.witness, VIP: o.vip, Edit: o.edit, API: o.api,
		LeaseTTL: testTTL, LoopInterval: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{Cluster: lc, t: t, lab: l, dir: lc.Dir}
	t.Cleanup(c.stopAll)
	return c
}

func (c *cluster) startAgent(name string) {
	c.t.Helper()
	if err := c.StartAgent(name); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) startWitness() {
	c.t.Helper()
	if err := c.StartWitness(); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) killAgent(name string)                       { c.KillAgent(name) }
func (c *cluster) killWitness()                                { c.KillWitness() }
func (c *cluster) signalAgent(name string, sig syscall.Signal) { c.SignalAgent(name, sig) }

func (c *cluster) crashNode(ctx context.Context, name string) {
	c.t.Helper()
	if err := c.CrashNode(ctx, name); err != nil {
		c.t.Errorf("crash %s: %v", name, err)
	}
}

func (c *cluster) stopAll() {
	c.StopAll()
	if c.t.Failed() {
		c.t.Log(c.Logs(60))
	}
}

// startAgents starts the agents of names (every node's when none is
// named), waits until node1 (the lab's first primary) is writable and
// returns a DCS client.
func (c *cluster) startAgents(ctx context.Context, names ...string) *dcs.Store {
	c.t.Helper()
	if len(names) == 0 {
		for _, n := range c.lab.Nodes() {
			names = append(names, n.Name)
		}
	}
	for _, n := range names {
		c.startAgent(n)
	}
	s := c.store()
	if p := c.waitWritablePrimary(ctx, s); p != "node1" {
		c.t.Fatalf("initial primary = %s, want node1", p)
	}
	return s
}

// store opens a DCS client on every member.
func (c *cluster) store() *dcs.Store {
	c.t.Helper()
	s, err := c.Store()
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { s.Close() })
	return s
}

// waitWritablePrimary waits until the DCS names a writable primary other
// than any of exclude, that really commits a write, and returns its name.
func (c *cluster) waitWritablePrimary(ctx context.Context, s *dcs.Store, exclude ...string) string {
	c.t.Helper()
	p, err := labcluster.WaitWritablePrimary(ctx, s, func(n string) bool { return c.server(n).ProbeWrite(ctx).Writable() }, exclude...)
	if err != nil {
		c.t.Fatal(err)
	}
	return p
}

func (c *cluster) server(name string) *database.Server {
	return labtest.Server(c.t, c.lab, name)
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

// ctlRebuild runs `vigil ctl VERB NODE` (rejoin or reinit), which must
// exit 0, and only once the DCS shows NODE as a standby of leader; it
// returns what the command printed (the procedure's record).
func ctlRebuild(ctx context.Context, t *testing.T, c *cluster, s *dcs.Store, verb, node, leader string) string {
	t.Helper()
	out, code := c.ctl(ctx, verb, node)
	t.Logf("ctl %s %s (exit %d):\n%s", verb, node, code, out)
	if code != 0 {
		t.Fatalf("ctl %s %s: exit %d", verb, node, code)
	}
	v, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m := v.Members[node]; m.Role != decision.RoleStandby || m.Upstream != leader {
		t.Errorf("ctl %s exited 0, but %s is %s with upstream %q", verb, node, m.Role, m.Upstream)
	}
	return out
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

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
