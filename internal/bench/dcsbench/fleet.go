package dcsbench

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vigil-ha/vigil/internal/agent"
	"github.com/vigil-ha/vigil/internal/clock"
	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
)

// restartDelay is how long a crashed host stays down after its cluster
// failed over.
const restartDelay = time.Second

// failoverDeadline bounds the wait for one failover.
const failoverDeadline = 60 * time.Second

// fleet is every cluster of a run.
type fleet struct {
	o          Options
	endpoints  []string
	dcfg       decision.Config
	dcsTimeout time.Duration
	logger     *slog.Logger
	observer   *clientv3.Client
	clusters   []*cluster
	wg         sync.WaitGroup
}

// cluster is one cluster of the fleet: its own name and keys in the shared
// etcd, its modelled servers, its agents.
type cluster struct {
	name  string
	root  string
	db    *dbCluster
	names []string

	mu     sync.Mutex
	agents map[string]*runningAgent
	// primary is the node the writable-primary record names ("" while
	// there is none).
	primary string
	crash   *crash
	// unplanned lists the changes of the writable primary that no crash
	// explains.
	unplanned []string
}

// runningAgent is one agent's run and its DCS session.
type runningAgent struct {
	store  *dcs.Store
	cancel context.CancelFunc
	done   chan struct{}
}

// crash is one injected crash of a cluster's primary host.
type crash struct {
	f Failover
	// done is closed when another node published itself writable;
	// restarted when the crashed node's agent runs again.
	done      chan struct{}
	restarted bool
}

// start builds every cluster, watches its writable-primary record and
// starts its agents, spreading the clusters' starts over one loop
// interval so that their loops do not all fall on the same instant.
func (f *fleet) start(ctx context.Context) error {
	resp, err := f.observer.Get(ctx, "/vigil/dcsbench-")
	if err != nil {
		return fmt.Errorf("read etcd revision: %w", err)
	}
	rev := resp.Header.Revision + 1
	spacing := f.dcfg.LoopInterval / time.Duration(f.o.Clusters)
	for i := range f.o.Clusters {
		c := &cluster{name: fmt.Sprintf("dcsbench-%04d", i+1), agents: map[string]*runningAgent{}}
		c.root = "/vigil/" + c.name + "/"
		for m := range f.o.Members {
			c.names = append(c.names, fmt.Sprintf("node%d", m+1))
		}
		c.db = newDBCluster(c.names)
		f.clusters = append(f.clusters, c)
		f.wg.Add(2)
		go func() {
			defer f.wg.Done()
			f.watch(ctx, c, "primary", rev, c.notePrimary)
		}()
		go func() {
			defer f.wg.Done()
			f.watch(ctx, c, "leader", rev, c.noteLeader)
		}()
		for _, name := range c.names {
			if err := f.startAgent(ctx, c, name); err != nil {
				return err
			}
		}
		time.Sleep(spacing)
	}
	return nil
}

func (f *fleet) startAgent(ctx context.Context, c *cluster, name string) error {
	store, err := dcs.Open(dcs.Options{Endpoints: f.endpoints, Cluster: c.name, LeaseTTL: f.dcfg.LeaseTTL})
	if err != nil {
		return fmt.Errorf("start agent %s/%s: %w", c.name, name, err)
	}
	h := c.db.handle(name)
	a, err := agent.New(agent.Options{
		Cluster: c.name, Node: name, Host: name, Port: port, Priority: 100,
		Server: h, Control: h, Store: store, Decision: f.dcfg, DCSTimeout: f.dcsTimeout,
		RejoinMethod: "auto", ConfigDigest: "dcsbench", Logger: f.logger,
	})
	if err != nil {
		store.Close()
		return fmt.Errorf("start agent %s/%s: %w", c.name, name, err)
	}
	actx, cancel := context.WithCancel(ctx)
	ra := &runningAgent{store: store, cancel: cancel, done: make(chan struct{})}
	c.mu.Lock()
	c.agents[name] = ra
	c.mu.Unlock()
	go func() {
		defer close(ra.done)
		_ = a.Run(actx)
	}()
	return nil
}

// watchPrimary follows the cluster's writable-primary record: a record
// naming another node than a crashed one ends that crash's failover.
// watch follows one key of the cluster from revision rev on, handing
// every change to note, locked.
func (f *fleet) watch(ctx context.Context, c *cluster, key string, rev int64, note func(*clientv3.Event, time.Time)) {
	for resp := range f.observer.Watch(ctx, c.root+key, clientv3.WithRev(rev)) {
		seen := time.Now()
		c.mu.Lock()
		for _, ev := range resp.Events {
			note(ev, seen)
		}
		c.mu.Unlock()
	}
}

// noteLeader follows the leader key, locked: another node taking it is
// the first half of a crash's failover.
func (c *cluster) noteLeader(ev *clientv3.Event, seen time.Time) {
	if cr := c.crash; cr != nil && cr.f.LeaderS == 0 && ev.Type == clientv3.EventTypePut && string(ev.Kv.Value) != cr.f.Crashed {
		cr.f.LeaderS = seen.Sub(cr.f.At).Seconds()
	}
}

// notePrimary follows one change of the writable-primary record, locked.
// A change that no crash explains (the record gone, or replaced by
// another node's) means that a leader lost its lease or its primary: the
// fleet is more than etcd or the machine carries.
func (c *cluster) notePrimary(ev *clientv3.Event, seen time.Time) {
	crashing := c.crash != nil && !c.crash.f.OK
	if ev.Type == clientv3.EventTypeDelete {
		if !crashing {
			c.unplanned = append(c.unplanned, fmt.Sprintf("%s %s: the writable-primary record of %s went away", seen.Format(time.TimeOnly), c.name, c.primary))
		}
		c.primary = ""
		return
	}
	var p dcs.Primary
	if json.Unmarshal(ev.Kv.Value, &p) != nil {
		return
	}
	switch {
	case crashing && p.Node != c.crash.f.Crashed:
		cr := c.crash
		cr.f.OK, cr.f.NewPrimary, cr.f.S = true, p.Node, seen.Sub(cr.f.At).Seconds()
		close(cr.done)
	case !crashing && c.primary != "" && p.Node != c.primary:
		c.unplanned = append(c.unplanned, fmt.Sprintf("%s %s: the writable primary moved from %s to %s", seen.Format(time.TimeOnly), c.name, c.primary, p.Node))
	}
	c.primary = p.Node
}

func (f *fleet) waitAllPrimaries(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		missing := 0
		for _, c := range f.clusters {
			c.mu.Lock()
			if c.primary == "" {
				missing++
			}
			c.mu.Unlock()
		}
		if missing == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%d of %d clusters have no writable primary %s after the start: the machine or etcd cannot carry this fleet", missing, len(f.clusters), within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// crashDuring runs the window, crashing o.Crashes primaries in different
// clusters spread over its first three quarters. It returns the crashes
// it could not inject (a cluster without exactly one primary).
func (f *fleet) crashDuring(ctx context.Context, window time.Duration, progress func(string, ...any)) []string {
	start := time.Now()
	rng := rand.New(rand.NewPCG(f.o.Seed, 0xdc5))
	order := rng.Perm(len(f.clusters))
	var skipped []string
	for i := range f.o.Crashes {
		at := start.Add(time.Duration(float64(window) * 0.75 * (float64(i) + 0.5) / float64(f.o.Crashes)))
		if sleepUntil(ctx, at) != nil {
			return skipped
		}
		c := f.clusters[order[i]]
		if err := f.crash(ctx, c); err != nil {
			skipped = append(skipped, err.Error())
			progress("  crash %d/%d not injected: %v", i+1, f.o.Crashes, err)
			continue
		}
		progress("  crash %d/%d: %s", i+1, f.o.Crashes, c.name)
	}
	_ = sleepUntil(ctx, start.Add(window))
	return skipped
}

func sleepUntil(ctx context.Context, t time.Time) error { return clock.Sleep(ctx, time.Until(t)) }

// crash kills the host of the cluster's primary: its DCS session goes
// first (so its agent can neither renew nor release the leader key), then
// its server, then its agent. The host comes back restartDelay after the
// failover, as a standby to be rejoined.
func (f *fleet) crash(ctx context.Context, c *cluster) error {
	p := c.db.primaries()
	c.mu.Lock()
	if len(p) != 1 || c.primary != p[0] {
		c.mu.Unlock()
		return fmt.Errorf("%s: database primaries %v, DCS names %q", c.name, p, c.primary)
	}
	victim := c.agents[p[0]]
	delete(c.agents, p[0])
	cr := &crash{f: Failover{Cluster: c.name, Crashed: p[0], At: time.Now()}, done: make(chan struct{})}
	c.crash = cr
	c.mu.Unlock()
	victim.store.Close()
	c.db.crash(p[0])
	victim.cancel()
	<-victim.done
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		select {
		case <-cr.done:
		case <-time.After(failoverDeadline):
		case <-ctx.Done():
			return
		}
		if clock.Sleep(ctx, restartDelay) != nil {
			return
		}
		if err := f.startAgent(ctx, c, cr.f.Crashed); err != nil {
			f.logger.Error("restart crashed node", "cluster", c.name, "err", err)
			return
		}
		c.mu.Lock()
		cr.restarted = true
		c.mu.Unlock()
	}()
	return nil
}

// settle waits until every crash has run its course and every cluster is
// whole again, or within has passed.
func (f *fleet) settle(ctx context.Context, within time.Duration) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		whole := true
		for _, c := range f.clusters {
			c.mu.Lock()
			pending := c.crash != nil && !c.crash.restarted
			c.mu.Unlock()
			if pending || len(c.db.primaries()) != 1 || c.db.runningServers() != len(c.names) {
				whole = false
				break
			}
		}
		if whole {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// finalStates reads every cluster's keys and its servers: a cluster is
// right with exactly one database primary, which both the leader key and
// the writable-primary record name.
func (f *fleet) finalStates(ctx context.Context) (states []ClusterState, keyBytes, keys []float64, err error) {
	for _, c := range f.clusters {
		resp, err := f.observer.Get(ctx, c.root, clientv3.WithPrefix())
		if err != nil {
			return nil, nil, nil, fmt.Errorf("read %s's keys: %w", c.name, err)
		}
		st := ClusterState{Cluster: c.name, Primaries: c.db.primaries()}
		size := 0
		for _, kv := range resp.Kvs {
			size += len(kv.Key) + len(kv.Value)
			switch strings.TrimPrefix(string(kv.Key), c.root) {
			case "leader":
				st.Leader = string(kv.Value)
			case "primary":
				var p dcs.Primary
				if json.Unmarshal(kv.Value, &p) == nil {
					st.Primary = p.Node
				}
			}
		}
		keyBytes, keys = append(keyBytes, float64(size)), append(keys, float64(len(resp.Kvs)))
		switch {
		case len(st.Primaries) > 1:
			st.Problem = fmt.Sprintf("two primaries: %s", strings.Join(st.Primaries, ", "))
		case len(st.Primaries) == 0:
			st.Problem = "no primary"
		case st.Leader != st.Primaries[0] || st.Primary != st.Primaries[0]:
			st.Problem = fmt.Sprintf("database primary %s, but the leader key names %q and the writable-primary record %q", st.Primaries[0], st.Leader, st.Primary)
		}
		states = append(states, st)
	}
	return states, keyBytes, keys, nil
}

func (f *fleet) agentsLoad() AgentsLoad {
	l := AgentsLoad{Agents: f.o.Clusters * f.o.Members, Goroutines: runtime.NumGoroutine()}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	l.HeapBytesPerAgent = float64(ms.HeapInuse) / float64(l.Agents)
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		l.FDsPerAgent = float64(len(fds)) / float64(l.Agents)
	}
	return l
}

// stopAgents ends every agent as a clean shutdown does (the primary is
// stopped and its key released) and closes the DCS sessions.
func (f *fleet) stopAgents() {
	for _, c := range f.clusters {
		c.mu.Lock()
		for _, ra := range c.agents {
			ra.cancel()
		}
		c.mu.Unlock()
	}
	for _, c := range f.clusters {
		c.mu.Lock()
		agents := c.agents
		c.mu.Unlock()
		for _, ra := range agents {
			<-ra.done
			ra.store.Close()
		}
	}
}
