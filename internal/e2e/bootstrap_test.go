package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
	"github.com/vigil-ha/vigil/internal/lab"
	"github.com/vigil-ha/vigil/internal/lab/labtest"
)

// readyCluster waits until the cluster built by the agents is ready: a
// writable primary, every other node a standby streaming from it and
// published as such, the VIP on the primary alone (when there is one).
// It returns the primary.
func readyCluster(ctx context.Context, t *testing.T, c *cluster, s *dcs.Store, exclude ...string) string {
	t.Helper()
	primary := c.waitWritablePrimary(ctx, s, exclude...)
	for _, n := range c.lab.Nodes() {
		if n.Name == primary || contains(exclude, n.Name) {
			continue
		}
		if err := waitStreamsFrom(ctx, c, n.Name, primary); err != nil {
			t.Fatal(err)
		}
		if err := eventually(ctx, 30*time.Second, func() error {
			v, err := s.Snapshot(ctx)
			if err != nil {
				return err
			}
			if m := v.Members[n.Name]; m.Role != decision.RoleStandby || m.Upstream != primary || m.Phase != "" {
				return fmt.Errorf("%s published role %s, upstream %q, phase %q", n.Name, m.Role, m.Upstream, m.Phase)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if c.VIP() != "" {
		if err := eventually(ctx, 30*time.Second, func() error {
			if h := c.VIPHolder(); h != primary {
				return fmt.Errorf("VIP on %q, want %s", h, primary)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return primary
}

// writeThroughVIP commits a row through the VIP and returns its tag.
func writeThroughVIP(ctx context.Context, t *testing.T, c *cluster, primary, tag string) {
	t.Helper()
	n, err := c.lab.Node(primary)
	if err != nil {
		t.Fatal(err)
	}
	user, password, err := c.lab.Superuser()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := connect(ctx, c.VIP(), n.Port, user, password, c.lab.Flavor().DefaultDatabase)
	if err != nil {
		t.Fatalf("connect through the VIP %s: %v", c.VIP(), err)
	}
	defer conn.Close(context.Background())
	for _, q := range []string{"CREATE TABLE IF NOT EXISTS bootstrap_probe (tag text PRIMARY KEY)", "INSERT INTO bootstrap_probe VALUES ('" + tag + "')"} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s through the VIP: %v", q, err)
		}
	}
}

// waitReplicated waits until node has the row tagged tag.
func waitReplicated(ctx context.Context, t *testing.T, c *cluster, node, tag string) {
	t.Helper()
	if err := eventually(ctx, 30*time.Second, func() error {
		_, err := c.queryOn(ctx, node, "SELECT tag FROM bootstrap_probe WHERE tag = $1", tag)
		return err
	}); err != nil {
		t.Fatalf("%s never got row %s: %v", node, tag, err)
	}
}

func requireNoDataDirs(t *testing.T, l *lab.Lab) {
	t.Helper()
	for _, n := range l.Nodes() {
		if _, err := os.Stat(n.DataDir); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s: data directory %s exists before any agent ran (%v)", n.Name, n.DataDir, err)
		}
	}
}

// TestBootstrapFromEmptyHosts: three hosts with nothing but their network,
// configuration and secrets, one `vigil agent` each, nothing run by hand:
// exactly one node creates the cluster (initdb with checksums, Vigil's
// settings, roles, schema), the two others clone it and stream, the VIP
// lands on the primary and a write committed through it reaches both
// standbys.
func TestBootstrapFromEmptyHosts(t *testing.T) {
	ctx := testCtx(t, 5*time.Minute)
	c := newCluster(t, clusterOptions{nodes: 3, netns: true, vip: 100, empty: true})
	requireNoDataDirs(t, c.lab)
	began := time.Now()
	for _, n := range c.lab.Nodes() {
		c.startAgent(n.Name)
	}
	s := c.store()
	primary := readyCluster(ctx, t, c, s)
	writeThroughVIP(ctx, t, c, primary, "first")
	for _, n := range c.lab.Nodes() {
		if n.Name != primary {
			waitReplicated(ctx, t, c, n.Name, "first")
		}
	}
	t.Logf("three empty hosts to a ready cluster (primary %s, two streaming standbys, VIP, a committed write through it): %s",
		primary, time.Since(began).Round(time.Millisecond))

	v, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.Initialize == nil || v.Initialize.Node != primary || v.Initialize.SystemID == "" {
		t.Fatalf("initialize key %+v, want made permanent by %s with the system identifier", v.Initialize, primary)
	}
	for _, n := range c.lab.Nodes() {
		if id := v.Members[n.Name].SystemID; id != v.Initialize.SystemID {
			t.Errorf("%s publishes system %q, the initialize key %q", n.Name, id, v.Initialize.SystemID)
		}
	}
	if sum, err := c.queryOn(ctx, primary, "SHOW data_checksums"); err != nil || sum != "on" {
		t.Errorf("data_checksums = %q (%v), want on", sum, err)
	}
	if lvl, err := c.queryOn(ctx, primary, "SELECT current_setting('wal_level') || ' ' || current_setting('wal_log_hints')"); err != nil || lvl != "replica on" {
		t.Errorf("wal_level wal_log_hints = %q (%v), want replica on", lvl, err)
	}
	if _, err := c.queryOn(ctx, primary, "SELECT node FROM vigil.heartbeat LIMIT 1"); err != nil {
		t.Errorf("schema vigil: %v", err)
	}
	rec, ok := historyRecord(ctx, c, "bootstrap", primary)
	if !ok || !rec.OK {
		t.Fatalf("no successful bootstrap record of %s: %+v", primary, rec)
	}
	var steps []string
	for _, st := range rec.Steps {
		steps = append(steps, st.Name)
	}
	if !containsAll(strings.Join(steps, " "), "bootstrap_initdb", "bootstrap_configure", "bootstrap_roles", "bootstrap_schema") {
		t.Errorf("bootstrap steps %v", steps)
	}
	for _, n := range c.lab.Nodes() {
		if n.Name == primary {
			continue
		}
		if rec, ok := historyRecord(ctx, c, "clone", n.Name); !ok || !rec.OK {
			t.Errorf("no successful clone record of %s: %+v", n.Name, rec)
		}
		if _, ok := historyRecord(ctx, c, "bootstrap", n.Name); ok {
			t.Errorf("%s ran a bootstrap too: two initdb for one cluster", n.Name)
		}
	}
}

// buildingProcess names the node whose data directory a running program
// called prog (initdb, pg_basebackup) works on, "" when none runs.
func buildingProcess(l *lab.Lab, prog string) string {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if len(args) == 0 || !strings.HasSuffix(args[0], "/"+prog) {
			continue
		}
		for _, n := range l.Nodes() {
			if contains(args, n.DataDir) {
				return n.Name
			}
		}
	}
	return ""
}

// TestBootstrapWinnerKilledDuringInitdb: the node that won the initialize
// key is killed (its agent and initdb, SIGKILL) while initdb runs. Its
// key expires, another node creates the cluster, and when the killed
// node's agent comes back it finds its half-built directory, keeps it
// aside (renamed, with its content) and comes back as a streaming
// standby.
func TestBootstrapWinnerKilledDuringInitdb(t *testing.T) {
	ctx := testCtx(t, 5*time.Minute)
	c := newCluster(t, clusterOptions{nodes: 3, empty: true,
		edit: func(node string, cfg map[string]any) {
			// With fsync, initdb runs long enough to be caught in it.
			cfg["bootstrap"].(map[string]any)["initdb"] = map[string]any{"args": []string{"--no-locale"}}
		}})
	requireNoDataDirs(t, c.lab)
	for _, n := range c.lab.Nodes() {
		c.startAgent(n.Name)
	}
	// Killed once initdb has written into the directory (an empty one is
	// simply reused, there is nothing to keep aside): initdb lays out the
	// directories within milliseconds and then runs for a second or more,
	// so a 10 ms poll finds it in between.
	var victim string
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if victim = buildingProcess(c.lab, c.lab.Flavor().InitDBBinary); victim != "" {
			n, err := c.lab.Node(victim)
			if err != nil {
				t.Fatal(err)
			}
			if entries, _ := os.ReadDir(n.DataDir); len(entries) > 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no initdb seen writing into a data directory")
		}
	}
	c.killAgent(victim)
	t.Logf("%s killed during initdb", victim)
	vn, err := c.lab.Node(victim)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(vn.DataDir + ".vigil-building"); err != nil {
		t.Fatalf("the killed node's build marker: %v", err)
	}

	s := c.store()
	primary := c.waitWritablePrimary(ctx, s)
	if primary == victim {
		t.Fatalf("the killed node %s is the primary", victim)
	}
	v, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.Initialize == nil || v.Initialize.Node != primary || v.Initialize.SystemID == "" {
		t.Fatalf("initialize key %+v, want it finished by %s", v.Initialize, primary)
	}

	c.startAgent(victim)
	readyCluster(ctx, t, c, s)
	aside, _ := filepath.Glob(vn.DataDir + ".vigil-halfbuilt-*")
	if len(aside) != 1 {
		t.Fatalf("half-built directories kept aside for %s: %v, want one", victim, aside)
	}
	if entries, err := os.ReadDir(aside[0]); err != nil || len(entries) == 0 {
		t.Fatalf("the half-built directory %s was emptied (%d entries, %v)", aside[0], len(entries), err)
	}
	if _, err := os.Stat(vn.DataDir + ".vigil-building"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the build marker outlived the clone: %v", err)
	}
	if rec, ok := historyRecord(ctx, c, "clone", victim); !ok || !rec.OK || !strings.Contains(fmt.Sprint(rec.Steps[0].Evidence), "kept at "+aside[0]) {
		t.Errorf("clone record of %s does not say where its half-built directory went: %+v", victim, rec)
	}
}

// TestCloneAbandonedWhenPrimaryFails: node3 joins a built cluster late
// and clones its primary slowly (clone.max_rate), its progress published
// in the DCS; the primary's node crashes mid-copy. The clone is abandoned
// (its record says so), the other standby is promoted, and node3 clones
// the new primary from the start and streams from it.
func TestCloneAbandonedWhenPrimaryFails(t *testing.T) {
	ctx := testCtx(t, 6*time.Minute)
	c := newCluster(t, clusterOptions{nodes: 3, netns: true, empty: true,
		edit: func(node string, cfg map[string]any) {
			if node == "node3" {
				cfg["clone"] = map[string]any{"methods": []map[string]any{{"name": "basebackup"}}, "max_rate": "4M"}
			}
		}})
	c.startAgent("node1")
	c.startAgent("node2")
	s := c.store()
	old := c.waitWritablePrimary(ctx, s)
	other := "node1"
	if old == "node1" {
		other = "node2"
	}
	if err := waitStreamsFrom(ctx, c, other, old); err != nil {
		t.Fatal(err)
	}
	// About 100 MB to copy: 25 s at 4 MB/s.
	labtest.Exec(t, ctx, c.server(old), "CREATE TABLE ballast AS SELECT g, repeat('x', 1000) AS pad FROM generate_series(1, 100000) g")

	c.startAgent("node3")
	var seen dcs.CloneProgress
	if err := eventually(ctx, 90*time.Second, func() error {
		v, err := s.Snapshot(ctx)
		if err != nil {
			return err
		}
		m := v.Members["node3"]
		if m.Phase != "clone" || m.Clone == nil || m.Clone.BytesDone < 8<<20 || m.Clone.BytesTotal < 64<<20 || m.Clone.From != old {
			return fmt.Errorf("node3 phase %q progress %+v", m.Phase, m.Clone)
		}
		seen = *m.Clone
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("node3 cloning %s: %d of %d bytes, %d bytes/s, %d s left", seen.From, seen.BytesDone, seen.BytesTotal, seen.RateBytes, seen.ETASeconds)
	if seen.RateBytes <= 0 || seen.ETASeconds < 0 {
		t.Errorf("progress without a rate or time left: %+v", seen)
	}
	out, code := c.ctl(ctx, "list")
	if code != 0 || !strings.Contains(out, "clone from "+old) {
		t.Errorf("ctl list (exit %d) does not show node3's clone progress:\n%s", code, out)
	}

	c.crashNode(ctx, old)
	newPrimary := c.waitWritablePrimary(ctx, s, old)
	if newPrimary != other {
		t.Fatalf("new primary %s, want %s", newPrimary, other)
	}
	if err := waitStreamsFrom(ctx, c, "node3", newPrimary); err != nil {
		t.Fatal(err)
	}
	// The record is stored once the clone returns, just after it streams.
	if err := eventually(ctx, 30*time.Second, func() error {
		raw, err := s.History(ctx)
		if err != nil {
			return err
		}
		var abandoned, done bool
		var reasons []string
		for _, r := range raw {
			var rec struct {
				Kind, Node, Reason string
				OK                 bool
			}
			if json.Unmarshal(r, &rec) != nil || rec.Kind != "clone" || rec.Node != "node3" {
				continue
			}
			reasons = append(reasons, fmt.Sprintf("ok=%v %s", rec.OK, rec.Reason))
			switch {
			case !rec.OK && strings.Contains(rec.Reason, "cloning the writable leader "+old) && strings.Contains(rec.Reason, "no longer the leader"):
				abandoned = true
			case rec.OK && abandoned && strings.Contains(rec.Reason, "cloning the writable leader "+newPrimary):
				done = true
			}
		}
		if !abandoned || !done {
			return fmt.Errorf("clone records of node3: want one from %s abandoned, then one from %s done: %v", old, newPrimary, reasons)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.queryOn(ctx, "node3", "SELECT 'ok' FROM pg_tables WHERE tablename = 'ballast'"); err != nil {
		t.Errorf("node3 lacks the primary's data: %v", err)
	}
}

// TestForeignDataDirectoryRefused: node3's data directory holds another
// cluster (initdb run there by hand: another system identifier). Its
// agent refuses it, saying why, and leaves it as it was: no server
// started, no standby configuration written, no file changed or moved.
func TestForeignDataDirectoryRefused(t *testing.T) {
	ctx := testCtx(t, 4*time.Minute)
	c := newCluster(t, clusterOptions{nodes: 3, empty: true})
	c.startAgent("node1")
	c.startAgent("node2")
	s := c.store()
	primary := c.waitWritablePrimary(ctx, s)

	n3, err := c.lab.Node("node3")
	if err != nil {
		t.Fatal(err)
	}
	ctl := c.lab.Ctl(n3)
	if _, err := ctl.Runner.Run(ctx, ctl.Bin(c.lab.Flavor().InitDBBinary), "-D", n3.DataDir, "--no-sync", "--no-locale", "-A", "peer"); err != nil {
		t.Fatal(err)
	}
	foreign, err := ctl.ControlData(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := snapshotDir(t, n3.DataDir)

	c.startAgent("node3")
	log := c.Dir + "/node3.agent.log"
	want := "refused: the data directory holds system " + foreign.SystemID
	if err := eventually(ctx, 60*time.Second, func() error {
		if !strings.Contains(readFile(t, log), want) {
			return fmt.Errorf("node3's log does not say %q", want)
		}
		v, err := s.Snapshot(ctx)
		if err != nil {
			return err
		}
		if m, ok := v.Members["node3"]; !ok || m.SystemID != foreign.SystemID {
			return fmt.Errorf("node3 published %+v", m)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Ten more loops of node3's agent (each publishes its member record):
	// a refusal that held once must go on holding.
	v0, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	refusedAt := v0.Members["node3"].UpdatedAt
	if err := eventually(ctx, 60*time.Second, func() error {
		v, err := s.Snapshot(ctx)
		if err != nil {
			return err
		}
		if at := v.Members["node3"].UpdatedAt; at.Sub(refusedAt) < 10*300*time.Millisecond {
			return fmt.Errorf("node3's agent published last at %s, first refused at %s", at, refusedAt)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if running, _, err := ctl.Status(ctx); err != nil || running {
		t.Errorf("node3's foreign server running %v (%v): it must not be started", running, err)
	}
	if after := snapshotDir(t, n3.DataDir); after != before {
		t.Errorf("node3's data directory changed:\nbefore %s\nafter  %s", before, after)
	}
	if aside, _ := filepath.Glob(n3.DataDir + ".vigil-*"); len(aside) > 0 {
		t.Errorf("something was moved aside or marked: %v", aside)
	}
	if _, ok := historyRecord(ctx, c, "clone", "node3"); ok {
		t.Errorf("node3 was cloned over its foreign data")
	}
	v, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.Leader != primary || v.Initialize == nil || v.Initialize.SystemID == foreign.SystemID {
		t.Errorf("leader %s (want %s), initialize key %+v", v.Leader, primary, v.Initialize)
	}
}

// snapshotDir describes every file under dir by path, size and content
// digest, so that any change shows.
func snapshotDir(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s:%d:%x ", strings.TrimPrefix(path, dir), len(data), sha256.Sum256(data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
