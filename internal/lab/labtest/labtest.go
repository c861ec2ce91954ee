// Package labtest starts lab clusters for tests of other packages and makes
// sure they are torn down, whatever the test's outcome.
package labtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/lab"
)

// New builds a lab with o (Dir is chosen here) and registers its teardown.
func New(t testing.TB, o lab.Options) *lab.Lab {
	t.Helper()
	// The database processes run as an unprivileged user when tests run as
	// root, so the lab must live where that user can reach it: not under
	// the 0700 directory that t.TempDir creates.
	parent, err := os.MkdirTemp("", "vigil-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	o.Dir = filepath.Join(parent, "lab")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l, err := lab.Up(ctx, o)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := l.Down(ctx); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	return l
}

// Server returns the database adapter for a lab node, connected as the
// lab's superuser over TCP.
func Server(t testing.TB, l *lab.Lab, name string) *database.Server {
	t.Helper()
	n, err := l.Node(name)
	if err != nil {
		t.Fatal(err)
	}
	user, password, err := l.Superuser()
	if err != nil {
		t.Fatal(err)
	}
	return &database.Server{
		Name:   n.Name,
		Flavor: l.Flavor(),
		Conn: database.ConnConfig{
			Host: n.Host, Port: n.Port, User: user, Password: password,
			Database: l.Flavor().DefaultDatabase, ConnectTimeout: 5 * time.Second,
		},
		Ctl:          l.Ctl(n),
		StartOptions: l.StartOptions(n),
	}
}

// Context is a context that ends after d or with the test.
func Context(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Observe is s.Observe, failing the test on an error.
func Observe(t testing.TB, ctx context.Context, s *database.Server) database.Observation {
	t.Helper()
	obs, err := s.Observe(ctx)
	if err != nil {
		t.Fatalf("observe %s: %v", s.Name, err)
	}
	return obs
}

// TryConnect opens a session as the adapter's user, for tests that set up
// data or read back what the adapter changed.
func TryConnect(ctx context.Context, s *database.Server) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=%s dbname=%s", s.Conn.Host, s.Conn.Port, s.Conn.User, s.Conn.Database))
	if err != nil {
		return nil, err
	}
	cfg.Password = s.Conn.Password
	return pgx.ConnectConfig(ctx, cfg)
}

// Connect is TryConnect, failing the test on an error.
func Connect(t testing.TB, ctx context.Context, s *database.Server) *pgx.Conn {
	t.Helper()
	conn, err := TryConnect(ctx, s)
	if err != nil {
		t.Fatalf("connect to %s: %v", s.Name, err)
	}
	return conn
}

// Exec runs a statement as the adapter's user.
func Exec(t testing.TB, ctx context.Context, s *database.Server, stmt string, args ...any) {
	t.Helper()
	conn := Connect(t, ctx, s)
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, stmt, args...); err != nil {
		t.Fatalf("%s on %s: %v", stmt, s.Name, err)
	}
}

// QueryString runs a query that answers with one text value.
func QueryString(t testing.TB, ctx context.Context, s *database.Server, q string, args ...any) string {
	t.Helper()
	conn := Connect(t, ctx, s)
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, q, args...).Scan(&v); err != nil {
		t.Fatalf("%s on %s: %v", q, s.Name, err)
	}
	return v
}

// WaitFor polls cond until it holds, failing the test when ctx ends first.
func WaitFor(t testing.TB, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
