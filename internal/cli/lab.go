package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/internal/flavor"
	"github.com/vigil-ha/vigil/internal/lab"
	"github.com/vigil-ha/vigil/internal/pgctl"
)

func newLabCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Build and drive a real local streaming-replication cluster",
		Long: `A lab is a real PostgreSQL (or KingbaseES) cluster on this machine: node1 is
the primary, node2..N are standbys cloned with pg_basebackup, streaming through
replication slots. Nodes listen on loopback ports, or with --netns each runs in
its own network namespace on its own address behind a bridge, like separate
hosts. Labs serve Vigil's tests, demos and benchmarks.

Everything a lab creates is listed in DIR/lab.json, and "vigil lab down"
removes exactly that. Passwords are kept in DIR/secrets and never printed.`,
	}
	cmd.AddCommand(
		newLabUpCmd(),
		newLabStatusCmd(),
		newLabDownCmd(),
		newLabReplayCmd(),
		newLabKillCmd(),
		newLabStartCmd(),
		newLabStopCmd(),
	)
	return cmd
}

type labUpOptions struct {
	dir, binDir, flavor, osUser string
	nodes, port                 int
	netns, force                bool
}

func newLabUpCmd() *cobra.Command {
	var o labUpOptions
	cmd := &cobra.Command{
		Use:   "up --nodes N --dir DIR [--netns] [--force]",
		Short: "Build a lab: a primary and N-1 streaming standbys",
		Long: `Build a lab in DIR: initdb the primary (node1), clone each standby from it with
pg_basebackup -R through a replication slot named after the node, start them
all and wait until every standby streams.

As root the servers run as --os-user (PostgreSQL refuses root), so DIR and its
parents must be searchable by that user. With --netns (root only) each node
gets a network namespace, a veth link to a bridge and an address in a free
/24 of 198.18.0.0/15; every node then listens on the flavor's default port.
Without --netns the nodes listen on 127.0.0.1, on --port, --port+1, ... or on
free ports.

The output says how to connect to each node; the passwords stay in files
under DIR/secrets. A failed "lab up" removes what it had created.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := flavor.Lookup(o.flavor)
			if err != nil {
				return usageError(fmt.Errorf("--flavor: %w", err))
			}
			l, err := lab.Up(cmd.Context(), lab.Options{
				Dir: o.dir, Nodes: o.nodes, Netns: o.netns, BinDir: o.binDir, Flavor: f,
				BasePort: o.port, OSUser: o.osUser, Force: o.force, Logger: logger(cmd),
			})
			if err != nil {
				return labError(err)
			}
			return printLabUp(cmd.OutOrStdout(), l)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&o.nodes, "nodes", 3, "number of nodes: node1 is the primary, the others standbys")
	fl.StringVar(&o.dir, "dir", "", "lab directory: created, or empty, or holding a lab to replace with --force")
	fl.BoolVar(&o.netns, "netns", false, "run each node in its own network namespace, on its own address (root only)")
	fl.BoolVar(&o.force, "force", false, "remove the lab already in --dir first")
	fl.StringVar(&o.binDir, "bin-dir", lab.DefaultBinDir, "directory of the server's binaries (initdb, pg_ctl, ...)")
	fl.StringVar(&o.flavor, "flavor", string(flavor.Postgres), "database product: "+strings.Join(flavor.Names(), " or "))
	fl.IntVar(&o.port, "port", 0, "first node's port (loopback: node K gets port+K-1, 0 picks free ports; netns: every node's port, 0 for the default)")
	fl.StringVar(&o.osUser, "os-user", "", "OS account for the servers when run as root (default "+lab.DefaultOSUser+")")
	_ = cmd.MarkFlagRequired("dir")
	return cmd
}

// labError makes an error the lab found in its input a usage error.
func labError(err error) error {
	var ie *lab.InputError
	if errors.As(err, &ie) {
		return usageError(err)
	}
	return err
}

func printLabUp(w io.Writer, l *lab.Lab) error {
	mode := "on 127.0.0.1"
	if l.Netns() {
		mode = "in network namespaces, subnet " + l.Subnet()
	}
	nodes := l.Nodes()
	super, _, err := l.Superuser()
	if err != nil {
		return err
	}
	repl, _, err := l.Replication()
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "lab up in %s: %d %s %s\n\n", l.Dir(), len(nodes), plural(len(nodes), "node", "nodes"), mode)
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tROLE\tHOST:PORT\tNETNS\tCONNECT")
	for _, n := range nodes {
		role := "standby"
		if n.Primary {
			role = "primary"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s:%d\t%s\tPGPASSFILE=%s psql %s\n", n.Name, role, n.Host, n.Port, dash(n.Netns),
			shellQuote(l.SuperuserPassFile()), shellQuote(fmt.Sprintf("host=%s port=%d user=%s dbname=%s", n.Host, n.Port, super, l.Flavor().DefaultDatabase)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(&b, "\nsuperuser %s: password in %s\n", super, l.SuperuserPasswordFile())
	fmt.Fprintf(&b, "replication role %s: password in %s (pgpass file %s)\n", repl, l.ReplicationPasswordFile(), l.PassFile())
	fmt.Fprintf(&b, "status: vigil lab status --dir %s\nremove: vigil lab down --dir %s\n", shellQuote(l.Dir()), shellQuote(l.Dir()))
	_, err = io.WriteString(w, b.String())
	return err
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// shellQuote quotes s for a POSIX shell when it needs it, so printed
// commands can be pasted.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-=:,+@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// openLab opens the lab in dir; a directory without a lab is the user's
// mistake, not a failure.
func openLab(cmd *cobra.Command, dir string) (*lab.Lab, error) {
	l, err := lab.Open(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, usageError(err)
		}
		return nil, err
	}
	l.SetLogger(logger(cmd))
	return l, nil
}

// labNodeFlags are --dir and --node, for commands on one node.
type labNodeFlags struct{ dir, node string }

func (f *labNodeFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.dir, "dir", "", "lab directory")
	cmd.Flags().StringVar(&f.node, "node", "", "node name, e.g. node2")
	_ = cmd.MarkFlagRequired("dir")
	_ = cmd.MarkFlagRequired("node")
}

func (f *labNodeFlags) open(cmd *cobra.Command) (*lab.Lab, lab.Node, error) {
	l, err := openLab(cmd, f.dir)
	if err != nil {
		return nil, lab.Node{}, err
	}
	n, err := l.Node(f.node)
	if err != nil {
		return nil, lab.Node{}, usageError(err)
	}
	return l, n, nil
}

func newLabStatusCmd() *cobra.Command {
	var dir, output string
	cmd := &cobra.Command{
		Use:   "status --dir DIR [-o json]",
		Short: "Show each lab node's state: running, PID, role and WAL positions",
		Long: `Show each node of the lab in DIR: its namespace and address, whether its server
runs (and its postmaster's PID), whether it accepts TCP connections, its role
as the server reports it (primary, standby, or unknown when it does not
answer) and its WAL positions: the primary's current LSN, a standby's received
and replayed LSNs, and whether its replay is paused. A node that is down is
shown as such; the others are still reported.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return usageError(fmt.Errorf("-o %q: use text or json", output))
			}
			l, err := openLab(cmd, dir)
			if err != nil {
				return err
			}
			status, err := l.Status(cmd.Context())
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(status)
			}
			return printLabStatus(cmd.OutOrStdout(), status)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "lab directory")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	_ = cmd.MarkFlagRequired("dir")
	return cmd
}

func printLabStatus(w io.Writer, status []lab.NodeStatus) error {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tNETNS\tHOST:PORT\tRUNNING\tPID\tREACHABLE\tROLE\tCURRENT LSN\tRECEIVE LSN\tREPLAY LSN\tREPLAY")
	var problems []string
	for _, s := range status {
		pid, replay := "-", "-"
		if s.PID != 0 {
			pid = fmt.Sprint(s.PID)
		}
		if s.Role == lab.RoleStandby {
			replay = "running"
			if s.ReplayPaused {
				replay = "paused"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s:%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, dash(s.Netns), s.Host, s.Port,
			yesNo(s.Running), pid, yesNo(s.Reachable), s.Role, dash(s.CurrentLSN), dash(s.ReceiveLSN), dash(s.ReplayLSN), replay)
		if s.Error != "" {
			problems = append(problems, s.Name+": "+s.Error)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, p := range problems {
		b.WriteString(p + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func newLabDownCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "down --dir DIR",
		Short: "Remove a lab: stop its servers, delete its namespaces, links and directory",
		Long: `Remove the lab in DIR: kill the agents and witnesses started on it (by vigil
demo, bench or the tests; each recorded with its start time, so a reused
pid is left alone), stop its servers (immediate shutdown, then SIGKILL of any
of its server processes still running), delete the veth links, bridge and
network namespaces it created, release its subnet and delete DIR. Only what
DIR/lab.json lists is touched. It works on a half-built lab and on servers
that already died; if something cannot be removed, lab.json is kept so the
command can be run again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := openLab(cmd, dir)
			if err != nil {
				return err
			}
			if err := l.Down(cmd.Context()); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "lab in %s removed\n", l.Dir())
			return err
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "lab directory")
	_ = cmd.MarkFlagRequired("dir")
	return cmd
}

func newLabReplayCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "replay pause|resume --dir DIR --node NAME",
		Short: "Pause or resume WAL replay on a standby (inject replay lag)",
		Long: `Pause or resume WAL replay on a standby. A paused standby keeps receiving WAL
but does not apply it, so writes on the primary build a replay backlog: the
condition of the incident Vigil was born from, where a promoted standby
accepted connections but refused writes until it had replayed its backlog.`,
	}
	pause := func(pause bool) *cobra.Command {
		var f labNodeFlags
		use, short, long := "resume", "Resume WAL replay on a standby", "Resume WAL replay on a standby, which then replays the WAL it received while paused."
		if pause {
			use, short, long = "pause", "Pause WAL replay on a standby", "Pause WAL replay on a standby; it keeps receiving WAL, so writes on the primary\nbuild a replay backlog (see vigil lab status)."
		}
		c := &cobra.Command{
			Use:   use + " --dir DIR --node NAME",
			Short: short,
			Long:  long,
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				l, n, err := f.open(cmd)
				if err != nil {
					return err
				}
				if pause {
					err = l.PauseReplay(cmd.Context(), n)
				} else {
					err = l.ResumeReplay(cmd.Context(), n)
				}
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "replay on %s: %sd\n", n.Name, use)
				return err
			},
		}
		f.add(c)
		return c
	}
	cmd.AddCommand(pause(true), pause(false))
	return cmd
}

func newLabKillCmd() *cobra.Command {
	var f labNodeFlags
	cmd := &cobra.Command{
		Use:   "kill --dir DIR --node NAME",
		Short: "Crash a lab node: SIGKILL its postmaster",
		Long: `Crash a lab node: send SIGKILL to its postmaster (from its pid file), as the
kernel's OOM killer would, and wait until the server's processes are gone.
The data directory is left as a crash leaves it; "vigil lab start" runs
crash recovery.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, n, err := f.open(cmd)
			if err != nil {
				return err
			}
			if err := l.Kill(cmd.Context(), n); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s killed\n", n.Name)
			return err
		},
	}
	f.add(cmd)
	return cmd
}

func newLabStartCmd() *cobra.Command {
	var f labNodeFlags
	cmd := &cobra.Command{
		Use:   "start --dir DIR --node NAME",
		Short: "Start a lab node's server",
		Long: `Start a lab node's server (in its namespace, as the lab's OS user) and wait
until it accepts connections. A running server is left alone.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, n, err := f.open(cmd)
			if err != nil {
				return err
			}
			if err := l.Start(cmd.Context(), n); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s started\n", n.Name)
			return err
		},
	}
	f.add(cmd)
	return cmd
}

func newLabStopCmd() *cobra.Command {
	var f labNodeFlags
	var mode string
	cmd := &cobra.Command{
		Use:   "stop --dir DIR --node NAME [--mode fast|immediate]",
		Short: "Stop a lab node's server",
		Long: `Stop a lab node's server with pg_ctl: fast (a clean shutdown with a
checkpoint) or immediate (an abort that needs crash recovery on restart).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m := pgctl.StopMode(mode)
			if m != pgctl.Fast && m != pgctl.Immediate {
				return usageError(fmt.Errorf("--mode %q: use fast or immediate", mode))
			}
			l, n, err := f.open(cmd)
			if err != nil {
				return err
			}
			if err := l.Stop(cmd.Context(), n, m); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s stopped (%s)\n", n.Name, m)
			return err
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&mode, "mode", string(pgctl.Fast), "shutdown mode: fast or immediate")
	return cmd
}
