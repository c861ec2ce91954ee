package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/workload"
	"github.com/vigil-ha/vigil/internal/workload/workloadtest"
)

// ctlMembers is the per-member part of `vigil ctl list -o json` that the
// cluster-wide settings change.
type ctlMembers struct {
	Members []struct {
		Name           string   `json:"name"`
		PendingRestart []string `json:"pending_restart"`
		State          string   `json:"state"`
	} `json:"members"`
}

// settingsRevision reads the settings key's revision.
func settingsRevision(ctx context.Context, t *testing.T, s *dcs.Store) dcs.View {
	t.Helper()
	v, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// waitCatalog waits for the leader's parameter catalog, which edits are
// checked against and its agent publishes once it leads.
func waitCatalog(ctx context.Context, t *testing.T, s *dcs.Store) {
	t.Helper()
	if err := eventually(ctx, 30*time.Second, func() error {
		if _, ok, err := s.Catalog(ctx); err != nil || !ok {
			return fmt.Errorf("no parameter catalog yet (err %v)", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// waitApplied waits until every member's agent reports that its server
// has the settings of revision rev.
func waitApplied(ctx context.Context, t *testing.T, s *dcs.Store, rev int64, members int) {
	t.Helper()
	if err := eventually(ctx, 30*time.Second, func() error {
		v, err := s.Snapshot(ctx)
		if err != nil {
			return err
		}
		if len(v.Members) != members {
			return fmt.Errorf("%d members, want %d", len(v.Members), members)
		}
		for name, m := range v.Members {
			if m.SettingsApplied < rev {
				return fmt.Errorf("%s applied revision %d, want %d", name, m.SettingsApplied, rev)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestEditConfigAppliesEverywhereAndShowsPendingRestart: against a real
// three-node cluster, a refused edit (unknown parameter, wrong type, a
// lease TTL that breaks the lease arithmetic) names its rule and changes
// nothing; a reload parameter set with `ctl edit-config --set` is in
// effect on every server; a restart parameter shows as pending restart on
// every member in `ctl list` and /cluster.
func TestEditConfigAppliesEverywhereAndShowsPendingRestart(t *testing.T) {
	c := newCluster(t, clusterOptions{nodes: 3, api: true})
	ctx := testCtx(t, 4*time.Minute)
	s := c.startAgents(ctx)
	waitCatalog(ctx, t, s)

	for _, bad := range []struct{ set, rule string }{
		{"postgresql.parameters.wrok_mem=12MB", "wrok_mem is not a parameter of this server (did you mean work_mem?)"},
		{"postgresql.parameters.log_connections=maybe", "log_connections is a boolean"},
		{"postgresql.parameters.work_mem=12 parsecs", "is not valid here"},
		{"postgresql.parameters.synchronous_standby_names=node2", "set by Vigil's agents"},
		{"timing.lease_ttl=1s", "timing.lease_ttl"},
	} {
		out, code := c.ctl(ctx, "edit-config", "--set", bad.set)
		if code != 2 || !strings.Contains(out, bad.rule) || !strings.Contains(out, "nothing changed") {
			t.Errorf("edit-config --set %s: exit %d, want 2 and the rule %q:\n%s", bad.set, code, bad.rule, out)
		}
	}
	if v := settingsRevision(ctx, t, s); v.SettingsRevision != 0 {
		t.Fatalf("refused edits wrote the settings: revision %d, %+v", v.SettingsRevision, v.Settings)
	}

	// A reload parameter: in effect on every server, standbys included.
	out, code := c.ctl(ctx, "edit-config", "--set", "postgresql.parameters.work_mem=12MB", "--set", "postgresql.parameters.log_min_duration_statement=250ms")
	if code != 0 {
		t.Fatalf("edit-config: exit %d\n%s", code, out)
	}
	rev := settingsRevision(ctx, t, s).SettingsRevision
	waitApplied(ctx, t, s, rev, 3)
	for _, n := range []string{"node1", "node2", "node3"} {
		if err := eventually(ctx, 10*time.Second, func() error {
			got, err := c.queryOn(ctx, n, "SELECT current_setting('work_mem') || ' ' || current_setting('log_min_duration_statement')")
			if err != nil || got != "12MB 250ms" {
				return fmt.Errorf("%s: work_mem, log_min_duration_statement = %q (err %v), want 12MB 250ms", n, got, err)
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
	}
	if out, _ := c.ctl(ctx, "show-config"); !containsAll(out, "work_mem: 12MB", "log_min_duration_statement: 250ms") {
		t.Errorf("show-config does not show the parameters:\n%s", out)
	}

	// A restart parameter: pending restart on every member, in ctl list
	// and in /cluster, and the running value unchanged.
	out, code = c.ctl(ctx, "edit-config", "--set", "postgresql.parameters.max_connections=123")
	if code != 0 || !strings.Contains(out, "pending restart on every member: postgresql.parameters.max_connections") {
		t.Fatalf("edit-config of a restart parameter: exit %d\n%s", code, out)
	}
	if err := eventually(ctx, 30*time.Second, func() error {
		out, _ := c.ctl(ctx, "list", "-o", "json")
		var l ctlMembers
		if err := json.Unmarshal([]byte(out), &l); err != nil {
			return fmt.Errorf("ctl list -o json: %v: %s", err, out)
		}
		if len(l.Members) != 3 {
			return fmt.Errorf("ctl list shows %d members", len(l.Members))
		}
		for _, m := range l.Members {
			if !slices.Contains(m.PendingRestart, "max_connections") || !strings.Contains(m.State, "PENDING RESTART (max_connections)") {
				return fmt.Errorf("ctl list: %s pending %v, state %q", m.Name, m.PendingRestart, m.State)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	code, body := apiGet(t, c.APIURL("node2")+"/cluster")
	var cl struct {
		Members []struct {
			Name           string   `json:"name"`
			PendingRestart []string `json:"pending_restart"`
		} `json:"members"`
	}
	if err := json.Unmarshal([]byte(body), &cl); code != 200 || err != nil || len(cl.Members) != 3 {
		t.Fatalf("GET /cluster = %d (%v): %s", code, err, body)
	}
	for _, m := range cl.Members {
		if !slices.Equal(m.PendingRestart, []string{"max_connections"}) {
			t.Errorf("/cluster: %s pending restart %v, want [max_connections]", m.Name, m.PendingRestart)
		}
	}
	if got, err := c.queryOn(ctx, "node1", "SELECT current_setting('max_connections')"); err != nil || got == "123" {
		t.Errorf("max_connections = %q (err %v): a restart parameter took effect without a restart", got, err)
	}

	// Removing a parameter resets it on every server.
	out, code = c.ctl(ctx, "edit-config", "--file", writeSettingsFile(t, t.TempDir(), "postgresql:\n  parameters:\n    max_connections: \"123\"\n    log_min_duration_statement: 250ms\n"))
	if code != 0 || !strings.Contains(out, "postgresql.parameters.work_mem") {
		t.Fatalf("edit-config --file: exit %d\n%s", code, out)
	}
	waitApplied(ctx, t, s, settingsRevision(ctx, t, s).SettingsRevision, 3)
	for _, n := range []string{"node1", "node2", "node3"} {
		if err := eventually(ctx, 10*time.Second, func() error {
			got, err := c.queryOn(ctx, n, "SELECT current_setting('work_mem') || ' from ' || coalesce(sourcefile, source) FROM pg_settings WHERE name = 'work_mem'")
			if err != nil || strings.HasPrefix(got, "12MB") || strings.HasSuffix(got, "postgresql.auto.conf") {
				return fmt.Errorf("%s: work_mem = %q (err %v), want it reset out of postgresql.auto.conf", n, got, err)
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
	}
	if out, _ := c.ctl(ctx, "history"); !strings.Contains(out, "cluster-wide settings changed") {
		t.Errorf("ctl history has no record of the edits:\n%s", out)
	}

	// A scheduled rolling restart: the command returns at once, the
	// agents start no turn before the time and carry the whole plan out
	// without it; afterwards nothing is pending and the new value holds.
	at := time.Now().Add(3 * time.Second).Truncate(time.Second).Add(time.Second)
	out, code = c.ctl(ctx, "restart", "--pending", "--scheduled", at.Format(time.RFC3339))
	if code != 0 || !strings.Contains(out, "scheduled for") {
		t.Fatalf("ctl restart --scheduled: exit %d\n%s", code, out)
	}
	if err := eventually(ctx, 2*time.Minute, func() error {
		v, err := s.Snapshot(ctx)
		if err != nil {
			return err
		}
		if v.Restart != nil {
			return fmt.Errorf("restart in progress: %+v", v.Restart)
		}
		for name, m := range v.Members {
			if len(m.PendingRestart) > 0 {
				return fmt.Errorf("%s still pending restart %v", name, m.PendingRestart)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	recs, err := s.History(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var turns []string
	for _, raw := range recs {
		var rec struct {
			Kind, Node, Reason string
			Start              time.Time
		}
		if json.Unmarshal(raw, &rec) != nil || rec.Kind != "restart" || !strings.Contains(rec.Reason, "start turn") && !strings.Contains(rec.Reason, "restart switchover") {
			continue
		}
		turns = append(turns, rec.Node)
		if rec.Start.Before(at) {
			t.Errorf("turn of %s began at %s, before the scheduled %s", rec.Node, rec.Start, at)
		}
	}
	if !slices.Equal(turns, []string{"node2", "node3", "node1"}) {
		t.Errorf("turns %v, want node2, node3, then node1 (the leader, by a switchover)", turns)
	}
	for _, n := range []string{"node1", "node2", "node3"} {
		if got, err := c.queryOn(ctx, n, "SELECT current_setting('max_connections')"); err != nil || got != "123" {
			t.Errorf("%s: max_connections = %q (err %v) after the restart, want 123", n, got, err)
		}
	}

	// Cluster-wide timing: the running agents say it waits for their
	// restart; a restarted agent takes it from the DCS over its file.
	if out, code := c.ctl(ctx, "edit-config", "--set", "timing.lease_ttl=4s"); code != 0 || !strings.Contains(out, "timing") {
		t.Fatalf("edit-config --set timing.lease_ttl=4s: exit %d\n%s", code, out)
	}
	if out, _ := c.ctl(ctx, "show-config"); !containsAll(out, "lease_ttl: 4s", "loop_interval: 300ms", "synchronous_mode: ") {
		t.Errorf("show-config after the timing edit:\n%s", out)
	}
	if err := eventually(ctx, 30*time.Second, func() error {
		if log := readFile(t, filepath.Join(c.dir, "node3.agent.log")); !strings.Contains(log, "cluster-wide timing differs from this agent's") {
			return fmt.Errorf("node3's agent does not say the new timing waits for its restart")
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	if err := c.StopAgent("node3", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	c.startAgent("node3")
	if err := eventually(ctx, 30*time.Second, func() error {
		log := readFile(t, filepath.Join(c.dir, "node3.agent.log"))
		took := strings.Contains(log, `"lease_ttl":4000000000`) || strings.Contains(log, "lease_ttl=4s") // JSON or text log
		if !strings.Contains(log, "timing and failover policy from the DCS") || !took {
			return fmt.Errorf("restarted node3's agent did not take its timing from the DCS")
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}

func writeSettingsFile(t *testing.T, dir, content string) string {
	t.Helper()
	path := filepath.Join(dir, "settings.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRollingRestartPendingUnderWrites: a restart parameter set with
// edit-config, then `ctl restart --pending` while a client writes through
// the VIP from its own namespace. Every member restarts once (its
// postmaster start time moves, one turn each in the history), the
// standbys first and the old primary by a switchover; no acknowledged
// write is lost; the new value is in effect everywhere and no member is
// left pending restart; the command reports the write outage.
func TestRollingRestartPendingUnderWrites(t *testing.T) {
	c := newCluster(t, clusterOptions{nodes: 3, netns: true, vip: 100})
	ctx := testCtx(t, 6*time.Minute)
	s := c.startAgents(ctx)
	waitCatalog(ctx, t, s)
	if out, code := c.ctl(ctx, "edit-config", "--set", "postgresql.parameters.max_connections=123"); code != 0 {
		t.Fatalf("edit-config: exit %d\n%s", code, out)
	}
	nodes := []string{"node1", "node2", "node3"}
	if err := eventually(ctx, 30*time.Second, func() error {
		v, err := s.Snapshot(ctx)
		if err != nil {
			return err
		}
		for _, n := range nodes {
			if m := v.Members[n]; !slices.Contains(m.PendingRestart, "max_connections") {
				return fmt.Errorf("%s pending restart %v", n, m.PendingRestart)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	started := map[string]string{}
	for _, n := range nodes {
		at, err := c.queryOn(ctx, n, "SELECT pg_postmaster_start_time()::text")
		if err != nil {
			t.Fatal(err)
		}
		started[n] = at
	}

	user, password, err := c.lab.Superuser()
	if err != nil {
		t.Fatal(err)
	}
	n1, _ := c.lab.Node("node1")
	through := workload.Options{Host: c.VIP(), Port: n1.Port, User: user, Password: password, Database: c.lab.Flavor().DefaultDatabase, Timeout: time.Second}
	if err := eventually(ctx, 30*time.Second, func() error { return workload.Prepare(ctx, through) }); err != nil {
		t.Fatalf("prepare the workload table through the VIP: %v", err)
	}
	client, err := c.lab.AddClient(ctx, "client")
	if err != nil {
		t.Fatal(err)
	}
	wl := workloadtest.Start(t, vigilBin, workloadtest.Target{Netns: client.Netns, Host: c.VIP(), Port: n1.Port,
		User: user, PasswordFile: c.lab.SuperuserPasswordFile(), Database: through.Database})

	start := time.Now()
	out, code := c.ctl(ctx, "restart", "--pending")
	t.Logf("ctl restart --pending (%.1f s):\n%s", time.Since(start).Seconds(), out)
	if code != 0 || !containsAll(out, "requested: node2, then node3, then node1", "write outage:", "done: node2, node3, node1") {
		t.Fatalf("ctl restart --pending: exit %d", code)
	}
	primary := c.waitWritablePrimary(ctx, s, "node1")
	// Writes through the VIP after the switchover, on the new primary.
	if err := eventually(ctx, 30*time.Second, func() error {
		got, err := c.queryOn(ctx, primary, "SELECT count(*)::text FROM "+workload.Table+" WHERE at > now() - interval '1 second'")
		if err != nil || got == "0" {
			return fmt.Errorf("no recent write on %s (%q, err %v)", primary, got, err)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	res := wl.Stop(t)
	acked := res.Acked()
	direct := through
	pn, _ := c.lab.Node(primary)
	direct.Host, direct.Port = pn.Host, pn.Port
	lost, err := workload.Lost(ctx, direct, acked)
	if err != nil {
		t.Fatal(err)
	}
	if len(lost) != 0 || len(acked) < workloadtest.Rate {
		t.Errorf("%d of %d acknowledged writes lost: %v", len(lost), len(acked), lost)
	}
	t.Logf("%d writes acknowledged, none lost; outage after the restart began: %s", len(acked), res.OutageAfter(start))

	// Every member restarted, once: a new postmaster, one turn each.
	recs, err := s.History(ctx)
	if err != nil {
		t.Fatal(err)
	}
	turns := map[string]int{}
	for _, raw := range recs {
		var rec struct {
			Kind, Node, Reason string
		}
		if json.Unmarshal(raw, &rec) == nil && rec.Kind == "restart" && (strings.Contains(rec.Reason, "start turn") || strings.Contains(rec.Reason, "restart switchover")) {
			turns[rec.Node]++
		}
	}
	for _, n := range nodes {
		if turns[n] != 1 {
			t.Errorf("%s had %d restart turns, want 1 (%v)", n, turns[n], turns)
		}
		if err := eventually(ctx, 30*time.Second, func() error {
			at, err := c.queryOn(ctx, n, "SELECT pg_postmaster_start_time()::text || ' ' || current_setting('max_connections')")
			if err != nil || !strings.HasSuffix(at, " 123") || strings.HasPrefix(at, started[n]) {
				return fmt.Errorf("%s: started, max_connections = %q (err %v); it started at %s before", n, at, err, started[n])
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
	}
	if err := eventually(ctx, 30*time.Second, func() error {
		v, err := s.Snapshot(ctx)
		if err != nil {
			return err
		}
		for _, n := range nodes {
			if m := v.Members[n]; len(m.PendingRestart) > 0 || (n != primary && m.Upstream != primary) {
				return fmt.Errorf("%s: pending restart %v, upstream %q", n, m.PendingRestart, m.Upstream)
			}
		}
		if v.Restart != nil {
			return fmt.Errorf("restart plan still stored: %+v", v.Restart)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}
