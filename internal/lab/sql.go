package lab

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// psqlArgs connects as the superuser through the node's unix socket, where
// the OS user is let in by peer authentication: the lab's own SQL needs no
// password.
func (l *Lab) psqlArgs(n Node, extra ...string) []string {
	args := []string{"-X", "-q", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1",
		"-h", n.SocketDir, "-p", strconv.Itoa(n.Port), "-U", l.st.Superuser, "-d", l.flavor.DefaultDatabase}
	return append(args, extra...)
}

// psql runs one statement (written with {{pg_name}} placeholders) on node n
// and returns its unaligned output.
func (l *Lab) psql(ctx context.Context, n Node, stmt string) (string, error) {
	out, err := l.Runner(n).Run(ctx, l.bin(l.flavor.ClientBinary), l.psqlArgs(n, "-c", l.flavor.SQL(stmt))...)
	if err != nil {
		return "", fmt.Errorf("sql on %s: %w", n.Name, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// psqlInput runs a script given on stdin, for statements that must not
// appear in a process's arguments.
func (l *Lab) psqlInput(ctx context.Context, n Node, script string) (string, error) {
	out, err := l.Runner(n).RunInput(ctx, strings.NewReader(l.flavor.SQL(script)), l.bin(l.flavor.ClientBinary), l.psqlArgs(n, "-f", "-")...)
	if err != nil {
		// The error carries psql's output, never the script.
		return "", fmt.Errorf("sql on %s: %w", n.Name, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// waitStreaming waits until the primary reports every named standby as
// streaming.
func (l *Lab) waitStreaming(ctx context.Context, primary Node, standbys []string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var seen []string
	var lastErr error
	for {
		out, err := l.psql(ctx, primary, "SELECT application_name FROM {{pg_stat_replication}} WHERE state = 'streaming'")
		if err == nil {
			seen = strings.Fields(out)
			missing := false
			for _, s := range standbys {
				if !slices.Contains(seen, s) {
					missing = true
				}
			}
			if !missing {
				l.log().Info("standbys streaming", "primary", primary.Name, "standbys", standbys)
				return nil
			}
		}
		lastErr = err
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return fmt.Errorf("wait for standbys %v to stream from %s: %w (last error: %v)", standbys, primary.Name, ctx.Err(), lastErr)
			}
			return fmt.Errorf("wait for standbys %v to stream from %s: %w; streaming: %v (see the standbys' logs under %s)", standbys, primary.Name, ctx.Err(), seen, l.st.Dir)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// PauseReplay stops WAL replay on standby n while it keeps receiving WAL:
// with writes on the primary this builds the replay backlog of the seed
// incident, where a promoted standby stayed read-only until it caught up.
func (l *Lab) PauseReplay(ctx context.Context, n Node) error {
	if _, err := l.psql(ctx, n, "SELECT {{pg_wal_replay_pause}}()"); err != nil {
		return fmt.Errorf("pause replay on %s: %w", n.Name, err)
	}
	l.log().Info("replay paused", "node", n.Name)
	return nil
}

// ResumeReplay lets standby n replay its backlog.
func (l *Lab) ResumeReplay(ctx context.Context, n Node) error {
	if _, err := l.psql(ctx, n, "SELECT {{pg_wal_replay_resume}}()"); err != nil {
		return fmt.Errorf("resume replay on %s: %w", n.Name, err)
	}
	l.log().Info("replay resumed", "node", n.Name)
	return nil
}

// walTable receives GenerateWAL's rows.
const walTable = "vigil_lab_wal"

// GenerateWAL writes at least megabytes MiB of WAL on node n (a primary) in
// one transaction of bulk inserts, and returns once it has committed.
func (l *Lab) GenerateWAL(ctx context.Context, n Node, megabytes int) error {
	if megabytes < 1 {
		return fmt.Errorf("generate WAL on %s: %d MiB: want at least 1", n.Name, megabytes)
	}
	// The loop measures WAL rather than counting rows: row overhead and
	// full-page images differ between versions and flavors. The table is
	// emptied first so that repeated calls do not grow the data directory.
	script := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %[1]s (id bigserial, payload text);
TRUNCATE %[1]s;
DO $vigil$
DECLARE
  start_lsn pg_lsn := {{pg_current_wal_insert_lsn}}();
BEGIN
  WHILE {{pg_wal_lsn_diff}}({{pg_current_wal_insert_lsn}}(), start_lsn) < %[2]d LOOP
    INSERT INTO %[1]s (payload)
      SELECT repeat(md5(g::text || random()::text), 16) FROM generate_series(1, 2000) AS g;
  END LOOP;
END
$vigil$;
`, walTable, int64(megabytes)<<20)
	if _, err := l.psqlInput(ctx, n, script); err != nil {
		return fmt.Errorf("generate %d MiB of WAL on %s: %w", megabytes, n.Name, err)
	}
	return nil
}

// Role is a node's role as its server reports it.
type Role string

// Roles. Unknown: the server did not answer.
const (
	RolePrimary Role = "primary"
	RoleStandby Role = "standby"
	RoleUnknown Role = "unknown"
)

// NodeStatus is one node as Status found it.
type NodeStatus struct {
	Name  string `json:"name"`
	Netns string `json:"netns,omitempty"`
	Host  string `json:"host"`
	Port  int    `json:"port"`
	// Running: pg_ctl status finds the server; PID is its postmaster.
	Running bool `json:"running"`
	PID     int  `json:"pid,omitempty"`
	// Reachable: the server accepts TCP connections on Host:Port from here.
	Reachable  bool `json:"reachable"`
	Role       Role `json:"role"`
	InRecovery bool `json:"in_recovery"`
	// CurrentLSN is a primary's WAL write position.
	CurrentLSN string `json:"current_lsn,omitempty"`
	// ReceiveLSN and ReplayLSN are a standby's WAL received and replayed.
	ReceiveLSN   string `json:"receive_lsn,omitempty"`
	ReplayLSN    string `json:"replay_lsn,omitempty"`
	ReplayPaused bool   `json:"replay_paused,omitempty"`
	// Error says why some of the above could not be found out.
	Error string `json:"error,omitempty"`
}

// Status reports every node. A node that is down is reported as such; only
// a context that ends fails the whole call.
func (l *Lab) Status(ctx context.Context) ([]NodeStatus, error) {
	nodes := l.Nodes()
	out := make([]NodeStatus, len(nodes))
	for i, n := range nodes {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("lab status: %w", err)
		}
		out[i] = l.nodeStatus(ctx, n)
	}
	return out, nil
}

const statusQuery = `SELECT {{pg_is_in_recovery}}(),
  CASE WHEN {{pg_is_in_recovery}}() THEN '' ELSE {{pg_current_wal_lsn}}()::text END,
  coalesce({{pg_last_wal_receive_lsn}}()::text, ''),
  coalesce({{pg_last_wal_replay_lsn}}()::text, ''),
  CASE WHEN {{pg_is_in_recovery}}() THEN {{pg_is_wal_replay_paused}}() ELSE false END`

func (l *Lab) nodeStatus(ctx context.Context, n Node) NodeStatus {
	s := NodeStatus{Name: n.Name, Netns: n.Netns, Host: n.Host, Port: n.Port, Role: RoleUnknown}
	var errs []string
	running, pid, err := l.Ctl(n).Status(ctx)
	if err != nil {
		errs = append(errs, err.Error())
	}
	s.Running, s.PID = running, pid

	d := net.Dialer{Timeout: time.Second}
	if conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(n.Host, strconv.Itoa(n.Port))); err == nil {
		s.Reachable = true
		_ = conn.Close()
	}

	if running {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		row, err := l.psql(qctx, n, statusQuery)
		cancel()
		if err != nil {
			errs = append(errs, err.Error())
		} else if f := strings.Split(row, "|"); len(f) != 5 {
			errs = append(errs, fmt.Sprintf("status query on %s returned %q", n.Name, row))
		} else {
			s.InRecovery = f[0] == "t"
			s.Role = RolePrimary
			if s.InRecovery {
				s.Role = RoleStandby
			}
			s.CurrentLSN, s.ReceiveLSN, s.ReplayLSN = f[1], f[2], f[3]
			s.ReplayPaused = f[4] == "t"
		}
	}
	s.Error = strings.Join(errs, "; ")
	return s
}
