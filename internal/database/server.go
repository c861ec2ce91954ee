// Package database is Vigil's adapter to one PostgreSQL or KingbaseES server:
// it observes the server's replication state, proves that it can commit a
// write, and changes its role (promote, stop, start, follow another primary,
// switch synchronous replication). Every call is bounded by its context.
//
// SQL is written once with {{pg_name}} placeholders and renamed per flavor
// (see package flavor), so the KingbaseES path runs the same statements with
// sys_ names.
package database

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/vigil-ha/vigil/internal/flavor"
	"github.com/vigil-ha/vigil/internal/pgctl"
	"github.com/vigil-ha/vigil/internal/proc"
)

// ConnConfig says how the agent connects to its own server.
type ConnConfig struct {
	Host           string // host name, IP or unix socket directory
	Port           int
	User           string
	Password       string // resolved secret; never logged
	Database       string
	ConnectTimeout time.Duration
}

// Server is one database server: SQL access plus its control binary.
type Server struct {
	Name   string
	Flavor flavor.Flavor
	Conn   ConnConfig
	Ctl    pgctl.Ctl
	// StartOptions are used by Start and by restarts inside Follow.
	StartOptions pgctl.StartOptions
	// BaseBackupMaxRate limits BaseBackup's transfer (pg_basebackup
	// --max-rate, e.g. "32M"); empty: unlimited.
	BaseBackupMaxRate string
	Logger            *slog.Logger

	// catalogSeen is what the server said of its names (see Catalog), asked
	// once: the names change only with the server's major version, and the
	// agent's loop and the readiness gate call in every few milliseconds.
	catalogSeen atomic.Pointer[Catalog]
	// recoveryConfSeen caches recoveryConf.
	recoveryConfSeen atomic.Pointer[bool]
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// sql renames a statement for the server's flavor.
func (s *Server) sql(stmt string) string { return s.Flavor.SQL(stmt) }

// connect opens a fresh session. The adapter deliberately keeps no pool: an
// HA agent talks to a server that restarts and changes role under it, and a
// new session per call can never report a stale state.
func (s *Server) connect(ctx context.Context, onNotice pgconn.NoticeHandler) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(connString(s.Conn))
	if err != nil {
		return nil, fmt.Errorf("connection settings for %s: %w", s.Name, err)
	}
	cfg.Password = s.Conn.Password
	cfg.RuntimeParams["application_name"] = "vigil"
	cfg.OnNotice = onNotice
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, &ConnectError{Node: s.Name, Err: err}
	}
	return conn, nil
}

// connString builds a keyword/value string without the password, which is
// set on the parsed config so that it is never formatted into a string.
func connString(c ConnConfig) string {
	kv := []string{"host", c.Host, "user", c.User, "dbname", c.Database}
	if c.Port != 0 {
		kv = append(kv, "port", strconv.Itoa(c.Port))
	}
	if c.ConnectTimeout > 0 {
		secs := int(c.ConnectTimeout.Round(time.Second) / time.Second)
		kv = append(kv, "connect_timeout", strconv.Itoa(max(secs, 1)))
	}
	var b strings.Builder
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == "" {
			continue
		}
		fmt.Fprintf(&b, "%s='%s' ", kv[i], strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(kv[i+1]))
	}
	return strings.TrimSpace(b.String())
}

// ConnectError means the server could not be reached or refused the session.
type ConnectError struct {
	Node string
	Err  error
}

func (e *ConnectError) Error() string { return fmt.Sprintf("connect to %s: %v", e.Node, e.Err) }
func (e *ConnectError) Unwrap() error { return e.Err }

// withConn runs f on a fresh session and closes it.
func (s *Server) withConn(ctx context.Context, f func(*pgx.Conn) error) error {
	return s.withConnNotices(ctx, nil, f)
}

// withConnNotices is withConn with a handler for the server's notices and warnings.
func (s *Server) withConnNotices(ctx context.Context, onNotice pgconn.NoticeHandler, f func(*pgx.Conn) error) error {
	conn, err := s.connect(ctx, onNotice)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return f(conn)
}

// Start starts the server through its control binary; a running server is left alone.
func (s *Server) Start(ctx context.Context) error {
	if err := s.Ctl.Start(ctx, s.StartOptions); err != nil {
		return fmt.Errorf("start %s: %w", s.Name, err)
	}
	return nil
}

// Stop stops the server: Fast for a clean shutdown, Immediate to fence.
func (s *Server) Stop(ctx context.Context, mode pgctl.StopMode) error {
	if err := s.Ctl.Stop(ctx, mode, 0); err != nil {
		return fmt.Errorf("stop %s: %w", s.Name, err)
	}
	return nil
}

// Halt ends the server within about grace: an immediate shutdown first,
// then SIGKILL of the postmaster and all its children for a server that
// cannot shut down (its processes are stopped or stuck in the kernel). A
// fence that waits for a hung server fences nothing while the leader key
// keeps pointing at it. It returns an error only if processes survive.
func (s *Server) Halt(ctx context.Context, grace time.Duration) error {
	_, pid, err := s.Ctl.Status(ctx)
	if err != nil {
		return fmt.Errorf("halt %s: %w", s.Name, err)
	}
	if pid == 0 {
		return nil
	}
	// Children are listed while the postmaster lives: once it dies they
	// belong to init and nothing names them as the server's any more.
	tree, err := proc.Tree(pid)
	if err != nil {
		return fmt.Errorf("halt %s: %w", s.Name, err)
	}
	stopCtx, cancel := context.WithTimeout(ctx, grace)
	stopErr := s.Ctl.Stop(stopCtx, pgctl.Immediate, grace)
	cancel()
	if stopErr == nil && len(proc.Alive(tree)) == 0 {
		return nil
	}
	s.logger().Warn("server did not stop in time: killing its processes", "server", s.Name, "postmaster", pid, "processes", len(tree), "grace", grace, "stop_err", stopErr)
	left, err := proc.KillUntilGone(func() ([]int, error) { return proc.Alive(tree), nil }, max(grace, time.Second))
	if err != nil || len(left) > 0 {
		return fmt.Errorf("halt %s: processes %v survive SIGKILL: %w", s.Name, left, errors.Join(err, stopErr))
	}
	return nil
}

// Checkpoint forces a checkpoint, so that a crash soon after a promotion does
// not have to replay everything since the standby's last restartpoint.
func (s *Server) Checkpoint(ctx context.Context) error {
	err := s.withConn(ctx, func(c *pgx.Conn) error {
		_, err := c.Exec(ctx, "CHECKPOINT")
		return s.needs(OpCheckpoint, err)
	})
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", s.Name, err)
	}
	return nil
}

// isSQLState reports whether err carries one of the given SQLSTATE codes.
func isSQLState(err error, codes ...string) bool {
	code := sqlState(err)
	for _, c := range codes {
		if code == c {
			return true
		}
	}
	return false
}

// CheckAlive runs a trivial query. It proves the server answers, nothing
// more: a server that refuses every write passes it. The legacy failover
// order used it as its readiness check (the seed's "select 33333"); Vigil
// keeps it only to reproduce that baseline.
func (s *Server) CheckAlive(ctx context.Context) error {
	return s.withConn(ctx, func(c *pgx.Conn) error {
		var v int
		return c.QueryRow(ctx, "select 33333").Scan(&v)
	})
}
