package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/creack/pty"

	"github.com/vigil-ha/vigil/internal/agent"
	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/failover"
	"github.com/vigil-ha/vigil/internal/lab"
)

// ptyScreen is what a program wrote to a pseudo-terminal, cut into the
// frames that `ctl list --watch` draws after clearing the screen.
type ptyScreen struct {
	mu   sync.Mutex
	text string // carriage returns removed
}

// copyFrom reads the terminal until the program is gone (the terminal
// then reads as an error).
func (p *ptyScreen) copyFrom(term io.Reader) {
	chunk := make([]byte, 4096)
	for {
		n, err := term.Read(chunk)
		p.mu.Lock()
		p.text += strings.ReplaceAll(string(chunk[:n]), "\r", "")
		p.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// frames are the frames drawn completely so far: each is followed by the
// next one's clear.
func (p *ptyScreen) frames() []string {
	p.mu.Lock()
	parts := strings.Split(p.text, "\x1b[H\x1b[2J")
	p.mu.Unlock()
	if len(parts) < 2 {
		return nil
	}
	return parts[1 : len(parts)-1]
}

// waitFrame waits for a frame after the first from ones that satisfies
// want (nil when it does) and returns its index.
func (p *ptyScreen) waitFrame(ctx context.Context, from int, d time.Duration, want func(frame string) error) (int, string, error) {
	var at int
	var frame string
	err := eventually(ctx, d, func() error {
		fs := p.frames()
		if len(fs) <= from {
			return fmt.Errorf("%d frames drawn, waiting for more", len(fs))
		}
		var last error
		for i := from; i < len(fs); i++ {
			if last = want(fs[i]); last == nil {
				at, frame = i, fs[i]
				return nil
			}
		}
		return fmt.Errorf("newest frame: %w:\n%s", last, fs[len(fs)-1])
	})
	return at, frame, err
}

// TestCtlListWatchFollowsASwitchover drives `vigil ctl list --watch
// --interval 200ms` through a pseudo-terminal while `vigil ctl switchover`
// moves the primary from node1 to node2: the frames show the switchover
// with one of its steps, then node2 as the leader with the operation gone;
// a terminal made narrower than the table gets one line per member; Ctrl-C
// ends the watch with exit status 0.
func TestCtlListWatchFollowsASwitchover(t *testing.T) {
	c := newCluster(t, clusterOptions{nodes: 3})
	ctx := testCtx(t, 4*time.Minute)
	c.startAgents(ctx)
	// A switchover goes only to a standby that streams from the leader.
	if err := eventually(ctx, 30*time.Second, func() error {
		l, _ := c.list(ctx)
		for _, m := range l.Members {
			if m.Name == "node2" && m.Upstream == "node1" && m.Role == "standby" {
				return nil
			}
		}
		return fmt.Errorf("node2 does not stream from node1 yet: %+v", l.Members)
	}); err != nil {
		t.Fatal(err)
	}

	watch := exec.CommandContext(ctx, vigilBin, "ctl", "--config", c.ConfigPath("node3"), "list", "--watch", "--interval", "200ms")
	term, err := pty.StartWithSize(watch, &pty.Winsize{Rows: 60, Cols: 200})
	if err != nil {
		t.Fatalf("start ctl list --watch under a pseudo-terminal: %v", err)
	}
	screen := &ptyScreen{}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		screen.copyFrom(term)
	}()
	exited := make(chan error, 1)
	go func() { exited <- watch.Wait() }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = watch.Process.Kill()
			<-exited
		}
		term.Close()
		<-copied
	})

	at, _, err := screen.waitFrame(ctx, 0, 30*time.Second, func(f string) error {
		if !containsAll(f, "cluster e2e, leader node1", "MEMBER", "node2 ", "node3 ") {
			return errors.New("no table with node1 leading")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	switched := make(chan string, 1)
	go func() {
		out, err := exec.CommandContext(ctx, vigilBin, "ctl", "--config", c.ConfigPath("node3"), "switchover", "--to", "node2").CombinedOutput()
		switched <- fmt.Sprintf("exit %v\n%s", err, out)
	}()

	steps := []string{agent.StepRoutesDown, agent.StepCleanStop, agent.StepTargetCaughtUp, agent.StepFollowTarget, agent.StepHandOver,
		failover.StepAcquireLeader, failover.StepFence, failover.StepPromote, failover.StepReadinessGate, failover.StepSynchronous,
		failover.StepCheckpoint, failover.StepPublish, failover.StepRoutesUp, failover.StepRoutesProbe, failover.StepStandbysFollow}
	inProgress := regexp.MustCompile(`IN PROGRESS: switchover node1 -> node2, [0-9.]+m?s, requested by [^;]+; step (` + strings.Join(steps, "|") + `) (done|FAILED|running) on node[12]`)
	at, stepFrame, err := screen.waitFrame(ctx, at, time.Minute, func(f string) error {
		if !inProgress.MatchString(f) {
			return errors.New("no switchover step in progress")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("frame %d shows the switchover in progress:\n%s", at, stepFrame)

	at, leaderFrame, err := screen.waitFrame(ctx, at+1, time.Minute, func(f string) error {
		switch {
		case !strings.Contains(f, "cluster e2e, leader node2"):
			return errors.New("node2 does not lead yet")
		case strings.Contains(f, "IN PROGRESS"):
			return errors.New("node2 leads, the switchover is still shown in progress")
		case !regexp.MustCompile(`(?m)^node2\*\s.*writable primary\s+\S+$`).MatchString(f):
			return errors.New("node2's row is not the writable primary")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("frame %d shows the new leader:\n%s", at, leaderFrame)
	var progress []string
	for _, f := range screen.frames()[:at] {
		for l := range strings.Lines(f) {
			if strings.HasPrefix(l, "IN PROGRESS") && (len(progress) == 0 || progress[len(progress)-1] != l) {
				progress = append(progress, l)
			}
		}
	}
	t.Logf("operation lines, in order:\n%s", strings.Join(progress, ""))
	// The agents publish their procedure step by step: the watch shows
	// the step an agent reports, not only what the keys prove.
	if !slices.ContainsFunc(progress, func(l string) bool { return strings.Contains(l, ", live)") }) {
		t.Errorf("no frame showed a step an agent reported live")
	}
	if out := <-switched; !strings.HasPrefix(out, "exit <nil>") {
		t.Errorf("vigil ctl switchover --to node2: %s", out)
	}

	// The tree once every standby follows the new primary.
	if err := eventually(ctx, 30*time.Second, func() error { return c.wantTopology(ctx, "node2(node1,node3)") }); err != nil {
		t.Error(err)
	}
	tree, _ := c.ctl(ctx, "topology")
	t.Logf("ctl topology:\n%s", tree)

	// Narrower than the table: one line per member, none wider than the terminal.
	const cols = 40
	if err := pty.Setsize(term, &pty.Winsize{Rows: 60, Cols: cols}); err != nil {
		t.Fatal(err)
	}
	_, narrow, err := screen.waitFrame(ctx, at+1, 30*time.Second, func(f string) error {
		if strings.Contains(f, "MEMBER") {
			return errors.New("still the table")
		}
		members := 0
		for l := range strings.Lines(f) {
			l = strings.TrimSuffix(l, "\n")
			if n := utf8.RuneCountInString(l); n > cols {
				return fmt.Errorf("line of %d characters on a %d-column terminal: %q", n, cols, l)
			}
			if strings.HasPrefix(l, "node") {
				members++
			}
		}
		if members != 3 {
			return fmt.Errorf("%d member lines, want 3", members)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("on %d columns:\n%s", cols, narrow)

	// Ctrl-C, as a person at the terminal types it.
	if _, err := term.Write([]byte{0x03}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err != nil {
			t.Errorf("ctl list --watch after Ctrl-C: %v (want exit status 0)", err)
		}
	case <-ctx.Done():
		t.Fatal("ctl list --watch did not end after Ctrl-C")
	}
}

// TestCtlTopologyShowsARealCascade: with the cluster paused (otherwise the
// agents point every standby back at the leader), node3 is made to stream
// from the standby node2; once its server says so, `vigil ctl topology`
// nests node3 under node2 under node1, from what the agents publish.
func TestCtlTopologyShowsARealCascade(t *testing.T) {
	c := newCluster(t, clusterOptions{nodes: 3})
	ctx := testCtx(t, 3*time.Minute)
	c.startAgents(ctx)
	if out, code := c.ctl(ctx, "pause"); code != 0 {
		t.Fatalf("ctl pause: exit %d: %s", code, out)
	}
	node2, err := c.lab.Node("node2")
	if err != nil {
		t.Fatal(err)
	}
	up := database.Upstream{Host: node2.Host, Port: node2.Port, User: lab.ReplicationUser, PassFile: c.lab.PassFile()}
	if err := c.server("node3").Follow(ctx, up); err != nil {
		t.Fatal(err)
	}
	// The server's own word that it streams from node2.
	if err := eventually(ctx, 30*time.Second, func() error {
		got, err := c.queryOn(ctx, "node3", "SELECT status || ' ' || sender_port FROM pg_stat_wal_receiver")
		if err != nil || got != fmt.Sprintf("streaming %d", node2.Port) {
			return fmt.Errorf("node3's WAL receiver: %q (%v), want streaming from port %d", got, err, node2.Port)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	if err := eventually(ctx, 30*time.Second, func() error { return c.wantTopology(ctx, "node1(node2(node3))") }); err != nil {
		t.Fatal(err)
	}
	want := "cluster e2e\nnode1* primary tl 1\n└── node2 standby tl 1 lag "
	tree, code := c.ctl(ctx, "topology")
	if code != 0 || !strings.HasPrefix(tree, want) || !strings.Contains(tree, "\n    └── node3 standby tl 1 lag ") {
		t.Errorf("ctl topology: exit %d:\n%s", code, tree)
	}
	t.Logf("ctl topology:\n%s", tree)
}

// topologyNode is a member in `vigil ctl topology --json`.
type topologyNode struct {
	Name     string         `json:"name"`
	Standbys []topologyNode `json:"standbys"`
}

// String is the tree in one line: node1(node2(node3),node4).
func (n topologyNode) String() string {
	if len(n.Standbys) == 0 {
		return n.Name
	}
	names := make([]string, len(n.Standbys))
	for i, c := range n.Standbys {
		names[i] = c.String()
	}
	return n.Name + "(" + strings.Join(names, ",") + ")"
}

// wantTopology checks `vigil ctl topology --json`: the primary's tree is
// tree (as topologyNode.String writes it), and no member is outside it.
func (c *cluster) wantTopology(ctx context.Context, tree string) error {
	out, code := c.ctl(ctx, "topology", "--json")
	var topo struct {
		Primary  *topologyNode  `json:"primary"`
		Detached []topologyNode `json:"detached"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &topo) != nil {
		return fmt.Errorf("ctl topology --json: exit %d: %s", code, out)
	}
	if topo.Primary == nil || topo.Primary.String() != tree || len(topo.Detached) != 0 {
		return fmt.Errorf("want the tree %s and nobody outside it: %s", tree, out)
	}
	return nil
}
