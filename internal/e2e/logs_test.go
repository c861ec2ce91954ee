package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/decision"
)

// TestIdleClusterLogsAreQuiet: once a 3-node cluster is healthy, 30 s of
// its agents' logs (their own lines and their embedded etcd members') hold
// no etcd "request stats" line and nothing at warning level or above: an
// operator reading the log of a healthy cluster should find nothing to
// worry about. Then, with one node down, the others say so without
// repeating etcd's dropped-message warning 20 times a second.
func TestIdleClusterLogsAreQuiet(t *testing.T) {
	// Network namespaces: a node whose link goes down blackholes etcd's
	// traffic as a real dead host does, which is what fills its buffers.
	c := newCluster(t, clusterOptions{nodes: 3, netns: true})
	ctx := testCtx(t, 4*time.Minute)
	nodes := []string{"node1", "node2", "node3"}
	for _, n := range nodes {
		c.startAgent(n)
	}
	s := c.store()
	leader := c.waitWritablePrimary(ctx, s)
	if err := eventually(ctx, 60*time.Second, func() error {
		v, err := s.Snapshot(ctx)
		if err != nil {
			return err
		}
		for _, n := range nodes {
			if m := v.Members[n]; n != leader && (m.Role != decision.RoleStandby || m.Upstream != leader) {
				return fmt.Errorf("%s is %s, upstream %q", n, m.Role, m.Upstream)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	offsets := logOffsets(t, c, nodes)
	time.Sleep(30 * time.Second)
	for _, n := range nodes {
		lines := logLinesSince(t, c, n, offsets[n])
		var bad []string
		for _, line := range lines {
			if why := noisy(line); why != "" {
				bad = append(bad, why+": "+line)
			}
		}
		t.Logf("%s: %d lines in 30 s", n, len(lines))
		if len(bad) > 0 {
			t.Errorf("%s's log of a healthy idle cluster has %d lines to worry about, the first:\n%s", n, len(bad), strings.Join(bad[:min(len(bad), 5)], "\n"))
		}
	}

	// A standby node dies. etcd's warnings about it repeat: its probes
	// every few seconds, and from some 30 s on (when TCP gives up on the
	// dead peer) one per raft message it cannot send, 20 a second.
	var standby string
	for _, n := range nodes {
		if n != leader {
			standby = n
		}
	}
	offsets = logOffsets(t, c, nodes)
	c.crashNode(ctx, standby)
	const down = 50 * time.Second
	time.Sleep(down)
	for _, n := range nodes {
		if n == standby {
			continue
		}
		counts := map[string]int{}
		for _, line := range logLinesSince(t, c, n, offsets[n]) {
			var e struct {
				Msg string `json:"msg"`
			}
			if json.Unmarshal([]byte(line), &e) == nil {
				counts[e.Msg]++
			}
		}
		t.Logf("%s's log in the %s after %s crashed: %v", n, down, standby, counts)
		// Each at most once per 30 s (per peer: one is down): twice in
		// 50 s; etcd alone writes hundreds of drops and some 20 probes.
		for msg, k := range counts {
			if k > 2 && (strings.HasPrefix(msg, "dropped internal Raft message") || msg == "prober detected unhealthy status") {
				t.Errorf("%s logged %q %d times in %s with one member down", n, msg, k, down)
			}
		}
	}
}

func agentLog(c *cluster, node string) string { return filepath.Join(c.dir, node+".agent.log") }

func logOffsets(t *testing.T, c *cluster, nodes []string) map[string]int64 {
	t.Helper()
	offsets := map[string]int64{}
	for _, n := range nodes {
		fi, err := os.Stat(agentLog(c, n))
		if err != nil {
			t.Fatal(err)
		}
		offsets[n] = fi.Size()
	}
	return offsets
}

// logLinesSince returns the non-empty lines node's agent logged after offset.
func logLinesSince(t *testing.T, c *cluster, node string, offset int64) []string {
	t.Helper()
	data := readFile(t, agentLog(c, node))[offset:]
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if line := bytes.TrimSpace(sc.Bytes()); len(line) > 0 {
			lines = append(lines, string(line))
		}
	}
	return lines
}

// noisy says what is wrong with an agent log line ("" when nothing): both
// slog (WARN, ERROR) and etcd's zap (warn, error, dpanic, panic, fatal)
// write JSON lines with a "level" and a "msg".
func noisy(line string) string {
	var e struct {
		Level string `json:"level"`
		Msg   string `json:"msg"`
	}
	if err := json.Unmarshal([]byte(line), &e); err != nil {
		return "not a JSON log line"
	}
	if e.Msg == "request stats" {
		return "an etcd request-stats line"
	}
	// etcd's own report that the host is starved of CPU (a loaded 2-core
	// test machine): true, worth an operator's eye, and not Vigil's noise.
	if strings.HasPrefix(e.Msg, "leader failed to send out heartbeat on time") {
		return ""
	}
	switch strings.ToLower(e.Level) {
	case "debug", "info":
		return ""
	default:
		return "level " + e.Level
	}
}
