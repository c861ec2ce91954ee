package database

// The adapter's part of a rejoin (package rejoin runs the procedure): the
// pure verdicts on what the server and its upstream say (timeline
// history, divergence, pg_rewind's output, the node's own files) and the
// primitive operations on one server (identify the upstream over a
// replication connection, rewind, take a base backup, configure a standby).

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/vigil-ha/vigil/internal/flavor"
	"github.com/vigil-ha/vigil/internal/pgctl"
	"github.com/vigil-ha/vigil/internal/proc"
	"github.com/vigil-ha/vigil/internal/wal"
)

const (
	defaultUpstreamTimeout   = 10 * time.Second
	rejoinStampFormat        = "20060102T150405Z"
	rejoinSuffix             = ".vigil-rejoin-"
	rejoinBackupAppName      = "vigil_rejoin"
	rejoinIdentifyAppName    = "vigil"
	maxConfigIncludeDepth    = 10
	cleanShutdownState       = "shut down"
	qUpstreamControlTimeline = `select {{pg_is_in_recovery}}(),
		(select timeline_id from {{pg_control_checkpoint}}()),
		case when {{pg_is_in_recovery}}() then '' else {{pg_walfile_name}}({{pg_current_wal_lsn}}()) end`
)

// Self is what a procedure acting on the server knows of it besides its
// operations: its name and address, and the names its flavor gives things.
type Self struct {
	Name string
	Host string
	Port int
	// DefaultDatabase is the database a client connects to by default;
	// RewindBinary names the flavor's pg_rewind.
	DefaultDatabase string
	RewindBinary    string
}

// Self describes the server.
func (s *Server) Self() Self {
	return Self{Name: s.Name, Host: s.Conn.Host, Port: s.Conn.Port, DefaultDatabase: s.Flavor.DefaultDatabase, RewindBinary: s.Flavor.RewindBinary}
}

// Status reports whether the server's process runs, and its PID.
func (s *Server) Status(ctx context.Context) (running bool, pid int, err error) {
	running, pid, err = s.Ctl.Status(ctx)
	if err != nil {
		return false, 0, fmt.Errorf("status of %s: %w", s.Name, err)
	}
	return running, pid, nil
}

// ControlData reads the server's control file: what a stopped server knows
// of its history.
func (s *Server) ControlData(ctx context.Context) (pgctl.ControlData, error) {
	cd, err := s.Ctl.ControlData(ctx)
	if err != nil {
		return cd, fmt.Errorf("control data of %s: %w", s.Name, err)
	}
	return cd, nil
}

// ConfigureStandby configures the stopped server as a standby of up, and
// says what it wrote.
func (s *Server) ConfigureStandby(up Upstream) (string, error) {
	if err := s.writeStandbyConfig(up.Conninfo(s.Name), up.SlotName); err != nil {
		return "", fmt.Errorf("configure %s as a standby: %w", s.Name, err)
	}
	return fmt.Sprintf("%s and primary_conninfo for %s:%d, slot %q", filepath.Base(s.StandbyMarker()), up.Host, up.Port, up.SlotName), nil
}

// UpstreamIdentity is what IDENTIFY_SYSTEM and TIMELINE_HISTORY tell.
type UpstreamIdentity struct {
	SystemID string
	Timeline uint32
	LSN      wal.LSN
	// History is the upstream's timeline history (none on timeline 1).
	History []TimelineSwitch
}

// IdentifyUpstream asks the upstream, over a replication connection as the
// standby's own role, who it is. It also proves that the credentials the
// standby will stream with work before anything is changed.
func (s *Server) IdentifyUpstream(ctx context.Context, up Upstream) (UpstreamIdentity, error) {
	var id UpstreamIdentity
	conn, err := s.replicationConn(ctx, up)
	if err != nil {
		return id, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	row, err := replicationRow(ctx, conn, "IDENTIFY_SYSTEM", 3)
	if err != nil {
		return id, err
	}
	id.SystemID = row[0]
	tli, err := strconv.ParseUint(row[1], 10, 32)
	if err != nil {
		return id, fmt.Errorf("IDENTIFY_SYSTEM: timeline %q: %w", row[1], err)
	}
	id.Timeline = uint32(tli)
	if id.LSN, err = wal.ParseLSN(row[2]); err != nil {
		return id, fmt.Errorf("IDENTIFY_SYSTEM: %w", err)
	}
	if id.Timeline > 1 {
		row, err := replicationRow(ctx, conn, fmt.Sprintf("TIMELINE_HISTORY %d", id.Timeline), 2)
		if err != nil {
			return id, err
		}
		if id.History, err = ParseTimelineHistory(row[1]); err != nil {
			return id, fmt.Errorf("history of timeline %d: %w", id.Timeline, err)
		}
	}
	return id, nil
}

// EnsureUpstreamSlot makes up.SlotName on the upstream, reserving WAL at
// once, unless it exists (created reports which), over a replication
// connection as the standby's role (it has REPLICATION). A new primary
// makes slots for the members it sees, and a node busy rejoining for
// longer than its member lease is not among them: the chaos campaign saw a
// rewound node wait a minute for a slot that never came, then fail to
// reach consistency.
func (s *Server) EnsureUpstreamSlot(ctx context.Context, up Upstream) (created bool, err error) {
	conn, err := s.replicationConn(ctx, up)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	cmd := "CREATE_REPLICATION_SLOT " + pgx.Identifier{up.SlotName}.Sanitize() + " PHYSICAL RESERVE_WAL"
	switch _, err := conn.Exec(ctx, cmd).ReadAll(); {
	case err == nil:
		return true, nil
	case isSQLState(err, sqlStateDuplicateObject):
		return false, nil
	default:
		return false, fmt.Errorf("replication slot %q on the upstream: %w", up.SlotName, err)
	}
}

// sqlStateDuplicateObject: the slot exists already.
const sqlStateDuplicateObject = "42710"

// replicationConn opens a replication connection to up as the standby's role.
func (s *Server) replicationConn(ctx context.Context, up Upstream) (*pgconn.PgConn, error) {
	probe := up
	probe.ApplicationName = rejoinIdentifyAppName
	cfg, err := pgconn.ParseConfig(probe.Conninfo("") + " replication=true")
	if err != nil {
		return nil, fmt.Errorf("replication connection settings: %w", err)
	}
	cfg.ConnectTimeout = s.Conn.ConnectTimeout
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = defaultUpstreamTimeout
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("replication connection to the upstream as %s: %w", up.User, err)
	}
	return conn, nil
}

// replicationRow runs a replication command that answers with one row.
func replicationRow(ctx context.Context, conn *pgconn.PgConn, cmd string, minCols int) ([]string, error) {
	results, err := conn.Exec(ctx, cmd).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	if len(results) == 0 || len(results[0].Rows) != 1 || len(results[0].Rows[0]) < minCols {
		return nil, fmt.Errorf("%s: unexpected answer", cmd)
	}
	row := make([]string, len(results[0].Rows[0]))
	for i, v := range results[0].Rows[0] {
		row[i] = string(v)
	}
	return row, nil
}

// CheckpointIfStale runs CHECKPOINT on the rewind source when its control
// file still names an older timeline than the one it writes: right after a
// promotion, until the first checkpoint. pg_rewind takes the source's
// timeline from the control file. The error says the source could not be
// asked.
func (s *Server) CheckpointIfStale(ctx context.Context, src ConnConfig, passFile string) (string, error) {
	var evidence string
	err := withConnTo(ctx, src, passFile, func(c *pgx.Conn) error {
		var inRecovery bool
		var controlTLI int64
		var walfile string
		cat, err := s.catalog(ctx, c)
		if err != nil {
			return err
		}
		if err := c.QueryRow(ctx, s.sqlFor(cat, qUpstreamControlTimeline)).Scan(&inRecovery, &controlTLI, &walfile); err != nil {
			return fmt.Errorf("read the upstream's control file timeline: %w", err)
		}
		if inRecovery || len(walfile) < 8 {
			evidence = fmt.Sprintf("upstream in recovery, control file timeline %d", controlTLI)
			return nil
		}
		current, err := strconv.ParseUint(walfile[:8], 16, 32)
		if err != nil {
			return fmt.Errorf("timeline from WAL file name %q: %w", walfile, err)
		}
		if int64(current) <= controlTLI {
			evidence = fmt.Sprintf("upstream's control file is on its timeline %d", current)
			return nil
		}
		began := time.Now()
		if _, err := c.Exec(ctx, "CHECKPOINT"); err != nil {
			return fmt.Errorf("CHECKPOINT on the upstream (its control file names timeline %d, it writes %d): %w", controlTLI, current, err)
		}
		evidence = fmt.Sprintf("upstream's control file named timeline %d while it writes %d: CHECKPOINT in %s", controlTLI, current, time.Since(began).Round(time.Millisecond))
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("check the control file of %s:%d: %w", src.Host, src.Port, err)
	}
	return evidence, nil
}

// withConnTo runs f on a session with c, the password from c or passFile.
func withConnTo(ctx context.Context, c ConnConfig, passFile string, f func(*pgx.Conn) error) error {
	cs := connString(c)
	if passFile != "" && c.Password == "" {
		cs += " passfile=" + conninfoValue(passFile)
	}
	cfg, err := pgx.ParseConfig(cs)
	if err != nil {
		return fmt.Errorf("connection settings for %s:%d: %w", c.Host, c.Port, err)
	}
	if c.Password != "" {
		cfg.Password = c.Password
	}
	cfg.RuntimeParams["application_name"] = rejoinIdentifyAppName
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = defaultUpstreamTimeout
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to %s:%d as %s: %w", c.Host, c.Port, c.User, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return f(conn)
}

// Rewind runs pg_rewind against the stopped server from src, keeping the
// node's own files. src.Password, when set, reaches pg_rewind through a
// pgpass file that exists only while it runs; else passFile (a pgpass file
// readable by the server's OS user) is used.
func (s *Server) Rewind(ctx context.Context, src ConnConfig, passFile string, kept KeptFiles) (rep RewindReport, err error) {
	runner := s.Ctl.Runner
	if src.Password != "" {
		path, cleanup, err := s.tempPassFile(src.User, src.Password)
		if err != nil {
			return rep, err
		}
		defer cleanup()
		passFile = path
	}
	if passFile != "" {
		runner.Env = append(slices.Clone(runner.Env), "PGPASSFILE="+passFile)
	}
	restoreLog, err := s.holdLogDir()
	if err != nil {
		return rep, err
	}
	defer func() {
		if rerr := restoreLog(); rerr != nil && err == nil {
			err = rerr
		}
	}()
	src.Password = ""
	out, runErr := runner.Run(ctx, s.Ctl.Bin(s.Flavor.RewindBinary),
		"--target-pgdata="+s.Ctl.DataDir, "--source-server="+connString(src), "--progress")
	rep = ParseRewindOutput(string(out))
	if runErr != nil {
		// pg_rewind may have copied part of the upstream's files: the node's
		// own configuration goes back whatever happens next.
		if rerr := kept.restore(s.Ctl.DataDir); rerr != nil {
			s.logger().Warn("rejoin: restoring the node's files after a failed rewind", "node", s.Name, "err", rerr)
		}
		return rep, fmt.Errorf("%s: %w", s.Flavor.RewindBinary, runErr)
	}
	if err := kept.restore(s.Ctl.DataDir); err != nil {
		return rep, err
	}
	return rep, nil
}

// BaseBackup moves the stopped server's data directory aside and copies
// the upstream into a new one, keeping the node's own files. It returns
// where the old one went (it is never deleted). When the copy fails, the
// old directory is put back, so that a retry starts from the same place.
func (s *Server) BaseBackup(ctx context.Context, up Upstream, kept KeptFiles) (aside, evidence string, err error) {
	dataDir := s.Ctl.DataDir
	owner, err := ownerOf(dataDir)
	if err != nil {
		return "", "", err
	}
	restoreLog, err := s.holdLogDir()
	if err != nil {
		return "", "", err
	}
	defer func() {
		if rerr := restoreLog(); rerr != nil && err == nil {
			err = rerr
		}
	}()
	// An empty directory (a node being cloned) holds nothing to keep: it
	// is replaced rather than moved aside.
	entries, err := os.ReadDir(dataDir)
	if err != nil {
		return "", "", fmt.Errorf("look at the data directory: %w", err)
	}
	if len(entries) == 0 {
		if err := os.Remove(dataDir); err != nil {
			return "", "", fmt.Errorf("replace the empty data directory: %w", err)
		}
	} else {
		if aside, err = unusedPath(dataDir + rejoinSuffix + time.Now().UTC().Format(rejoinStampFormat)); err != nil {
			return "", "", err
		}
		if err := os.Rename(dataDir, aside); err != nil {
			return "", "", fmt.Errorf("move the data directory aside: %w", err)
		}
		s.logger().Info("rejoin: old data directory moved aside", "node", s.Name, "from", dataDir, "to", aside)
	}
	putBack := func(cause error) error {
		if rerr := os.RemoveAll(dataDir); rerr != nil {
			return fmt.Errorf("%w (removing the partial copy %s failed too: %v; the old data directory is %s)", cause, dataDir, rerr, aside)
		}
		if aside == "" {
			if rerr := os.Mkdir(dataDir, 0o700); rerr != nil {
				return fmt.Errorf("%w (recreating the empty data directory failed: %v)", cause, rerr)
			}
			if rerr := chmodChown(dataDir, 0o700, owner); rerr != nil {
				return fmt.Errorf("%w (%v)", cause, rerr)
			}
			return cause
		}
		if rerr := os.Rename(aside, dataDir); rerr != nil {
			return fmt.Errorf("%w (putting the old data directory %s back failed: %v)", cause, aside, rerr)
		}
		return cause
	}
	// Created here, not by pg_basebackup: the parent may not be writable by
	// the server's OS user, and the server insists on mode 0700.
	if err := os.Mkdir(dataDir, 0o700); err != nil {
		return "", "", putBack(fmt.Errorf("create %s: %w", dataDir, err))
	}
	if err := chmodChown(dataDir, 0o700, owner); err != nil {
		return "", "", putBack(err)
	}

	backup := up
	backup.ApplicationName = backupAppName(s.Name)
	args := []string{"-D", dataDir, "-X", "stream", "-c", "fast", "-w", "--progress", "-d", backup.Conninfo("")}
	if up.SlotName != "" {
		args = append(args, "-S", up.SlotName)
	}
	if s.BaseBackupMaxRate != "" {
		args = append(args, "--max-rate="+s.BaseBackupMaxRate)
	}
	runner := s.Ctl.Runner
	if up.PassFile != "" {
		runner.Env = append(slices.Clone(runner.Env), "PGPASSFILE="+up.PassFile)
	}
	out, err := runKillingTree(ctx, runner, s.Ctl.Bin(s.Flavor.BaseBackupBinary), args...)
	if err != nil {
		return "", "", putBack(fmt.Errorf("%s: %w", s.Flavor.BaseBackupBinary, err))
	}
	if err := kept.restore(dataDir); err != nil {
		return aside, "", err
	}
	evidence = "copied the upstream"
	if m := lastMatch(reBackupDone, string(out)); m != nil {
		evidence = fmt.Sprintf("copied %s kB", m[1])
	}
	return aside, evidence, nil
}

// runKillingTree runs a command like runner.Run, but a cancelled ctx
// kills the command's descendants with it: pg_basebackup -X stream forks a
// WAL receiver, which, left alone, would stream on from a primary that
// may be gone, its connection hung, long after the copy was abandoned.
func runKillingTree(ctx context.Context, runner proc.Runner, name string, args ...string) ([]byte, error) {
	cmd := runner.Command(ctx, name, args...)
	cmd.Cancel = func() error {
		tree, _ := proc.Tree(cmd.Process.Pid) // listed before the kill reparents them
		err := cmd.Process.Kill()
		for _, pid := range tree[min(1, len(tree)):] {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		return err
	}
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		// The end of the output is where the reason is.
		return out, &proc.Error{Cmd: name, Args: args, Output: string(out[max(0, len(out)-2000):]), Err: err}
	}
	return out, nil
}

// unusedPath returns path, or path with a counter when path exists.
func unusedPath(path string) (string, error) {
	candidate := path
	for i := 2; i < 100; i++ {
		if _, err := os.Lstat(candidate); errors.Is(err, fs.ErrNotExist) {
			return candidate, nil
		}
		candidate = fmt.Sprintf("%s-%d", path, i)
	}
	return "", fmt.Errorf("no unused name like %s", path)
}

func chmodChown(path string, mode os.FileMode, owner fileOwner) error {
	if err := os.Chmod(path, mode); err != nil {
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(path, owner.uid, owner.gid); err != nil {
			return fmt.Errorf("chown %s: %w", path, err)
		}
	}
	return nil
}

// holdLogDir moves the server's log directory (when it lives in the data
// directory) out of the way: pg_rewind and pg_basebackup copy the
// upstream's log files over it, and the node's own log is the record of
// what happened to it. The returned function discards the copies and puts
// the node's log back.
func (s *Server) holdLogDir() (restore func() error, err error) {
	nothing := func() error { return nil }
	if s.Flavor.LogDir == "" {
		return nothing, nil
	}
	logDir := filepath.Join(s.Ctl.DataDir, s.Flavor.LogDir)
	fi, err := os.Lstat(logDir)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && !fi.IsDir()) {
		return nothing, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look at the log directory: %w", err)
	}
	held, err := unusedPath(s.Ctl.DataDir + "-" + s.Flavor.LogDir + rejoinSuffix + time.Now().UTC().Format(rejoinStampFormat))
	if err != nil {
		return nil, err
	}
	if err := os.Rename(logDir, held); err != nil {
		return nil, fmt.Errorf("move the log directory out of the data directory: %w", err)
	}
	return func() error {
		if _, err := os.Stat(s.Ctl.DataDir); err != nil {
			return fmt.Errorf("put the log directory back: %w (it is at %s)", err, held)
		}
		// What is there now came from the upstream, which still has it.
		if err := os.RemoveAll(logDir); err != nil {
			return fmt.Errorf("remove the upstream's log files copied to %s: %w (the node's own log is at %s)", logDir, err, held)
		}
		if err := os.Rename(held, logDir); err != nil {
			return fmt.Errorf("put the log directory back: %w (it is at %s)", err, held)
		}
		return nil
	}, nil
}

// tempPassFile writes a pgpass file for one command, readable only by the
// account the server's commands run as. The cleanup removes it.
func (s *Server) tempPassFile(user, password string) (string, func(), error) {
	dir, err := os.MkdirTemp("", "vigil-rejoin-")
	if err != nil {
		return "", nil, fmt.Errorf("create a directory for the rewind password: %w", err)
	}
	cleanup := func() { _ = os.RemoveAll(dir) }
	path := filepath.Join(dir, "pgpass")
	esc := strings.NewReplacer(`\`, `\\`, `:`, `\:`)
	line := fmt.Sprintf("*:*:*:%s:%s\n", esc.Replace(user), esc.Replace(password))
	if err := os.WriteFile(path, []byte(line), 0o600); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("write the rewind password file: %w", err)
	}
	if as := s.Ctl.Runner.As; as != nil && uint32(os.Geteuid()) != as.UID {
		for _, p := range []string{dir, path} {
			if err := os.Chown(p, int(as.UID), int(as.GID)); err != nil {
				cleanup()
				return "", nil, fmt.Errorf("give the rewind password file to %s: %w", as.Name, err)
			}
		}
	}
	return path, cleanup, nil
}

// KeptFiles are a node's own files, read before a rewind or base backup
// replaces them with the upstream's.
type KeptFiles struct {
	owner fileOwner
	files []keptFile
}

type keptFile struct {
	rel  string
	data []byte
}

// Names are the kept files, relative to the data directory.
func (k KeptFiles) Names() []string {
	names := make([]string, len(k.files))
	for i, f := range k.files {
		names[i] = f.rel
	}
	return names
}

// KeepNodeFiles reads the node's own files (NodeLocalFiles, and extra, relative
// to the data directory) for Rewind and BaseBackup to put back.
func (s *Server) KeepNodeFiles(extra []string) (KeptFiles, error) {
	dataDir := s.Ctl.DataDir
	owner, err := ownerOf(dataDir)
	if err != nil {
		return KeptFiles{}, err
	}
	rels, err := NodeLocalFiles(s.Flavor, dataDir)
	if err != nil {
		return KeptFiles{}, err
	}
	for _, e := range extra {
		rel, ok := relInside(dataDir, e)
		if !ok {
			return KeptFiles{}, fmt.Errorf("keep file %q: not inside the data directory %s", e, dataDir)
		}
		if !slices.Contains(rels, rel) {
			rels = append(rels, rel)
		}
	}
	k := KeptFiles{owner: owner}
	for _, rel := range rels {
		data, err := os.ReadFile(filepath.Join(dataDir, rel))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return KeptFiles{}, fmt.Errorf("keep %s: %w", rel, err)
		}
		k.files = append(k.files, keptFile{rel: rel, data: data})
	}
	return k, nil
}

// restore writes the kept files back into dataDir.
func (k KeptFiles) restore(dataDir string) error {
	for _, f := range k.files {
		path := filepath.Join(dataDir, f.rel)
		if err := k.mkdirs(dataDir, filepath.Dir(f.rel)); err != nil {
			return err
		}
		if err := writeOwned(path, f.data, k.owner); err != nil {
			return fmt.Errorf("put back the node's %s: %w", f.rel, err)
		}
	}
	return nil
}

// mkdirs creates rel's missing directories inside dataDir for the owner.
func (k KeptFiles) mkdirs(dataDir, rel string) error {
	if rel == "." || rel == "" {
		return nil
	}
	if err := k.mkdirs(dataDir, filepath.Dir(rel)); err != nil {
		return err
	}
	dir := filepath.Join(dataDir, rel)
	if err := os.Mkdir(dir, 0o700); errors.Is(err, fs.ErrExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	return chmodChown(dir, 0o700, k.owner)
}

// NodeLocalFiles lists the files of a data directory that belong to the
// node rather than to the cluster, relative to the directory: the flavor's
// configuration, authentication and ident files, and every file the main
// configuration file includes from inside the data directory. pg_rewind and
// pg_basebackup replace them with the upstream's copies, which name the
// upstream's port, address and cluster_name; Rejoin puts them back.
func NodeLocalFiles(f flavor.Flavor, dataDir string) ([]string, error) {
	var rels []string
	add := func(rel string) {
		if !slices.Contains(rels, rel) {
			rels = append(rels, rel)
		}
	}
	for _, name := range []string{f.ConfigFile, f.AutoConfigFile, f.HBAFile, f.IdentFile} {
		if name != "" {
			add(name)
		}
	}
	var walk func(rel string, depth int) error
	walk = func(rel string, depth int) error {
		data, err := os.ReadFile(filepath.Join(dataDir, rel))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", rel, err)
		}
		if depth >= maxConfigIncludeDepth {
			return fmt.Errorf("%s: configuration includes nested deeper than %d", rel, maxConfigIncludeDepth)
		}
		for _, inc := range configIncludes(string(data)) {
			target := inc.path
			if !filepath.IsAbs(target) {
				target = filepath.Join(dataDir, filepath.Dir(rel), target)
			}
			incRel, ok := relInside(dataDir, target)
			if !ok {
				continue // outside the data directory: neither tool touches it
			}
			if inc.dir {
				entries, err := os.ReadDir(target)
				if err != nil && !errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("read %s: %w", incRel, err)
				}
				for _, e := range entries {
					if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".conf") && !strings.HasPrefix(e.Name(), ".") {
						add(filepath.Join(incRel, e.Name()))
					}
				}
				continue
			}
			if slices.Contains(rels, incRel) {
				continue
			}
			add(incRel)
			if err := walk(incRel, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(f.ConfigFile, 0); err != nil {
		return nil, err
	}
	var existing []string
	for _, rel := range rels {
		if fi, err := os.Stat(filepath.Join(dataDir, rel)); err == nil && fi.Mode().IsRegular() {
			existing = append(existing, rel)
		}
	}
	return existing, nil
}

// relInside returns path relative to dir when it lies inside dir.
func relInside(dir, path string) (string, bool) {
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	rel, err := filepath.Rel(dir, path)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", false
	}
	return rel, true
}

type configInclude struct {
	path string
	dir  bool
}

// configIncludes finds include, include_if_exists and include_dir
// directives in a postgresql.conf-format file.
func configIncludes(content string) []configInclude {
	var out []configInclude
	for _, line := range strings.Split(content, "\n") {
		line = strings.TrimSpace(line)
		end := strings.IndexFunc(line, func(r rune) bool { return r == ' ' || r == '\t' || r == '=' })
		if end < 0 {
			continue
		}
		key := strings.ToLower(line[:end])
		if key != "include" && key != "include_if_exists" && key != "include_dir" {
			continue
		}
		rest := strings.TrimSpace(line[end:])
		rest = strings.TrimSpace(strings.TrimPrefix(rest, "="))
		value, ok := confValue(rest)
		if !ok || value == "" {
			continue
		}
		out = append(out, configInclude{path: value, dir: key == "include_dir"})
	}
	return out
}

// confValue reads a bare or single-quoted configuration value; inside quotes
// a quote is doubled or escaped with a backslash.
func confValue(s string) (string, bool) {
	if !strings.HasPrefix(s, "'") {
		if i := strings.IndexAny(s, " \t#"); i >= 0 {
			s = s[:i]
		}
		return s, true
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		case c == '\'' && i+1 < len(s) && s[i+1] == '\'':
			i++
			b.WriteByte('\'')
		case c == '\'':
			return b.String(), true
		default:
			b.WriteByte(c)
		}
	}
	return "", false
}

// TimelineSwitch is one line of a timeline history file: Timeline ended at
// SwitchPoint, where its child began.
type TimelineSwitch struct {
	Timeline    uint32  `json:"timeline"`
	SwitchPoint wal.LSN `json:"switch_point"`
}

// ParseTimelineHistory reads a timeline history file ("1\t0/30224F8\treason").
func ParseTimelineHistory(content string) ([]TimelineSwitch, error) {
	var out []TimelineSwitch
	for n, line := range strings.Split(content, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 2 {
			return nil, fmt.Errorf("line %d %q: want a timeline and an LSN", n+1, line)
		}
		tli, err := strconv.ParseUint(fields[0], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("line %d: timeline %q: %w", n+1, fields[0], err)
		}
		lsn, err := wal.ParseLSN(fields[1])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n+1, err)
		}
		out = append(out, TimelineSwitch{Timeline: uint32(tli), SwitchPoint: lsn})
	}
	return out, nil
}

// DivergenceVerdict says whether a server's WAL left the upstream's history.
type DivergenceVerdict string

// Divergence verdicts.
const (
	// Diverged: the server has WAL the upstream's history does not; it
	// needs a rewind or a base backup before it can follow.
	Diverged DivergenceVerdict = "diverged"
	// NotDiverged: the server's WAL is a prefix of the upstream's history;
	// it can follow as it is.
	NotDiverged DivergenceVerdict = "not_diverged"
	// Unknown: the control file does not say where the server's WAL ends
	// (it crashed, or stopped as a standby).
	Unknown DivergenceVerdict = "unknown"
)

// Divergence compares a stopped server's control file with the upstream's
// timeline history.
type Divergence struct {
	Verdict          DivergenceVerdict `json:"verdict"`
	Reason           string            `json:"reason"`
	TargetState      string            `json:"target_state"`
	TargetTimeline   uint32            `json:"target_timeline"`
	TargetCheckpoint wal.LSN           `json:"target_checkpoint"`
	UpstreamTimeline uint32            `json:"upstream_timeline"`
	UpstreamLSN      wal.LSN           `json:"upstream_lsn"`
	// SwitchPoint is where the upstream's history left the server's
	// timeline; zero when both are on the same timeline.
	SwitchPoint wal.LSN `json:"switch_point,omitempty"`
}

// AssessDivergence decides from the control file of a stopped server and
// the upstream's timeline, WAL position and history whether the server's
// WAL diverged. After a clean shutdown the shutdown checkpoint is the last
// record, so the WAL diverged exactly when that checkpoint lies at or past
// the point where the upstream left the server's timeline: a standby that
// received everything switched timelines just after it.
func AssessDivergence(cd pgctl.ControlData, upstreamTLI uint32, upstreamLSN wal.LSN, history []TimelineSwitch) Divergence {
	d := Divergence{TargetState: cd.State, TargetTimeline: cd.Timeline, UpstreamTimeline: upstreamTLI, UpstreamLSN: upstreamLSN}
	verdict := func(v DivergenceVerdict, format string, args ...any) Divergence {
		d.Verdict = v
		d.Reason = fmt.Sprintf(format, args...)
		return d
	}
	cp, err := wal.ParseLSN(cd.CheckpointLSN)
	if err != nil || cd.Timeline == 0 {
		return verdict(Unknown, "control file without a checkpoint location or timeline (%q, %d)", cd.CheckpointLSN, cd.Timeline)
	}
	d.TargetCheckpoint = cp
	clean := cd.State == cleanShutdownState
	switch {
	case cd.Timeline > upstreamTLI:
		return verdict(Diverged, "server on timeline %d, newer than the upstream's %d", cd.Timeline, upstreamTLI)
	case cd.Timeline == upstreamTLI:
		if cp >= upstreamLSN {
			return verdict(Diverged, "server's checkpoint %s on timeline %d is past the upstream's WAL end %s on the same timeline", cp, cd.Timeline, upstreamLSN)
		}
		if !clean {
			return verdict(Unknown, "same timeline %d, but the server is %q: where its WAL ends is known only after recovery", cd.Timeline, cd.State)
		}
		return verdict(NotDiverged, "same timeline %d, server's WAL ends at its shutdown checkpoint %s, upstream at %s", cd.Timeline, cp, upstreamLSN)
	}
	i := slices.IndexFunc(history, func(h TimelineSwitch) bool { return h.Timeline == cd.Timeline })
	if i < 0 {
		return verdict(Diverged, "server's timeline %d is not in the upstream's history (timeline %d)", cd.Timeline, upstreamTLI)
	}
	d.SwitchPoint = history[i].SwitchPoint
	if cp >= d.SwitchPoint {
		return verdict(Diverged, "server wrote timeline %d up to at least %s; the upstream left that timeline at %s", cd.Timeline, cp, d.SwitchPoint)
	}
	if !clean {
		return verdict(Unknown, "upstream left timeline %d at %s; the server is %q, its last checkpoint at %s: where its WAL ends is known only after recovery", cd.Timeline, d.SwitchPoint, cd.State, cp)
	}
	return verdict(NotDiverged, "server's WAL on timeline %d ends at its shutdown checkpoint %s, before the upstream left that timeline at %s", cd.Timeline, cp, d.SwitchPoint)
}

// RewindReport is what pg_rewind said.
type RewindReport struct {
	// Required is false when pg_rewind found nothing to rewind.
	Required         bool    `json:"required"`
	DivergedAt       wal.LSN `json:"diverged_at,omitempty"`
	DivergedTimeline uint32  `json:"diverged_timeline,omitempty"`
	// CommonCheckpoint is where the rewound server's recovery starts.
	CommonCheckpoint wal.LSN `json:"common_checkpoint,omitempty"`
	// CopiedKB is how much pg_rewind copied from the upstream.
	CopiedKB int64 `json:"copied_kb,omitempty"`
	// Errors are pg_rewind's error messages, when it failed.
	Errors []string `json:"errors,omitempty"`
	// Summary is one line for people.
	Summary string `json:"summary"`
}

var (
	reDiverged     = regexp.MustCompile(`servers diverged at WAL location ([0-9A-Fa-f]+/[0-9A-Fa-f]+) on timeline (\d+)`)
	reCommonCkpt   = regexp.MustCompile(`last common checkpoint at ([0-9A-Fa-f]+/[0-9A-Fa-f]+) on timeline (\d+)`)
	reRewindCopied = regexp.MustCompile(`(\d+)/(\d+) kB \(100%\) copied`)
	reNoRewind     = regexp.MustCompile(`no rewind required`)
	reRewindError  = regexp.MustCompile(`(?m)^\S*rewind: error: (.*)$`)
	reBackupDone   = regexp.MustCompile(`(\d+)/(\d+) kB \(100%\)`)
)

// ParseRewindOutput reads pg_rewind's (or sys_rewind's) messages, as
// printed with --progress.
func ParseRewindOutput(out string) RewindReport {
	out = strings.ReplaceAll(out, "\r", "\n")
	var r RewindReport
	var parts []string
	if m := reDiverged.FindStringSubmatch(out); m != nil {
		r.DivergedAt, _ = wal.ParseLSN(m[1])
		tli, _ := strconv.ParseUint(m[2], 10, 32)
		r.DivergedTimeline = uint32(tli)
		parts = append(parts, fmt.Sprintf("diverged at %s on timeline %d", r.DivergedAt, r.DivergedTimeline))
	}
	if m := reCommonCkpt.FindStringSubmatch(out); m != nil {
		r.CommonCheckpoint, _ = wal.ParseLSN(m[1])
		parts = append(parts, fmt.Sprintf("rewound to the common checkpoint %s", r.CommonCheckpoint))
	}
	if m := lastMatch(reRewindCopied, out); m != nil {
		r.CopiedKB, _ = strconv.ParseInt(m[1], 10, 64)
		parts = append(parts, fmt.Sprintf("copied %d kB", r.CopiedKB))
	}
	switch {
	case reNoRewind.MatchString(out):
		parts = append(parts, "no rewind required")
	case r.DivergedAt != 0 && r.CommonCheckpoint != 0:
		r.Required = true
	}
	for _, m := range reRewindError.FindAllStringSubmatch(out, -1) {
		r.Errors = append(r.Errors, strings.TrimSpace(m[1]))
		parts = append(parts, "error: "+strings.TrimSpace(m[1]))
	}
	r.Summary = strings.Join(parts, "; ")
	return r
}

func lastMatch(re *regexp.Regexp, s string) []string {
	all := re.FindAllStringSubmatch(s, -1)
	if len(all) == 0 {
		return nil
	}
	return all[len(all)-1]
}
