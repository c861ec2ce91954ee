package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-ha/vigil/internal/pgctl"
)

// labParent returns a directory the database OS user can reach (t.TempDir
// is 0700), removed after the test.
func labParent(t *testing.T) string {
	t.Helper()
	parent, err := os.MkdirTemp("", "vigil-lab-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	return parent
}

func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// upLab builds a lab and registers its removal, whatever the test's outcome.
func upLab(t *testing.T, ctx context.Context, o Options) *Lab {
	t.Helper()
	l, err := Up(ctx, o)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := l.Down(ctx); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	return l
}

func node(t *testing.T, l *Lab, name string) Node {
	t.Helper()
	n, err := l.Node(name)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// connect opens a TCP session as the lab's superuser, the way Vigil and
// other packages' tests reach a node.
func connect(ctx context.Context, l *Lab, n Node) (*pgx.Conn, error) {
	user, password, err := l.Superuser()
	if err != nil {
		return nil, err
	}
	return connectAs(ctx, n, user, password)
}

func connectAs(ctx context.Context, n Node, user, password string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=%s dbname=postgres connect_timeout=5", n.Host, n.Port, user))
	if err != nil {
		return nil, err
	}
	cfg.Password = password
	return pgx.ConnectConfig(ctx, cfg)
}

func queryStrings(t *testing.T, ctx context.Context, l *Lab, n Node, sql string) []string {
	t.Helper()
	conn, err := connect(ctx, l, n)
	if err != nil {
		t.Fatalf("connect to %s: %v", n.Name, err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		t.Fatalf("%s on %s: %v", sql, n.Name, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("%s on %s: %v", sql, n.Name, err)
	}
	return out
}

func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// streamingStandbys is what the primary's pg_stat_replication shows.
func streamingStandbys(t *testing.T, ctx context.Context, l *Lab, primary Node) []string {
	t.Helper()
	return queryStrings(t, ctx, l, primary, "select application_name || ' ' || state || ' ' || coalesce(client_addr::text, 'local') from pg_stat_replication order by application_name")
}

// processesUnder lists live processes whose command line or working
// directory mentions dir: written independently of the lab's own process
// matching, which it checks.
func processesUnder(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil || e.Name() == strconv.Itoa(os.Getpid()) {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		cwd, _ := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		args := strings.ReplaceAll(string(cmdline), "\x00", " ")
		if strings.Contains(args, dir) || strings.HasPrefix(cwd, dir) {
			out = append(out, e.Name()+": "+args+" (cwd "+cwd+")")
		}
	}
	return out
}

// assertGone checks that a lab left nothing behind in its directory or
// process table.
func assertGone(t *testing.T, dir string) {
	t.Helper()
	if procs := processesUnder(t, dir); len(procs) > 0 {
		t.Errorf("processes left after lab down: %v", procs)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lab dir %s after lab down: %v, want it removed", dir, err)
	}
}

func TestLoopbackClusterReplicatesAndComesDownClean(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	dir := filepath.Join(labParent(t), "lab")
	start := time.Now()
	l := upLab(t, ctx, Options{Dir: dir, Nodes: 3})
	t.Logf("3-node loopback lab up in %v", time.Since(start).Round(time.Millisecond))

	nodes := l.Nodes()
	if len(nodes) != 3 || !nodes[0].Primary || nodes[1].Primary || nodes[2].Primary {
		t.Fatalf("nodes = %+v, want node1 primary and two standbys", nodes)
	}
	ports := map[int]bool{}
	for _, n := range nodes {
		if n.Host != "127.0.0.1" || n.Netns != "" || ports[n.Port] {
			t.Errorf("%s on %s:%d netns %q: want its own port on 127.0.0.1, no namespace", n.Name, n.Host, n.Port, n.Netns)
		}
		ports[n.Port] = true
	}
	primary, n2, n3 := nodes[0], nodes[1], nodes[2]

	got := streamingStandbys(t, ctx, l, primary)
	if want := []string{"node2 streaming 127.0.0.1/32", "node3 streaming 127.0.0.1/32"}; !slices.Equal(got, want) {
		t.Errorf("pg_stat_replication on the primary = %q, want %q", got, want)
	}
	slots := queryStrings(t, ctx, l, primary, "select slot_name || ' ' || active from pg_replication_slots order by 1")
	if want := []string{"node2 true", "node3 true"}; !slices.Equal(slots, want) {
		t.Errorf("replication slots = %q, want %q", slots, want)
	}
	if cs := queryStrings(t, ctx, l, primary, "show data_checksums"); len(cs) != 1 || cs[0] != "on" {
		t.Errorf("data_checksums = %q, want on", cs)
	}

	conn, err := connect(ctx, l, primary)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "create table lab_test (v text); insert into lab_test values ('from the primary')"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	for _, sb := range []Node{n2, n3} {
		waitFor(t, ctx, "the row to reach "+sb.Name, func() bool {
			c, err := connect(ctx, l, sb)
			if err != nil {
				return false
			}
			defer c.Close(ctx)
			var v string
			return c.QueryRow(ctx, "select v from lab_test").Scan(&v) == nil && v == "from the primary"
		})
	}

	// The replication role logs in with its password over TCP (the lab
	// gave the server a SCRAM verifier it computed); a wrong one is refused.
	replUser, replPW, err := l.Replication()
	if err != nil {
		t.Fatal(err)
	}
	if c, err := connectAs(ctx, primary, replUser, replPW); err != nil {
		t.Errorf("log in as %s: %v", replUser, err)
	} else {
		c.Close(ctx)
	}
	if c, err := connectAs(ctx, primary, replUser, replPW+"x"); err == nil {
		c.Close(ctx)
		t.Errorf("log in as %s with a wrong password succeeded", replUser)
	}

	// No password in a process's arguments or in a config file.
	_, superPW, err := l.Superuser()
	if err != nil {
		t.Fatal(err)
	}
	assertNoSecret(t, dir, superPW, replPW)

	status, err := l.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range status {
		n := nodes[i]
		pid, _ := l.postmasterPID(n)
		wantRole := RoleStandby
		if i == 0 {
			wantRole = RolePrimary
		}
		if s.Name != n.Name || !s.Running || s.PID != pid || s.PID == 0 || !s.Reachable || s.Role != wantRole || s.InRecovery != (i > 0) || s.Error != "" {
			t.Errorf("status %d = %+v, want %s running as %s with pid %d", i, s, n.Name, wantRole, pid)
		}
		if i == 0 && s.CurrentLSN == "" || i > 0 && (s.ReceiveLSN == "" || s.ReplayLSN == "") {
			t.Errorf("status of %s lacks LSNs: %+v", n.Name, s)
		}
	}

	// A crashed node is reported as down; the others still are reported.
	if err := l.Kill(ctx, n3); err != nil {
		t.Fatal(err)
	}
	status, err = l.Status(ctx)
	if err != nil {
		t.Fatalf("status with a node down: %v", err)
	}
	if s := status[2]; s.Running || s.Reachable || s.Role != RoleUnknown {
		t.Errorf("status of killed node3 = %+v, want not running, unreachable, role unknown", s)
	}
	if s := status[0]; !s.Running || s.Role != RolePrimary {
		t.Errorf("status of node1 with node3 down = %+v", s)
	}
	if err := l.Kill(ctx, n3); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("second kill of node3: %v, want an error saying it is not running", err)
	}

	// Restarting through pgctl without a log file (what the database
	// adapter does) must return, and the lab must still find that server
	// at Down though it did not record it.
	// (A pipe for pg_ctl's output kept that call waiting for the server
	// to exit, whatever the context said: hence the goroutine.)
	started := make(chan error, 1)
	go func() { started <- l.Ctl(n3).Start(ctx, pgctl.StartOptions{}) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("restart node3 through pgctl: %v", err)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("pgctl start without a log file did not return")
	}
	waitFor(t, ctx, "node3 to stream again", func() bool {
		return slices.Contains(streamingStandbys(t, ctx, l, primary), "node3 streaming 127.0.0.1/32")
	})

	if err := l.Down(ctx); err != nil {
		t.Fatalf("lab down: %v", err)
	}
	assertGone(t, dir)
	if err := l.Down(ctx); err != nil {
		t.Errorf("second lab down: %v, want nothing to do", err)
	}
	if _, err := Open(dir); err == nil {
		t.Error("Open of a removed lab succeeded")
	}
}

// assertNoSecret fails if a password appears in any process's arguments or
// in a file of the lab other than the secrets directory.
func assertNoSecret(t *testing.T, dir string, secrets ...string) {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		for _, s := range secrets {
			if strings.Contains(string(cmdline), s) {
				t.Errorf("process %s has a lab password in its arguments", e.Name())
			}
		}
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "secrets" || d.Name() == "base" || d.Name() == "pg_wal") {
			return fs.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".conf") && !strings.HasSuffix(path, ".log") && !strings.HasSuffix(path, ".json") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, s := range secrets {
			if strings.Contains(string(data), s) {
				t.Errorf("%s holds a lab password", path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// netSnapshot is the host's namespaces and links.
func netSnapshot(t *testing.T) (namespaces, links []string) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			namespaces = append(namespaces, f[0])
		}
	}
	out, err = exec.Command("ip", "-o", "link").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			links = append(links, name)
		}
	}
	slices.Sort(namespaces)
	slices.Sort(links)
	return namespaces, links
}

// netLeftovers lists namespaces and links present now but not in the
// snapshot before, except other labs' (tests of other packages may run labs
// at the same time): anything not named like a lab's, or named with id.
func netLeftovers(t *testing.T, nsBefore, linksBefore []string, id string) []string {
	t.Helper()
	nsAfter, linksAfter := netSnapshot(t)
	var out []string
	for _, name := range append(nsAfter, linksAfter...) {
		if slices.Contains(nsBefore, name) || slices.Contains(linksBefore, name) {
			continue
		}
		otherLab := !strings.Contains(name, id) &&
			(strings.HasPrefix(name, "vigil-") || strings.HasPrefix(name, "vgl-") || strings.HasPrefix(name, "vgp-"))
		if !otherLab {
			out = append(out, name)
		}
	}
	return out
}

func netnsInode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func TestNetnsClusterIsReachableAndComesDownClean(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	nsBefore, linksBefore := netSnapshot(t)
	// An existing empty lab dir (the way tests often make one).
	dir, err := os.MkdirTemp(labParent(t), "lab-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	l := upLab(t, ctx, Options{Dir: dir, Nodes: 3, Netns: true})
	t.Logf("3-node netns lab up in %v", time.Since(start).Round(time.Millisecond))

	nodes := l.Nodes()
	subnet := l.Subnet()
	if !strings.HasPrefix(subnet, "198.1") || !strings.HasSuffix(subnet, ".0/24") {
		t.Errorf("subnet = %q, want a /24 in 198.18.0.0/15", subnet)
	}
	for i, n := range nodes {
		want := strings.TrimSuffix(subnet, "0/24") + strconv.Itoa(11+i)
		if n.Host != want || n.Port != 5432 || n.Netns == "" {
			t.Errorf("%s at %s:%d netns %q, want %s:5432 in a namespace", n.Name, n.Host, n.Port, n.Netns, want)
		}
		// Reachable from the host at its own address, served from inside
		// its namespace.
		conn, err := connect(ctx, l, n)
		if err != nil {
			t.Fatalf("connect to %s at %s: %v", n.Name, n.Host, err)
		}
		var addr string
		if err := conn.QueryRow(ctx, "select host(inet_server_addr())").Scan(&addr); err != nil || addr != n.Host {
			t.Errorf("%s: inet_server_addr = %q (%v), want %s", n.Name, addr, err, n.Host)
		}
		conn.Close(ctx)
		pid, err := l.postmasterPID(n)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := netnsInode(t, fmt.Sprintf("/proc/%d/ns/net", pid)), netnsInode(t, "/run/netns/"+n.Netns); got != want {
			t.Errorf("%s's postmaster is in network namespace %d, want %s (%d)", n.Name, got, n.Netns, want)
		}
	}
	// The standbys stream across the bridge, from their own addresses.
	got := streamingStandbys(t, ctx, l, nodes[0])
	want := []string{"node2 streaming " + nodes[1].Host + "/32", "node3 streaming " + nodes[2].Host + "/32"}
	if !slices.Equal(got, want) {
		t.Errorf("pg_stat_replication = %q, want %q", got, want)
	}
	// The loopback address inside a namespace is not the host's.
	d := net.Dialer{Timeout: time.Second}
	if c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", "5432")); err == nil {
		c.Close()
		t.Log("note: something listens on the host's 127.0.0.1:5432 (not the lab)")
	}
	claim := filepath.Join(claimsDir, strings.ReplaceAll(subnet, "/", "_"))
	if _, err := os.Stat(claim); err != nil {
		t.Errorf("subnet claim: %v", err)
	}

	if err := l.Down(ctx); err != nil {
		t.Fatalf("lab down: %v", err)
	}
	assertGone(t, dir)
	if left := netLeftovers(t, nsBefore, linksBefore, l.ID()); len(left) > 0 {
		t.Errorf("namespaces and links left after lab down: %v", left)
	}
	if _, err := os.Stat(claim); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("subnet claim after lab down: %v, want it removed", err)
	}
}

func TestUpRefusesAnExistingLabWithoutForce(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	dir := filepath.Join(labParent(t), "lab")
	old := upLab(t, ctx, Options{Dir: dir, Nodes: 1})
	n := node(t, old, "node1")
	oldPID, err := old.postmasterPID(n)
	if err != nil {
		t.Fatal(err)
	}

	_, err = Up(ctx, Options{Dir: dir, Nodes: 1})
	var ie *InputError
	if want := "lab dir " + dir + " already holds a lab: remove it with `vigil lab down --dir " + dir + "`, or use --force to replace it"; err == nil || err.Error() != want || !errors.As(err, &ie) {
		t.Fatalf("second Up without Force: %v, want %q", err, want)
	}
	if pid, err := old.postmasterPID(n); err != nil || pid != oldPID || !old.isServerOf(pid, []string{n.DataDir}) {
		t.Fatalf("the refused Up touched the lab: pid %d (%v), was %d", pid, err, oldPID)
	}

	l := upLab(t, ctx, Options{Dir: dir, Nodes: 2, Force: true})
	if old.isServerOf(oldPID, []string{n.DataDir}) {
		t.Errorf("the old lab's postmaster %d still runs after Force", oldPID)
	}
	if got := streamingStandbys(t, ctx, l, node(t, l, "node1")); len(got) != 1 || !strings.HasPrefix(got[0], "node2 streaming") {
		t.Errorf("replacement lab's standbys = %q, want node2 streaming", got)
	}
	if old.ID() == l.ID() {
		t.Errorf("replacement lab has the old lab's id %s", l.ID())
	}
}

// lsn parses "X/Y".
func lsn(t *testing.T, s string) uint64 {
	t.Helper()
	hi, lo, ok := strings.Cut(s, "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil {
		t.Fatalf("bad LSN %q", s)
	}
	return h<<32 | l
}

func TestPausedReplayBuildsABacklogThatResumeClears(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	l := upLab(t, ctx, Options{Dir: filepath.Join(labParent(t), "lab"), Nodes: 2})
	primary, standby := node(t, l, "node1"), node(t, l, "node2")

	if err := l.PauseReplay(ctx, standby); err != nil {
		t.Fatal(err)
	}
	const mib = 48
	start := time.Now()
	if err := l.GenerateWAL(ctx, primary, mib); err != nil {
		t.Fatal(err)
	}
	t.Logf("generated %d MiB of WAL in %v", mib, time.Since(start).Round(time.Millisecond))
	status := func() (p, s NodeStatus) {
		st, err := l.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st[0], st[1]
	}
	p, _ := status()
	end := lsn(t, p.CurrentLSN)
	var s NodeStatus
	waitFor(t, ctx, "the standby to receive the primary's WAL", func() bool {
		_, s = status()
		return s.ReceiveLSN != "" && lsn(t, s.ReceiveLSN) >= end
	})
	backlog := lsn(t, s.ReceiveLSN) - lsn(t, s.ReplayLSN)
	if !s.ReplayPaused || backlog < mib<<20 {
		t.Errorf("paused standby: paused=%v receive %s replay %s (backlog %d bytes), want paused with >= %d MiB", s.ReplayPaused, s.ReceiveLSN, s.ReplayLSN, backlog, mib)
	}

	if err := l.ResumeReplay(ctx, standby); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the standby to replay its backlog", func() bool {
		_, s = status()
		return !s.ReplayPaused && s.ReplayLSN != "" && lsn(t, s.ReplayLSN) >= end
	})
}

func TestFailedUpRemovesWhatItCreated(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	nsBefore, linksBefore := netSnapshot(t)
	parent := labParent(t)
	// The real binaries, except a pg_basebackup that fails: Up gets as far
	// as a running primary and a network before it stops.
	bin := filepath.Join(parent, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"initdb", "pg_ctl", "postgres", "psql"} {
		if err := os.Symlink(filepath.Join(DefaultBinDir, b), filepath.Join(bin, b)); err != nil {
			t.Fatal(err)
		}
	}
	script := "#!/bin/sh\necho 'pg_basebackup: error: injected by the test' >&2\nexit 1\n"
	if err := os.WriteFile(filepath.Join(bin, "pg_basebackup"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "a", "b", "lab")
	var logs bytes.Buffer
	l, err := Up(ctx, Options{Dir: dir, Nodes: 2, Netns: true, BinDir: bin, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err == nil {
		t.Cleanup(func() { l.Down(context.Background()) })
		t.Fatal("Up with a failing pg_basebackup succeeded")
	}
	if !strings.Contains(err.Error(), "clone node2 from node1") || !strings.Contains(err.Error(), "injected by the test") {
		t.Errorf("error = %v, want the base backup's failure", err)
	}
	assertGone(t, dir)
	if _, err := os.Stat(filepath.Join(parent, "a")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("parent directory created by Up was left: %v", err)
	}
	// The lab's id, from its log, tells its namespaces from other labs'.
	m := regexp.MustCompile(`netns=vigil-([0-9a-f]{6})-node2`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("the failed Up logged no namespace for node2; log:\n%s", logs.String())
	}
	if left := netLeftovers(t, nsBefore, linksBefore, m[1]); len(left) > 0 {
		t.Errorf("namespaces and links left after a failed Up: %v", left)
	}
}

// busyPort listens on a port whose predecessor is free, for the case of a
// lab whose second node's port is taken.
func busyPort(t *testing.T) int {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		if portFree(port - 1) {
			t.Cleanup(func() { ln.Close() })
			return port
		}
		ln.Close()
	}
	t.Fatal("found no listening port with a free port before it")
	return 0
}

func TestBadInputIsRefusedWithoutTouchingAnything(t *testing.T) {
	ctx := testContext(t, time.Minute)
	parent := labParent(t)
	fresh := filepath.Join(parent, "fresh")

	nonEmpty := filepath.Join(parent, "nonempty")
	if err := os.MkdirAll(nonEmpty, 0o755); err != nil {
		t.Fatal(err)
	}
	keep := filepath.Join(nonEmpty, "precious.txt")
	if err := os.WriteFile(keep, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	emptyBin := filepath.Join(parent, "nobin")
	if err := os.Mkdir(emptyBin, 0o755); err != nil {
		t.Fatal(err)
	}
	busy := busyPort(t)
	private := filepath.Join(parent, "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name string
		o    Options
		euid int
		want string
	}{
		{"no nodes", Options{Dir: fresh, Nodes: 0}, 0,
			"--nodes 0: a lab needs at least 1 node (node1 is the primary, the others are standbys)"},
		{"no dir", Options{Nodes: 1}, 0,
			"no lab dir given (--dir): the lab keeps its data directories, sockets, secrets and state there"},
		{"non-empty dir", Options{Dir: nonEmpty, Nodes: 1, Force: true}, 0,
			"lab dir " + nonEmpty + " is not empty and holds no lab (no lab.json): choose a new or empty directory"},
		{"missing binaries", Options{Dir: fresh, Nodes: 1, BinDir: emptyBin}, 0,
			"initdb not found in " + emptyBin + ": install postgresql-15 or set --bin-dir"},
		{"port in use", Options{Dir: fresh, Nodes: 1, BasePort: busy}, 0,
			fmt.Sprintf("port %d on 127.0.0.1 (for node1) is in use: choose another --port, or leave it out to pick free ports", busy)},
		{"second port in use", Options{Dir: fresh, Nodes: 2, BasePort: busy - 1}, 0,
			fmt.Sprintf("port %d on 127.0.0.1 (for node2) is in use", busy)},
		{"netns without root", Options{Dir: fresh, Nodes: 2, Netns: true}, 1000,
			"lab --netns needs root: it creates network namespaces and veth links"},
		{"missing OS user", Options{Dir: fresh, Nodes: 1, OSUser: "vigil-no-such-user"}, 0,
			`look up OS user "vigil-no-such-user"`},
		{"root as OS user", Options{Dir: fresh, Nodes: 1, OSUser: "root"}, 0,
			"--os-user root: PostgreSQL refuses to run as root; choose an unprivileged account such as postgres"},
		{"unreachable dir", Options{Dir: filepath.Join(private, "lab"), Nodes: 1}, 0,
			"OS user postgres cannot reach lab dir " + filepath.Join(private, "lab") + ": " + private + " (mode 0700) is not searchable by postgres"},
		{"too many nodes", Options{Dir: fresh, Nodes: MaxNodes + 1}, 0,
			fmt.Sprintf("--nodes %d: a lab has at most %d nodes", MaxNodes+1, MaxNodes)},
		{"privileged port", Options{Dir: fresh, Nodes: 1, BasePort: 80}, 0,
			"--port 80: ports below 1024 need root"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l, err := up(ctx, c.o, c.euid)
			if err == nil {
				l.Down(ctx)
				t.Fatalf("Up succeeded, want %q", c.want)
			}
			var ie *InputError
			if !strings.HasPrefix(err.Error(), c.want) || !errors.As(err, &ie) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error = %q, want one line starting %q", err, c.want)
			}
		})
	}
	for _, d := range []string{fresh, filepath.Join(private, "lab")} {
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s after refused Ups: %v, want it not created", d, err)
		}
	}
	if data, err := os.ReadFile(keep); err != nil || string(data) != "keep me" {
		t.Errorf("file in a non-empty dir after a refused Up: %q, %v", data, err)
	}
}
