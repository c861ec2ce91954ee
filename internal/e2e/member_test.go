package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
	"github.com/vigil-ha/vigil/internal/proc"
)

// TestMembershipGrowFailoverShrink: a netns lab of five PostgreSQL servers
// (node4 and node5 built as standbys) whose etcd cluster starts with the
// agents of node1..node3 only. `vigil ctl member add` adds node4, then
// node5, each started with the printed initial_cluster and
// initial_cluster_state: existing; their agents promote their members, so
// that etcd has five voting members and both new nodes stream from the
// primary. The primary's node crashes (kill -9 of agent and postmaster,
// link down) and a standby takes over. `member remove` then removes the
// dead node and one of the added ones: the cluster is back to three etcd
// members, the removed agent stopped by itself with exit status 0, neither
// removed node runs a vigil process or answers on its etcd ports, and one
// writable primary remains. Adding a name already present, removing the
// leader key's holder and, once a standby's agent died, removing the other
// standby (which would cost the quorum) are refused with exit status 2.
func TestMembershipGrowFailoverShrink(t *testing.T) {
	founders := []string{"node1", "node2", "node3"}
	c := newCluster(t, clusterOptions{nodes: 5, netns: true, edit: func(node string, cfg map[string]any) {
		embedded := cfg["dcs"].(map[string]any)["embedded"].(map[string]any)
		all := embedded["initial_cluster"].(map[string]string)
		initial := map[string]string{}
		for _, n := range founders {
			initial[n] = all[n]
		}
		embedded["initial_cluster"] = initial
	}})
	ctx := testCtx(t, 10*time.Minute)
	s := c.startAgents(ctx, founders...)
	checker := c.startSplitBrainChecker()
	checker.waitCommits(t, "node1")
	c.waitEtcdVoters(ctx, founders...)

	// Grow to five, one member at a time.
	for i, n := range []string{"node4", "node5"} {
		peer := c.embeddedSetting(n, "peer_url")
		out, code := c.ctl(ctx, "-o", "json", "member", "add", n, "--peer-url", peer)
		if code != 0 {
			t.Fatalf("member add %s: exit %d\n%s", n, code, out)
		}
		var added struct {
			Name                string            `json:"name"`
			InitialCluster      map[string]string `json:"initial_cluster"`
			InitialClusterState string            `json:"initial_cluster_state"`
		}
		if err := json.Unmarshal([]byte(out), &added); err != nil {
			t.Fatalf("member add %s -o json: %v\n%s", n, err, out)
		}
		if len(added.InitialCluster) != 4+i || added.InitialCluster[n] != peer || added.InitialClusterState != "existing" {
			t.Fatalf("member add %s printed %+v", n, added)
		}
		c.joinWith(n, added.InitialCluster)
		c.startAgent(n)
		voters := append(slices.Clone(founders), []string{"node4", "node5"}[:i+1]...)
		c.waitEtcdVoters(ctx, voters...)
	}
	// Adding a name already present is refused, with the member it names.
	if out, code := c.ctl(ctx, "member", "add", "node4", "--peer-url", "https://198.18.0.99:2380"); code != 2 || !strings.Contains(out, "a member named node4 is already present") {
		t.Errorf("second add of node4: exit %d\n%s", code, out)
	}
	for _, n := range []string{"node4", "node5"} {
		c.waitStreaming(ctx, s, n, "node1")
	}
	c.waitEtcdVoters(ctx, "node1", "node2", "node3", "node4", "node5")

	// The primary's node crashes; a standby takes over.
	c.crashNode(ctx, "node1")
	primary := c.waitWritablePrimary(ctx, s, "node1")
	t.Logf("%s took over from the crashed node1", primary)

	// The new primary's node holds the leader key: its removal is refused.
	if out, code := c.ctl(ctx, "member", "remove", primary); code != 2 || !strings.Contains(out, primary+" holds the leader key") {
		t.Errorf("remove of the primary's node %s: exit %d\n%s", primary, code, out)
	}
	// Shrink to three: the dead node, and an added node that is not the primary.
	second := "node4"
	if primary == "node4" {
		second = "node5"
	}
	for _, n := range []string{"node1", second} {
		out, code := c.ctl(ctx, "member", "remove", n)
		t.Logf("member remove %s (exit %d): %s", n, code, out)
		if code != 0 {
			t.Fatalf("member remove %s: exit %d", n, code)
		}
	}
	exitCtx, cancel := context.WithTimeout(ctx, time.Minute)
	code, err := c.WaitAgentExit(exitCtx, second)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 {
		t.Errorf("%s's agent exited with status %d after its member's removal, want 0", second, code)
	}
	if log := readFile(t, filepath.Join(c.dir, second+".agent.log")); !containsAll(log, "etcd member was removed from the cluster", "agent stopped") {
		t.Errorf("%s's agent log does not say it stopped for its removal:\n%s", second, tail(log, 30))
	}
	var left []string
	for _, n := range []string{"node2", "node3", "node4", "node5"} {
		if n != second {
			left = append(left, n)
		}
	}
	c.waitEtcdVoters(ctx, left...)
	for _, n := range []string{"node1", second} {
		c.checkNoMemberProcess(n)
	}
	if p := c.waitWritablePrimary(ctx, s); p != primary {
		t.Errorf("primary after the shrink = %s, want %s", p, primary)
	}
	for _, n := range left {
		if n != primary && c.server(n).ProbeWrite(ctx).Writable() {
			t.Errorf("%s accepts writes beside the primary %s", n, primary)
		}
	}
	checker.finish(t)

	// One standby's agent dies, with its etcd member: removing the other
	// standby would leave two voting members, one healthy, short of a
	// quorum of two. Refused, with the arithmetic; nothing changes.
	var standbys []string
	for _, n := range left {
		if n != primary {
			standbys = append(standbys, n)
		}
	}
	dead, target := standbys[0], standbys[1]
	if dead == "node3" { // c.ctl reaches etcd through node3's member
		dead, target = target, dead
	}
	c.killAgent(dead)
	out, code := c.ctl(ctx, "member", "remove", target)
	if want := fmt.Sprintf("removing %s leaves 2 voting members, of which 2 must be healthy for a quorum, and only 1 are (%s)", target, primary); code != 2 || !strings.Contains(out, want) {
		t.Errorf("removal that costs the quorum: exit %d, want 2 and %q:\n%s", code, want, out)
	}
	out, code = c.ctl(ctx, "-o", "json", "member", "list")
	var ms []dcs.EtcdMember
	if err := json.Unmarshal([]byte(out), &ms); code != 0 || err != nil || len(ms) != 3 {
		t.Errorf("member list after the refused removal: exit %d, %v, %d members, want 3\n%s", code, err, len(ms), out)
	}
}

// embeddedSetting reads dcs.embedded.KEY from node's configuration file.
func (c *cluster) embeddedSetting(node, key string) string {
	c.t.Helper()
	cfg := c.readConfig(node)
	v, _ := cfg["dcs"].(map[string]any)["embedded"].(map[string]any)[key].(string)
	if v == "" {
		c.t.Fatalf("%s's configuration has no dcs.embedded.%s", node, key)
	}
	return v
}

func (c *cluster) readConfig(node string) map[string]any {
	c.t.Helper()
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(readFile(c.t, c.ConfigPath(node))), &cfg); err != nil {
		c.t.Fatal(err)
	}
	return cfg
}

// joinWith rewrites node's configuration as `member add` said: the printed
// initial_cluster, and initial_cluster_state existing.
func (c *cluster) joinWith(node string, initial map[string]string) {
	c.t.Helper()
	cfg := c.readConfig(node)
	embedded := cfg["dcs"].(map[string]any)["embedded"].(map[string]any)
	embedded["initial_cluster"] = initial
	embedded["initial_cluster_state"] = "existing"
	data, err := yaml.Marshal(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(c.ConfigPath(node), data, 0o600); err != nil {
		c.t.Fatal(err)
	}
}

// waitEtcdVoters waits until `vigil ctl member list` shows exactly names,
// each a healthy voting member.
func (c *cluster) waitEtcdVoters(ctx context.Context, names ...string) {
	c.t.Helper()
	want := slices.Sorted(slices.Values(names))
	var last string
	err := eventually(ctx, 2*time.Minute, func() error {
		out, code := c.ctl(ctx, "-o", "json", "member", "list")
		last = out
		if code != 0 {
			return fmt.Errorf("member list: exit %d", code)
		}
		var ms []dcs.EtcdMember
		if err := json.Unmarshal([]byte(out), &ms); err != nil {
			return err
		}
		var got []string
		for _, m := range ms {
			if m.Learner || !m.Healthy {
				return fmt.Errorf("%s: learner %v, healthy %v", m.Label(), m.Learner, m.Healthy)
			}
			got = append(got, m.Name)
		}
		if slices.Sort(got); !slices.Equal(got, want) {
			return fmt.Errorf("members %v, want %v", got, want)
		}
		return nil
	})
	if err != nil {
		c.t.Fatalf("etcd members: %v\nlast member list:\n%s", err, last)
	}
}

// waitStreaming waits until node's agent publishes it as a standby of leader.
func (c *cluster) waitStreaming(ctx context.Context, s *dcs.Store, node, leader string) {
	c.t.Helper()
	err := eventually(ctx, 2*time.Minute, func() error {
		v, err := s.Snapshot(ctx)
		if err != nil {
			return err
		}
		if m, ok := v.Members[node]; !ok || m.Role != decision.RoleStandby || m.Upstream != leader {
			return fmt.Errorf("%s: published %v, role %s, upstream %q", node, ok, m.Role, m.Upstream)
		}
		return nil
	})
	if err != nil {
		c.t.Fatal(err)
	}
}

// checkNoMemberProcess fails the test when a process still runs with node's
// configuration, or anything answers on its etcd peer and client ports.
func (c *cluster) checkNoMemberProcess(node string) {
	c.t.Helper()
	path := c.ConfigPath(node)
	pids, err := proc.Processes(func(pid int) bool {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
		return err == nil && slices.Contains(strings.Split(string(b), "\x00"), path)
	})
	if err != nil {
		c.t.Fatal(err)
	}
	if len(pids) > 0 {
		c.t.Errorf("%s: processes %v still run with its configuration", node, pids)
	}
	for _, key := range []string{"peer_url", "client_url"} {
		u, err := url.Parse(c.embeddedSetting(node, key))
		if err != nil {
			c.t.Fatal(err)
		}
		if conn, err := net.DialTimeout("tcp", u.Host, time.Second); err == nil {
			conn.Close()
			c.t.Errorf("%s: something still listens on its etcd %s %s", node, key, u.Host)
		}
	}
}
