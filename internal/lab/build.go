package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/internal/flavor"
)

// build creates the lab described by p, saving the state after each step.
func (l *Lab) build(ctx context.Context, p plan) error {
	id, err := randomID()
	if err != nil {
		return err
	}
	if err := l.createDir(p, id); err != nil {
		return err
	}
	if err := l.writeSecrets(); err != nil {
		return err
	}
	if p.netns {
		if err := l.createNetwork(ctx); err != nil {
			return err
		}
	}
	nodes := l.Nodes()
	for _, n := range nodes {
		for _, d := range []string{filepath.Dir(n.DataDir), n.SocketDir} {
			if err := l.mkdirOwned(d, 0o700); err != nil {
				return err
			}
		}
	}
	if p.empty {
		// The agents create the data directories: the lab only says
		// where they go (and Down finds their servers there).
		l.log().Info("nodes left empty: the agents build the cluster")
		return nil
	}
	primary := nodes[0]
	if err := l.buildPrimary(ctx, primary); err != nil {
		return err
	}
	for _, n := range nodes[1:] {
		if err := l.buildStandby(ctx, primary, n); err != nil {
			return err
		}
	}
	if len(nodes) > 1 {
		names := make([]string, 0, len(nodes)-1)
		for _, n := range nodes[1:] {
			names = append(names, n.Name)
		}
		if err := l.waitStreaming(ctx, primary, names, 60*time.Second); err != nil {
			return err
		}
	}
	return nil
}

func randomID() (string, error) {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate lab id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// createDir creates the lab directory and writes the first state file,
// which lists the nodes to come: their data directories are inside the lab
// directory, so Down can always look for their servers.
func (l *Lab) createDir(p plan, id string) error {
	var created []string
	for _, d := range p.parents {
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			removeEmpty(created)
			return fmt.Errorf("create %s: %w", d, err)
		} else if err == nil {
			created = append(created, d)
		}
	}
	if err := os.Mkdir(p.dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		removeEmpty(created)
		return fmt.Errorf("create lab dir %s: %w", p.dir, err)
	}
	st := state{
		Version:         stateVersion,
		ID:              id,
		Dir:             p.dir,
		CreatedAt:       time.Now().UTC().Truncate(time.Second),
		Flavor:          p.flavor.Name,
		BinDir:          p.binDir,
		OSUser:          p.osUser,
		Superuser:       p.flavor.DefaultSuperuser,
		ReplicationUser: ReplicationUser,
		ParentDirs:      created,
		Netns:           p.netns,
		Empty:           p.empty,
	}
	for i := range p.nodes {
		name := fmt.Sprintf("node%d", i+1)
		home := filepath.Join(p.dir, name)
		dataDir := filepath.Join(home, "data")
		st.Nodes = append(st.Nodes, nodeState{Node: Node{
			Name:       name,
			Primary:    i == 0 && !p.empty,
			DataDir:    dataDir,
			Host:       "127.0.0.1",
			Port:       p.ports[i],
			SocketDir:  filepath.Join(home, "run"),
			LogFile:    filepath.Join(dataDir, p.flavor.LogDir, "postgresql.log"),
			StartupLog: filepath.Join(home, "startup.log"),
		}})
	}
	if err := st.save(); err != nil {
		_ = os.RemoveAll(p.dir)
		removeEmpty(created)
		return err
	}
	l.mu.Lock()
	l.st = st
	l.mu.Unlock()
	return nil
}

func removeEmpty(dirs []string) {
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = os.Remove(dirs[i])
	}
}

// update changes the state under the lock and saves it.
func (l *Lab) update(f func(*state)) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(&l.st)
	return l.st.save()
}

// mkdirOwned creates a directory for the database OS user.
func (l *Lab) mkdirOwned(dir string, perm os.FileMode) error {
	if err := os.Mkdir(dir, perm); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	// Mkdir's mode is filtered by the umask; the servers check theirs.
	if err := os.Chmod(dir, perm); err != nil {
		return fmt.Errorf("chmod %s: %w", dir, err)
	}
	return l.chown(dir)
}

func (l *Lab) chown(path string) error {
	if l.user == nil {
		return nil
	}
	if err := os.Chown(path, int(l.user.UID), int(l.user.GID)); err != nil {
		return fmt.Errorf("give %s to OS user %s: %w", path, l.user.Name, err)
	}
	return nil
}

// writeOwned writes a new file for the database OS user. O_EXCL: the lab
// never writes through a file (or symlink) it did not create.
func (l *Lab) writeOwned(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, werr := f.Write(data)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("write %s: %w", path, werr)
	}
	return l.chown(path)
}

// replaceOwned writes path whole, replacing any file of that name.
func (l *Lab) replaceOwned(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".vigil-tmp"
	_ = os.Remove(tmp)
	if err := l.writeOwned(tmp, data, perm); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// buildPrimary runs initdb, configures and starts node1 and creates the
// replication role.
func (l *Lab) buildPrimary(ctx context.Context, n Node) error {
	f := l.flavor
	log := l.log().With("node", n.Name)
	log.Info("initdb", "data_dir", n.DataDir)
	// The superuser's password comes from a file (--pwfile), never an argument.
	// --no-sync: a lab does not outlive a crash of the machine.
	if _, err := l.Runner(n).Run(ctx, l.bin(f.InitDBBinary),
		"-D", n.DataDir, "-U", l.st.Superuser, "--pwfile", l.SuperuserPasswordFile(),
		"--auth-local=peer", "--auth-host=scram-sha-256", "--data-checksums",
		"--encoding=UTF8", "--no-locale", "--no-sync"); err != nil {
		return fmt.Errorf("initdb %s: %w", n.Name, err)
	}
	if err := l.writeConfig(n); err != nil {
		return err
	}
	if err := l.writeAccessFiles(n); err != nil {
		return err
	}
	if err := l.includeConfig(n); err != nil {
		return err
	}
	log.Info("starting", "host", n.Host, "port", n.Port)
	if err := l.Start(ctx, n); err != nil {
		return err
	}
	if err := l.markBuilt(n); err != nil {
		return err
	}
	return l.createReplicationRole(ctx, n)
}

// buildStandby clones the primary with pg_basebackup through a replication
// slot named after the node, and starts it.
func (l *Lab) buildStandby(ctx context.Context, primary, n Node) error {
	f := l.flavor
	log := l.log().With("node", n.Name)
	log.Info("base backup", "from", primary.Name, "data_dir", n.DataDir)
	// Run in the standby's namespace, so the clone also proves the
	// standby can reach the primary.
	if _, err := l.Runner(n).Run(ctx, l.bin(f.BaseBackupBinary),
		"-D", n.DataDir, "-d", l.upstreamConninfo(primary, n.Name),
		"-R", "-X", "stream", "-C", "-S", n.Name, "-c", "fast", "--no-sync"); err != nil {
		return fmt.Errorf("clone %s from %s: %w", n.Name, primary.Name, err)
	}
	if err := l.checkNoPassword(n); err != nil {
		return err
	}
	// The clone carries the primary's files; only the node's own settings
	// (address, port, socket) differ.
	if err := l.writeConfig(n); err != nil {
		return err
	}
	log.Info("starting", "host", n.Host, "port", n.Port)
	if err := l.Start(ctx, n); err != nil {
		return err
	}
	return l.markBuilt(n)
}

func (l *Lab) markBuilt(n Node) error {
	return l.update(func(st *state) {
		for i := range st.Nodes {
			if st.Nodes[i].Name == n.Name {
				st.Nodes[i].Built = true
			}
		}
	})
}

func (l *Lab) bin(name string) string { return filepath.Join(l.st.BinDir, name) }

// upstreamConninfo is how a standby reaches the primary: the password comes
// from the passfile, which pg_basebackup -R copies into primary_conninfo.
func (l *Lab) upstreamConninfo(primary Node, application string) string {
	return fmt.Sprintf("host=%s port=%d user=%s passfile=%s application_name=%s",
		primary.Host, primary.Port, l.st.ReplicationUser, quoteConnValue(l.PassFile()), application)
}

// quoteConnValue quotes a libpq keyword/value string value.
func quoteConnValue(v string) string {
	if v != "" && !strings.ContainsAny(v, " '\\") {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// checkNoPassword makes sure pg_basebackup -R wrote no password into the
// standby's configuration (libpq would, had one been given to it).
func (l *Lab) checkNoPassword(n Node) error {
	path := filepath.Join(n.DataDir, l.flavor.AutoConfigFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if strings.Contains(string(data), "password=") {
		return fmt.Errorf("%s holds a password in primary_conninfo; the lab only uses passfile=", path)
	}
	return nil
}

// Setting is one server setting, its value as postgresql.conf spells it.
type Setting struct{ Name, Value string }

// NodeSettings are the server settings the lab gives node n; everything
// else is the flavor's default. An empty lab's agents write them
// (bootstrap.parameters).
func (l *Lab) NodeSettings(n Node) []Setting {
	f := l.flavor
	// In its own namespace a node listens on every address, the VIP
	// included once an agent adds it; on loopback, only on its own.
	listen := quoteConf(n.Host)
	if n.Netns != "" {
		listen = "'*'"
	}
	return []Setting{
		{"listen_addresses", listen},
		{"port", strconv.Itoa(n.Port)},
		// A socket directory per node: nodes in different namespaces
		// share a port, and the lab's own SQL goes through the socket.
		{"unix_socket_directories", quoteConf(n.SocketDir)},
		{"unix_socket_permissions", "0700"},
		{"cluster_name", quoteConf(n.Name)},
		{"password_encryption", "'scram-sha-256'"},
		{"wal_level", "replica"},
		{"hot_standby", "on"},
		{"hot_standby_feedback", "on"},
		// pg_rewind needs hint bits in the WAL (checksums imply it too).
		{"wal_log_hints", "on"},
		{"max_wal_senders", "10"},
		{"max_replication_slots", "10"},
		{"wal_keep_size", "'512MB'"},
		// A dead peer is noticed within seconds, not the default minute:
		// the primary's keepalives (every wal_sender_timeout/2) are how a
		// standby tells a live upstream from a dead one.
		{"wal_sender_timeout", "'4s'"},
		{"wal_receiver_timeout", "'4s'"},
		// Small: CI runs several clusters at once on two cores.
		{"shared_buffers", "'64MB'"},
		{"max_connections", "50"},
		{"logging_collector", "on"},
		{"log_directory", quoteConf(f.LogDir)},
		// One fixed file name: tools that read the log find it without guessing.
		{"log_filename", "'postgresql.log'"},
		{"log_rotation_age", "0"},
		{"log_rotation_size", "0"},
		{"log_line_prefix", "'%m [%p] '"},
	}
}

// writeConfig writes the node's settings.
func (l *Lab) writeConfig(n Node) error {
	f := l.flavor
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by vigil lab for %s; included from %s.\n", n.Name, f.ConfigFile)
	fmt.Fprintf(&b, "# ALTER SYSTEM writes %s, which is read after this file.\n", f.AutoConfigFile)
	for _, s := range l.NodeSettings(n) {
		fmt.Fprintf(&b, "%s = %s\n", s.Name, s.Value)
	}
	return l.replaceOwned(filepath.Join(n.DataDir, confFile), []byte(b.String()), 0o600)
}

// includeConfig makes the main config file read the lab's settings last.
func (l *Lab) includeConfig(n Node) error {
	path := filepath.Join(n.DataDir, l.flavor.ConfigFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("include lab settings: %w", err)
	}
	_, werr := fmt.Fprintf(f, "\n# Added by vigil lab: the lab's settings.\ninclude '%s'\n", confFile)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("include lab settings in %s: %w", path, werr)
	}
	return nil
}

// writeAccessFiles replaces the authentication rules: the OS user reaches
// the superuser through the unix socket (peer, mapped), everyone else
// authenticates with scram-sha-256 over TCP from the lab's network.
func (l *Lab) writeAccessFiles(n Node) error {
	network := "127.0.0.1/32"
	if l.st.Subnet != "" {
		network = l.st.Subnet
	}
	osUser := l.osUserName()
	hba := fmt.Sprintf(`# Written by vigil lab.
# TYPE  DATABASE     USER  ADDRESS  METHOD
local   all          all            peer map=vigil
host    all          all   %[1]s  scram-sha-256
host    replication  all   %[1]s  scram-sha-256
`, network)
	ident := fmt.Sprintf("# Written by vigil lab: the OS user %[1]s may connect as itself and as the superuser.\n# MAPNAME  SYSTEM-USERNAME  PG-USERNAME\nvigil  %[1]s  %[1]s\n", osUser)
	if osUser != l.st.Superuser {
		ident += fmt.Sprintf("vigil  %s  %s\n", osUser, l.st.Superuser)
	}
	if err := l.replaceOwned(filepath.Join(n.DataDir, l.flavor.HBAFile), []byte(hba), 0o600); err != nil {
		return err
	}
	return l.replaceOwned(filepath.Join(n.DataDir, identFile(l.flavor)), []byte(ident), 0o600)
}

// identFile is the user-name map next to the HBA file ("pg_ident.conf").
func identFile(f flavor.Flavor) string {
	return strings.Replace(f.HBAFile, "hba", "ident", 1)
}

func (l *Lab) osUserName() string {
	if l.user != nil {
		return l.user.Name
	}
	if cur, err := user.Current(); err == nil {
		return cur.Username
	}
	return strconv.Itoa(os.Getuid())
}

// quoteConf quotes a postgresql.conf string value.
func quoteConf(v string) string {
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}
