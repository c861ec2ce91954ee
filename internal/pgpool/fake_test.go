package pgpool

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/flavor"
	"github.com/vigil-ha/vigil/internal/wal"
)

// What the fake servers have by version, as PostgreSQL: the post-10 WAL
// names from 10, pg_promote from 12.
const (
	versionWALNames  = 100000
	versionPgPromote = 120000
)

// fakeCluster models the nodes in memory: the fake runner and the fake
// servers act on it, and it records, in order, everything done to it.
type fakeCluster struct {
	t      *testing.T
	flavor flavor.Flavor
	vip    netip.Prefix

	mu     sync.Mutex
	events []string
	nodes  map[string]*fakeNode // by host
	// vipOn is the host whose interface holds the VIP ("" none).
	vipOn string
	// foreignVIP: a host outside the model answers ARP for the VIP.
	foreignVIP bool
	// runErr makes every command on a host fail this way.
	runErr map[string]error
}

type fakeNode struct {
	name       string
	running    bool
	inRecovery bool
	version    int
	backlog    uint64
	// refuse: write probes refused as "in recovery" after the promotion,
	// before one commits (a promoted server still replaying).
	refuse    int
	syncNames string
	upstream  string
}

func newFakeCluster(t *testing.T, f flavor.Flavor) *fakeCluster {
	return &fakeCluster{t: t, flavor: f, vip: netip.MustParsePrefix("10.0.0.100/24"), nodes: map[string]*fakeNode{}, runErr: map[string]error{}}
}

// seedCluster is the seed's: node 0 (10.0.0.1) the primary holding the
// VIP, node 1 (10.0.0.2) a streaming standby, node 2 (10.0.0.3) another.
func seedCluster(t *testing.T, f flavor.Flavor) *fakeCluster {
	c := newFakeCluster(t, f)
	c.nodes["10.0.0.1"] = &fakeNode{name: "node1", running: true, version: 150004}
	c.nodes["10.0.0.2"] = &fakeNode{name: "node2", running: true, inRecovery: true, version: 150004, backlog: 128 << 20, upstream: "10.0.0.1"}
	c.nodes["10.0.0.3"] = &fakeNode{name: "node3", running: true, inRecovery: true, version: 150004, upstream: "10.0.0.1"}
	c.vipOn = "10.0.0.1"
	return c
}

func (c *fakeCluster) record(format string, args ...any) {
	c.events = append(c.events, fmt.Sprintf(format, args...))
}

// Events returns what was done so far.
func (c *fakeCluster) Events() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.events)
}

// index is the position of the first event containing all of parts, -1 if none.
func index(events []string, parts ...string) int {
	for i, e := range events {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(e, p)
		}
		if all {
			return i
		}
	}
	return -1
}

// Run implements Runner on the model.
func (c *fakeCluster) Run(ctx context.Context, host string, argv []string) (Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	if err := c.runErr[host]; err != nil {
		c.record("%s: could not run %s", host, strings.Join(argv, " "))
		return Result{}, err
	}
	c.record("%s: %s", host, strings.Join(argv, " "))
	// Strip the privilege prefixes.
	for len(argv) > 0 && (argv[0] == "sudo" || argv[0] == "-n" || argv[0] == "runuser") {
		if argv[0] == "runuser" {
			argv = argv[4:]
			continue
		}
		argv = argv[1:]
	}
	n := c.nodes[host]
	switch filepath.Base(argv[0]) {
	case c.flavor.ControlBinary:
		if n == nil {
			return Result{ExitCode: 4, Output: []byte("no data directory")}, nil
		}
		switch argv[3] {
		case "stop":
			if !n.running {
				return Result{ExitCode: 1, Output: []byte(fmt.Sprintf("%s: PID file \"%s/%s\" does not exist\nIs server running?", c.flavor.ControlBinary, argv[2], c.flavor.PIDFile))}, nil
			}
			n.running = false
			return Result{Output: []byte("waiting for server to shut down.... done\nserver stopped")}, nil
		case "status":
			if n.running {
				return Result{Output: []byte("server is running (PID: 42)")}, nil
			}
			return Result{ExitCode: 3, Output: []byte("no server running")}, nil
		case "promote":
			n.inRecovery = false
			c.record("db %s: promoted", host)
			return Result{Output: []byte("waiting for server to promote.... done\nserver promoted")}, nil
		}
	case "ip":
		switch {
		case slices.Contains(argv, "show"):
			out := fmt.Sprintf("2: eth0    inet %s.%d/24 brd 10.0.0.255 scope global eth0\\       valid_lft forever preferred_lft forever\n", "10.0.0", 12)
			if c.vipOn == host {
				out += fmt.Sprintf("2: eth0    inet %s scope global secondary eth0:2\\       valid_lft forever preferred_lft forever\n", c.vip)
			}
			return Result{Output: []byte(out)}, nil
		case slices.Contains(argv, "add"):
			if c.vipOn != "" {
				return Result{ExitCode: 2, Output: []byte("RTNETLINK answers: File exists")}, nil
			}
			c.vipOn = host
			return Result{}, nil
		case slices.Contains(argv, "del"):
			if c.vipOn != host {
				return Result{ExitCode: 2, Output: []byte("RTNETLINK answers: Cannot assign requested address")}, nil
			}
			c.vipOn = ""
			return Result{}, nil
		}
	case "arping":
		if slices.Contains(argv, "-D") {
			// A real duplicate-address check waits for replies for a while.
			time.Sleep(5 * time.Millisecond)
			if c.foreignVIP || (c.vipOn != "" && c.vipOn != host) {
				return Result{ExitCode: 1, Output: []byte("Unicast reply from 10.0.0.100 [52:54:00:12:34:56]")}, nil
			}
			return Result{}, nil
		}
		return Result{Output: []byte("Sent 3 probes")}, nil
	}
	return Result{}, nil
}

// fakeServer is the adapter to one modelled node (or to the VIP, which
// leads to whichever node holds it).
type fakeServer struct {
	c    *fakeCluster
	host string
}

func (c *fakeCluster) connect(t Target) Server { return &fakeServer{c: c, host: t.Host} }

// node resolves the server behind s; the caller holds c.mu.
func (s *fakeServer) node() (*fakeNode, string) {
	host := s.host
	if host == s.c.vip.Addr().String() {
		host = s.c.vipOn
	}
	n := s.c.nodes[host]
	if n == nil || !n.running {
		return nil, host
	}
	return n, host
}

func (s *fakeServer) down() error {
	return &database.ConnectError{Node: s.host, Err: fmt.Errorf("dial tcp %s:5432: connect: connection refused", s.host)}
}

func (s *fakeServer) Observe(ctx context.Context) (database.Observation, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	n, _ := s.node()
	if n == nil {
		return database.Observation{}, s.down()
	}
	obs := database.Observation{Node: n.name, Reachable: true, InRecovery: n.inRecovery, ServerVersionNum: n.version,
		XLogNames: n.version < versionWALNames, PromoteFunction: n.version >= versionPgPromote,
		SynchronousStandbyNames: n.syncNames, Timeline: 1}
	if n.inRecovery {
		obs.ReplayBacklogBytes = n.backlog
		if n.upstream != "" {
			obs.WALReceiver = &database.WALReceiver{Status: "streaming", SenderHost: n.upstream, SenderPort: 5432}
		}
	} else {
		obs.Timeline = 2
	}
	return obs, nil
}

func (s *fakeServer) ProbeWrite(ctx context.Context) database.ProbeResult {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	n, host := s.node()
	via := ""
	if s.host != host {
		via = " via " + s.host
	}
	switch {
	case n == nil:
		s.c.record("db %s%s: probe no session", host, via)
		return database.ProbeResult{Node: s.host, Class: database.ProbeConnectionFailure, Error: "connection refused"}
	case n.inRecovery:
		s.c.record("db %s%s: probe refused in recovery", host, via)
		return database.ProbeResult{Node: n.name, Class: database.ProbeInRecovery, ReplayBacklogBytes: n.backlog}
	case n.refuse > 0:
		n.refuse--
		n.backlog /= 2
		s.c.record("db %s%s: probe refused while replaying", host, via)
		return database.ProbeResult{Node: n.name, Class: database.ProbeInRecovery, ReplayBacklogBytes: n.backlog}
	case n.syncNames != "":
		s.c.record("db %s%s: probe waits for a synchronous standby", host, via)
		return database.ProbeResult{Node: n.name, Class: database.ProbeSyncWait}
	}
	s.c.record("db %s%s: probe committed", host, via)
	return database.ProbeResult{Node: n.name, Class: database.ProbeOK, CommitLSN: wal.LSN(0x3000060), Latency: time.Millisecond}
}

func (s *fakeServer) Promote(ctx context.Context, wait time.Duration) error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	n, host := s.node()
	if n == nil {
		return s.down()
	}
	n.inRecovery = false
	s.c.record("db %s: promoted", host)
	return nil
}

func (s *fakeServer) SetAsync(ctx context.Context) error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	n, host := s.node()
	if n == nil {
		return s.down()
	}
	n.syncNames = ""
	s.c.record("db %s: async", host)
	return nil
}

func (s *fakeServer) Checkpoint(ctx context.Context) error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	n, host := s.node()
	if n == nil {
		return s.down()
	}
	s.c.record("db %s: checkpoint", host)
	return nil
}

func (s *fakeServer) Follow(ctx context.Context, up database.Upstream) error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	n, host := s.node()
	if n == nil {
		return s.down()
	}
	n.upstream = up.Host
	s.c.record("db %s: follow %s slot %q app %q", host, up.Host, up.SlotName, up.ApplicationName)
	return nil
}

func (s *fakeServer) EnsureSlot(ctx context.Context, name string) error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.c.record("db %s: slot %s", s.host, name)
	return nil
}

func (s *fakeServer) WaitStreaming(ctx context.Context, host string, port int) error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if n, _ := s.node(); n == nil || n.upstream != host {
		return fmt.Errorf("not streaming from %s", host)
	}
	return nil
}

// trustedDialer answers (or not) for every trusted address.
type trustedDialer struct{ answer bool }

func (d trustedDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if !d.answer {
		return nil, &net.OpError{Op: "dial", Net: network, Err: os.ErrDeadlineExceeded}
	}
	a, b := net.Pipe()
	b.Close()
	return a, nil
}

// fakeOptions are Options on the model, with short timeouts.
func fakeOptions(c *fakeCluster, human, steps *bytes.Buffer) Options {
	f := c.flavor
	o := Options{
		Cluster:  "test",
		Flavor:   f,
		Defaults: Defaults{Port: f.DefaultPort, DataDir: "/data", Names: []string{"node1", "node2", "node3"}},
		Commands: Commands{Flavor: f, BinDir: "/opt/db/bin", IP: "/sbin/ip", Arping: "/usr/sbin/arping",
			DBPrefix: []string{"runuser", "-u", "dbuser", "--"}},
		Runner:  c,
		Connect: c.connect,
		SQLUser: f.DefaultSuperuser, SQLDatabase: f.DefaultDatabase,
		TrustedIPs: []string{"10.0.0.254"}, TrustedDialer: trustedDialer{answer: true},
		VIP:              &VIP{Prefix: c.vip, Interface: "eth0", Label: "eth0:2", ARPCount: 3},
		Total:            20 * time.Second,
		DBTimeout:        time.Second,
		CommandTimeout:   2 * time.Second,
		PromoteTimeout:   5 * time.Second,
		ReadinessTimeout: 3 * time.Second,
		GatePoll:         time.Millisecond,
		Human:            human,
	}
	if steps != nil {
		o.StepLog = steps
	}
	return o
}

// seedArgs: node 0 (10.0.0.1), the primary, failed; node 1 is the new main.
func seedArgs(t *testing.T) Args {
	return placeholders(t, "0", "10.0.0.1", "5432", "/data", "1", "10.0.0.2", "0", "0", "5432", "/data", "10.0.0.1", "5432")
}
