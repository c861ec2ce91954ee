// Package patroni runs Debian's Patroni beside Vigil in the failover
// benchmark: a Patroni cluster on a lab's network namespaces, with a real
// etcd member per node, a VIP moved by a Patroni callback, the demo's
// client writing through the VIP and the same node crash, measured the way
// package demo measures Vigil. It measures; the tests assert.
package patroni

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/demo"
	"github.com/vigil-ha/vigil/internal/lab"
	"github.com/vigil-ha/vigil/internal/workload"
)

// Settings are Patroni's timing: ttl, loop_wait and retry_timeout in
// seconds. Zero leaves the value out of the configuration, so that
// Patroni's own default applies.
type Settings struct {
	Name         string `json:"name"`
	TTL          int    `json:"ttl,omitempty"`
	LoopWait     int    `json:"loop_wait,omitempty"`
	RetryTimeout int    `json:"retry_timeout,omitempty"`
}

// Default is Patroni as installed: nothing set (ttl 30, loop_wait 10,
// retry_timeout 10 in Patroni 3.0).
func Default() Settings { return Settings{Name: "default"} }

// Tight is the tightest timing the comparison runs Patroni with; it keeps
// Patroni's rule loop_wait + 2*retry_timeout <= ttl.
func Tight() Settings { return Settings{Name: "tight", TTL: 10, LoopWait: 1, RetryTimeout: 4} }

// LookupSettings returns the settings called name.
func LookupSettings(name string) (Settings, error) {
	for _, s := range []Settings{Default(), Tight()} {
		if s.Name == name {
			return s, nil
		}
	}
	return Settings{}, fmt.Errorf("unknown Patroni settings %q (default, tight)", name)
}

// Options configure one run.
type Options struct {
	// Dir is the lab directory.
	Dir string
	// Binary is the vigil executable: the client, the etcd members
	// (vigil witness) and the VIP callback.
	Binary   string
	Settings Settings
	// Rate is the client's writes per second through the VIP.
	Rate int
	// BackgroundTPS runs pgbench through the VIP alongside the client.
	BackgroundTPS int
	// Progress receives one line per stage; nil for none.
	Progress io.Writer
}

// Result is one run: what the client saw, in the demo's shape, and the
// VIP callbacks Patroni made on the new leader after the crash.
type Result struct {
	demo.Result
	Settings Settings `json:"patroni_settings"`
	// Callbacks are the VIP callback's log lines on the new leader after
	// the crash (action, role, what it did).
	Callbacks []string `json:"callbacks,omitempty"`
}

// Run builds a 3-node Patroni cluster, runs the client through the VIP,
// crashes the leader's node and measures what the client saw. The result
// has the demo's shape (scenario node-crash), so that the benchmark
// summarises both systems alike: detection is the crash to the new leader
// logging that it took the key; promotion and readiness gate, steps of
// Vigil's failover record, have no Patroni counterpart and stay zero.
// Everything it started is gone when it returns.
func Run(ctx context.Context, o Options) (res Result, err error) {
	if os.Geteuid() != 0 {
		return res, errors.New("the Patroni comparison needs root: it builds network namespaces and moves a VIP")
	}
	if o.Rate <= 0 {
		o.Rate = 50
	}
	if err := Install(ctx); err != nil {
		return res, err
	}
	p := progress{w: o.Progress, start: time.Now()}
	res = Result{Result: demo.Result{Scenario: demo.NodeCrash, SyncMode: "on", LabDir: o.Dir}, Settings: o.Settings}
	p.say("building 3 empty nodes in network namespaces (%s)", o.Dir)
	// Empty nodes: Patroni bootstraps its own cluster in the lab's data
	// directories.
	l, err := lab.Up(ctx, lab.Options{Dir: o.Dir, Nodes: 3, Netns: true, Force: true, Empty: true})
	if err != nil {
		return res, err
	}
	res.LabDir = l.Dir()
	c := NewCluster(l, o.Binary, o.Settings)
	defer func() {
		if err != nil {
			// What Patroni and etcd said, before Down removes their logs.
			err = fmt.Errorf("%w\n%s", err, c.Logs(40))
		}
		if derr := c.Down(context.WithoutCancel(ctx)); derr != nil && err == nil {
			err = derr
		}
	}()
	if err := c.Start(ctx); err != nil {
		return res, err
	}
	res.VIP = c.VIP()
	p.say("Patroni %s (ttl %s, loop_wait %s, retry_timeout %s) with etcd on every node; VIP %s",
		o.Settings.Name, orDefault(o.Settings.TTL), orDefault(o.Settings.LoopWait), orDefault(o.Settings.RetryTimeout), res.VIP)
	leader, err := c.WaitReady(ctx, 3*time.Minute)
	if err != nil {
		return res, err
	}
	res.OldLeader = leader
	p.say("%s leads, holds the VIP, two replicas stream", leader)
	return c.measure(ctx, o, &p, res)
}

func orDefault(v int) string {
	if v == 0 {
		return "default"
	}
	return fmt.Sprint(v)
}

func (c *Cluster) measure(ctx context.Context, o Options, p *progress, res Result) (Result, error) {
	l := c.lab
	client, err := l.AddClient(ctx, "client")
	if err != nil {
		return res, err
	}
	res.ClientNetns = client.Netns
	user, password, err := l.Superuser()
	if err != nil {
		return res, err
	}
	leaderNode, _ := l.Node(res.OldLeader)
	wopts := workload.Options{Host: res.VIP, Port: leaderNode.Port, User: user, Password: password, Database: l.Flavor().DefaultDatabase, Timeout: time.Second}
	if err := workload.Prepare(ctx, wopts); err != nil {
		return res, fmt.Errorf("prepare the workload table through the VIP: %w", err)
	}
	if o.BackgroundTPS > 0 {
		p.say("background load: pgbench through the VIP at %d transactions/s", o.BackgroundTPS)
		stop, err := demo.StartPGBench(ctx, l, client, o.BackgroundTPS, wopts)
		if err != nil {
			return res, err
		}
		defer stop()
	}
	p.say("client %s writes through the VIP, %d writes/s", client.Host, o.Rate)
	wl, err := demo.StartClient(l, client, o.Binary, o.Rate, wopts)
	if err != nil {
		return res, err
	}
	defer wl.Stop()
	time.Sleep(2 * time.Second)

	p.say("crashing %s (node crash: link down, every process of its namespace killed)", res.OldLeader)
	res.CrashAt = time.Now()
	if err := c.CrashNode(ctx, res.OldLeader); err != nil {
		return res, err
	}
	newLeader, err := c.WaitNewLeader(ctx, res.OldLeader, 3*time.Minute)
	if err != nil {
		return res, err
	}
	res.NewPrimary = newLeader
	p.say("%s is the new writable leader", newLeader)
	if err := c.WaitVIP(ctx, newLeader, 30*time.Second); err != nil {
		return res, err
	}
	time.Sleep(3 * time.Second) // writes after the failover, through the new leader

	wres, err := wl.Stop()
	if err != nil {
		return res, err
	}
	if err := demo.Measure(ctx, l, &res.Result, wres, wopts, newLeader); err != nil {
		return res, err
	}
	res.VIPHolder = c.VIPHolder()
	res.Callbacks = c.Callbacks(newLeader, res.CrashAt)
	// Patroni's counterpart of Vigil's detection: the crash to the new
	// leader taking the key. Promotion and gate have none.
	if t, ok := c.TookLock(newLeader, res.CrashAt.Add(-time.Second)); ok {
		res.DetectS = t.Sub(res.CrashAt).Seconds()
	}
	p.say("done: outage %.2fs", res.WriteOutageS)
	return res, nil
}

// server is SQL access to node name as the superuser, over TCP.
func server(l *lab.Lab, name string) (*database.Server, error) {
	n, err := l.Node(name)
	if err != nil {
		return nil, err
	}
	user, password, err := l.Superuser()
	if err != nil {
		return nil, err
	}
	return &database.Server{Name: name, Flavor: l.Flavor(),
		Conn: database.ConnConfig{Host: n.Host, Port: n.Port, User: user, Password: password, Database: l.Flavor().DefaultDatabase, ConnectTimeout: 2 * time.Second}}, nil
}

type progress struct {
	w     io.Writer
	start time.Time
}

func (p *progress) say(format string, args ...any) {
	if p.w == nil {
		return
	}
	fmt.Fprintf(p.w, "[%6.1fs] patroni: %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "==> " + filepath.Base(path) + " <==\n" + strings.Join(lines, "\n") + "\n"
}
