package pgpool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"

	"github.com/vigil-ha/vigil/internal/config"
	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/pgctl"
	"github.com/vigil-ha/vigil/internal/proc"
)

// Env is what the command line supplies around a configuration.
type Env struct {
	Stdout io.Writer
	Logger *slog.Logger
	// IsLocal tells this host's addresses (LocalHost).
	IsLocal func(host string) bool
	// Dial opens an SSH session to a node; nil: no SSH (every command for
	// another host fails, and the failover stops before promoting).
	Dial func(ctx context.Context, host string) (Shell, error)
	// LocalHost is a host to treat as this one whatever its address
	// (follow-command --local: the standby is here).
	LocalHost string
	DryRun    bool
	// EUID is the effective user id (os.Geteuid()).
	EUID int
}

// noRemoteControl is the working directory of the control-binary runner
// of a server on another host. The adapter falls back to the control
// binary when SQL fails; for another host that binary would act on this
// one, so its runner starts in a directory that does not exist and every
// such attempt fails before any program runs. The procedure promotes a
// remote server with the control binary over SSH instead.
const noRemoteControl = "/nonexistent/vigil: the control binary of another host does not run here"

// Setup turns a validated configuration into the procedures' options. The
// returned close function closes the log files and the SSH sessions.
func Setup(cfg *config.Pgpool, env Env) (Options, FollowSettings, func() error, error) {
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := cfg.Flavor()
	d := cfg.Database
	password, err := d.Superuser.Resolve()
	if err != nil {
		return Options{}, FollowSettings{}, nil, fmt.Errorf("database.superuser: %w", err)
	}
	isLocal := env.IsLocal
	if isLocal == nil {
		isLocal = func(string) bool { return false }
	}
	local := func(host string) bool { return isLocal(host) || (env.LocalHost != "" && host == env.LocalHost) }
	var localRunner proc.Runner
	if env.EUID == 0 && d.OSUser != "" && d.OSUser != "root" {
		id, err := proc.LookupUser(d.OSUser)
		if err != nil {
			return Options{}, FollowSettings{}, nil, fmt.Errorf("database.os_user: %w", err)
		}
		localRunner.As = &id
	}
	hosts := &Hosts{IsLocal: local, Dial: env.Dial}
	dbPrefix, netPrefix := Privileges(cfg.SSH.User, d.OSUser, cfg.Commands.NetworkPrivilege)
	names := make([]string, len(cfg.Nodes))
	for i, n := range cfg.Nodes {
		names[i] = n.Name
	}
	o := Options{
		Cluster:  cfg.Cluster,
		Flavor:   f,
		Defaults: Defaults{Port: d.Port, DataDir: d.DataDir, Names: names},
		Commands: Commands{Flavor: f, BinDir: d.BinDir, IP: cfg.Commands.IP, Arping: cfg.Commands.Arping,
			DBPrefix: dbPrefix, NetPrefix: netPrefix},
		Runner: hosts,
		Connect: func(t Target) Server {
			ctl := pgctl.Ctl{Flavor: f, BinDir: d.BinDir, DataDir: t.DataDir, Runner: proc.Runner{Dir: noRemoteControl}}
			if local(t.Host) {
				ctl.Runner = localRunner
			}
			return &database.Server{
				Name: t.Name, Flavor: f, Logger: log, Ctl: ctl,
				Conn: database.ConnConfig{Host: t.Host, Port: t.Port, User: d.Superuser.User, Password: password,
					Database: d.Superuser.Database, ConnectTimeout: d.ConnectTimeout},
			}
		},
		SQLUser: d.Superuser.User, SQLDatabase: d.Superuser.Database,
		TrustedIPs: cfg.TrustedIPs, TrustedTimeout: cfg.Timing.TrustedIPTimeout,
		FenceIfUnreachable: cfg.Fence.IfUnreachable, StopMode: cfg.Fence.StopMode, PromoteMethod: cfg.Promote.Method,
		Total: cfg.Timing.TotalTimeout, DBTimeout: cfg.Timing.DBTimeout, CommandTimeout: cfg.Timing.CommandTimeout,
		PromoteTimeout: cfg.Timing.PromoteTimeout, ReadinessTimeout: cfg.Timing.ReadinessTimeout,
		Logger: log, DryRun: env.DryRun,
	}
	if cfg.VIP.Address != "" {
		prefix, err := netip.ParsePrefix(cfg.VIP.Address)
		if err != nil {
			return Options{}, FollowSettings{}, nil, fmt.Errorf("vip.address: %w", err)
		}
		o.VIP = &VIP{Prefix: prefix, Interface: cfg.VIP.Interface, Label: cfg.VIP.Label, ARPCount: cfg.VIP.GratuitousARPCount}
	}
	closers := []io.Closer{hosts}
	stdout := env.Stdout
	if stdout == nil {
		stdout = io.Discard
	}
	o.Human = stdout
	// A log file that cannot be opened must not stop a failover: the
	// record still goes to standard output (Pgpool-II's log) and to
	// Vigil's own log.
	open := func(what, path string) io.Writer {
		if path == "" || env.DryRun {
			return nil
		}
		file, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			log.Error("cannot open "+what+"; going on without it", "path", path, "err", err)
			return nil
		}
		closers = append(closers, file)
		return file
	}
	if w := open("log.failover_log", cfg.Log.FailoverLog); w != nil {
		o.Human = io.MultiWriter(stdout, w)
	}
	o.StepLog = open("log.step_log", cfg.Log.StepLog)
	fs := FollowSettings{
		ReplicationUser: d.Replication.User, Passfile: cfg.Follow.Passfile, UseSlots: cfg.Follow.UseSlots,
		AttachCommand: cfg.Follow.AttachCommand, RemoteVigil: cfg.Follow.RemoteVigil, RemoteConfig: cfg.Follow.RemoteConfig,
	}
	closeAll := func() error {
		var errs []error
		for _, c := range closers {
			errs = append(errs, c.Close())
		}
		return errors.Join(errs...)
	}
	return o, fs, closeAll, nil
}

// ParseCommandLine reads the placeholders from the positional form (in
// Pgpool-II's documented order) and the named flags (any order; named maps
// a Placeholder's Flag to its value, for the flags that were given). A
// placeholder given both ways is refused, since the two could disagree.
func ParseCommandLine(positional []string, named map[string]string) (Args, error) {
	a := NewArgs()
	if len(positional) > 0 {
		var err error
		if a, err = ParsePositional(positional); err != nil {
			return a, err
		}
	}
	for i, p := range Placeholders() {
		v, ok := named[p.Flag]
		if !ok {
			continue
		}
		if len(positional) > i {
			return a, fmt.Errorf("%s is given twice: as --%s and as positional value %d", p.Char, p.Flag, i+1)
		}
		if err := a.Set(p, v); err != nil {
			return a, err
		}
	}
	for k := range named {
		known := false
		for _, p := range Placeholders() {
			known = known || p.Flag == k
		}
		if !known {
			return a, fmt.Errorf("--%s is not a placeholder flag", k)
		}
	}
	if len(positional) == 0 && len(named) == 0 {
		return a, errors.New("no placeholders: give Pgpool-II's %d %h %p %D %m %H %M %P %r %R %N %S after --, or the named flags")
	}
	return a, nil
}
