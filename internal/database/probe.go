package database

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/vigil-ha/vigil/internal/wal"
)

// ProbeClass classifies the outcome of a write probe.
type ProbeClass string

// Probe outcomes. Only ProbeOK means the server is ready for clients.
const (
	ProbeOK ProbeClass = "ok"
	// ProbeReadOnly: the server refused the write (SQLSTATE 25006) although
	// it is not in recovery, e.g. default_transaction_read_only=on.
	ProbeReadOnly ProbeClass = "read_only"
	// ProbeInRecovery: the server refused the write (SQLSTATE 25006) because
	// it is a standby, or a promoted standby still replaying its backlog.
	ProbeInRecovery ProbeClass = "in_recovery"
	// ProbeConnectionFailure: no session could be opened or it broke.
	ProbeConnectionFailure ProbeClass = "connection_failure"
	// ProbeTimeout: the write did not finish in time, e.g. a commit waiting
	// for a synchronous standby that is gone.
	ProbeTimeout ProbeClass = "timeout"
	// ProbeSyncWait: the commit waited for a synchronous standby until the
	// deadline. It did commit locally, but nobody acknowledged it: with no
	// synchronous standby left the server is not usable until it goes async.
	ProbeSyncWait ProbeClass = "sync_wait"
	// ProbeOther: any other error.
	ProbeOther ProbeClass = "other"
)

// ProbeResult is the evidence of one write probe.
type ProbeResult struct {
	Node  string     `json:"node"`
	Class ProbeClass `json:"class"`
	// SQLState is the server's error code, when it sent one.
	SQLState string `json:"sqlstate,omitempty"`
	Err      error  `json:"-"`
	Error    string `json:"error,omitempty"`
	// CommitLSN is the WAL position after the committed write.
	CommitLSN wal.LSN       `json:"commit_lsn,omitzero"`
	Counter   int64         `json:"counter,omitempty"`
	Latency   time.Duration `json:"latency_ns"`
	// ReplayBacklogBytes is what is left to replay when Class is in_recovery
	// and the server could still be asked (0 when unknown).
	ReplayBacklogBytes uint64 `json:"replay_backlog_bytes,omitempty"`
}

// Writable reports whether the probe committed.
func (r ProbeResult) Writable() bool { return r.Class == ProbeOK }

func (r ProbeResult) String() string {
	if r.Class == ProbeOK {
		return fmt.Sprintf("write committed on %s at LSN %s in %s", r.Node, r.CommitLSN, r.Latency.Round(time.Microsecond))
	}
	return fmt.Sprintf("write refused on %s: %s: %s", r.Node, r.Class, r.Error)
}

// Heartbeat schema owned by the adapter. One row per node; each probe
// updates its row, so the table never grows.
const (
	heartbeatSchema = `CREATE SCHEMA IF NOT EXISTS vigil;
CREATE TABLE IF NOT EXISTS vigil.heartbeat (
	node       text PRIMARY KEY,
	written_at timestamptz NOT NULL,
	counter    bigint NOT NULL
)`
	heartbeatWrite = `INSERT INTO vigil.heartbeat AS h (node, written_at, counter) VALUES ($1, now(), 1)
ON CONFLICT (node) DO UPDATE SET written_at = excluded.written_at, counter = h.counter + 1
RETURNING h.counter, {{pg_current_wal_lsn}}()::text`
)

// SQLSTATEs the probe recognises.
const (
	sqlStateReadOnly       = "25006" // read_only_sql_transaction
	sqlStateUndefinedTable = "42P01"
	sqlStateInvalidSchema  = "3F000"
	sqlStateCannotConnect  = "57P03" // cannot_connect_now: starting up or shutting down
	sqlStateAdminShutdown  = "57P01"
	sqlStateCrashShutdown  = "57P02"
	sqlStateQueryCanceled  = "57014"
)

// ProbeWrite commits a real write and says whether it worked. This is the
// readiness test: a server that answers "select 1" may still refuse every
// write, which is exactly what the seed incident's clients saw.
func (s *Server) ProbeWrite(ctx context.Context) ProbeResult {
	start := time.Now()
	res := ProbeResult{Node: s.Name}
	syncWaitCanceled := false
	onNotice := func(_ *pgconn.PgConn, n *pgconn.Notice) {
		if strings.HasPrefix(n.Message, "canceling wait for synchronous replication") {
			syncWaitCanceled = true
		}
	}
	err := s.withConnNotices(ctx, onNotice, func(c *pgx.Conn) error {
		cat, err := s.catalog(ctx, c)
		if err != nil {
			return err
		}
		err = s.writeHeartbeat(ctx, c, cat, &res)
		if isSQLState(err, sqlStateUndefinedTable, sqlStateInvalidSchema) {
			// First probe on this cluster: create the table. On a standby
			// the CREATE is refused like the write, and classified below.
			if _, err = c.Exec(ctx, heartbeatSchema); err == nil {
				err = s.writeHeartbeat(ctx, c, cat, &res)
			} else {
				err = fmt.Errorf("create heartbeat table: %w", err)
			}
		}
		err = s.needs(OpProbeWrite, err)
		if isSQLState(err, sqlStateReadOnly) {
			// Ask why: still replaying (and how much is left) or read-only by setting.
			res.Class = ProbeReadOnly
			var inRecovery bool
			var received, replayed *string
			q := s.sqlFor(cat, qRefusalReason)
			if qerr := c.QueryRow(ctx, q).Scan(&inRecovery, &received, &replayed); qerr == nil && inRecovery {
				res.Class = ProbeInRecovery
				rcv, _ := parseOptionalLSN(received)
				rpl, _ := parseOptionalLSN(replayed)
				res.ReplayBacklogBytes = rcv.Sub(rpl)
			}
		}
		return err
	})
	res.Latency = time.Since(start)
	if syncWaitCanceled {
		res.Class = ProbeSyncWait
		res.Error = "commit waited for a synchronous standby until the deadline (committed locally, not acknowledged)"
		if err != nil {
			res.Err = fmt.Errorf("probe write on %s: %w", s.Name, err)
		} else {
			res.Err = fmt.Errorf("probe write on %s: %s", s.Name, res.Error)
		}
		return res
	}
	if err == nil {
		res.Class = ProbeOK
		return res
	}
	res.Err = fmt.Errorf("probe write on %s: %w", s.Name, err)
	res.Error = err.Error()
	res.SQLState = sqlState(err)
	if res.Class == "" {
		res.Class = classify(ctx, err)
	}
	return res
}

func (s *Server) writeHeartbeat(ctx context.Context, c *pgx.Conn, cat Catalog, res *ProbeResult) error {
	// A commit waiting for a synchronous standby that is gone would hang
	// until the context ends and tell nothing. Cancelling it a little
	// before the deadline makes the server end the wait itself and say so
	// (a warning the notice handler catches): committed locally, not
	// acknowledged. Statement timeouts do not interrupt that wait.
	if deadline, ok := ctx.Deadline(); ok {
		if budget := time.Until(deadline) * 3 / 4; budget >= 10*time.Millisecond {
			timer := time.AfterFunc(budget, func() {
				cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Until(deadline))
				defer cancel()
				_ = c.PgConn().CancelRequest(cctx)
			})
			defer timer.Stop()
		}
	}
	var lsn string
	if err := c.QueryRow(ctx, s.sqlFor(cat, heartbeatWrite), s.Name).Scan(&res.Counter, &lsn); err != nil {
		return err
	}
	var err error
	res.CommitLSN, err = wal.ParseLSN(lsn)
	return err
}

func classify(ctx context.Context, err error) ProbeClass {
	var ce *ConnectError
	switch {
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil || isSQLState(err, sqlStateQueryCanceled):
		return ProbeTimeout
	case errors.As(err, &ce), isSQLState(err, sqlStateCannotConnect, sqlStateAdminShutdown, sqlStateCrashShutdown), pgconn.SafeToRetry(err):
		return ProbeConnectionFailure
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		// No server error code: the session broke underneath us.
		return ProbeConnectionFailure
	}
	return ProbeOther
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}
