package agent

import (
	"context"
	"time"

	"github.com/vigil-ha/vigil/internal/clock"
	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/isolation"
	"github.com/vigil-ha/vigil/internal/pgctl"
	"github.com/vigil-ha/vigil/internal/rejoin"
)

// The agent's I/O edges, one small interface each, so that the same agent
// code runs against real PostgreSQL and etcd (*database.Server, *dcs.Store,
// isolation.Checker) and against the in-memory cluster of package sim, on a
// virtual clock.

// Server is what the agent asks of its database server over SQL and
// through the control binary's verbs: exactly the methods of
// *database.Server it calls.
type Server interface {
	Observe(ctx context.Context) (database.Observation, error)
	ProbeWrite(ctx context.Context) database.ProbeResult
	Start(ctx context.Context) error
	Stop(ctx context.Context, mode pgctl.StopMode) error
	Halt(ctx context.Context, grace time.Duration) error
	Promote(ctx context.Context, wait time.Duration) error
	Follow(ctx context.Context, up database.Upstream) error
	EnsureSlot(ctx context.Context, name string) error
	SetSynchronous(ctx context.Context, names ...string) error
	SetAsync(ctx context.Context) error
	Checkpoint(ctx context.Context) error
	CheckAlive(ctx context.Context) error
	// PeerIsPrimary asks another server of the cluster whether it runs
	// as a primary.
	PeerIsPrimary(ctx context.Context, host string, port int) (bool, error)
}

// Control is what the agent learns of its server without SQL (the process,
// the control file, the standby signal in the data directory) and the few
// things it does outside Server's verbs. For a *database.Server, New builds
// it from the server's pg_ctl and data directory.
type Control interface {
	// Status reports whether a server process runs (and its PID).
	Status(ctx context.Context) (running bool, pid int, err error)
	// ControlData reads the control file: what a stopped server knows of
	// its history.
	ControlData(ctx context.Context) (pgctl.ControlData, error)
	// StandbyConfigured: a stopped server would start as a standby.
	StandbyConfigured() bool
	// RequestPromote asks for a promotion without waiting for it: the
	// legacy order only.
	RequestPromote(ctx context.Context) error
	// RewindConn is the account pg_rewind reads the leader's files as.
	RewindConn() database.ConnConfig
	// Rejoin makes the stopped or diverged server a standby of up (the
	// rejoin procedure, package rejoin), its steps recorded by rec.
	Rejoin(ctx context.Context, up database.Upstream, o rejoin.Options, rec rejoin.Recorder) (rejoin.Result, error)
	// Reinit rebuilds the server as a standby of up by a base backup,
	// whatever its data directory holds (rejoin.Reinit), its steps
	// recorded by rec.
	Reinit(ctx context.Context, up database.Upstream, o rejoin.Options, rec rejoin.Recorder) (rejoin.Result, error)
}

// Store is the part of the DCS the agent uses: exactly the methods of
// *dcs.Store it calls.
type Store interface {
	dcsLeader
	Snapshot(ctx context.Context) (dcs.View, error)
	PublishMember(ctx context.Context, m dcs.Member) error
	WithdrawMember(ctx context.Context) error
	PublishPrimary(ctx context.Context, p dcs.Primary) error
	WithdrawPrimary(ctx context.Context, node string) error
	SetStatus(ctx context.Context, st dcs.Status) error
	SetSync(ctx context.Context, names []string) error
	SetRequest(ctx context.Context, r dcs.Request) error
	ClearRequest(ctx context.Context, revision int64) error
	AppendHistory(ctx context.Context, at time.Time, record any) error
	MoveEtcdLeaderFrom(ctx context.Context, endpoint string) (string, error)
}

// TrustedChecker answers whether this node still reaches the network it
// serves (isolation.Checker).
type TrustedChecker interface {
	Check(ctx context.Context) isolation.Result
}

// FailsafePinger asks a member's agent, directly and not through the DCS,
// to promise leader not to take the key (see failsafe.go). The default
// posts to the member's API.
type FailsafePinger interface {
	PingFailsafe(ctx context.Context, leader, member, apiURL string) error
}

// Clock is the agent's time: Now for every timestamp and comparison, Sleep
// for every wait inside a loop step. A simulation supplies a virtual one.
type Clock = clock.Clock

// pgControl is Control for a *database.Server: its pg_ctl, its data
// directory, its connection settings.
type pgControl struct {
	srv *database.Server
	// rewindUser and rewindPassword: see Options.RewindUser.
	rewindUser, rewindPassword string
}

func (c pgControl) Status(ctx context.Context) (bool, int, error) { return c.srv.Ctl.Status(ctx) }

func (c pgControl) ControlData(ctx context.Context) (pgctl.ControlData, error) {
	return c.srv.Ctl.ControlData(ctx)
}

func (c pgControl) StandbyConfigured() bool { return fileExists(c.srv.StandbyMarker()) }

func (c pgControl) RequestPromote(ctx context.Context) error {
	// failover_stream.sh ran "sys_ctl promote" without waiting.
	return c.srv.Ctl.RequestPromote(ctx)
}

func (c pgControl) Rejoin(ctx context.Context, up database.Upstream, o rejoin.Options, rec rejoin.Recorder) (rejoin.Result, error) {
	return rejoin.Run(ctx, c.srv, up, o, rec)
}

func (c pgControl) Reinit(ctx context.Context, up database.Upstream, o rejoin.Options, rec rejoin.Recorder) (rejoin.Result, error) {
	return rejoin.Reinit(ctx, c.srv, up, o, rec)
}

func (c pgControl) RewindConn() database.ConnConfig {
	// pg_rewind reads the leader's files as the configured rewind account,
	// else as the agent's own role, which every member shares.
	conn := c.srv.Conn
	rw := database.ConnConfig{User: conn.User, Password: conn.Password, Database: conn.Database, ConnectTimeout: conn.ConnectTimeout}
	if c.rewindUser != "" {
		rw.User, rw.Password = c.rewindUser, c.rewindPassword
	}
	return rw
}
