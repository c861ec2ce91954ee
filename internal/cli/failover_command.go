package cli

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/internal/config"
	"github.com/vigil-ha/vigil/internal/pgpool"
	"github.com/vigil-ha/vigil/internal/remote"
)

// pgpoolExitCodes is the table in both commands' help.
const pgpoolExitCodes = `Exit codes (Pgpool-II logs them and carries on; they are for operators):
  0  done: failed over, or a standby failed (detached only), or nothing was left to do
  1  a step failed after the point of no return (see the log): act now
  2  bad flags, placeholders or configuration: nothing was done
  3  no trusted IP answered: nothing was done
  4  no usable new primary (none given, or it does not answer): nothing was done
  5  the old primary could not be fenced: nothing was promoted
  6  promoted, but no write committed within timing.readiness_timeout: the VIP was not moved
  7  writable primary, but the VIP was not added or does not answer
  8  timing.total_timeout ran out (the log says during which step)`

type pgpoolCmdOptions struct {
	config string
	dryRun bool
	local  bool
	named  map[string]*string
}

func (o *pgpoolCmdOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.config, "config", "", "Pgpool configuration file of vigil (required; see docs/migration-from-failover_stream.md)")
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "observe and print the plan and its commands; change nothing")
	o.named = map[string]*string{}
	for _, p := range pgpool.Placeholders() {
		o.named[p.Flag] = cmd.Flags().String(p.Flag, "", p.Char+": "+p.Help)
	}
	_ = cmd.MarkFlagRequired("config")
}

// setup loads the configuration and the placeholders; every problem here
// is a usage error (exit 2): nothing has been done yet.
func (o *pgpoolCmdOptions) setup(cmd *cobra.Command, positional []string) (pgpool.Options, pgpool.FollowSettings, pgpool.Args, func() error, error) {
	fail := func(err error) (pgpool.Options, pgpool.FollowSettings, pgpool.Args, func() error, error) {
		return pgpool.Options{}, pgpool.FollowSettings{}, pgpool.Args{}, nil, usageError(err)
	}
	cfg, err := config.LoadPgpool(o.config)
	if err == nil {
		err = cfg.Validate()
	}
	if err == nil {
		err = cfg.HostProblems()
	}
	if err != nil {
		return fail(fmt.Errorf("configuration rejected (each line names the file):\n%w", err))
	}
	// Pgpool-II's log is where its operator reads what the command said,
	// a key written with its old name included.
	for _, w := range cfg.Warnings() {
		logger(cmd).Warn("configuration: " + w.String())
	}
	named := map[string]string{}
	for flag, v := range o.named {
		if cmd.Flags().Changed(flag) {
			named[flag] = *v
		}
	}
	args, err := pgpool.ParseCommandLine(positional, named)
	if err != nil {
		return fail(err)
	}
	isLocal, err := pgpool.LocalHost()
	if err != nil {
		return fail(err)
	}
	env := pgpool.Env{Stdout: cmd.OutOrStdout(), Logger: logger(cmd), IsLocal: isLocal, Dial: sshDialer(cfg), DryRun: o.dryRun, EUID: os.Geteuid()}
	if o.local {
		env.LocalHost = args.FailedHost
	}
	opts, fs, closeAll, err := pgpool.Setup(cfg, env)
	if err != nil {
		return fail(err)
	}
	fs.Local = o.local || isLocal(args.FailedHost)
	fs.Forced = o.local
	return opts, fs, args, closeAll, nil
}

// sshDialer opens SSH sessions to the nodes with the configured key; host
// keys are checked against ssh.known_hosts_file, and an unknown or changed
// one is an error that stops the failover (it is not "unreachable").
func sshDialer(cfg *config.Pgpool) func(ctx context.Context, host string) (pgpool.Shell, error) {
	rc := remote.Config{User: cfg.SSH.User, KeyFile: cfg.SSH.KeyFile, KnownHostsFile: cfg.SSH.KnownHostsFile,
		Port: cfg.SSH.Port, Timeout: cfg.SSH.Timeout}
	return func(ctx context.Context, host string) (pgpool.Shell, error) {
		c, err := remote.Dial(ctx, host, rc)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}

func pgpoolExit(out pgpool.Outcome) error {
	if out.Exit == pgpool.ExitOK {
		return nil
	}
	err := out.Err
	if err == nil {
		err = fmt.Errorf("exit %d", out.Exit)
	}
	return &exitError{code: out.Exit, err: err}
}

func newFailoverCommandCmd() *cobra.Command {
	var o pgpoolCmdOptions
	cmd := &cobra.Command{
		Use:   "failover-command --config FILE -- %d %h %p %D %m %H %M %P %r %R %N %S",
		Short: "Pgpool-II's failover_command: failover_stream.sh's steps, the VIP only after a committed write",
		Long: `Pgpool-II runs this as its failover_command when it detaches a node. It
replaces KingbaseES V8R3's failover_stream.sh: the same steps and the same
log, in an order that never sends clients to a read-only primary:

  1. ping the trusted IPs: none answers, nothing is done (exit 3)
  2. a failed standby is detached only; no promotion (exit 0)
  3. fence the old primary over SSH: stop its database, delete the VIP
  4. promote the new main node (pg_promote/sys_promote, or the control binary over SSH)
  5. readiness gate: a real write must commit (waits out the replay backlog)
  6. synchronous -> asynchronous when no synchronous standby is left
  7. CHECKPOINT
  8. only now: add the VIP on the new primary (duplicate check, gratuitous ARP)
     and commit a write through it
  9. log in failover_stream.sh's shape (stdout, log.failover_log) and as
     JSON steps (log.step_log); give both to vigil analyze

The placeholders come positionally in Pgpool-II's documented order (quote
each one in pgpool.conf: an empty %H must still count), or as named flags in
any order (--new-main-host=%H). A second call for the same failover finds
the new primary writable with the VIP and exits 0.

` + pgpoolExitCodes,
		RunE: func(cmd *cobra.Command, positional []string) error {
			opts, _, args, closeAll, err := o.setup(cmd, positional)
			if err != nil {
				return err
			}
			defer closeAll()
			return pgpoolExit(pgpool.Failover(cmd.Context(), opts, args))
		},
	}
	o.addFlags(cmd)
	return cmd
}

func newFollowCommandCmd() *cobra.Command {
	var o pgpoolCmdOptions
	cmd := &cobra.Command{
		Use:   "follow-command --config FILE -- %d %h %p %D %m %H %M %P %r %R %N %S",
		Short: "Pgpool-II's follow_primary_command: re-point a remaining standby at the new primary",
		Long: `Pgpool-II runs this as its follow_primary_command for each standby after a
failover: %d %h %p %D are the standby, %m %H %r %R the new primary. The
standby's primary_conninfo is pointed at the new primary (a reload where the
server allows it, else a restart), through a slot named after the node when
follow.use_slots is set; Vigil waits until it streams, then runs
follow.attach_command (pcp_attach_node). A standby that does not answer is
left detached, and a node that runs as a primary is refused: it needs a
rewind first (vigil ctl rejoin, or pg_rewind).

--local does it on this host whatever the standby's address (this is how
vigil runs itself on a remote standby's host, see follow.remote_vigil).

` + pgpoolExitCodes,
		RunE: func(cmd *cobra.Command, positional []string) error {
			opts, fs, args, closeAll, err := o.setup(cmd, positional)
			if err != nil {
				return err
			}
			defer closeAll()
			// The failover log keeps failover_stream.sh's lines only.
			opts.Human = cmd.OutOrStdout()
			return pgpoolExit(pgpool.Follow(cmd.Context(), opts, fs, args))
		},
	}
	o.addFlags(cmd)
	cmd.Flags().BoolVar(&o.local, "local", false, "the standby is on this host: re-point (or start) it here")
	return cmd
}
