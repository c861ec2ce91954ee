package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/internal/agent"
	"github.com/vigil-ha/vigil/internal/config"
	"github.com/vigil-ha/vigil/internal/control"
	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
	"github.com/vigil-ha/vigil/internal/failover"
	"github.com/vigil-ha/vigil/internal/node"
	"github.com/vigil-ha/vigil/internal/timeline"
	"github.com/vigil-ha/vigil/internal/wal"
)

type ctlOptions struct {
	config    string
	endpoints []string
	cluster   string
	output    string
	timeout   time.Duration
	// tls are --cacert, --cert and --key: an operator's certificate for
	// an etcd that requires one. Unset, --config's files are used.
	tls config.TLS

	// Set by open: the cluster reached and who this operator is for the
	// audit trail.
	clusterName string
	actor       dcs.Actor
}

// controller makes requests on s in this operator's name.
func (o *ctlOptions) controller(s *dcs.Store) control.Controller {
	return control.Controller{Store: s, Actor: o.actor, Cluster: o.clusterName}
}

// operator names who runs this command, for the audit trail: the subject
// of the client certificate shown to etcd, else the etcd user, else the OS
// user; from this OS account and host.
func operator(tlsCfg *tls.Config, etcdUser string) dcs.Actor {
	subject := ""
	if tlsCfg != nil && len(tlsCfg.Certificates) > 0 && len(tlsCfg.Certificates[0].Certificate) > 0 {
		leaf := tlsCfg.Certificates[0].Leaf
		if leaf == nil {
			leaf, _ = x509.ParseCertificate(tlsCfg.Certificates[0].Certificate[0])
		}
		if leaf != nil {
			subject = leaf.Subject.String()
		}
	}
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil {
		name = u.Username
	} else if name == "" {
		name = fmt.Sprintf("uid %d", os.Getuid())
	}
	host, _ := os.Hostname()
	return control.OperatorActor(subject, etcdUser, name, host)
}

func newCtlCmd() *cobra.Command {
	var o ctlOptions
	cmd := &cobra.Command{
		Use:   "ctl",
		Short: "Operate a cluster: list, topology, switchover, failover, rejoin, reinit, pause, resume, history",
		Long: `Operate a cluster through its DCS. Point it at the cluster with a node's
configuration (--config) or with --endpoints and --cluster. With embedded
etcd, --config reaches the etcd member of that node: use a live node's
configuration, or list several members' client URLs with --endpoints.

An etcd with mutual TLS (dcs.embedded.tls, or an external etcd's dcs.tls)
requires a certificate of the cluster's CA: --config uses the node's files
(readable by root only), or give an operator's certificate from
` + "`vigil certs client`" + ` with --cacert, --cert and --key.`,
	}
	f := cmd.PersistentFlags()
	f.StringVar(&o.config, "config", "", "a node's configuration file (its DCS settings are used)")
	f.StringSliceVar(&o.endpoints, "endpoints", nil, "etcd endpoints (instead of --config)")
	f.StringVar(&o.cluster, "cluster", "", "cluster name (with --endpoints)")
	f.StringVarP(&o.output, "output", "o", "table", "output of read commands: table or json")
	f.DurationVar(&o.timeout, "timeout", 5*time.Second, "time limit of each DCS request")
	f.StringVar(&o.tls.CAFile, "cacert", "", "CA certificate that verifies etcd (default: --config's, else the system's roots)")
	f.StringVar(&o.tls.CertFile, "cert", "", "client certificate for etcd, e.g. from `vigil certs client` (default: --config's)")
	f.StringVar(&o.tls.KeyFile, "key", "", "private key of --cert")
	cmd.AddCommand(newCtlListCmd(&o), newCtlPauseCmd(&o, true), newCtlPauseCmd(&o, false), newCtlHistoryCmd(&o),
		newCtlFailoverCmd(&o), newCtlSwitchoverCmd(&o), newCtlRejoinCmd(&o), newCtlReinitCmd(&o), newCtlTopologyCmd(&o),
		newCtlMemberCmd(&o), newCtlShowConfigCmd(&o), newCtlEditConfigCmd(&o), newCtlRestartCmd(&o))
	return cmd
}

// withStore makes a subcommand's RunE that opens the cluster's DCS first
// and closes it when run returns.
func (o *ctlOptions) withStore(run func(cmd *cobra.Command, args []string, s *dcs.Store) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		s, err := o.open()
		if err != nil {
			return err
		}
		defer s.Close()
		return run(cmd, args, s)
	}
}

// open connects to the cluster's DCS.
func (o *ctlOptions) open() (*dcs.Store, error) {
	endpoints, cluster := o.endpoints, o.cluster
	prefix := ""
	ttl := 3 * time.Second
	tlsField, tlsFiles := "--cacert/--cert/--key", o.tls
	var user, password string
	if (tlsFiles.CertFile == "") != (tlsFiles.KeyFile == "") {
		return nil, usageError(errors.New("--cert and --key go together"))
	}
	if o.config != "" {
		cfg, err := loadValidConfig(o.config)
		if err != nil {
			return nil, err
		}
		cluster, prefix, ttl = cfg.Cluster, cfg.DCS.Prefix, cfg.Timing.LeaseTTL
		if !tlsFiles.Enabled() {
			tlsField, tlsFiles = node.AgentDCSTLS(cfg)
		}
		if user = cfg.DCS.Username; user != "" {
			if password, err = cfg.DCS.Resolve(); err != nil {
				return nil, fmt.Errorf("dcs password: %w", err)
			}
		}
		if len(endpoints) == 0 {
			endpoints = cfg.DCS.Endpoints
			if cfg.DCS.Embedded.Enabled {
				endpoints = []string{cfg.DCS.Embedded.ClientURL}
			}
		}
	}
	if len(endpoints) == 0 || cluster == "" {
		return nil, usageError(errors.New("say which cluster: --config FILE, or --endpoints and --cluster"))
	}
	tlsCfg, err := node.DCSClientTLS(tlsField, tlsFiles)
	if err != nil {
		return nil, err
	}
	o.clusterName, o.actor = cluster, operator(tlsCfg, user)
	return dcs.Open(dcs.Options{Endpoints: endpoints, TLS: tlsCfg, Username: user, Password: password,
		Cluster: cluster, Prefix: prefix, LeaseTTL: ttl, DialTimeout: o.timeout})
}

func (o *ctlOptions) snapshot(ctx context.Context, s *dcs.Store) (dcs.View, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	return s.Snapshot(ctx)
}

// memberRow is one line of `ctl list`.
type memberRow struct {
	Name     string        `json:"name"`
	Host     string        `json:"host"`
	Port     int           `json:"port"`
	Role     decision.Role `json:"role"`
	Leader   bool          `json:"leader"`
	Writable bool          `json:"writable"`
	Timeline uint32        `json:"timeline"`
	WAL      wal.LSN       `json:"wal"`
	LagBytes uint64        `json:"lag_bytes"`
	Sync     bool          `json:"synchronous"`
	Routes   bool          `json:"holds_routes"`
	Upstream string        `json:"upstream,omitempty"`
	Isolated bool          `json:"isolated"`
	State    string        `json:"state"`
	// PendingRestart names the parameters waiting for a server restart.
	PendingRestart []string `json:"pending_restart,omitempty"`
	// Progress is the build under way (bootstrap, clone), "" for none.
	Progress string `json:"progress,omitempty"`
}

type listOutput struct {
	Cluster  string       `json:"cluster"`
	Leader   string       `json:"leader"`
	Paused   bool         `json:"paused"`
	Request  *dcs.Request `json:"pending_request,omitempty"`
	Members  []memberRow  `json:"members"`
	Problems []string     `json:"problems,omitempty"`
}

func buildList(cluster string, v dcs.View) listOutput {
	out := listOutput{Cluster: cluster, Leader: v.Leader, Paused: v.Config.Paused, Request: v.Request, Problems: v.Problems}
	leaderWAL, _ := wal.ParseLSN(v.Status.WAL)
	names := make([]string, 0, len(v.Members))
	for n := range v.Members {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		m := v.Members[n]
		row := memberRow{Name: n, Host: m.Host, Port: m.Port, Role: m.Role, Leader: n == v.Leader, Writable: m.Writable,
			Timeline: m.Timeline, WAL: m.WAL, LagBytes: leaderWAL.Sub(m.WAL), Upstream: m.Upstream, Isolated: m.Isolated,
			Routes: v.Primary != nil && v.Primary.Node == n && n == v.Leader, Progress: buildProgress(m)}
		for _, s := range v.Sync {
			row.Sync = row.Sync || s == n
		}
		switch {
		case row.Leader && !m.Writable:
			row.State = "ERROR: leader does not commit writes"
			out.Problems = append(out.Problems, fmt.Sprintf("leader %s holds the key but its write probe fails: no route sends clients to it", n))
		case row.Leader:
			row.State = "writable primary"
		case m.Role == decision.RolePrimary:
			row.State = "ERROR: primary without the leader key"
			out.Problems = append(out.Problems, fmt.Sprintf("%s runs a primary without the leader key; its agent stops it", n))
		case m.Role == decision.RoleStandby && m.Upstream != "" && m.Upstream == v.Leader:
			row.State = "streaming from " + m.Upstream
		case m.Role == decision.RoleStandby:
			row.State = strings.TrimSpace("standby, upstream "+m.Upstream) + " (not the leader)"
		default:
			row.State = string(m.Role)
		}
		if m.Isolated {
			row.State += ", ISOLATED"
		}
		if row.PendingRestart = m.PendingRestart; len(m.PendingRestart) > 0 {
			row.State += ", PENDING RESTART (" + strings.Join(m.PendingRestart, ", ") + ")"
		}
		out.Members = append(out.Members, row)
	}
	if v.Leader == "" {
		out.Problems = append(out.Problems, "no leader: nobody holds the leader key")
	}
	return out
}

func newCtlListCmd(o *ctlOptions) *cobra.Command {
	var watch bool
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "list [--watch [--interval D]]",
		Short: "One row per member: role, state, timeline, WAL, lag, sync, routes; problems flagged",
		Long: `One row per member: role, state, timeline, WAL, lag, sync, routes; problems
flagged, and the exit status is 1 when there are any.

With --watch the list is read again every --interval until Ctrl-C (exit 0),
with the failover, switchover, rejoin or reinit in progress above it: its
kind, target, how long it has run, and its latest step as the DCS shows it.
On a terminal the list is redrawn in place, one member per line when the
table is wider than the terminal; otherwise each list follows a separator
line. A DCS that does not answer is reported in the list, and the watch
goes on.`,
		Args: cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error {
			if watch && interval <= 0 {
				return usageError(fmt.Errorf("--interval %s: must be positive", interval))
			}
			return nil
		},
		RunE: o.withStore(func(cmd *cobra.Command, _ []string, s *dcs.Store) error {
			if watch {
				return o.watchList(cmd.Context(), s, cmd.OutOrStdout(), interval)
			}
			v, err := o.snapshot(cmd.Context(), s)
			if err != nil {
				return err
			}
			out := buildList(o.clusterName, v)
			if o.output == "json" {
				if err := writeJSON(cmd.OutOrStdout(), out); err != nil {
					return err
				}
			} else {
				printList(cmd.OutOrStdout(), out)
			}
			// Problems make the exit status non-zero in both formats, so
			// that a monitoring script cannot mistake a sick cluster for a
			// healthy one.
			if len(out.Problems) > 0 {
				return &exitError{code: ExitFailure, err: fmt.Errorf("%d problem(s): %s", len(out.Problems), strings.Join(out.Problems, "; "))}
			}
			return nil
		}),
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "read the list again every --interval until interrupted, with the operation in progress")
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "with --watch: time between two reads")
	return cmd
}

func printList(w io.Writer, out listOutput) {
	printListHeader(w, out)
	if r := out.Request; r != nil {
		by := r.Actor.OrUnknown()
		fmt.Fprintf(w, "pending %s request: from %s to %s, requested by %s from %s\n", r.Kind, orDash(r.From), orDash(r.To), by.By, by.From)
	}
	printMemberTable(w, out.Members)
	printListProblems(w, out.Problems)
}

func printListHeader(w io.Writer, out listOutput) {
	paused := ""
	if out.Paused {
		paused = "  [PAUSED: no automatic failover]"
	}
	fmt.Fprintf(w, "cluster %s, leader %s%s\n", out.Cluster, orDash(out.Leader), paused)
}

func printMemberTable(w io.Writer, members []memberRow) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tHOST\tROLE\tTL\tWAL\tLAG(bytes)\tSYNC\tROUTES\tSTATE\tPROGRESS")
	for _, r := range members {
		fmt.Fprintf(tw, "%s\t%s:%d\t%s\t%d\t%s\t%d\t%s\t%s\t%s\t%s\n", r.label(), r.Host, r.Port, r.Role, r.Timeline, r.WAL, r.LagBytes,
			yes(r.Sync), yes(r.Routes), r.State, orDash(r.Progress))
	}
	tw.Flush()
}

func printListProblems(w io.Writer, problems []string) {
	for _, p := range problems {
		fmt.Fprintln(w, "PROBLEM: "+p)
	}
}

// label is the member's name, starred for the leader.
func (r memberRow) label() string {
	if r.Leader {
		return r.Name + "*"
	}
	return r.Name
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "-"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newCtlPauseCmd(o *ctlOptions, pause bool) *cobra.Command {
	use, short := "pause", "Maintenance mode: the agents keep watching but take no automatic action"
	if !pause {
		use, short = "resume", "Leave maintenance mode: automatic failover again"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: o.withStore(func(cmd *cobra.Command, _ []string, s *dcs.Store) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			if err := o.controller(s).SetPaused(ctx, pause); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "cluster %sd\n", use)
			return nil
		}),
	}
}

func newCtlHistoryCmd(o *ctlOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "history",
		Short: "Past failovers, switchovers, rejoins, reinits, pauses and resumes: their steps and who asked",
		Args:  cobra.NoArgs,
		RunE: o.withStore(func(cmd *cobra.Command, _ []string, s *dcs.Store) error {
			recs, err := o.records(cmd.Context(), s, 0)
			if err != nil {
				return err
			}
			if o.output == "json" {
				return writeJSON(cmd.OutOrStdout(), recs)
			}
			if len(recs) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no failover or switchover recorded")
			}
			for _, rec := range recs {
				fmt.Fprintf(cmd.OutOrStdout(), "%s  %s\n", rec.Start.Format(time.RFC3339), formatRecord(rec))
			}
			return nil
		}),
	}
}

func newCtlFailoverCmd(o *ctlOptions) *cobra.Command {
	var to string
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "failover --to NODE",
		Short: "Manual failover to NODE when there is no healthy primary",
		Long: `Promote NODE when the cluster has no healthy primary (no leader, or a leader
that does not commit writes). With a healthy primary use switchover, which
loses no data. The target still runs the whole procedure: isolation guard,
leader key, promotion, readiness gate, and only then the routes.`,
		Args: cobra.NoArgs,
		RunE: o.withStore(func(cmd *cobra.Command, _ []string, s *dcs.Store) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			v, err := s.Snapshot(ctx)
			if err == nil {
				var req dcs.Request
				req, err = o.controller(s).Failover(ctx, to)
				cancel()
				if err == nil {
					return requestAndWait(cmd, o, s, req, v.Leader, wait)
				}
			}
			cancel()
			return controlError(err)
		}),
	}
	cmd.Flags().StringVar(&to, "to", "", "node to promote (required)")
	cmd.Flags().DurationVar(&wait, "wait", 2*time.Minute, "how long to wait for the new primary")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

func newCtlSwitchoverCmd(o *ctlOptions) *cobra.Command {
	var to, at string
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "switchover [--to NODE] [--at TIME]",
		Short: "Planned change of primary with zero data loss",
		Long: `Hand the primary role over with no data loss: the leader takes its routes
down, stops cleanly (every WAL record reaches the standbys), waits until the
target has all of it, restarts as a standby of the target, and hands the
leader key over; the target promotes, passes the readiness gate and brings
the routes up. Refused when the target is unhealthy or lagging. Prints the
write outage it caused.`,
		Args: cobra.NoArgs,
		RunE: o.withStore(func(cmd *cobra.Command, _ []string, s *dcs.Store) error {
			var when time.Time
			if at != "" {
				t, err := time.Parse(time.RFC3339, at)
				if err != nil {
					return usageError(fmt.Errorf("--at %q: use RFC 3339, e.g. 2026-11-25T03:00:00Z", at))
				}
				when = t
				wait += time.Until(t)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			req, err := o.controller(s).Switchover(ctx, to, when)
			cancel()
			if err != nil {
				return controlError(err)
			}
			return requestAndWait(cmd, o, s, req, req.From, wait)
		}),
	}
	cmd.Flags().StringVar(&to, "to", "", "node to hand over to (default: the best standby)")
	cmd.Flags().StringVar(&at, "at", "", "when to start (RFC 3339); default now")
	cmd.Flags().DurationVar(&wait, "wait", 2*time.Minute, "how long to wait for the new primary")
	return cmd
}

// requestAndWait waits after a stored request until a primary other than
// old is writable, then prints the steps both sides recorded and the write
// outage between the old routes going down and the new ones coming up.
func requestAndWait(cmd *cobra.Command, o *ctlOptions, s *dcs.Store, req dcs.Request, old string, wait time.Duration) error {
	fmt.Fprintf(cmd.ErrOrStderr(), "%s requested; waiting for the new primary...\n", req.Kind)
	deadline := time.Now().Add(wait)
	for {
		v, err := o.snapshot(cmd.Context(), s)
		if err == nil && v.Primary != nil && v.Primary.Node != old && v.Leader == v.Primary.Node {
			if m, ok := v.Members[v.Leader]; ok && m.Writable {
				break
			}
		}
		if err == nil && v.Request == nil && (v.Primary == nil || v.Primary.Node == old) && time.Since(req.Created) > 2*time.Second && v.Leader == old {
			return &exitError{code: ExitFailure, err: fmt.Errorf("%s was refused or abandoned by %s: see `vigil ctl history` and its agent's log", req.Kind, old)}
		}
		if time.Now().After(deadline) {
			return &exitError{code: ExitFailure, err: fmt.Errorf("no new writable primary within %s", wait)}
		}
		select {
		case <-cmd.Context().Done():
			return cmd.Context().Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return reportHandover(cmd, o, s, req)
}

func reportHandover(cmd *cobra.Command, o *ctlOptions, s *dcs.Store, req dcs.Request) error {
	recs, err := o.records(cmd.Context(), s, 0)
	if err != nil {
		return err
	}
	var down, up time.Time
	w := cmd.OutOrStdout()
	for _, rec := range recs {
		if rec.Start.Before(req.Created) {
			continue
		}
		fmt.Fprint(w, formatRecord(rec))
		for _, st := range rec.Steps {
			switch st.Name {
			case agent.StepRoutesDown:
				down = st.Start
			case failover.StepRoutesUp, failover.StepPublish:
				if st.OK && st.End.After(up) {
					up = st.End
				}
			}
		}
	}
	if !down.IsZero() && !up.IsZero() {
		fmt.Fprintf(w, "write outage: %.2f s (routes down on the old primary to routes up on the new one)\n", up.Sub(down).Seconds())
	}
	return nil
}

// controlError makes a refusal a usage error (exit 2, the request was not
// made) and leaves any other failure as it is.
func controlError(err error) error {
	if errors.Is(err, control.ErrRefused) {
		return usageError(err)
	}
	return err
}

func newCtlRejoinCmd(o *ctlOptions) *cobra.Command {
	var wait, settle time.Duration
	cmd := &cobra.Command{
		Use:   "rejoin NODE",
		Short: "Bring a former primary back as a standby of the current primary",
		Long: `Make NODE (a former primary, or a standby that diverged and cannot follow)
a streaming standby of the current writable primary. NODE's agent does it:
pg_rewind when the timelines diverged, a fresh base backup when a rewind is
impossible (rejoin.method in its configuration), then it starts the server
as a standby and waits until it streams. Commits NODE made that never
reached the new primary are discarded; a base backup keeps the old data
directory beside the new one.

The command waits until NODE's agent has published, after the rejoin, that
NODE is a standby of the primary on its timeline, and exits 0 only then. It
exits 1 when the rejoin failed (its record, with the failed step, is
printed), when NODE does not stream within --settle of its agent clearing
the request, or after --wait.`,
		Args: cobra.ExactArgs(1),
		RunE: o.withStore(func(cmd *cobra.Command, args []string, s *dcs.Store) error {
			return rebuildAndWait(cmd, o, s, args[0], "rejoin", "streams from the primary", control.Controller.Rejoin, wait, settle)
		}),
	}
	rebuildWaitFlags(cmd, &wait, &settle)
	return cmd
}

// rebuildAndWait asks for a rejoin or reinit of node (ask is the
// controller's method), waits until node streams from the primary, prints
// the records the agent wrote meanwhile, and turns a failure into exit 1.
func rebuildAndWait(cmd *cobra.Command, o *ctlOptions, s *dcs.Store, node, what, until string,
	ask func(control.Controller, context.Context, string) (dcs.Request, error), wait, settle time.Duration) error {
	// The records are those written after this view: etcd revisions,
	// unlike times, need no agreement of clocks.
	before, err := o.snapshot(cmd.Context(), s)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
	req, err := ask(o.controller(s), ctx, node)
	cancel()
	if err != nil {
		return controlError(err)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s of %s requested; waiting until it %s...\n", what, node, until)
	werr := waitRejoin(cmd.Context(), o, s, req, before.Revision, wait, settle)
	if rerr := reportRecords(cmd, o, s, before.Revision, node); rerr != nil && werr == nil {
		werr = rerr
	}
	if werr != nil && cmd.Context().Err() == nil {
		return &exitError{code: ExitFailure, err: werr}
	}
	return werr
}

func rebuildWaitFlags(cmd *cobra.Command, wait, settle *time.Duration) {
	cmd.Flags().DurationVar(wait, "wait", 10*time.Minute, "how long to wait (a base backup of a large database takes a while)")
	cmd.Flags().DurationVar(settle, "settle", time.Minute, "how long NODE may take to show it streams once its agent has cleared the request")
}

func newCtlReinitCmd(o *ctlOptions) *cobra.Command {
	var wait, settle time.Duration
	cmd := &cobra.Command{
		Use:   "reinit NODE",
		Short: "Rebuild a broken standby from the current primary (base backup; old data directory kept)",
		Long: `Rebuild NODE, a standby (or a stopped former primary) whose server no longer
starts or streams, from the current writable primary. NODE's agent does it,
whatever NODE's data directory holds: it stops the server if it runs, moves
the data directory aside (it is never deleted: the record says where it
went), copies the primary with pg_basebackup, puts NODE's own configuration
files back, starts the server as a standby and waits until it streams.
Unlike rejoin it takes no rewind and trusts nothing the old directory says.

Refused for the leader, a node running a primary, a node without a live
agent, while another request is pending, and while the cluster is paused
(a paused cluster's agents replace no server: ` + "`vigil ctl resume`" + ` first).

The command waits until NODE's agent has recorded the reinit and then
published that NODE is a standby of the primary on its timeline, and exits
0 only then. It exits 1 when the reinit failed (its record, with the failed
step, is printed), when NODE does not stream within --settle of its agent
clearing the request, or after --wait; 2 when the request is refused.`,
		Args: cobra.ExactArgs(1),
		RunE: o.withStore(func(cmd *cobra.Command, args []string, s *dcs.Store) error {
			return rebuildAndWait(cmd, o, s, args[0], "reinit", "is rebuilt and streams from the primary", control.Controller.Reinit, wait, settle)
		}),
	}
	rebuildWaitFlags(cmd, &wait, &settle)
	return cmd
}

// waitRejoin polls the DCS until control.CheckRejoin (CheckReinit for a
// reinit) says what req asked for is done (nil) or failed, NODE does not
// stream within settle of its agent finishing, or wait passes. since is
// the revision read before the request.
func waitRejoin(ctx context.Context, o *ctlOptions, s *dcs.Store, req dcs.Request, since int64, wait, settle time.Duration) error {
	deadline := time.Now().Add(wait)
	var settleBy time.Time
	last := control.RejoinProgress{Waiting: "no answer from the DCS yet"}
	for {
		p, err := rejoinProgress(ctx, o, s, req, since)
		switch {
		case err != nil:
			last.Waiting = err.Error()
		case p.Done:
			return nil
		case p.Failed != "":
			return fmt.Errorf("%s: see the record above and its agent's log", p.Failed)
		default:
			last = p
			if p.Finished && settleBy.IsZero() {
				settleBy = time.Now().Add(settle)
			}
		}
		if !settleBy.IsZero() && time.Now().After(settleBy) {
			return fmt.Errorf("the request to %s %s is gone (its agent acted on it, or it expired unanswered), but %s does not stream from the primary %s later: %s; see its agent's log",
				req.Kind, req.To, req.To, settle, last.Waiting)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not stream from the primary after %s: %s", req.To, wait, last.Waiting)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func rejoinProgress(ctx context.Context, o *ctlOptions, s *dcs.Store, req dcs.Request, since int64) (control.RejoinProgress, error) {
	// The records are read before the view: a record written in between
	// then comes with a view at least as new, never the other way round.
	recs, err := o.records(ctx, s, since)
	if err != nil {
		return control.RejoinProgress{}, err
	}
	v, err := o.snapshot(ctx, s)
	if err != nil {
		return control.RejoinProgress{}, err
	}
	if req.Kind == decision.RequestReinit {
		return control.CheckReinit(v, req, recs), nil
	}
	return control.CheckRejoin(v, req, recs), nil
}

// records reads the history records written after revision since (0: all).
func (o *ctlOptions) records(ctx context.Context, s *dcs.Store, since int64) ([]timeline.Record, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	raw, err := s.HistorySince(ctx, since)
	if err != nil {
		return nil, err
	}
	recs := make([]timeline.Record, 0, len(raw))
	for _, r := range raw {
		var rec timeline.Record
		if json.Unmarshal(r, &rec) == nil {
			recs = append(recs, rec)
		}
	}
	return recs, nil
}

// reportRecords prints node's history records written after revision since.
func reportRecords(cmd *cobra.Command, o *ctlOptions, s *dcs.Store, since int64, node string) error {
	recs, err := o.records(cmd.Context(), s, since)
	if err != nil {
		return err
	}
	for _, rec := range recs {
		if rec.Node == node {
			fmt.Fprint(cmd.OutOrStdout(), formatRecord(rec))
		}
	}
	return nil
}

// formatRecord renders a history record with who asked for it: a pause or
// resume in one line.
func formatRecord(rec timeline.Record) string {
	if rec.Kind == control.PauseRecordKind || rec.Kind == control.ResumeRecordKind || rec.Kind == control.SettingsRecordKind || rec.Kind == control.RestartRecordKind {
		return fmt.Sprintf("%s (%s), requested by %s from %s\n", rec.Kind, rec.Reason, orDash(rec.RequestedBy), orDash(rec.RequestedFrom))
	}
	s := timeline.Format(rec)
	if rec.RequestedBy != "" {
		s += fmt.Sprintf("  requested by %s from %s\n", rec.RequestedBy, orDash(rec.RequestedFrom))
	}
	return s
}
