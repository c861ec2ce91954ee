package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/decision"
	"github.com/vigil-ha/vigil/internal/pgctl"
	"github.com/vigil-ha/vigil/internal/rejoin"
	"github.com/vigil-ha/vigil/internal/timeline"
)

// historyRecord returns the newest record of kind about node in the
// history.
func historyRecord(ctx context.Context, c *cluster, kind, node string) (timeline.Record, bool) {
	raw, err := c.store().History(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	var found timeline.Record
	ok := false
	for _, r := range raw {
		var rec timeline.Record
		if json.Unmarshal(r, &rec) == nil && rec.Kind == kind && rec.Node == node {
			found, ok = rec, true
		}
	}
	return found, ok
}

// TestReinitRebuildsADamagedStandby: `vigil ctl reinit` refuses the
// leader, an unknown node and a paused cluster, saying so; then node3's
// control file is removed and its server stopped, so that it can no
// longer start, and `vigil ctl reinit node3` rebuilds it from the primary:
// exit 0 once node3 streams, the damaged data directory kept aside, a
// reinit record naming who asked, and node3 replicating new writes.
func TestReinitRebuildsADamagedStandby(t *testing.T) {
	c := newCluster(t, clusterOptions{nodes: 3})
	ctx := testCtx(t, 8*time.Minute)
	s := c.startAgents(ctx)
	if err := waitStreamsFrom(ctx, c, "node3", "node1"); err != nil {
		t.Fatal(err)
	}
	p := c.server("node1").Conn
	conn, err := connect(ctx, p.Host, p.Port, p.User, p.Password, p.Database)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE reinit_probe (tag text)"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	insert := func(tag string) {
		t.Helper()
		if _, err := c.queryOn(ctx, "node1", "WITH i AS (INSERT INTO reinit_probe (tag) VALUES ($1) RETURNING 1) SELECT count(*)::text FROM i", tag); err != nil {
			t.Fatal(err)
		}
	}
	insert("before")

	// Refusals: exit 2, the reason said, nothing requested.
	for _, tc := range []struct {
		name, node, want string
		paused           bool
	}{
		{"the leader", "node1", "node1 is the leader", false},
		{"an unknown node", "node9", "node9 is not a live member", false},
		{"while paused", "node3", "the cluster is paused", true},
	} {
		if tc.paused {
			if out, code := c.ctl(ctx, "pause"); code != 0 {
				t.Fatalf("ctl pause: exit %d\n%s", code, out)
			}
		}
		out, code := c.ctl(ctx, "reinit", tc.node)
		if code != 2 || !strings.Contains(out, tc.want) {
			t.Errorf("ctl reinit %s (%s): exit %d, want 2 saying %q:\n%s", tc.node, tc.name, code, tc.want, out)
		}
		if tc.paused {
			if out, code := c.ctl(ctx, "resume"); code != 0 {
				t.Fatalf("ctl resume: exit %d\n%s", code, out)
			}
		}
	}
	if v, err := s.Snapshot(ctx); err != nil {
		t.Fatal(err)
	} else if v.Request != nil {
		t.Fatalf("a refused reinit left a request: %+v", *v.Request)
	}

	// The damage: no control file, so the server cannot start again.
	n3, err := c.lab.Node("node3")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(n3.DataDir, "global", "pg_control")); err != nil {
		t.Fatal(err)
	}
	// A restartpoint may have ended the server already (it rewrites the
	// control file); then there is nothing to stop.
	if err := c.lab.Stop(ctx, n3, pgctl.Immediate); err != nil {
		t.Logf("stop node3: %v", err)
	}
	if err := eventually(ctx, 30*time.Second, func() error {
		v, err := s.Snapshot(ctx)
		if err != nil {
			return err
		}
		if m := v.Members["node3"]; m.Role != decision.RoleStopped {
			return fmt.Errorf("node3 published as %s, want stopped", m.Role)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Its agent keeps trying to start it; so does this, and fails.
	if err := c.lab.Start(ctx, n3); err == nil {
		t.Fatal("node3 started without its control file: the damage does not stop it")
	} else {
		t.Logf("node3 cannot start: %v", err)
	}

	out := ctlRebuild(ctx, t, c, s, "reinit", "node3", "node1")
	if !containsAll(out, "reinit succeeded on node3", rejoin.StepReinitBaseBackup, "old data directory kept at", "requested by") {
		t.Errorf("ctl reinit did not print the reinit's record with where the old data went and who asked")
	}
	if err := waitStreamsFrom(ctx, c, "node3", "node1"); err != nil {
		t.Fatal(err)
	}
	insert("after")
	if err := eventually(ctx, 30*time.Second, func() error {
		tags, err := c.queryOn(ctx, "node3", "SELECT string_agg(tag, ',' ORDER BY tag) FROM reinit_probe")
		if err != nil {
			return err
		}
		if tags != "after,before" {
			return fmt.Errorf("node3 has rows %q", tags)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}

	rec, ok := historyRecord(ctx, c, "reinit", "node3")
	if !ok || !rec.OK || rec.RequestedBy == "" {
		t.Fatalf("node3's reinit record: %+v", rec)
	}
	var inspected string
	for _, st := range rec.Steps {
		if st.Name == rejoin.StepReinitInspect {
			inspected = st.Evidence
		}
	}
	if !strings.Contains(inspected, "control file unreadable") {
		t.Errorf("the record does not say the control file was unreadable: %q", inspected)
	}
	_, kept, found := strings.Cut(rec.Reason, "old data directory kept at ")
	if !found {
		t.Fatalf("the record does not say where the old data directory went: %s", rec.Reason)
	}
	kept, _, _ = strings.Cut(kept, ";")
	kept = strings.TrimSpace(kept)
	// The old directory is the damaged one, kept whole but for the file
	// removed; the new one has a control file again.
	if _, err := os.Stat(filepath.Join(kept, "PG_VERSION")); err != nil {
		t.Errorf("old data directory %q: %v", kept, err)
	}
	if _, err := os.Stat(filepath.Join(kept, "global", "pg_control")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("old data directory %q has a control file (%v): not the damaged one", kept, err)
	}
	if _, err := os.Stat(filepath.Join(n3.DataDir, "global", "pg_control")); err != nil {
		t.Errorf("the rebuilt data directory: %v", err)
	}
	if err := eventually(ctx, 10*time.Second, func() error {
		v, err := s.Snapshot(ctx)
		if err != nil {
			return err
		}
		if v.Request != nil {
			return fmt.Errorf("request still pending: %+v", *v.Request)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}
