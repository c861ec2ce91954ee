package sim

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
)

// A Script is a schedule in a small text format, one step per line, the
// same for the scenario files in testdata/ and for the random schedules
// (a failing one prints as a script that can be saved and replayed):
//
//	# a comment
//	config sync=on failsafe=off autorejoin=on nodes=3 phases=7
//	expect split-brain           the run must find this violation (tests)
//	wait 3s                      let virtual time pass
//	crash NODE                   the server's processes die
//	hang NODE | resume NODE      SIGSTOP / SIGCONT of the server
//	kill-agent NODE | restart-agent NODE
//	freeze-agent NODE | thaw-agent NODE
//	cut-dcs NODE | heal-dcs NODE         the node's link to etcd
//	cut-trusted NODE | heal-trusted NODE the trusted IPs stop answering it
//	cut-peers NODE | heal-peers NODE     the node's links to the other nodes
//	dcs-down | dcs-up            etcd loses its quorum / gets it back
//	lag NODE | unlag NODE        a standby replays slowly (64 kB/s)
//	stall-wal NODE | unstall-wal NODE    the server answers SQL but sends
//	                             no WAL or keepalives (a loaded host)
//	load MB                      a bulk write of MB on the writable primary
//	switchover [NODE] | failover NODE    an operator's request
//	heal                         end every fault (restart killed agents)
//	check primary NODE           NODE is the one writable primary now
//	check stopped NODE | check standby NODE
//	check converged DURATION     one writable primary with the leader key
//	                             and the routes within DURATION
//
// NODE is a name (node1), or @primary (the writable primary, else the
// leader), @standby (the first running standby), @dead (the first node
// without an agent) or @frozen (the first frozen agent), resolved when the
// step runs.
type Script struct {
	Config Config
	// Phases seeds the agents' loop phases.
	Phases uint64
	// Expect names the violation kinds the run must report.
	Expect []string
	Steps  []Step
}

// Step is one line of a script.
type Step struct {
	Op   string
	Args []string
}

func (s Step) String() string { return strings.TrimSpace(s.Op + " " + strings.Join(s.Args, " ")) }

// nodeOp: the step takes one node; the others parse their own arguments.
func nodeOp(op string) bool {
	switch op {
	case "crash", "hang", "resume", "kill-agent", "restart-agent", "freeze-agent", "thaw-agent", "cut-dcs", "heal-dcs",
		"cut-trusted", "heal-trusted", "cut-peers", "heal-peers", "lag", "unlag", "stall-wal", "unstall-wal", "failover":
		return true
	}
	return false
}

// ParseScript reads a script.
func ParseScript(r io.Reader) (*Script, error) {
	sc := &Script{Config: Config{Nodes: 3, Sync: decision.SyncOff, AutoRejoin: true}}
	in := bufio.NewScanner(r)
	line := 0
	for in.Scan() {
		line++
		text, _, _ := strings.Cut(in.Text(), "#")
		f := strings.Fields(text)
		if len(f) == 0 {
			continue
		}
		if err := sc.parseLine(f); err != nil {
			return nil, fmt.Errorf("line %d: %q: %w", line, strings.TrimSpace(text), err)
		}
	}
	if err := in.Err(); err != nil {
		return nil, fmt.Errorf("read script: %w", err)
	}
	return sc, nil
}

func (sc *Script) parseLine(f []string) error {
	op, args := f[0], f[1:]
	switch {
	case op == "config":
		return sc.parseConfig(args)
	case op == "expect":
		sc.Expect = append(sc.Expect, args...)
		return nil
	case nodeOp(op):
		if len(args) != 1 {
			return fmt.Errorf("%s takes one node", op)
		}
	case op == "wait":
		if len(args) != 1 {
			return fmt.Errorf("wait takes a duration")
		}
		if _, err := time.ParseDuration(args[0]); err != nil {
			return err
		}
	case op == "load":
		if len(args) != 1 {
			return fmt.Errorf("load takes megabytes")
		}
		if _, err := strconv.ParseUint(args[0], 10, 32); err != nil {
			return err
		}
	case op == "switchover":
		if len(args) > 1 {
			return fmt.Errorf("switchover takes at most a target node")
		}
	case op == "dcs-down", op == "dcs-up", op == "heal":
		if len(args) != 0 {
			return fmt.Errorf("%s takes no argument", op)
		}
	case op == "check":
		if len(args) != 2 {
			return fmt.Errorf("check takes a kind and an argument")
		}
		switch args[0] {
		case "primary", "stopped", "standby":
		case "converged":
			if _, err := time.ParseDuration(args[1]); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown check %q", args[0])
		}
	default:
		return fmt.Errorf("unknown step %q", op)
	}
	sc.Steps = append(sc.Steps, Step{Op: op, Args: args})
	return nil
}

func (sc *Script) parseConfig(args []string) error {
	for _, kv := range args {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("config wants key=value, got %q", kv)
		}
		var err error
		switch k {
		case "sync":
			switch m := decision.SyncMode(v); m {
			case decision.SyncOff, decision.SyncOn, decision.SyncStrict:
				sc.Config.Sync = m
			default:
				err = fmt.Errorf("sync must be off, on or strict")
			}
		case "failsafe":
			sc.Config.Failsafe, err = onOff(v)
		case "autorejoin":
			sc.Config.AutoRejoin, err = onOff(v)
		case "nodes":
			sc.Config.Nodes, err = strconv.Atoi(v)
			if err == nil && (sc.Config.Nodes < 2 || sc.Config.Nodes > 9) {
				err = fmt.Errorf("nodes must be 2 to 9")
			}
		case "phases":
			sc.Phases, err = strconv.ParseUint(v, 10, 64)
		default:
			err = fmt.Errorf("unknown config key %q", k)
		}
		if err != nil {
			return fmt.Errorf("config %s: %w", k, err)
		}
	}
	return nil
}

func onOff(v string) (bool, error) {
	switch v {
	case "on":
		return true, nil
	case "off":
		return false, nil
	}
	return false, fmt.Errorf("want on or off, got %q", v)
}

// String prints the script in its own format.
func (sc *Script) String() string {
	var b strings.Builder
	c := sc.Config
	fmt.Fprintf(&b, "config sync=%s failsafe=%s autorejoin=%s nodes=%d phases=%d\n", c.Sync, onOffString(c.Failsafe), onOffString(c.AutoRejoin), c.Nodes, sc.Phases)
	if len(sc.Expect) > 0 {
		fmt.Fprintf(&b, "expect %s\n", strings.Join(sc.Expect, " "))
	}
	for _, s := range sc.Steps {
		b.WriteString(s.String() + "\n")
	}
	return b.String()
}

func onOffString(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// Result is what one run of a script found.
type Result struct {
	Script     *Script
	Violations []Violation
	// Writes counts the acknowledged client writes.
	Writes  int
	Virtual time.Duration
	Trace   []string
}

// Failed reports whether the run found a violation it did not expect, or
// missed one it expected.
func (r Result) Failed() bool {
	found := map[string]bool{}
	for _, v := range r.Violations {
		found[v.Kind] = true
		if !slices.Contains(r.Script.Expect, v.Kind) && v.Kind != NeedsOperator && v.Kind != SplitBrainNoAgent {
			return true
		}
	}
	for _, k := range r.Script.Expect {
		if !found[k] {
			return true
		}
	}
	return false
}

// Report is the run for a person: the script, the violations, the end of
// the trace.
func (r Result) Report(traceLines int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "script (save it to a file to replay it):\n%s\n", r.Script)
	fmt.Fprintf(&b, "virtual time %s, %d writes acknowledged\n", r.Virtual, r.Writes)
	if len(r.Script.Expect) > 0 {
		fmt.Fprintf(&b, "expected violations: %s\n", strings.Join(r.Script.Expect, ", "))
	}
	fmt.Fprintf(&b, "violations: %d\n", len(r.Violations))
	for _, v := range r.Violations {
		b.WriteString("  " + v.String() + "\n")
	}
	if traceLines > 0 {
		t := r.Trace
		if len(t) > traceLines {
			t = t[len(t)-traceLines:]
		}
		b.WriteString("trace (last lines):\n")
		for _, l := range t {
			b.WriteString("  " + l + "\n")
		}
	}
	return b.String()
}

// Run runs a script on a new world. Faults and checks are events on the
// virtual clock, so they happen on time even while an agent waits.
func Run(sc *Script, decide func(decision.Input) decision.Output, log io.Writer) Result {
	cfg := sc.Config
	cfg.Seed, cfg.Decide, cfg.Log = sc.Phases, decide, log
	w := NewWorld(cfg)
	t := w.now
	for _, st := range sc.Steps {
		switch st.Op {
		case "wait":
			d, _ := time.ParseDuration(st.Args[0])
			t = t.Add(d)
			continue
		case "check":
			if st.Args[0] == "converged" {
				d, _ := time.ParseDuration(st.Args[1])
				w.at(t, func() { w.expectConvergence(d) })
				t = t.Add(d)
				continue
			}
		}
		w.at(t, func() { w.apply(st) })
	}
	w.RunUntil(t.Add(time.Millisecond))
	w.checkLostWrites()
	w.Stop()
	return Result{Script: sc, Violations: w.Violations(), Writes: len(w.writes), Virtual: w.Now(), Trace: w.Trace()}
}

// resolve turns @primary and @standby into a node.
func (w *World) resolve(name string) *Node {
	switch name {
	case "@primary":
		for _, n := range w.nodes {
			if n.srv.canAck() {
				return n
			}
		}
		if n := w.Node(w.dcs.leader); n != nil {
			return n
		}
		return w.nodes[0]
	case "@dead", "@frozen":
		for _, n := range w.nodes {
			if name == "@dead" && n.inc == nil || name == "@frozen" && n.inc != nil && n.inc.frozen {
				return n
			}
		}
		return w.nodes[0]
	case "@standby":
		for _, n := range w.nodes {
			if n.srv.running && n.srv.inRecovery {
				return n
			}
		}
		return w.nodes[len(w.nodes)-1]
	}
	return w.Node(name)
}

// apply carries one step out.
func (w *World) apply(st Step) {
	var n *Node
	if nodeOp(st.Op) || st.Op == "check" && st.Args[0] != "converged" {
		arg := st.Args[len(st.Args)-1]
		if n = w.resolve(arg); n == nil {
			w.violate(ScriptCheck, "%s: no node %q", st, arg)
			return
		}
	}
	if n != nil {
		w.note(fmt.Sprintf("step: %s (%s)", st, n.Name))
	} else {
		w.note("step: " + st.String())
	}
	switch st.Op {
	case "crash":
		n.srv.stopped("crash")
	case "hang":
		if n.srv.running {
			n.srv.hung = true
		}
	case "resume":
		n.srv.hung = false
		n.srv.lastReplay = w.now
	case "kill-agent":
		w.killAgent(n)
	case "restart-agent":
		if n.inc == nil {
			w.startAgent(n, 0)
		}
	case "freeze-agent":
		w.freezeAgent(n, true)
	case "thaw-agent":
		w.freezeAgent(n, false)
	case "cut-dcs", "heal-dcs":
		n.cutDCS = st.Op == "cut-dcs"
	case "cut-trusted", "heal-trusted":
		n.cutTrusted = st.Op == "cut-trusted"
	case "cut-peers", "heal-peers":
		n.cutPeers = st.Op == "cut-peers"
	case "dcs-down", "dcs-up":
		w.dcs.setDown(st.Op == "dcs-down")
	case "lag":
		n.srv.replayRate = 64 << 10
	case "unlag":
		n.srv.replayRate = 256 << 20
	case "stall-wal", "unstall-wal":
		n.srv.walStalled = st.Op == "stall-wal"
	case "load":
		mb, _ := strconv.ParseUint(st.Args[0], 10, 32)
		for _, p := range w.nodes {
			if p.srv.canAck() {
				p.srv.wal += mb << 20
			}
		}
	case "switchover":
		r := dcs.Request{Kind: decision.RequestSwitchover, From: w.dcs.leader, Created: w.now}
		if len(st.Args) == 1 {
			if t := w.resolve(st.Args[0]); t != nil {
				r.To = t.Name
			}
		}
		w.dcs.setRequest(r)
	case "failover":
		w.dcs.setRequest(dcs.Request{Kind: decision.RequestFailover, To: n.Name, Created: w.now})
	case "heal":
		w.healAll()
	case "check":
		w.check(st.Args[0], n)
	}
}

func (w *World) healAll() {
	w.dcs.setDown(false)
	for _, n := range w.nodes {
		n.cutDCS, n.cutTrusted, n.cutPeers = false, false, false
		if n.srv.hung {
			n.srv.hung = false
			n.srv.lastReplay = w.now
		}
		n.srv.replayRate = 256 << 20
		n.srv.walStalled = false
		switch {
		case n.inc == nil:
			w.startAgent(n, 0)
		case n.inc.frozen:
			w.freezeAgent(n, false)
		}
	}
}

func (w *World) check(kind string, n *Node) {
	s := n.srv
	switch kind {
	case "primary":
		writable := 0
		for _, o := range w.nodes {
			if o.srv.canAck() {
				writable++
			}
		}
		if !s.canAck() || writable != 1 {
			w.violate(ScriptCheck, "check primary %s: not the one writable primary (%s)", n.Name, w.describe())
		}
	case "stopped":
		if s.running {
			w.violate(ScriptCheck, "check stopped %s: it runs (%s)", n.Name, w.describe())
		}
	case "standby":
		if !s.running || !s.inRecovery {
			w.violate(ScriptCheck, "check standby %s: not a running standby (%s)", n.Name, w.describe())
		}
	}
}
