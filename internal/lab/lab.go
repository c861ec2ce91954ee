// Package lab builds real local PostgreSQL (or KingbaseES) streaming-replication
// clusters for tests, demos and benchmarks: a primary and its standbys, either
// on loopback ports or each in its own network namespace behind a bridge.
//
// Everything a lab creates is listed in DIR/lab.json as soon as it exists, so
// Down removes exactly that, also after a failed Up or a crash.
package lab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/internal/flavor"
	"github.com/vigil-ha/vigil/internal/pgctl"
	"github.com/vigil-ha/vigil/internal/proc"
)

// DefaultBinDir is where Debian's postgresql-15 package installs the server.
const DefaultBinDir = "/usr/lib/postgresql/15/bin"

// DefaultOSUser runs the database processes when the lab is built by root.
const DefaultOSUser = "postgres"

// MaxNodes bounds a lab: node addresses are .11 onwards in one /24, and a
// 2-core machine runs a handful of servers well, not hundreds.
const MaxNodes = 50

// ReplicationUser is the role the standbys stream as.
const ReplicationUser = "replicator"

// confFile holds every server setting the lab chooses; the flavor's main
// config file only gains an include line, and postgresql.auto.conf is left to
// pg_basebackup -R and ALTER SYSTEM.
const confFile = "vigil-lab.conf"

// Options say what lab to build.
type Options struct {
	// Dir is the lab directory. It is created if missing; an existing one
	// must be empty unless Force. The directory belongs to the lab: Down
	// removes it.
	Dir string
	// Nodes is the number of servers: node1 is the primary, node2..N standbys.
	Nodes int
	// Netns puts each node in its own network namespace (needs root).
	Netns bool
	// Empty gives the nodes their network, directories and secrets but no
	// data directory: the agents build the cluster (bootstrap, clone).
	Empty bool
	// BinDir holds the flavor's binaries; DefaultBinDir when empty.
	BinDir string
	// Flavor is the database product; PostgreSQL when zero.
	Flavor flavor.Flavor
	// BasePort: in loopback mode node K listens on BasePort+K-1, and 0 picks
	// free ports. In netns mode every node listens on this port on its own
	// address, the flavor's default port when 0.
	BasePort int
	// OSUser runs the database processes when Up runs as root (PostgreSQL
	// refuses root); DefaultOSUser when empty. Without root the processes
	// run as the caller.
	OSUser string
	// Force removes an existing lab in Dir, through its state file, first.
	Force bool
	// Logger receives progress; nothing is logged when nil.
	Logger *slog.Logger
}

// Node is one server of the lab.
type Node struct {
	Name string `json:"name"`
	// Primary is the role the lab built the node with; failovers done
	// since then show in Status, not here.
	Primary bool   `json:"primary"`
	DataDir string `json:"data_dir"`
	// Host is the address the server listens on, reachable from the host
	// that built the lab.
	Host string `json:"host"`
	Port int    `json:"port"`
	// Netns is the node's network namespace; empty in loopback mode.
	Netns string `json:"netns,omitempty"`
	// SocketDir holds the server's unix socket; one per node, so nodes in
	// different namespaces can share a port.
	SocketDir string `json:"socket_dir"`
	// LogFile is the server log written by the logging collector.
	LogFile string `json:"log_file"`
	// StartupLog receives the server's output before the collector runs.
	StartupLog string `json:"startup_log"`
	// Link is the host end of the node's veth pair (netns mode).
	Link string `json:"link,omitempty"`
}

// InputError is an unusable option or environment detected before the lab
// touched anything.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

func inputErrorf(format string, args ...any) error {
	return &InputError{Err: fmt.Errorf(format, args...)}
}

// Lab is a built (or half-built) lab, described by its state file.
type Lab struct {
	flavor flavor.Flavor
	// user runs the database processes; nil means the current user.
	user *proc.Identity

	mu     sync.Mutex // guards st and its file
	st     state
	logger *slog.Logger
}

// Up builds a lab. On failure it removes whatever it had created and returns
// the error that stopped it.
func Up(ctx context.Context, o Options) (*Lab, error) {
	return up(ctx, o, os.Geteuid())
}

// up is Up with the effective user id as a parameter, so that the checks for
// root can be tested by a test that runs as root.
func up(ctx context.Context, o Options, euid int) (*Lab, error) {
	p, err := makePlan(ctx, o, euid)
	if err != nil {
		return nil, err
	}
	if p.replace {
		old, err := Open(p.dir)
		if err != nil {
			return nil, fmt.Errorf("replace the lab in %s: %w", p.dir, err)
		}
		old.SetLogger(p.logger)
		p.logger.Info("removing the existing lab (force)", "dir", p.dir)
		if err := old.Down(ctx); err != nil {
			return nil, fmt.Errorf("replace the lab in %s: %w", p.dir, err)
		}
	}
	l := &Lab{flavor: p.flavor, user: p.user, logger: p.logger}
	if err := l.build(ctx, p); err != nil {
		// The caller's context may be what ended the build; cleaning up
		// must still get its own time.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if l.st.Dir == "" {
			return nil, err
		}
		l.logger.Warn("lab up failed, removing what it created", "err", err)
		if derr := l.Down(cctx); derr != nil {
			return nil, fmt.Errorf("%w (removing the half-built lab also failed: %v; retry with vigil lab down --dir %s)", err, derr, p.dir)
		}
		return nil, err
	}
	l.logger.Info("lab up", "dir", p.dir, "nodes", len(l.st.Nodes), "netns", l.st.Netns, "subnet", l.st.Subnet)
	return l, nil
}

// Open loads the lab described by DIR/lab.json.
func Open(dir string) (*Lab, error) {
	abs, err := resolveDir(dir)
	if err != nil {
		return nil, err
	}
	st, err := loadState(abs)
	if err != nil {
		return nil, err
	}
	if filepath.Clean(st.Dir) != abs {
		return nil, fmt.Errorf("lab state %s was written for %s: a lab cannot be moved; move it back to remove it", statePath(abs), st.Dir)
	}
	f, err := flavor.Lookup(string(st.Flavor))
	if err != nil {
		return nil, fmt.Errorf("open lab %s: %w", abs, err)
	}
	l := &Lab{flavor: f, st: st, logger: discardLogger()}
	if st.OSUser != "" {
		id, err := proc.LookupUser(st.OSUser)
		if err != nil {
			return nil, fmt.Errorf("open lab %s: %w", abs, err)
		}
		l.user = &id
	}
	return l, nil
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// SetLogger directs the lab's progress messages to logger (nil: nowhere).
func (l *Lab) SetLogger(logger *slog.Logger) {
	if logger == nil {
		logger = discardLogger()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.logger = logger
}

func (l *Lab) log() *slog.Logger {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.logger
}

// Dir is the lab directory.
func (l *Lab) Dir() string { return l.st.Dir }

// ID is the lab's short random id, part of its namespace and link names.
func (l *Lab) ID() string { return l.st.ID }

// Flavor is the lab's database product.
func (l *Lab) Flavor() flavor.Flavor { return l.flavor }

// BinDir holds the flavor's binaries.
func (l *Lab) BinDir() string { return l.st.BinDir }

// Netns reports whether the nodes run in network namespaces.
func (l *Lab) Netns() bool { return l.st.Netns }

// Empty reports whether the lab left its nodes without data directories
// (Options.Empty): the agents build the cluster.
func (l *Lab) Empty() bool { return l.st.Empty }

// Subnet is the lab's network in netns mode ("198.18.7.0/24"), else empty.
func (l *Lab) Subnet() string { return l.st.Subnet }

// Nodes lists the nodes, node1 (the primary as built) first.
func (l *Lab) Nodes() []Node {
	l.mu.Lock()
	defer l.mu.Unlock()
	nodes := make([]Node, len(l.st.Nodes))
	for i, n := range l.st.Nodes {
		nodes[i] = n.Node
	}
	return nodes
}

// Node returns the node called name.
func (l *Lab) Node(name string) (Node, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	names := make([]string, 0, len(l.st.Nodes))
	for _, n := range l.st.Nodes {
		if n.Name == name {
			return n.Node, nil
		}
		names = append(names, n.Name)
	}
	return Node{}, fmt.Errorf("lab %s has no node %q (it has %v)", l.st.Dir, name, names)
}

// Runner runs commands for node n: as the lab's OS user, inside the node's
// network namespace.
func (l *Lab) Runner(n Node) proc.Runner {
	return proc.Runner{Netns: n.Netns, As: l.user}
}

// Ctl is the control binary for node n, run by the node's Runner so that a
// server it starts lives in the node's namespace.
func (l *Lab) Ctl(n Node) pgctl.Ctl {
	return pgctl.Ctl{Flavor: l.flavor, BinDir: l.st.BinDir, DataDir: n.DataDir, Runner: l.Runner(n)}
}

// StartOptions are the options the lab starts node n with.
func (l *Lab) StartOptions(n Node) pgctl.StartOptions {
	return pgctl.StartOptions{LogFile: n.StartupLog, Wait: 60 * time.Second}
}

// secretsDir holds the lab's passwords, readable only by the OS user (and root).
func (l *Lab) secretsDir() string { return filepath.Join(l.st.Dir, "secrets") }

// SuperuserPasswordFile holds the SQL superuser's password.
func (l *Lab) SuperuserPasswordFile() string {
	return filepath.Join(l.secretsDir(), "superuser.password")
}

// ReplicationPasswordFile holds the replication role's password.
func (l *Lab) ReplicationPasswordFile() string {
	return filepath.Join(l.secretsDir(), "replication.password")
}

// PassFile is the pgpass file for the replication role, readable by the
// database OS user: primary_conninfo names it with passfile=, so no password
// is written in a config file.
func (l *Lab) PassFile() string { return filepath.Join(l.secretsDir(), "replication.pgpass") }

// SuperuserPassFile is a pgpass file for the superuser, for people
// (PGPASSFILE=... psql) and tools that take one.
func (l *Lab) SuperuserPassFile() string { return filepath.Join(l.secretsDir(), "superuser.pgpass") }

// Superuser returns the SQL superuser and its password, for connections
// over TCP (scram-sha-256).
func (l *Lab) Superuser() (user, password string, err error) {
	password, err = readSecret(l.SuperuserPasswordFile())
	if err != nil {
		return "", "", err
	}
	return l.st.Superuser, password, nil
}

// Replication returns the replication role and its password.
func (l *Lab) Replication() (user, password string, err error) {
	password, err = readSecret(l.ReplicationPasswordFile())
	if err != nil {
		return "", "", err
	}
	return l.st.ReplicationUser, password, nil
}

// Start starts node n's server (a running server is left alone) and records
// its postmaster so Down can find it.
func (l *Lab) Start(ctx context.Context, n Node) error {
	if err := l.Ctl(n).Start(ctx, l.StartOptions(n)); err != nil {
		return fmt.Errorf("start %s: %w", n.Name, err)
	}
	return l.recordPID(n)
}

// Stop stops node n's server; stopping a stopped server is not an error.
func (l *Lab) Stop(ctx context.Context, n Node, mode pgctl.StopMode) error {
	if err := l.Ctl(n).Stop(ctx, mode, 0); err != nil {
		return fmt.Errorf("stop %s: %w", n.Name, err)
	}
	return nil
}

// recordPID adds the postmaster now running on n to the state file.
func (l *Lab) recordPID(n Node) error {
	pid, err := l.postmasterPID(n)
	if err != nil {
		return fmt.Errorf("record the server of %s: %w", n.Name, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.st.Nodes {
		ns := &l.st.Nodes[i]
		if ns.Name != n.Name {
			continue
		}
		for _, p := range ns.PIDs {
			if p == pid {
				return nil
			}
		}
		ns.PIDs = append(ns.PIDs, pid)
		return l.st.save()
	}
	return fmt.Errorf("record the server of %s: no such node", n.Name)
}

// postmasterPID reads the first line of the node's pid file.
func (l *Lab) postmasterPID(n Node) (int, error) {
	path := filepath.Join(n.DataDir, l.flavor.PIDFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("%s is not running: %w", n.Name, err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	line = strings.TrimSpace(line)
	pid, err := strconv.Atoi(line)
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("%s: pid file %s starts with %q, not a process id", n.Name, path, line)
	}
	return pid, nil
}

// Kill crashes node n: SIGKILL to its postmaster, as when the machine's OOM
// killer strikes. It returns once the postmaster is gone and its children
// have noticed (so that Start can follow), or the context ends.
func (l *Lab) Kill(ctx context.Context, n Node) error {
	pid, err := l.postmasterPID(n)
	if err != nil {
		return fmt.Errorf("kill %s: %w", n.Name, err)
	}
	if !l.isServerOf(pid, []string{n.DataDir}) {
		return fmt.Errorf("kill %s: it is not running (its pid file names process %d, which is not its server)", n.Name, pid)
	}
	l.log().Info("killing postmaster", "node", n.Name, "pid", pid)
	if err := killPID(pid); err != nil {
		return fmt.Errorf("kill %s (pid %d): %w", n.Name, pid, err)
	}
	if left := l.waitGone(ctx, []string{n.DataDir}, 30*time.Second, false); len(left) > 0 {
		return fmt.Errorf("kill %s: processes %v of its server still run after SIGKILL of the postmaster", n.Name, left)
	}
	// Until its parent reaps it, the dead postmaster is a zombie that pg_ctl
	// status and the next server's lock file check both take for a live
	// server. Its parent is init, which may reap only every second or two.
	if err := waitReaped(ctx, pid, 30*time.Second); err != nil {
		return fmt.Errorf("kill %s: %w", n.Name, err)
	}
	return nil
}

// Down stops the processes started for the lab (TrackProcess) and the
// servers, and removes everything the state file lists. It works on a
// half-built lab, on servers that already died, and a second time. The
// state file is kept when something could not be removed, so Down can be
// retried.
func (l *Lab) Down(ctx context.Context) error {
	l.mu.Lock()
	st := l.st
	st.Nodes = append([]nodeState(nil), l.st.Nodes...)
	l.mu.Unlock()
	logger := l.log()
	if st.Dir == "" {
		return nil
	}

	var errs []error
	if err := l.stopTracked(ctx, st.Dir); err != nil {
		errs = append(errs, err)
	}
	dataDirs := make([]string, 0, len(st.Nodes))
	for _, n := range st.Nodes {
		dataDirs = append(dataDirs, n.DataDir)
	}
	// pg_ctl first: an immediate shutdown takes all of a server's processes
	// with it. A data dir half written by initdb or pg_basebackup has no
	// server, and pg_ctl may not understand it, so failures here only
	// matter if processes are left behind, which the scan below settles.
	for i := len(st.Nodes) - 1; i >= 0; i-- {
		n := st.Nodes[i]
		if _, err := os.Stat(filepath.Join(n.DataDir, l.flavor.PIDFile)); err != nil {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := l.Ctl(n.Node).Stop(sctx, pgctl.Immediate, 20*time.Second)
		cancel()
		if err != nil {
			logger.Warn("pg_ctl stop failed; killing the server's processes instead", "node", n.Name, "err", err)
		}
	}
	for _, n := range st.Nodes {
		for _, pid := range n.PIDs {
			if l.isServerOf(pid, dataDirs) {
				logger.Info("killing postmaster", "node", n.Name, "pid", pid)
				_ = killPID(pid)
			}
		}
	}
	if left := l.waitGone(ctx, dataDirs, 20*time.Second, true); len(left) > 0 {
		errs = append(errs, fmt.Errorf("server processes %v still run after SIGKILL", left))
	}

	if err := l.removeNetwork(ctx, st); err != nil {
		errs = append(errs, err)
	}

	if len(errs) > 0 {
		return fmt.Errorf("lab down %s: %w (the state file is kept: run lab down again)", st.Dir, errors.Join(errs...))
	}
	if err := removeLabDir(st.Dir); err != nil {
		return fmt.Errorf("lab down %s: %w", st.Dir, err)
	}
	for i := len(st.ParentDirs) - 1; i >= 0; i-- {
		// Only while empty: something else may have been put there since.
		if err := os.Remove(st.ParentDirs[i]); err != nil && !errors.Is(err, os.ErrNotExist) {
			logger.Info("leaving a parent directory the lab created: it is not empty", "dir", st.ParentDirs[i])
			break
		}
	}
	logger.Info("lab down", "dir", st.Dir)
	return nil
}

// removeLabDir deletes the lab directory, but only while it still is one: it
// holds the state file, or is empty (a lab that failed before writing it).
func removeLabDir(dir string) error {
	if !filepath.IsAbs(dir) || filepath.Clean(dir) == "/" {
		return fmt.Errorf("refusing to remove %q: not an absolute lab directory", dir)
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", dir, err)
	}
	if len(entries) > 0 {
		if _, err := os.Stat(statePath(dir)); err != nil {
			return fmt.Errorf("%s no longer holds %s; not removing it", dir, StateFile)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}
