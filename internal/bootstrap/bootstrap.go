// Package bootstrap builds a node whose data directory holds no cluster:
// Bootstrap creates the cluster (initdb or an operator's command, the
// server settings and access rules Vigil needs, the replication and
// superuser roles from the configured secrets, schema vigil), and Clone
// makes the node a standby of the writable primary (pg_basebackup through
// rejoin.Clone, or operator's replica-creation commands, tried in order).
// Each step is recorded (a rejoin.Recorder), so the operator reads what
// happened. Which node bootstraps, and when a node clones, is decided
// elsewhere (package decision, the initialize key in the DCS); this
// package does the work.
//
// A build marks the data directory as under way (a file beside it) until
// it is done: a directory left half-built by a node that died is moved
// aside, never deleted, before the next attempt, and a directory that
// holds anything else is never touched.
package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/pgctl"
	"github.com/vigil-ha/vigil/internal/rejoin"
)

// Methods of creating the cluster and of creating a replica.
const (
	MethodInitDB     = "initdb"
	MethodCommand    = "command"
	MethodBaseBackup = "basebackup"
)

// Step names of a bootstrap.
const (
	StepPrepare      = "bootstrap_prepare"
	StepInitDB       = "bootstrap_initdb"
	StepCommand      = "bootstrap_command"
	StepConfigure    = "bootstrap_configure"
	StepStart        = "bootstrap_start"
	StepWaitPrimary  = "bootstrap_wait_primary"
	StepRoles        = "bootstrap_roles"
	StepSchema       = "bootstrap_schema"
	StepIdentify     = "bootstrap_identify"
	StepClonePrepare = "clone_prepare"
	StepCloneCommand = "clone_command"
)

// ReplicaMethod is one way of creating a replica: MethodBaseBackup, or
// MethodCommand with its Command.
type ReplicaMethod struct {
	Name    string
	Command []string
}

// Options say how to build the node.
type Options struct {
	// Method is MethodInitDB or MethodCommand.
	Method string
	InitDB pgctl.InitDBOptions
	// Command and RecoveryTarget: see config.Bootstrap.
	Command        []string
	RecoveryTarget string
	// Settings are written into database.ServerConfigFile on every node
	// built (bootstrap and clone).
	Settings database.ServerSettings
	// HBAExtra and Networks make pg_hba.conf; with no Networks, the
	// members' hosts given to Bootstrap are used.
	HBAExtra []string
	Networks []string
	// ReplicationUser and the passwords come from the configured secrets.
	ReplicationUser     string
	ReplicationPassword string
	SuperuserPassword   string
	// ReplicaMethods are tried in order by Clone (MethodBaseBackup when
	// empty).
	ReplicaMethods []ReplicaMethod
	// StreamTimeout bounds the wait for a clone to stream, and for a
	// restored server to leave recovery.
	StreamTimeout time.Duration
	Logger        *slog.Logger
}

// Builder builds one node's server.
type Builder struct {
	srv *database.Server
	o   Options
	log *slog.Logger
}

// New returns a builder for srv.
func New(srv *database.Server, o Options) *Builder {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.StreamTimeout <= 0 {
		o.StreamTimeout = 2 * time.Minute
	}
	if len(o.ReplicaMethods) == 0 {
		o.ReplicaMethods = []ReplicaMethod{{Name: MethodBaseBackup}}
	}
	return &Builder{srv: srv, o: o, log: log.With("node", srv.Name)}
}

// NoData reports whether the data directory holds no cluster: missing,
// empty or half-built.
func (b *Builder) NoData() (bool, error) {
	c, err := b.srv.DataDirContent()
	return c != database.DataDirCluster, err
}

// Bootstrap creates the cluster in the empty (or half-built) data
// directory, each step recorded by rec, and returns its system
// identifier. memberHosts are the members' addresses known now, for
// pg_hba.conf when no networks are configured. The server is left
// running as a primary.
func (b *Builder) Bootstrap(ctx context.Context, memberHosts []string, rec rejoin.Recorder) (string, error) {
	srv := b.srv
	if err := rec.Run(StepPrepare, func() (string, error) { return b.prepare(ctx) }); err != nil {
		return "", err
	}
	switch b.o.Method {
	case MethodCommand:
		if err := rec.Run(StepCommand, func() (string, error) {
			env := []string{"VIGIL_RECOVERY_TARGET=" + b.o.RecoveryTarget}
			if err := srv.RunBuildCommand(ctx, b.o.Command, env); err != nil {
				return "", err
			}
			return fmt.Sprintf("%s filled %s (recovery target %q)", b.o.Command[0], srv.Ctl.DataDir, b.o.RecoveryTarget), nil
		}); err != nil {
			return "", err
		}
	default:
		if err := rec.Run(StepInitDB, func() (string, error) {
			return srv.InitDB(ctx, b.o.InitDB, b.o.SuperuserPassword)
		}); err != nil {
			return "", err
		}
	}
	if err := rec.Run(StepConfigure, func() (string, error) {
		conf, err := srv.WriteServerConfig(b.o.Settings)
		if err != nil {
			return "", err
		}
		hba, err := srv.WriteHBA(database.HBA{Extra: b.o.HBAExtra, Networks: b.networks(memberHosts), ReplicationUser: b.o.ReplicationUser})
		if err != nil {
			return "", err
		}
		return conf + "; " + hba, nil
	}); err != nil {
		return "", err
	}
	if err := rec.Run(StepStart, func() (string, error) {
		if err := srv.Start(ctx); err != nil {
			return "", err
		}
		return "started", nil
	}); err != nil {
		return "", err
	}
	if b.o.Method == MethodCommand {
		if err := rec.Run(StepWaitPrimary, func() (string, error) { return b.waitPrimary(ctx) }); err != nil {
			return "", err
		}
	}
	if err := rec.Run(StepRoles, func() (string, error) {
		return srv.CreateClusterRoles(ctx, b.o.ReplicationUser, b.o.ReplicationPassword, b.o.SuperuserPassword)
	}); err != nil {
		return "", err
	}
	if err := rec.Run(StepSchema, func() (string, error) { return srv.EnsureSchema(ctx) }); err != nil {
		return "", err
	}
	var systemID string
	if err := rec.Run(StepIdentify, func() (string, error) {
		cd, err := srv.ControlData(ctx)
		if err != nil {
			return "", err
		}
		if cd.SystemID == "" {
			return "", errors.New("the control file names no system identifier")
		}
		systemID = cd.SystemID
		return "system identifier " + systemID, srv.EndBuild()
	}); err != nil {
		return "", err
	}
	return systemID, nil
}

// prepare makes the data directory ready for a build: a server left
// running on a half-built directory (its build's agent died) is stopped
// before the directory is moved aside.
func (b *Builder) prepare(ctx context.Context) (string, error) {
	if running, pid, err := b.srv.Status(ctx); err == nil && running {
		if err := b.srv.Stop(ctx, pgctl.Immediate); err != nil {
			return "", fmt.Errorf("stop the server %d running on the half-built data directory: %w", pid, err)
		}
	}
	aside, err := b.srv.BeginBuild()
	if err != nil {
		return "", err
	}
	ev := "empty data directory " + b.srv.Ctl.DataDir + " ready"
	if aside != "" {
		ev += "; the half-built one left by an interrupted build is kept at " + aside
	}
	return ev, nil
}

// networks are the addresses pg_hba.conf lets the members in from.
func (b *Builder) networks(memberHosts []string) []string {
	if len(b.o.Networks) > 0 {
		return b.o.Networks
	}
	var nets []string
	for _, h := range append([]string{b.srv.Conn.Host}, memberHosts...) {
		a, err := netip.ParseAddr(h)
		if err != nil {
			continue // a socket directory or a name: no address to allow
		}
		n := netip.PrefixFrom(a, a.BitLen()).String()
		if !slices.Contains(nets, n) {
			nets = append(nets, n)
		}
	}
	return nets
}

// waitPrimary waits until a restored server has left recovery.
func (b *Builder) waitPrimary(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.o.StreamTimeout)
	defer cancel()
	for {
		obs, err := b.srv.Observe(ctx)
		if err == nil && obs.Reachable && !obs.InRecovery {
			return fmt.Sprintf("recovery ended on timeline %d", obs.Timeline), nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("wait for the restored server to leave recovery: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Progress is how far a clone's copy has come.
type Progress struct {
	BytesDone, BytesTotal int64
	// Rate is bytes per second since the copy began; ETA the time left at
	// that rate (negative: unknown).
	Rate    int64
	ETA     time.Duration
	Started time.Time
}

// Clone makes the node a standby of up, trying each replica method in
// order, each step recorded by rec; progress, when not nil, is told how
// far a base backup has come about once a second, from another goroutine
// and never after Clone has returned. It returns once the
// node streams. A method that fails leaves its half-built copy aside for
// the next one (never deleted).
func (b *Builder) Clone(ctx context.Context, up database.Upstream, rec rejoin.Recorder, progress func(Progress)) (string, error) {
	var errs []error
	for i, m := range b.o.ReplicaMethods {
		if ctx.Err() != nil {
			break
		}
		if err := rec.Run(StepClonePrepare, func() (string, error) { return b.prepare(ctx) }); err != nil {
			return "", err
		}
		ev, err := b.cloneWith(ctx, m, up, rec, progress)
		if err == nil {
			if err := b.srv.EndBuild(); err != nil {
				return "", err
			}
			return fmt.Sprintf("method %s: %s", m.Name, ev), nil
		}
		b.log.Warn("clone method failed", "method", m.Name, "attempt", i+1, "of", len(b.o.ReplicaMethods), "err", err)
		errs = append(errs, fmt.Errorf("method %s: %w", m.Name, err))
		// The server a failed method may have started must not run on
		// the half-built directory.
		if err := b.srv.Stop(context.WithoutCancel(ctx), pgctl.Immediate); err != nil {
			b.log.Warn("stop the server of a failed clone", "err", err)
		}
	}
	if ctx.Err() != nil {
		errs = append(errs, ctx.Err())
	}
	return "", fmt.Errorf("clone from %s:%d: %w", up.Host, up.Port, errors.Join(errs...))
}

func (b *Builder) cloneWith(ctx context.Context, m ReplicaMethod, up database.Upstream, rec rejoin.Recorder, progress func(Progress)) (string, error) {
	srv := b.srv
	writeConfig := func() (string, error) { return srv.WriteServerConfig(b.o.Settings) }
	if m.Name == MethodCommand {
		if err := rec.Run(StepCloneCommand, func() (string, error) {
			env := []string{"VIGIL_PRIMARY_HOST=" + up.Host, "VIGIL_PRIMARY_PORT=" + strconv.Itoa(up.Port)}
			if err := srv.RunBuildCommand(ctx, m.Command, env); err != nil {
				return "", err
			}
			return m.Command[0] + " filled " + srv.Ctl.DataDir, nil
		}); err != nil {
			return "", err
		}
		for _, step := range []struct {
			name string
			f    func() (string, error)
		}{
			{rejoin.StepCloneNodeConfig, writeConfig},
			{rejoin.StepCloneConfigure, func() (string, error) { return srv.ConfigureStandby(up) }},
			{rejoin.StepCloneStart, func() (string, error) { return "started as a standby", srv.Start(ctx) }},
			{rejoin.StepCloneWaitStreaming, func() (string, error) {
				wctx, cancel := context.WithTimeout(ctx, b.o.StreamTimeout)
				defer cancel()
				return fmt.Sprintf("streaming from %s:%d", up.Host, up.Port), srv.WaitStreaming(wctx, up.Host, up.Port)
			}},
		} {
			if err := rec.Run(step.name, step.f); err != nil {
				return "", err
			}
		}
		return "restored by " + m.Command[0] + ", streaming", nil
	}
	// The progress reports end before Clone returns: a caller may read
	// what its callback wrote as soon as it has the result.
	pctx, stop := context.WithCancel(ctx)
	watched := make(chan struct{})
	defer func() { stop(); <-watched }()
	if progress != nil {
		go func() {
			defer close(watched)
			b.watchProgress(pctx, up, progress)
		}()
	} else {
		close(watched)
	}
	res, err := rejoin.Clone(ctx, srv, up, rejoin.Options{StreamTimeout: b.o.StreamTimeout, Logger: b.log, AfterCopy: writeConfig}, rec)
	if err != nil {
		return "", err
	}
	return res.Evidence, nil
}

// progressEvery is how often a clone's progress is read from the primary.
const progressEvery = time.Second

// watchProgress reads the base backup's progress on the primary (as the
// agent's own role) until ctx ends.
func (b *Builder) watchProgress(ctx context.Context, up database.Upstream, progress func(Progress)) {
	started := time.Now()
	conn := b.srv.Conn
	conn.Host, conn.Port = up.Host, up.Port
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		qctx, cancel := context.WithTimeout(ctx, progressEvery)
		done, total, found, err := b.srv.BaseBackupProgress(qctx, conn)
		cancel()
		if err != nil {
			b.log.Debug("clone progress", "err", err)
			continue
		}
		if !found {
			continue
		}
		p := Progress{BytesDone: done, BytesTotal: total, Started: started, ETA: -1}
		if secs := time.Since(started).Seconds(); secs > 0 {
			p.Rate = int64(float64(done) / secs)
		}
		if p.Rate > 0 && total >= done {
			p.ETA = time.Duration(float64(total-done) / float64(p.Rate) * float64(time.Second))
		}
		b.log.Info("clone progress", "bytes_done", done, "bytes_total", total, "rate_bytes_per_s", p.Rate, "eta", p.ETA.Round(time.Second))
		progress(p)
	}
}
