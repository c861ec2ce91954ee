// Package labtest starts lab clusters for tests of other packages and makes
// sure they are torn down, whatever the test's outcome.
package labtest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

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
