package bootstrap

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/lab"
	"github.com/vigil-ha/vigil/internal/lab/labtest"
	"github.com/vigil-ha/vigil/internal/pgctl"
	"github.com/vigil-ha/vigil/internal/timeline"
)

// emptyNode is a lab node without a data directory, and a builder for it
// configured as labcluster configures an empty lab's agents.
func emptyNode(t *testing.T, l *lab.Lab, name string) (*database.Server, *Builder) {
	t.Helper()
	srv := labtest.Server(t, l, name)
	n, err := l.Node(name)
	if err != nil {
		t.Fatal(err)
	}
	params := map[string]string{}
	for _, s := range l.NodeSettings(n) {
		params[s.Name] = s.Value
	}
	su, superPW, err := l.Superuser()
	if err != nil {
		t.Fatal(err)
	}
	ru, replPW, err := l.Replication()
	if err != nil {
		t.Fatal(err)
	}
	b := New(srv, Options{
		Method:   MethodInitDB,
		InitDB:   pgctl.InitDBOptions{Superuser: su, DataChecksums: true, Encoding: "UTF8", Extra: []string{"--no-locale", "--no-sync"}},
		Settings: database.ServerSettings{Port: n.Port, Parameters: params},
		Networks: []string{"127.0.0.1/32"}, ReplicationUser: ru, ReplicationPassword: replPW, SuperuserPassword: superPW,
		StreamTimeout: time.Minute,
	})
	return srv, b
}

func stepNames(r timeline.Record) string {
	var names []string
	for _, s := range r.Steps {
		names = append(names, s.Name)
	}
	return strings.Join(names, " ")
}

// TestBootstrapAndClone: on two empty loopback nodes, Bootstrap creates a
// cluster with checksums, Vigil's settings, the replication role and
// schema vigil; Clone makes the second node a streaming standby of it,
// with its own port, reporting progress. A half-built directory is moved
// aside, never deleted; one holding another cluster is refused untouched.
func TestBootstrapAndClone(t *testing.T) {
	ctx := labtest.Context(t, 4*time.Minute)
	l := labtest.New(t, lab.Options{Nodes: 3, Empty: true})
	primary, b1 := emptyNode(t, l, "node1")

	// A half-built directory left by a build that died.
	if err := os.MkdirAll(filepath.Join(primary.Ctl.DataDir, "global"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(primary.Ctl.DataDir+".vigil-building", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if none, err := b1.NoData(); err != nil || !none {
		t.Fatalf("half-built directory: NoData = %v, %v; want true", none, err)
	}
	rec := timeline.New("bootstrap", "test", "node1", "", nil, nil)
	systemID, err := b1.Bootstrap(ctx, nil, rec)
	record := rec.Finish(err == nil, "")
	t.Logf("bootstrap:\n%s", timeline.Format(record))
	if err != nil {
		t.Fatal(err)
	}
	if none, err := b1.NoData(); err != nil || none {
		t.Fatalf("after the bootstrap: NoData = %v, %v; want false", none, err)
	}
	aside, _ := filepath.Glob(primary.Ctl.DataDir + ".vigil-halfbuilt-*")
	if len(aside) != 1 {
		t.Fatalf("half-built directories kept aside: %v, want one", aside)
	}
	if _, err := os.Stat(filepath.Join(aside[0], "global")); err != nil {
		t.Errorf("the half-built directory's content is gone: %v", err)
	}
	obs := labtest.Observe(t, ctx, primary)
	if obs.InRecovery || obs.SystemIdentifier != systemID {
		t.Fatalf("bootstrapped server: in recovery %v, system %s (returned %s)", obs.InRecovery, obs.SystemIdentifier, systemID)
	}
	conn := labtest.Connect(t, ctx, primary)
	var checksums, walLevel string
	if err := conn.QueryRow(ctx, "select current_setting('data_checksums'), current_setting('wal_level')").Scan(&checksums, &walLevel); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if checksums != "on" || walLevel != "replica" {
		t.Errorf("data_checksums %s, wal_level %s", checksums, walLevel)
	}
	if p := primary.ProbeWrite(ctx); !p.Writable() {
		t.Fatalf("write probe on the new cluster: %v", p)
	}

	standby, b2 := emptyNode(t, l, "node2")
	// A replica method that fails half-way (a restore that broke off),
	// then pg_basebackup: the second one builds the standby, and the
	// first one's leftovers are kept aside.
	b2.o.ReplicaMethods = []ReplicaMethod{
		{Name: MethodCommand, Command: []string{"/bin/sh", "-c", `echo partial > "$VIGIL_DATA_DIR/restored" && exit 3`}},
		{Name: MethodBaseBackup},
	}
	ru, _, _ := l.Replication()
	pass := l.PassFile()
	up := database.Upstream{Host: primary.Conn.Host, Port: primary.Conn.Port, User: ru, PassFile: pass, SlotName: "node2"}
	var reports int
	crec := timeline.New("clone", "test", "node2", "", nil, nil)
	ev, err := b2.Clone(ctx, up, crec, func(p Progress) {
		reports++
		if p.BytesTotal > 0 && p.BytesDone > p.BytesTotal*2 {
			t.Errorf("progress %+v", p)
		}
	})
	crecord := crec.Finish(err == nil, ev)
	t.Logf("clone (%d progress reports):\n%s", reports, timeline.Format(crecord))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stepNames(crecord), "clone_node_config") {
		t.Errorf("clone steps %s lack the node's own settings", stepNames(crecord))
	}
	sobs := labtest.Observe(t, ctx, standby)
	if !sobs.InRecovery || sobs.SystemIdentifier != systemID || sobs.WALReceiver == nil || sobs.WALReceiver.Status != "streaming" {
		t.Fatalf("clone: in recovery %v, system %s, receiver %+v", sobs.InRecovery, sobs.SystemIdentifier, sobs.WALReceiver)
	}
	if none, err := b2.NoData(); err != nil || none {
		t.Fatalf("after the clone: NoData = %v, %v; want false", none, err)
	}
	if !strings.Contains(stepNames(crecord), "clone_command") {
		t.Errorf("clone steps %s: the command method was not tried first", stepNames(crecord))
	}
	left, _ := filepath.Glob(standby.Ctl.DataDir + ".vigil-halfbuilt-*/restored")
	if len(left) != 1 {
		t.Errorf("the failed method's leftovers kept aside: %v, want one", left)
	}

	// node2 now holds the cluster: a build over it is refused, untouched.
	before, err := os.ReadFile(filepath.Join(standby.Ctl.DataDir, "global", "pg_control"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b2.Bootstrap(ctx, nil, timeline.New("bootstrap", "test", "node2", "", nil, nil)); err == nil || !strings.Contains(err.Error(), "refusing to build over it") {
		t.Fatalf("bootstrap over a cluster: %v, want a refusal", err)
	}
	after, err := os.ReadFile(filepath.Join(standby.Ctl.DataDir, "global", "pg_control"))
	if err != nil || string(before) != string(after) {
		t.Fatalf("the control file changed under a refused bootstrap (%v)", err)
	}

	// bootstrap.method command: node3 is restored from a backup (here a
	// base backup of node1 that the command takes itself), with the
	// recovery target given, and comes up as a primary of that system.
	restored, b3 := emptyNode(t, l, "node3")
	b3.o.Method = MethodCommand
	b3.o.RecoveryTarget = "immediate"
	b3.o.Command = []string{"/bin/sh", "-c", `test "$VIGIL_RECOVERY_TARGET" = immediate && exec ` + filepath.Join(l.BinDir(), "pg_basebackup") +
		` -D "$VIGIL_DATA_DIR" -X stream -c fast -d "host=` + primary.Conn.Host + ` port=` + strconv.Itoa(primary.Conn.Port) + ` user=` + ru + ` passfile=` + pass + `"`}
	rrec := timeline.New("bootstrap", "test", "node3", "", nil, nil)
	restoredID, err := b3.Bootstrap(ctx, nil, rrec)
	t.Logf("bootstrap by command:\n%s", timeline.Format(rrec.Finish(err == nil, "")))
	if err != nil {
		t.Fatal(err)
	}
	if robs := labtest.Observe(t, ctx, restored); robs.InRecovery || restoredID != systemID {
		t.Fatalf("restored server: in recovery %v, system %s, want a primary of %s", robs.InRecovery, restoredID, systemID)
	}
	if p := restored.ProbeWrite(ctx); !p.Writable() {
		t.Fatalf("write probe on the restored server: %v", p)
	}
}
