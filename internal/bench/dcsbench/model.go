package dcsbench

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/pgctl"
	"github.com/vigil-ha/vigil/internal/rejoin"
	"github.com/vigil-ha/vigil/internal/wal"
)

// The database model: the servers of one cluster on the real clock, so
// that the real agents run against them at their real pace while only the
// DCS is real. Package sim has a richer model (replay backlog, hangs,
// receiver timeouts), but it lives on the simulation's virtual clock and
// single event loop; giving it locks and a real clock would change the
// simulation it exists for. This one keeps what a failover needs:
// timelines and their fork points, WAL that a primary's writes advance and
// a connected standby receives at once, crashes.

// systemID is the one database system every server of a cluster copies.
const systemID = "7100000000000000001"

// senderTimeout stands for the servers' wal_sender_timeout: below two
// lease TTLs, as the agents ask of a real cluster.
const senderTimeout = 4 * time.Second

// port is where every modelled server listens; its host is its node's
// name.
const port = 5432

// probeWAL is the WAL one write probe adds.
const probeWAL = 256

// dbCluster is the database servers of one cluster.
type dbCluster struct {
	mu      sync.Mutex
	servers map[string]*dbServer
	// forkAt is where each timeline branched off its parent.
	forkAt map[uint32]uint64
	// twoPrimaries records every moment a second server ran as a primary
	// next to one that already did.
	twoPrimaries []string
}

// dbServer is one server's state: the process, the standby signal, the
// timeline and the WAL it holds.
type dbServer struct {
	running, standbySignal, inRecovery bool
	upstream                           string
	timeline                           uint32
	wal                                uint64
}

// newDBCluster makes a healthy cluster: names[0] a primary, the others its
// standbys.
func newDBCluster(names []string) *dbCluster {
	c := &dbCluster{servers: map[string]*dbServer{}, forkAt: map[uint32]uint64{}}
	for i, name := range names {
		s := &dbServer{running: true, timeline: 1, wal: 16 << 20}
		if i > 0 {
			s.standbySignal, s.inRecovery, s.upstream = true, true, names[0]
		}
		c.servers[name] = s
	}
	return c
}

// handle is a server's agent.Server and agent.Control.
func (c *dbCluster) handle(name string) serverHandle { return serverHandle{c: c, name: name} }

// crash ends the server's processes, as kill -9 of its host does.
func (c *dbCluster) crash(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.servers[name]
	s.running, s.inRecovery = false, false
}

// primaries are the servers running as primaries, sorted.
func (c *dbCluster) primaries() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.primariesLocked()
}

func (c *dbCluster) primariesLocked() []string {
	var out []string
	for name, s := range c.servers {
		if s.running && !s.inRecovery {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// runningServers counts the servers that run.
func (c *dbCluster) runningServers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, s := range c.servers {
		if s.running {
			n++
		}
	}
	return n
}

// violations returns the moments two primaries ran at once.
func (c *dbCluster) violations() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.twoPrimaries)
}

// becamePrimary is called, locked, when name started serving writes.
func (c *dbCluster) becamePrimaryLocked(name string) {
	if p := c.primariesLocked(); len(p) > 1 {
		c.twoPrimaries = append(c.twoPrimaries, fmt.Sprintf("%s: %s became a primary next to %v", time.Now().Format(time.RFC3339Nano), name, p))
	}
}

// receives reports whether standby s can stream from up: up runs, and s's
// history is a prefix of up's.
func (c *dbCluster) receives(s, up *dbServer) bool {
	if up == nil || !up.running || !s.running || !s.inRecovery {
		return false
	}
	if s.timeline == up.timeline {
		return s.wal <= up.wal
	}
	fork, ok := c.forkAt[s.timeline+1]
	return s.timeline < up.timeline && ok && s.wal <= fork
}

// stream brings every connected standby level with its upstream: the model
// replicates instantly.
func (c *dbCluster) streamLocked() {
	for _, s := range c.servers {
		if up := c.servers[s.upstream]; c.receives(s, up) {
			s.timeline, s.wal = up.timeline, up.wal
		}
	}
}

type serverHandle struct {
	c    *dbCluster
	name string
}

// with runs f on the server, locked, after replication caught up.
func (h serverHandle) with(ctx context.Context, f func(s *dbServer) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	h.c.streamLocked()
	return f(h.c.servers[h.name])
}

func (h serverHandle) down(what string) error {
	return fmt.Errorf("%s on %s: connection refused (modelled server not running)", what, h.name)
}

func (h serverHandle) Observe(ctx context.Context) (database.Observation, error) {
	obs := database.Observation{Node: h.name, ObservedAt: time.Now()}
	err := h.with(ctx, func(s *dbServer) error {
		if !s.running {
			return h.down("observe")
		}
		obs.Reachable, obs.InRecovery, obs.ReadOnly = true, s.inRecovery, s.inRecovery
		obs.Timeline, obs.SystemIdentifier, obs.WALSenderTimeout = s.timeline, systemID, senderTimeout
		if !s.inRecovery {
			obs.CurrentLSN = wal.LSN(s.wal)
			for name, t := range h.c.servers {
				if t.upstream == h.name && h.c.receives(t, s) {
					obs.Standbys = append(obs.Standbys, database.Standby{ApplicationName: name, State: "streaming", FlushLSN: wal.LSN(t.wal)})
				}
			}
			return nil
		}
		obs.ReceivedLSN, obs.ReplayedLSN = wal.LSN(s.wal), wal.LSN(s.wal)
		obs.UpstreamHost, obs.UpstreamPort = s.upstream, port
		if h.c.receives(s, h.c.servers[s.upstream]) {
			obs.WALReceiver = &database.WALReceiver{Status: "streaming", ReceivedTLI: s.timeline, SenderHost: s.upstream, SenderPort: port}
		}
		return nil
	})
	return obs, err
}

func (h serverHandle) ProbeWrite(ctx context.Context) database.ProbeResult {
	r := database.ProbeResult{Node: h.name}
	err := h.with(ctx, func(s *dbServer) error {
		switch {
		case !s.running:
			return h.down("write probe")
		case s.inRecovery:
			r.Class, r.SQLState, r.Error = database.ProbeInRecovery, "25006", "cannot execute INSERT in a read-only transaction"
		default:
			s.wal += probeWAL
			r.Class, r.CommitLSN = database.ProbeOK, wal.LSN(s.wal)
		}
		return nil
	})
	if err != nil {
		r.Class, r.Err, r.Error = database.ProbeConnectionFailure, err, err.Error()
	}
	return r
}

// startLocked starts the server as its standby signal says.
func (h serverHandle) startLocked(s *dbServer) {
	if s.running {
		return
	}
	s.running, s.inRecovery = true, s.standbySignal
	if !s.inRecovery {
		h.c.becamePrimaryLocked(h.name)
	}
}

func (h serverHandle) Start(ctx context.Context) error {
	return h.with(ctx, func(s *dbServer) error {
		h.startLocked(s)
		return nil
	})
}

func (h serverHandle) Stop(ctx context.Context, _ pgctl.StopMode) error {
	return h.with(ctx, func(s *dbServer) error {
		s.running, s.inRecovery = false, false
		return nil
	})
}

func (h serverHandle) Halt(ctx context.Context, _ time.Duration) error {
	return h.Stop(ctx, pgctl.Immediate)
}

// Promote ends recovery at once: the model's standbys have no replay
// backlog.
func (h serverHandle) Promote(ctx context.Context, _ time.Duration) error {
	return h.with(ctx, func(s *dbServer) error {
		switch {
		case !s.running:
			return h.down("promote")
		case !s.inRecovery:
			return nil
		}
		s.timeline++
		if _, ok := h.c.forkAt[s.timeline]; !ok {
			h.c.forkAt[s.timeline] = s.wal
		}
		s.inRecovery, s.standbySignal, s.upstream = false, false, ""
		h.c.becamePrimaryLocked(h.name)
		return nil
	})
}

func (h serverHandle) Follow(ctx context.Context, up database.Upstream) error {
	return h.with(ctx, func(s *dbServer) error {
		if s.running && !s.inRecovery {
			s.running = false // a primary restarts as a standby
		}
		s.standbySignal, s.upstream = true, up.Host
		h.startLocked(s)
		return nil
	})
}

// Rejoin makes the server a copy of the upstream, as pg_rewind would.
func (h serverHandle) Rejoin(ctx context.Context, up database.Upstream, _ rejoin.Options, _ rejoin.Recorder) (rejoin.Result, error) {
	res := rejoin.Result{Node: h.name, Upstream: up.Host, Method: rejoin.Rewind, Evidence: "modelled rejoin"}
	err := h.with(ctx, func(s *dbServer) error {
		src := h.c.servers[up.Host]
		if src == nil || !src.running {
			return fmt.Errorf("rejoin %s: upstream %s not running", h.name, up.Host)
		}
		if s.timeline == src.timeline && s.wal <= src.wal {
			res.Method = rejoin.None
		}
		s.running, s.inRecovery = false, false
		s.timeline, s.wal = src.timeline, src.wal
		s.standbySignal, s.upstream = true, up.Host
		h.startLocked(s)
		return nil
	})
	return res, err
}

func (h serverHandle) Reinit(ctx context.Context, up database.Upstream, o rejoin.Options, rec rejoin.Recorder) (rejoin.Result, error) {
	res, err := h.Rejoin(ctx, up, o, rec)
	res.Method = rejoin.BaseBackup
	return res, err
}

// ifRunning is every SQL verb whose effect the model does not keep.
func (h serverHandle) ifRunning(ctx context.Context, what string) error {
	return h.with(ctx, func(s *dbServer) error {
		if !s.running {
			return h.down(what)
		}
		return nil
	})
}

func (h serverHandle) EnsureSlot(ctx context.Context, _ string) error {
	return h.ifRunning(ctx, "create slot")
}
func (h serverHandle) SetSynchronous(ctx context.Context, _ ...string) error {
	return h.ifRunning(ctx, "set synchronous")
}
func (h serverHandle) SetAsync(ctx context.Context) error   { return h.ifRunning(ctx, "set async") }
func (h serverHandle) Checkpoint(ctx context.Context) error { return h.ifRunning(ctx, "checkpoint") }
func (h serverHandle) CheckAlive(ctx context.Context) error { return h.ifRunning(ctx, "select 1") }

func (h serverHandle) PeerIsPrimary(ctx context.Context, host string, _ int) (bool, error) {
	var primary bool
	err := h.with(ctx, func(*dbServer) error {
		peer := h.c.servers[host]
		if peer == nil || !peer.running {
			return fmt.Errorf("ask %s whether it runs as a primary: connection refused", host)
		}
		primary = !peer.inRecovery
		return nil
	})
	return primary, err
}

func (h serverHandle) Status(ctx context.Context) (bool, int, error) {
	var running bool
	err := h.with(ctx, func(s *dbServer) error {
		running = s.running
		return nil
	})
	if !running {
		return false, 0, err
	}
	return true, 1, err
}

func (h serverHandle) ControlData(ctx context.Context) (pgctl.ControlData, error) {
	var cd pgctl.ControlData
	err := h.with(ctx, func(s *dbServer) error {
		cd = pgctl.ControlData{SystemID: systemID, Timeline: s.timeline, CheckpointLSN: wal.LSN(s.wal).String(), State: controlState(s)}
		return nil
	})
	return cd, err
}

func controlState(s *dbServer) string {
	switch {
	case s.running && s.inRecovery:
		return "in archive recovery"
	case s.running:
		return "in production"
	case s.standbySignal:
		return "shut down in recovery"
	}
	return "shut down"
}

func (h serverHandle) StandbyConfigured() bool {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	return h.c.servers[h.name].standbySignal
}

func (h serverHandle) RequestPromote(ctx context.Context) error { return h.Promote(ctx, 0) }

func (h serverHandle) RewindConn() database.ConnConfig { return database.ConnConfig{} }
