package database

// The adapter's part of building a node from nothing (package bootstrap
// runs the procedure): what the data directory holds, initdb, the server
// settings Vigil needs, the cluster's roles and schema, and how far a base
// backup taken from the primary has come.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-ha/vigil/internal/pgctl"
)

// DataDirContent says what a data directory holds.
type DataDirContent string

// Contents of a data directory.
const (
	// DataDirEmpty: missing, or an empty directory.
	DataDirEmpty DataDirContent = "empty"
	// DataDirHalfBuilt: a bootstrap or clone began here and never
	// finished (its marker is still beside the directory).
	DataDirHalfBuilt DataDirContent = "half-built"
	// DataDirCluster: a cluster's files (or something else: whatever is
	// not empty and not half-built is never touched).
	DataDirCluster DataDirContent = "cluster"
)

const (
	buildingSuffix  = ".vigil-building"
	halfBuiltSuffix = ".vigil-halfbuilt-"
	// ServerConfigFile holds the settings Vigil writes; the main
	// configuration file includes it.
	ServerConfigFile = "vigil.conf"
)

// buildingMarker is the file beside the data directory that says a build is
// under way: it outlives a crash, so the next agent knows the directory is
// half-built rather than a cluster's.
func (s *Server) buildingMarker() string { return s.Ctl.DataDir + buildingSuffix }

// DataDirContent looks at the data directory.
func (s *Server) DataDirContent() (DataDirContent, error) {
	if _, err := os.Lstat(s.buildingMarker()); err == nil {
		return DataDirHalfBuilt, nil
	}
	entries, err := os.ReadDir(s.Ctl.DataDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return DataDirEmpty, nil
	case err != nil:
		return "", fmt.Errorf("look at the data directory %s: %w", s.Ctl.DataDir, err)
	case len(entries) == 0:
		return DataDirEmpty, nil
	}
	return DataDirCluster, nil
}

// BeginBuild prepares an empty data directory for a bootstrap or clone,
// owned by the server's OS user with mode 0700, and marks it as being
// built. A half-built directory is moved aside first (never deleted); aside
// says where ("" when there was none). A directory holding a cluster is
// refused: nothing is overwritten.
func (s *Server) BeginBuild() (aside string, err error) {
	content, err := s.DataDirContent()
	if err != nil {
		return "", err
	}
	dataDir := s.Ctl.DataDir
	switch content {
	case DataDirCluster:
		return "", fmt.Errorf("the data directory %s is not empty: refusing to build over it", dataDir)
	case DataDirHalfBuilt:
		// An empty one (a copy that failed and was cleared) has nothing
		// to keep.
		if entries, err := os.ReadDir(dataDir); err == nil && len(entries) > 0 {
			if aside, err = unusedPath(dataDir + halfBuiltSuffix + time.Now().UTC().Format(rejoinStampFormat)); err != nil {
				return "", err
			}
			if err := os.Rename(dataDir, aside); err != nil {
				return "", fmt.Errorf("move the half-built data directory aside: %w", err)
			}
			s.logger().Warn("half-built data directory moved aside", "node", s.Name, "from", dataDir, "to", aside)
		}
	}
	owner, err := s.runnerOwner()
	if err != nil {
		return aside, err
	}
	if err := writeOwned(s.buildingMarker(), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), owner); err != nil {
		return aside, fmt.Errorf("mark the data directory as being built: %w", err)
	}
	if err := os.Mkdir(dataDir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return aside, fmt.Errorf("create %s: %w", dataDir, err)
	}
	return aside, chmodChown(dataDir, 0o700, owner)
}

// EndBuild removes the mark of a build under way: the data directory now
// holds the cluster.
func (s *Server) EndBuild() error {
	if err := os.Remove(s.buildingMarker()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("unmark the data directory: %w", err)
	}
	return nil
}

// runnerOwner is the account the server's binaries run as.
func (s *Server) runnerOwner() (fileOwner, error) {
	if as := s.Ctl.Runner.As; as != nil {
		return fileOwner{uid: int(as.UID), gid: int(as.GID)}, nil
	}
	return fileOwner{uid: os.Geteuid(), gid: os.Getegid()}, nil
}

// InitDB runs the flavor's initdb on the (empty) data directory. The
// superuser's password reaches it through a pipe given to the server's
// OS user (--pwfile=/dev/stdin): no file holds it, so none is left behind
// when the agent is killed half-way.
func (s *Server) InitDB(ctx context.Context, o pgctl.InitDBOptions, password string) (string, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return "", fmt.Errorf("initdb password pipe: %w", err)
	}
	defer r.Close()
	if as := s.Ctl.Runner.As; as != nil && uint32(os.Geteuid()) != as.UID {
		// initdb opens /dev/stdin anew, which checks the pipe's owner.
		if err := r.Chown(int(as.UID), int(as.GID)); err != nil {
			w.Close()
			return "", fmt.Errorf("give the initdb password pipe to %s: %w", as.Name, err)
		}
	}
	_, werr := w.WriteString(password + "\n")
	if cerr := w.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return "", fmt.Errorf("initdb password pipe: %w", werr)
	}
	argv := s.Ctl.InitDBArgv(o, "/dev/stdin")
	if _, err := s.Ctl.Runner.RunInput(ctx, r, argv[0], argv[1:]...); err != nil {
		return "", fmt.Errorf("%s: %w", s.Flavor.InitDBBinary, err)
	}
	return fmt.Sprintf("%s created %s (superuser %s, checksums %t)", s.Flavor.InitDBBinary, s.Ctl.DataDir, o.Superuser, o.DataChecksums), nil
}

// RunBuildCommand runs an operator's command that fills the data directory
// (a restore from a backup), as the server's OS user, with env added.
func (s *Server) RunBuildCommand(ctx context.Context, argv, env []string) error {
	if len(argv) == 0 {
		return errors.New("no command")
	}
	runner := s.Ctl.Runner
	runner.Env = append(slices.Clone(runner.Env), append(env, "VIGIL_DATA_DIR="+s.Ctl.DataDir)...)
	if _, err := runner.Run(ctx, argv[0], argv[1:]...); err != nil {
		return fmt.Errorf("%s: %w", argv[0], err)
	}
	return nil
}

// ServerSettings are the settings Vigil writes into ServerConfigFile.
type ServerSettings struct {
	Port int
	// Parameters come after Vigil's own and override them.
	Parameters map[string]string
}

// RequiredSettings are the settings a Vigil cluster needs: streaming
// replication with slots, readable standbys, and hint bits in the WAL for
// pg_rewind.
func RequiredSettings() [][2]string {
	return [][2]string{
		{"listen_addresses", "'*'"},
		{"wal_level", "replica"},
		{"max_wal_senders", "10"},
		{"max_replication_slots", "10"},
		{"hot_standby", "on"},
		{"wal_log_hints", "on"},
	}
}

// WriteServerConfig writes ServerConfigFile and makes the main
// configuration file include it (once). It is node-local: a clone copies
// the primary's, and the node writes its own over it.
func (s *Server) WriteServerConfig(set ServerSettings) (string, error) {
	dataDir := s.Ctl.DataDir
	owner, err := ownerOf(dataDir)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by vigil for node %s; %s includes it.\n", s.Name, s.Flavor.ConfigFile)
	for _, kv := range RequiredSettings() {
		fmt.Fprintf(&b, "%s = %s\n", kv[0], kv[1])
	}
	fmt.Fprintf(&b, "port = %d\n", set.Port)
	names := make([]string, 0, len(set.Parameters))
	for n := range set.Parameters {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "%s = %s\n", n, confLiteral(set.Parameters[n]))
	}
	if err := writeOwned(filepath.Join(dataDir, ServerConfigFile), []byte(b.String()), owner); err != nil {
		return "", err
	}
	mainConf := filepath.Join(dataDir, s.Flavor.ConfigFile)
	current, err := os.ReadFile(mainConf)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read %s: %w", mainConf, err)
	}
	include := fmt.Sprintf("include '%s'", ServerConfigFile)
	if !slices.ContainsFunc(configIncludes(string(current)), func(i configInclude) bool { return i.path == ServerConfigFile }) {
		body := string(current)
		if body != "" && !strings.HasSuffix(body, "\n") {
			body += "\n"
		}
		body += "\n# Added by vigil: the settings it needs, read last.\n" + include + "\n"
		if err := writeOwned(mainConf, []byte(body), owner); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("%s: %d settings, port %d", ServerConfigFile, len(RequiredSettings())+1+len(names), set.Port), nil
}

// confLiteral quotes a setting's value unless it is a plain number or word.
func confLiteral(v string) string {
	if v != "" && strings.IndexFunc(v, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	}) < 0 {
		return v
	}
	if strings.HasPrefix(v, "'") && strings.HasSuffix(v, "'") && len(v) >= 2 {
		return v
	}
	return quoteLiteral(v)
}

// HBA is the access a Vigil cluster needs.
type HBA struct {
	// Extra lines come first, as given.
	Extra []string
	// Networks are the members' addresses (CIDR).
	Networks        []string
	ReplicationUser string
}

// WriteHBA replaces the authentication file: the OS user over the local
// socket (peer), and scram-sha-256 from the members' networks for
// replication and for SQL.
func (s *Server) WriteHBA(h HBA) (string, error) {
	owner, err := ownerOf(s.Ctl.DataDir)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("# Written by vigil.\n# TYPE  DATABASE  USER  ADDRESS  METHOD\n")
	for _, l := range h.Extra {
		b.WriteString(l + "\n")
	}
	b.WriteString("local all all peer\n")
	for _, n := range h.Networks {
		fmt.Fprintf(&b, "host replication %s %s scram-sha-256\n", pgx.Identifier{h.ReplicationUser}.Sanitize(), n)
		fmt.Fprintf(&b, "host all all %s scram-sha-256\n", n)
	}
	if err := writeOwned(filepath.Join(s.Ctl.DataDir, s.Flavor.HBAFile), []byte(b.String()), owner); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s: %d extra lines; replication and SQL from %s", s.Flavor.HBAFile, len(h.Extra), strings.Join(h.Networks, ", ")), nil
}

// CreateClusterRoles makes the replication role (LOGIN REPLICATION) and
// sets its password, and the superuser's, as SCRAM verifiers computed
// here: no password reaches the server, a log or a statement.
func (s *Server) CreateClusterRoles(ctx context.Context, replUser, replPassword, superPassword string) (string, error) {
	setRepl, err := RolePasswordSQL(replUser, replPassword)
	if err != nil {
		return "", err
	}
	var setSuper string
	if superPassword != "" {
		if setSuper, err = RolePasswordSQL(s.Conn.User, superPassword); err != nil {
			return "", err
		}
	}
	created := false
	err = s.withConn(ctx, func(c *pgx.Conn) error {
		var exists bool
		if err := c.QueryRow(ctx, s.sql("select exists (select 1 from {{pg_roles}} where rolname = $1)"), replUser).Scan(&exists); err != nil {
			return fmt.Errorf("look for role %s: %w", replUser, err)
		}
		if !exists {
			if _, err := c.Exec(ctx, "CREATE ROLE "+pgx.Identifier{replUser}.Sanitize()+" WITH LOGIN REPLICATION"); err != nil {
				return fmt.Errorf("create role %s: %w", replUser, err)
			}
			created = true
		}
		for _, stmt := range []string{setRepl, setSuper} {
			if stmt == "" {
				continue
			}
			if _, err := c.Exec(ctx, stmt); err != nil {
				// The statement holds a verifier: name the role, not it.
				return fmt.Errorf("set a role's password: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	verb := "exists"
	if created {
		verb = "created"
	}
	return fmt.Sprintf("replication role %s %s, passwords set from the configured secrets", replUser, verb), nil
}

// EnsureSchema creates schema vigil and the write probe's table.
func (s *Server) EnsureSchema(ctx context.Context) (string, error) {
	err := s.withConn(ctx, func(c *pgx.Conn) error {
		for stmt := range strings.SplitSeq(heartbeatSchema, ";") {
			if _, err := c.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("create schema vigil: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return "schema vigil and vigil.heartbeat exist", nil
}

// BaseBackupProgress is how far the base backup of node from the server
// at c has come, as the server's pg_stat_progress_basebackup says; found
// is false while no such backup runs there.
func (s *Server) BaseBackupProgress(ctx context.Context, c ConnConfig) (done, total int64, found bool, err error) {
	q := s.sql(`select coalesce(p.backup_streamed, 0), coalesce(p.backup_total, 0)
		from {{pg_stat_progress_basebackup}} p join {{pg_stat_activity}} a using (pid)
		where a.application_name = $1`)
	err = withConnTo(ctx, c, "", func(conn *pgx.Conn) error {
		qerr := conn.QueryRow(ctx, q, backupAppName(s.Name)).Scan(&done, &total)
		if errors.Is(qerr, pgx.ErrNoRows) {
			return nil
		}
		found = qerr == nil
		return qerr
	})
	if err != nil {
		return 0, 0, false, fmt.Errorf("base backup progress on %s:%d: %w", c.Host, c.Port, err)
	}
	return done, total, found, nil
}

// backupAppName is the application_name a node's base backup runs as.
func backupAppName(node string) string { return rejoinBackupAppName + "_" + node }
