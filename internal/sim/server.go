package sim

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/pgctl"
	"github.com/vigil-ha/vigil/internal/rejoin"
	"github.com/vigil-ha/vigil/internal/wal"
)

// lineage is one timeline of one history: a promotion starts a new one at
// its parent's position fork. Two promotions from the same timeline get
// the same timeline number, as in PostgreSQL, but different lineages: that
// is how the world tells their WAL apart.
type lineage struct {
	parent *lineage
	fork   uint64
	tli    uint32
}

func newLineage(parent *lineage, fork uint64) *lineage {
	l := &lineage{parent: parent, fork: fork, tli: 1}
	if parent != nil {
		l.tli = parent.tli + 1
	}
	return l
}

// contains reports whether position lsn of lineage l is part of the
// history that ends at position end of lineage head.
func contains(head *lineage, end uint64, l *lineage, lsn uint64) bool {
	bound := end
	for h := head; h != nil; bound, h = h.fork, h.parent {
		if h == l {
			return lsn <= bound
		}
	}
	return false
}

// Server is one simulated database server.
type Server struct {
	w    *World
	node *Node

	running, hung bool
	// walStalled: the server answers SQL but its WAL senders send nothing
	// (a loaded host, a congested link): its standbys' receivers go quiet
	// as they would for a dead upstream.
	walStalled bool
	// standby: a standby signal is in the data directory; inRecovery: it
	// runs as one. promoting: a promotion waits for the replay.
	standby, inRecovery, promoting bool

	lin      *lineage
	wal      uint64 // written (primary) or received (standby)
	replayed uint64
	// replayRate is how fast a standby replays, in bytes per second.
	replayRate  uint64
	lastReplay  time.Time
	upstream    string
	receiving   bool      // a WAL receiver connection exists
	lastMsg     time.Time // the upstream last sent something
	nextConnect time.Time // a broken receiver retries then
	syncNames   []string
	// probed is the lineage on which a write probe last committed.
	probed *lineage
}

// responsive: the server runs and answers SQL.
func (s *Server) responsive() bool { return s.running && !s.hung }

func (s *Server) errDown() error {
	if !s.running {
		return fmt.Errorf("connect to %s: server not running (simulated)", s.node.Name)
	}
	return fmt.Errorf("connect to %s: timeout, the server does not answer (simulated hang)", s.node.Name)
}

// canAck: a client's write would be acknowledged here now.
func (s *Server) canAck() bool {
	return s.responsive() && !s.inRecovery && (len(s.syncNames) == 0 || s.syncStandby() != nil)
}

// syncStandby is a named synchronous standby receiving from s right now.
func (s *Server) syncStandby() *Server {
	for _, name := range s.syncNames {
		if n := s.w.Node(name); n != nil && n.srv.connectedTo(s) {
			return n.srv
		}
	}
	return nil
}

// connectedTo: this standby receives from up right now.
func (s *Server) connectedTo(up *Server) bool {
	return s.receiving && s.upstream == up.node.Name && s.responsive() && up.responsive() &&
		!s.node.cutPeers && !up.node.cutPeers && !s.promoting
}

// canFollow: this server's history is a prefix of up's.
func (s *Server) canFollow(up *Server) bool { return contains(up.lin, up.wal, s.lin, s.wal) }

func (s *Server) stopped(why string) {
	if s.running {
		s.w.note(fmt.Sprintf("%s server stopped (%s)", s.node.Name, why))
	}
	s.running, s.hung, s.inRecovery, s.promoting, s.receiving = false, false, false, false, false
}

func (s *Server) start() {
	if s.running {
		return
	}
	s.running, s.inRecovery = true, s.standby
	s.lastReplay = s.w.now
	s.nextConnect = s.w.now
	role := "primary"
	if s.standby {
		role = "standby of " + s.upstream
	}
	s.w.note(fmt.Sprintf("%s server started as %s (timeline %d, WAL %d)", s.node.Name, role, s.lin.tli, s.wal))
}

// replicate moves WAL between the servers up to now: replay, promotions
// that finished, receivers that connect, stream, time out.
func (w *World) replicate() {
	for _, n := range w.nodes {
		s := n.srv
		if !s.running || !s.inRecovery {
			continue
		}
		if !s.hung {
			step := uint64(w.now.Sub(s.lastReplay).Seconds() * float64(s.replayRate))
			s.replayed = min(s.wal, s.replayed+step)
		}
		s.lastReplay = w.now
		if s.promoting && s.replayed == s.wal && !s.hung {
			s.lin = newLineage(s.lin, s.wal)
			s.inRecovery, s.standby, s.promoting, s.receiving = false, false, false, false
			w.note(fmt.Sprintf("%s promoted: timeline %d", n.Name, s.lin.tli))
		}
	}
	for _, n := range w.nodes {
		s := n.srv
		if !s.responsive() || !s.inRecovery || s.promoting || s.upstream == "" {
			continue
		}
		up := w.Node(s.upstream).srv
		linked := !n.cutPeers && !up.node.cutPeers
		switch {
		case s.receiving && !up.running:
			// The upstream's processes died: the connection is reset.
			s.receiving, s.nextConnect = false, w.now.Add(walRetry)
		case s.receiving && w.now.Sub(s.lastMsg) >= walReceiverTimeout:
			s.receiving, s.nextConnect = false, w.now.Add(walRetry)
		case !s.receiving && linked && up.responsive() && !w.now.Before(s.nextConnect):
			if s.canFollow(up) {
				s.receiving = true
				s.lastMsg = w.now
			} else {
				s.nextConnect = w.now.Add(walRetry)
			}
		}
		if s.receiving && linked && up.responsive() && !up.walStalled {
			if !s.canFollow(up) {
				s.receiving, s.nextConnect = false, w.now.Add(walRetry)
				continue
			}
			s.lin, s.wal, s.lastMsg = up.lin, up.wal, w.now
		}
	}
}

// serverHandle is an incarnation's view of its server: agent.Server and
// agent.Control. A killed agent's calls fail.
type serverHandle struct {
	s   *Server
	inc *incarnation
}

func (h serverHandle) check(ctx context.Context) error {
	switch {
	case !h.inc.alive:
		return errKilled
	case ctx.Err() != nil:
		return ctx.Err()
	}
	h.s.w.replicate()
	return nil
}

func (h serverHandle) Observe(ctx context.Context) (database.Observation, error) {
	s := h.s
	obs := database.Observation{Node: s.node.Name, ObservedAt: s.w.now}
	if err := h.check(ctx); err != nil {
		return obs, err
	}
	if !s.responsive() {
		return obs, fmt.Errorf("observe %s: %w", s.node.Name, s.errDown())
	}
	obs.Reachable, obs.InRecovery, obs.ReadOnly, obs.Timeline = true, s.inRecovery, s.inRecovery, s.lin.tli
	obs.SystemIdentifier = "7000000000000000001"
	obs.WALSenderTimeout = walSenderTimeout
	if len(s.syncNames) > 0 {
		obs.SynchronousStandbyNames = "ANY 1 (" + strings.Join(s.syncNames, ", ") + ")"
	}
	if s.inRecovery {
		obs.ReceivedLSN, obs.ReplayedLSN, obs.ReplayBacklogBytes = wal.LSN(s.wal), wal.LSN(s.replayed), s.wal-s.replayed
		if s.upstream != "" {
			obs.UpstreamHost, obs.UpstreamPort = s.upstream, 5432
		}
		if s.receiving {
			obs.WALReceiver = &database.WALReceiver{Status: "streaming", ReceivedTLI: s.lin.tli, SenderHost: s.upstream, SenderPort: 5432,
				LastMessageAgeSec: s.w.now.Sub(s.lastMsg).Seconds()}
		}
	} else {
		obs.CurrentLSN = wal.LSN(s.wal)
	}
	for _, n := range s.w.nodes {
		if t := n.srv; t != s && t.running && t.receiving && t.upstream == s.node.Name {
			obs.Standbys = append(obs.Standbys, database.Standby{ApplicationName: n.Name, State: "streaming", FlushLSN: wal.LSN(t.wal)})
		}
	}
	return obs, nil
}

// probeBytes is the WAL one write adds.
const probeBytes = 200

func (h serverHandle) ProbeWrite(ctx context.Context) database.ProbeResult {
	s := h.s
	r := database.ProbeResult{Node: s.node.Name}
	if err := h.check(ctx); err != nil {
		r.Class, r.Err, r.Error = database.ProbeConnectionFailure, err, err.Error()
		return r
	}
	switch {
	case !s.responsive():
		err := s.errDown()
		r.Class, r.Err, r.Error = database.ProbeConnectionFailure, err, err.Error()
		if s.hung {
			r.Class = database.ProbeTimeout
		}
	case s.inRecovery:
		r.Class, r.SQLState, r.ReplayBacklogBytes = database.ProbeInRecovery, "25006", s.wal-s.replayed
		r.Error = "cannot execute INSERT in a read-only transaction"
	default:
		s.wal += probeBytes
		if len(s.syncNames) > 0 && s.syncStandby() == nil {
			r.Class, r.Error = database.ProbeSyncWait, "commit waits for a synchronous standby"
			return r
		}
		s.w.replicate()
		r.Class, r.CommitLSN = database.ProbeOK, wal.LSN(s.wal)
		s.probed = s.lin
	}
	return r
}

func (h serverHandle) Start(ctx context.Context) error {
	if err := h.check(ctx); err != nil {
		return err
	}
	h.s.start()
	return nil
}

func (h serverHandle) Stop(ctx context.Context, mode pgctl.StopMode) error {
	if err := h.check(ctx); err != nil {
		return err
	}
	if h.s.hung {
		return fmt.Errorf("stop %s: server did not shut down (simulated hang)", h.s.node.Name)
	}
	h.s.stopped(fmt.Sprintf("stop -m %v", mode))
	return nil
}

// Halt ends even a hung server: SIGKILL works on stopped processes.
func (h serverHandle) Halt(ctx context.Context, _ time.Duration) error {
	if err := h.check(ctx); err != nil {
		return err
	}
	h.s.stopped("halt")
	return nil
}

func (h serverHandle) Promote(ctx context.Context, wait time.Duration) error {
	if err := h.check(ctx); err != nil {
		return err
	}
	s := h.s
	switch {
	case !s.responsive():
		return fmt.Errorf("promote %s: %w", s.node.Name, s.errDown())
	case !s.inRecovery:
		return nil
	}
	s.promoting, s.receiving = true, false
	if s.replayRate == 0 {
		return fmt.Errorf("promote %s: replay stalled", s.node.Name)
	}
	deadline := s.w.now.Add(wait)
	for s.inRecovery && s.w.now.Before(deadline) {
		// Short waits: the replay rate may change meanwhile (unlag).
		left := time.Duration(float64(s.wal-s.replayed) / float64(s.replayRate) * float64(time.Second))
		if err := h.inc.w.sleepFor(h.inc, ctx, min(max(left, time.Millisecond), 100*time.Millisecond)); err != nil {
			return fmt.Errorf("promote %s: %w", s.node.Name, err)
		}
		if !s.running {
			return fmt.Errorf("promote %s: server stopped", s.node.Name)
		}
	}
	if s.inRecovery {
		return fmt.Errorf("promote %s: still in recovery after %s", s.node.Name, wait)
	}
	return nil
}

func (w *World) sleepFor(inc *incarnation, ctx context.Context, d time.Duration) error {
	return vclock{inc}.Sleep(ctx, d)
}

func (h serverHandle) Follow(ctx context.Context, up database.Upstream) error {
	if err := h.check(ctx); err != nil {
		return err
	}
	s := h.s
	if s.hung {
		return fmt.Errorf("follow: %w", s.errDown())
	}
	if s.running && !s.inRecovery {
		s.stopped("restart as a standby")
	}
	s.standby, s.upstream, s.receiving = true, up.Host, false
	s.nextConnect = s.w.now
	if s.running {
		s.w.note(fmt.Sprintf("%s now follows %s", s.node.Name, up.Host))
		return nil
	}
	s.start()
	return nil
}

func (h serverHandle) Rejoin(ctx context.Context, up database.Upstream, _ rejoin.Options, _ rejoin.Recorder) (rejoin.Result, error) {
	res := rejoin.Result{Node: h.s.node.Name, Upstream: up.Host}
	if err := h.check(ctx); err != nil {
		return res, err
	}
	s := h.s
	n := s.w.Node(up.Host)
	if n == nil {
		return res, fmt.Errorf("rejoin: no node %s", up.Host)
	}
	src := n.srv
	if !src.responsive() || s.node.cutPeers || n.cutPeers {
		return res, fmt.Errorf("rejoin: upstream %s cannot be reached", up.Host)
	}
	if s.hung {
		return res, fmt.Errorf("rejoin: %w", s.errDown())
	}
	s.stopped("rejoin")
	res.Method = rejoin.Rewind
	if s.canFollow(src) {
		res.Method = rejoin.None
	}
	// pg_rewind: the history becomes the upstream's, whatever this server
	// wrote past the fork is gone.
	s.lin, s.wal, s.replayed = src.lin, src.wal, src.wal
	s.standby, s.upstream, s.syncNames = true, up.Host, nil
	s.start()
	s.w.note(fmt.Sprintf("%s rejoined %s (%s)", s.node.Name, up.Host, res.Method))
	res.Evidence = "simulated rejoin"
	return res, nil
}

// Reinit is a rejoin whose result is always a copy of the upstream: the
// simulated server has no data directory to damage, so the two differ
// only in what they report.
func (h serverHandle) Reinit(ctx context.Context, up database.Upstream, o rejoin.Options, rec rejoin.Recorder) (rejoin.Result, error) {
	res, err := h.Rejoin(ctx, up, o, rec)
	if err != nil {
		return res, fmt.Errorf("reinit: %w", err)
	}
	res.Method, res.MovedDataDir, res.Evidence = rejoin.BaseBackup, "(simulated)", "simulated reinit"
	return res, nil
}

func (h serverHandle) sql(ctx context.Context, what string) error {
	if err := h.check(ctx); err != nil {
		return err
	}
	if !h.s.responsive() {
		return fmt.Errorf("%s: %w", what, h.s.errDown())
	}
	return nil
}

func (h serverHandle) EnsureSlot(ctx context.Context, _ string) error { return h.sql(ctx, "slot") }

func (h serverHandle) SetSynchronous(ctx context.Context, names ...string) error {
	if len(names) == 0 {
		return errors.New("set synchronous: no standby names given")
	}
	if err := h.sql(ctx, "set synchronous"); err != nil {
		return err
	}
	h.s.syncNames = append([]string(nil), names...)
	return nil
}

func (h serverHandle) SetAsync(ctx context.Context) error {
	if err := h.sql(ctx, "set async"); err != nil {
		return err
	}
	h.s.syncNames = nil
	return nil
}

func (h serverHandle) Checkpoint(ctx context.Context) error { return h.sql(ctx, "checkpoint") }
func (h serverHandle) CheckAlive(ctx context.Context) error { return h.sql(ctx, "select 33333") }

// PeerIsPrimary: the peer answers over the network between the hosts (the
// upstream's name is its host in this world).
func (h serverHandle) PeerIsPrimary(ctx context.Context, host string, _ int) (bool, error) {
	if err := h.check(ctx); err != nil {
		return false, err
	}
	peer := h.s.w.Node(host)
	if peer == nil || h.s.node.cutPeers || peer.cutPeers || !peer.srv.responsive() {
		return false, fmt.Errorf("ask %s whether it runs as a primary: no answer", host)
	}
	return !peer.srv.inRecovery, nil
}

// Control.

func (h serverHandle) Status(ctx context.Context) (bool, int, error) {
	if err := h.check(ctx); err != nil {
		return false, 0, err
	}
	if h.s.running {
		return true, 1000, nil
	}
	return false, 0, nil
}

func (h serverHandle) ControlData(ctx context.Context) (pgctl.ControlData, error) {
	if err := h.check(ctx); err != nil {
		return pgctl.ControlData{}, err
	}
	s := h.s
	state := "shut down"
	switch {
	case s.running && s.inRecovery:
		state = "in archive recovery"
	case s.running:
		state = "in production"
	case s.standby:
		state = "shut down in recovery"
	}
	return pgctl.ControlData{SystemID: "7000000000000000001", State: state, Timeline: s.lin.tli, CheckpointLSN: wal.LSN(s.wal).String()}, nil
}

func (h serverHandle) StandbyConfigured() bool { return h.s.standby }

func (h serverHandle) RequestPromote(ctx context.Context) error {
	if err := h.check(ctx); err != nil {
		return err
	}
	h.s.promoting = true
	return nil
}

func (h serverHandle) RewindConn() database.ConnConfig { return database.ConnConfig{User: "sim"} }
