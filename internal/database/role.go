package database

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-ha/vigil/internal/pgctl"
)

// Server versions where behaviour changed.
const (
	versionReloadConninfo   = 130000 // primary_conninfo changes apply on reload
	settingPollInterval     = 50 * time.Millisecond
	defaultPromoteWait      = 60 * time.Second
	synchronousStandbyNames = "synchronous_standby_names"
)

// roleState is the little a role change needs to know first.
type roleState struct {
	inRecovery bool
	version    int
}

func (s *Server) roleState(ctx context.Context, c *pgx.Conn) (roleState, error) {
	var st roleState
	err := c.QueryRow(ctx, s.sql(qRoleState)).Scan(&st.inRecovery, &st.version)
	if err != nil {
		return st, fmt.Errorf("read role: %w", err)
	}
	return st, nil
}

// Promote turns a standby into a primary and waits until it has left
// recovery, at most wait. It uses pg_promote where the server has it and the
// control binary otherwise, or when SQL is unavailable. Promoting a primary
// is a no-op. Leaving recovery is necessary but not sufficient for clients:
// only ProbeWrite proves that the server accepts writes.
func (s *Server) Promote(ctx context.Context, wait time.Duration) error {
	if wait <= 0 {
		wait = defaultPromoteWait
	}
	var viaSQL bool
	err := s.withConn(ctx, func(c *pgx.Conn) error {
		st, err := s.roleState(ctx, c)
		if err != nil {
			return err
		}
		if !st.inRecovery {
			s.logger().Info("promote: already a primary", "node", s.Name)
			viaSQL = true
			return nil
		}
		// Asked by name, not version: a fork may number its versions its
		// own way.
		if cat, err := s.catalog(ctx, c); err != nil || !cat.PromoteFunction {
			return err
		}
		viaSQL = true
		secs := max(int(wait.Round(time.Second)/time.Second), 1)
		var done bool
		if err := c.QueryRow(ctx, s.sql(qPromote), secs).Scan(&done); err != nil {
			return fmt.Errorf("%s: %w", s.Flavor.Ident("pg_promote"), s.needs(OpPromote, err))
		}
		if !done {
			return fmt.Errorf("%s: still in recovery after %ds", s.Flavor.Ident("pg_promote"), secs)
		}
		return nil
	})
	var ce *ConnectError
	if err != nil && !errors.As(err, &ce) {
		return fmt.Errorf("promote %s: %w", s.Name, err)
	}
	if viaSQL && err == nil {
		return nil
	}
	if err != nil {
		s.logger().Warn("promote: SQL unavailable, using the control binary", "node", s.Name, "err", err)
	}
	if err := s.Ctl.Promote(ctx, wait); err != nil {
		return fmt.Errorf("promote %s: %w", s.Name, err)
	}
	return nil
}

// SetSynchronous makes commits wait until any one of the named standbys has
// flushed them (synchronous_standby_names = 'ANY 1 (...)'). It returns once
// new sessions see the setting.
func (s *Server) SetSynchronous(ctx context.Context, names ...string) error {
	if len(names) == 0 {
		return fmt.Errorf("set synchronous on %s: no standby names given (use SetAsync to turn synchronous replication off)", s.Name)
	}
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = pgx.Identifier{n}.Sanitize()
	}
	value := fmt.Sprintf("ANY 1 (%s)", strings.Join(quoted, ", "))
	if err := s.setParameter(ctx, synchronousStandbyNames, value); err != nil {
		return fmt.Errorf("set synchronous on %s: %w", s.Name, err)
	}
	return nil
}

// SetAsync stops commits from waiting for any standby. It is what a new
// primary needs when no synchronous standby is left; otherwise every commit
// hangs.
func (s *Server) SetAsync(ctx context.Context) error {
	if err := s.setParameter(ctx, synchronousStandbyNames, ""); err != nil {
		return fmt.Errorf("set async on %s: %w", s.Name, err)
	}
	return nil
}

// setParameter persists a setting with ALTER SYSTEM, reloads, and waits until
// a new session sees the value (reload is asynchronous).
func (s *Server) setParameter(ctx context.Context, name, value string) error {
	err := s.withConn(ctx, func(c *pgx.Conn) error {
		if err := s.alterSystemSet(ctx, c, name, value); err != nil {
			return err
		}
		return s.reloadConf(ctx, c)
	})
	if err != nil {
		return err
	}
	return s.waitSetting(ctx, name, value)
}

func (s *Server) waitSetting(ctx context.Context, name, want string) error {
	for {
		var got string
		err := s.withConn(ctx, func(c *pgx.Conn) error {
			return c.QueryRow(ctx, `select current_setting($1)`, name).Scan(&got)
		})
		if err == nil && got == want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s = %q (last seen %q, err %v): %w", name, want, got, err, ctx.Err())
		case <-time.After(settingPollInterval):
		}
	}
}

// quoteLiteral renders a SQL string literal; ALTER SYSTEM takes no parameters.
func quoteLiteral(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }

// EnsureSlot creates a physical replication slot unless it exists. A new
// primary needs one per standby: slots are not copied by pg_basebackup and
// do not survive promotion on the other standbys.
func (s *Server) EnsureSlot(ctx context.Context, name string) error {
	err := s.withConn(ctx, func(c *pgx.Conn) error {
		_, err := c.Exec(ctx, s.sql(qEnsureSlot), name)
		return s.needs(OpEnsureSlot, err)
	})
	if err != nil {
		return fmt.Errorf("ensure replication slot %q on %s: %w", name, s.Name, err)
	}
	return nil
}

// Upstream is the server a standby streams from.
type Upstream struct {
	Host string
	Port int
	User string
	// PassFile is a pgpass-format file readable by the server's OS user; the
	// password itself never goes into a configuration file.
	PassFile string
	// SlotName is the replication slot on the upstream; empty for none.
	SlotName string
	// ApplicationName is how the upstream names this standby (for
	// synchronous_standby_names); the node name when empty.
	ApplicationName string
}

// Conninfo renders primary_conninfo.
func (u Upstream) Conninfo(defaultAppName string) string {
	app := u.ApplicationName
	if app == "" {
		app = defaultAppName
	}
	kv := []string{"host", u.Host, "port", strconv.Itoa(u.Port), "user", u.User, "passfile", u.PassFile, "application_name", app}
	var parts []string
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == "" || kv[i+1] == "0" {
			continue
		}
		parts = append(parts, kv[i]+"="+conninfoValue(kv[i+1]))
	}
	return strings.Join(parts, " ")
}

// conninfoValue quotes a libpq keyword value when it needs it.
func conninfoValue(v string) string {
	if v != "" && !strings.ContainsAny(v, ` '\`) {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// Follow makes the server a standby of up. A running standby is re-pointed
// (reload where the version allows, restart otherwise); a stopped server is
// configured as a standby and started. A running primary is refused: its WAL
// may have diverged from up and it needs a rewind first, which is not this
// call's decision to make.
func (s *Server) Follow(ctx context.Context, up Upstream) error {
	if err := s.follow(ctx, up); err != nil {
		return fmt.Errorf("follow %s:%d on %s: %w", up.Host, up.Port, s.Name, err)
	}
	return nil
}

func (s *Server) follow(ctx context.Context, up Upstream) error {
	conninfo := up.Conninfo(s.Name)
	if up.SlotName != "" {
		// The new upstream's agent makes the slots of its standbys once it
		// is writable; a standby that follows it sooner (it is woken by the
		// leader key) would be refused for a missing slot and retry only
		// after wal_retrieve_retry_interval (5 s), long enough to miss WAL
		// that a switchover right after would not have. Best effort: the
		// leader makes the slot too.
		_, _ = s.EnsureUpstreamSlot(ctx, up)
	}
	var st roleState
	err := s.withConn(ctx, func(c *pgx.Conn) error {
		var err error
		st, err = s.roleState(ctx, c)
		return err
	})
	var ce *ConnectError
	switch {
	case errors.As(err, &ce):
		running, _, serr := s.Ctl.Status(ctx)
		if serr != nil {
			return serr
		}
		if running {
			return fmt.Errorf("server is running but refuses connections (%v): retry when it accepts them", ce.Err)
		}
		if err := s.writeStandbyConfig(conninfo, up.SlotName); err != nil {
			return err
		}
		return s.Ctl.Start(ctx, s.StartOptions)
	case err != nil:
		return err
	case !st.inRecovery:
		return errors.New("server is a running primary: stop it and rewind it before it can follow another primary")
	}

	old, err := s.recoveryConf()
	if err != nil {
		return err
	}
	if old {
		// recovery.conf, read only at start.
		if err := s.writeStandbyConfig(conninfo, up.SlotName); err != nil {
			return err
		}
		if err := s.Ctl.Stop(ctx, pgctl.Fast, 0); err != nil {
			return err
		}
		return s.Ctl.Start(ctx, s.StartOptions)
	}
	err = s.withConn(ctx, func(c *pgx.Conn) error {
		for _, p := range [][2]string{{"primary_conninfo", conninfo}, {"primary_slot_name", up.SlotName}} {
			if err := s.alterSystemSet(ctx, c, p[0], p[1]); err != nil {
				return err
			}
		}
		if st.version >= versionReloadConninfo {
			if err := s.reloadConf(ctx, c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if st.version >= versionReloadConninfo {
		return nil
	}
	if err := s.Ctl.Stop(ctx, pgctl.Fast, 0); err != nil {
		return err
	}
	return s.Ctl.Start(ctx, s.StartOptions)
}

// writeStandbyConfig configures a stopped server as a standby: the settings
// go into the auto configuration file (where ALTER SYSTEM would put them) and
// the standby signal file is created; before 12, into recovery.conf.
func (s *Server) writeStandbyConfig(conninfo, slot string) error {
	dataDir := s.Ctl.DataDir
	owner, err := ownerOf(dataDir)
	if err != nil {
		return err
	}
	old, err := s.recoveryConf()
	if err != nil {
		return err
	}
	if old {
		path := filepath.Join(dataDir, recoveryConfFile)
		current, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("read %s: %w", path, err)
		}
		return writeOwned(path, []byte(recoveryConf(string(current), conninfo, slot)), owner)
	}
	autoConf := filepath.Join(dataDir, s.Flavor.AutoConfigFile)
	current, err := os.ReadFile(autoConf)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s: %w", autoConf, err)
	}
	body := keepSettings(string(current), map[string]bool{"primary_conninfo": true, "primary_slot_name": true})
	body += fmt.Sprintf("primary_conninfo = %s\nprimary_slot_name = %s\n", quoteLiteral(conninfo), quoteLiteral(slot))
	if err := writeOwned(autoConf, []byte(body), owner); err != nil {
		return err
	}
	return writeOwned(filepath.Join(dataDir, s.Flavor.StandbySignal), nil, owner)
}

type fileOwner struct{ uid, gid int }

func ownerOf(path string) (fileOwner, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileOwner{}, fmt.Errorf("stat %s: %w", path, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileOwner{}, fmt.Errorf("stat %s: no owner information", path)
	}
	return fileOwner{uid: int(st.Uid), gid: int(st.Gid)}, nil
}

// writeOwned replaces path atomically with mode 0600 and the given owner, so
// that the server's OS user can read what an agent running as root wrote.
func writeOwned(path string, data []byte, owner fileOwner) error {
	tmp := path + ".vigil-tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(tmp, owner.uid, owner.gid); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("chown %s: %w", tmp, err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}

// WaitStreaming waits until the server's WAL receiver streams from host:port.
func (s *Server) WaitStreaming(ctx context.Context, host string, port int) error {
	var last Observation
	for {
		obs, err := s.Observe(ctx)
		if err == nil && obs.WALReceiver != nil && obs.WALReceiver.Status == "streaming" &&
			obs.WALReceiver.SenderHost == host && obs.WALReceiver.SenderPort == port {
			return nil
		}
		last = obs
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s to stream from %s:%d (receiver %+v): %w", s.Name, host, port, last.WALReceiver, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
