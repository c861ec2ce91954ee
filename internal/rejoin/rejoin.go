// Package rejoin brings a server, a former primary (running, stopped or
// crashed) or any standby, back as a streaming standby of the leader: the
// rejoin procedure, recorded step by step with the same step record as a
// failover (timeline.Step, through a Recorder). Reinit is the operator's
// stronger variant for a damaged server: a base backup whatever the server
// says of itself, the old data directory kept aside.
//
// The decisions it takes rest on the verdicts of package database (the
// upstream's timeline history, AssessDivergence, ParseRewindOutput) and its
// actions are the server's primitive operations (Server); the procedure
// itself, its order and its fallbacks live here.
package rejoin

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/pgctl"
)

// Method says how a rejoin makes a server's data match its new upstream.
// The values are spelt as the configuration's rejoin.method.
type Method string

// Methods. None is only ever a result.
const (
	// Auto rewinds, and takes a base backup when the rewind is impossible,
	// fails, or leaves a server that does not stream.
	Auto Method = "auto"
	// Rewind only rewinds; the rejoin fails when that is impossible.
	Rewind Method = "rewind"
	// BaseBackup copies the upstream whole, keeping the old data directory
	// beside the new one.
	BaseBackup Method = "basebackup"
	// None: the server already streamed from the upstream.
	None Method = "none"
)

// Step names, written once: the names of the steps in the step log and the
// history.
const (
	StepCheckStreaming   = "rejoin_check_streaming"
	StepIdentifyUpstream = "rejoin_identify_upstream"
	StepStop             = "rejoin_stop"
	StepAssess           = "rejoin_assess"
	StepUpstreamSlot     = "rejoin_upstream_slot"
	StepKeepNodeFiles    = "rejoin_keep_node_files"
	StepCheckpointUp     = "rejoin_checkpoint_upstream"
	StepRewind           = "rejoin_rewind"
	StepStopAfterRewind  = "rejoin_stop_after_rewind"
	StepBaseBackup       = "rejoin_basebackup"
	StepConfigure        = "rejoin_configure"
	StepStart            = "rejoin_start"
	StepWaitStreaming    = "rejoin_wait_streaming"
)

// Step names of a reinit (Reinit): a record of its own kind, whose steps
// say what was done to the node rather than reuse the rejoin's words.
const (
	StepReinitIdentifyUpstream = "reinit_identify_upstream"
	StepReinitStop             = "reinit_stop"
	StepReinitInspect          = "reinit_inspect"
	StepReinitUpstreamSlot     = "reinit_upstream_slot"
	StepReinitKeepNodeFiles    = "reinit_keep_node_files"
	StepReinitBaseBackup       = "reinit_basebackup"
	StepReinitConfigure        = "reinit_configure"
	StepReinitStart            = "reinit_start"
	StepReinitWaitStreaming    = "reinit_wait_streaming"
)

// Step names of a clone (Clone): an empty node built as a standby.
const (
	StepCloneIdentifyUpstream = "clone_identify_upstream"
	StepCloneUpstreamSlot     = "clone_upstream_slot"
	StepCloneKeepNodeFiles    = "clone_keep_node_files"
	StepCloneBaseBackup       = "clone_basebackup"
	StepCloneNodeConfig       = "clone_node_config"
	StepCloneConfigure        = "clone_configure"
	StepCloneStart            = "clone_start"
	StepCloneWaitStreaming    = "clone_wait_streaming"
	// StepNodeConfig is the AfterCopy step of a rejoin or reinit.
	StepNodeConfig = "node_config"
)

// tailSteps names the steps a rejoin and a reinit share: the base backup
// and the start as a standby.
type tailSteps struct {
	baseBackup, nodeConfig, configure, start, waitStreaming string
}

var (
	rejoinTail = tailSteps{StepBaseBackup, StepNodeConfig, StepConfigure, StepStart, StepWaitStreaming}
	reinitTail = tailSteps{StepReinitBaseBackup, StepNodeConfig, StepReinitConfigure, StepReinitStart, StepReinitWaitStreaming}
	cloneTail  = tailSteps{StepCloneBaseBackup, StepCloneNodeConfig, StepCloneConfigure, StepCloneStart, StepCloneWaitStreaming}
)

// reinitSteps names the steps of a reinit before its tail.
type reinitSteps struct {
	identify, stop, inspect, slot, keep string
	tail                                tailSteps
	what                                string
}

var (
	reinitNames = reinitSteps{StepReinitIdentifyUpstream, StepReinitStop, StepReinitInspect, StepReinitUpstreamSlot, StepReinitKeepNodeFiles, reinitTail, "reinit"}
	// A clone has no server to stop nor control file to inspect: its
	// caller made the data directory empty.
	cloneNames = reinitSteps{StepCloneIdentifyUpstream, "", "", StepCloneUpstreamSlot, StepCloneKeepNodeFiles, cloneTail, "clone"}
)

const (
	defaultStreamTimeout  = 2 * time.Minute
	streamingPollInterval = 100 * time.Millisecond
	// A standby configured for the upstream may be between two connection
	// attempts; this long it gets to show it streams before it is treated
	// as a server to rejoin.
	streamingGrace = 5 * time.Second
)

// Server is what the procedure asks of the server it rejoins;
// *database.Server is one.
type Server interface {
	Self() database.Self
	Observe(ctx context.Context) (database.Observation, error)
	Status(ctx context.Context) (running bool, pid int, err error)
	Stop(ctx context.Context, mode pgctl.StopMode) error
	Start(ctx context.Context) error
	ControlData(ctx context.Context) (pgctl.ControlData, error)
	IdentifyUpstream(ctx context.Context, up database.Upstream) (database.UpstreamIdentity, error)
	EnsureUpstreamSlot(ctx context.Context, up database.Upstream) (created bool, err error)
	CheckpointIfStale(ctx context.Context, src database.ConnConfig, passFile string) (string, error)
	KeepNodeFiles(extra []string) (database.KeptFiles, error)
	Rewind(ctx context.Context, src database.ConnConfig, passFile string, kept database.KeptFiles) (database.RewindReport, error)
	BaseBackup(ctx context.Context, up database.Upstream, kept database.KeptFiles) (aside, evidence string, err error)
	ConfigureStandby(up database.Upstream) (string, error)
	WaitStreaming(ctx context.Context, host string, port int) error
}

// Recorder records a step with its time and evidence
// (*timeline.Recorder is one).
type Recorder interface {
	Run(name string, f func() (evidence string, err error)) error
}

// Options tune a rejoin. The zero value rewinds, falling back to a base
// backup, with pg_rewind connecting as RewindConn's zero user (libpq's
// default): real callers name a rewind account.
type Options struct {
	// Method is Auto when empty.
	Method Method
	// RewindConn is the account pg_rewind reads the upstream's files as: a
	// superuser, or a role granted what the pg_rewind documentation lists
	// (and pg_checkpoint, see Run). Host and Port are the upstream's when
	// empty. Its Password, when set, reaches pg_rewind through a pgpass file
	// that exists only while pg_rewind runs; it never appears in an argument,
	// a log line or the result.
	RewindConn database.ConnConfig
	// RewindPassFile is a pgpass file for RewindConn's user, readable by the
	// server's OS user; used when RewindConn.Password is empty.
	RewindPassFile string
	// KeepFiles are more files of the node's own, relative to the data
	// directory, to keep across a rewind or base backup; the configuration
	// files database.NodeLocalFiles finds are always kept.
	KeepFiles []string
	// StreamTimeout bounds the wait for the rejoined server to stream;
	// 2 minutes when zero.
	StreamTimeout time.Duration
	// Logger receives what the record does not hold (nil: none).
	Logger *slog.Logger
	// AfterCopy, when set, runs as a step once a base backup has filled
	// the data directory, before the server is configured as a standby:
	// the node writes its own settings over the copied ones.
	AfterCopy func() (evidence string, err error)
}

func (o Options) method() (Method, error) {
	switch o.Method {
	case "":
		return Auto, nil
	case Auto, Rewind, BaseBackup:
		return o.Method, nil
	}
	return "", fmt.Errorf("unknown rejoin method %q: use %s, %s or %s", o.Method, Auto, Rewind, BaseBackup)
}

// Result is what a rejoin did, with its evidence; its steps are in the
// record.
type Result struct {
	Node     string `json:"node"`
	Upstream string `json:"upstream"`
	// Method is what brought the server back: None, Rewind or BaseBackup
	// (also when Auto was asked for).
	Method Method `json:"method"`
	// Evidence is one line for people: what was found and done.
	Evidence string `json:"evidence"`
	// Divergence compares the server's control file with the upstream's
	// timeline history, before anything was changed.
	Divergence *database.Divergence `json:"divergence,omitempty"`
	// Rewind is what pg_rewind reported, when it ran.
	Rewind *database.RewindReport `json:"rewind,omitempty"`
	// RewindError is why Auto gave up the rewind for a base backup.
	RewindError string `json:"rewind_error,omitempty"`
	// MovedDataDir is where the old data directory was kept when a base
	// backup replaced it. A rejoin never deletes it.
	MovedDataDir string        `json:"moved_data_dir,omitempty"`
	Took         time.Duration `json:"took"`
}

// Run brings srv back as a streaming standby of up, each step recorded by
// rec:
//
//  1. a server that already streams from up is left alone (None);
//  2. the upstream is asked for its system identifier and timeline history
//     over a replication connection; a different system is refused before
//     anything changes;
//  3. the server is stopped (fast shutdown) and its control file compared
//     with the upstream's history (database.AssessDivergence);
//  4. pg_rewind rewinds it. A just-promoted upstream gets a CHECKPOINT first
//     when its control file still names the old timeline: pg_rewind reads
//     the timeline there and would otherwise report "no rewind required" for
//     a server that diverged. A crashed server is recovered by pg_rewind
//     itself in single-user mode. The transactions the old primary committed
//     after the divergence are discarded: Divergence and Rewind say from
//     where;
//  5. when the rewind is impossible or fails (Auto), or with BaseBackup, the
//     data directory is moved aside (MovedDataDir, never deleted) and
//     pg_basebackup copies the upstream into a new one;
//  6. the node's own configuration files (database.NodeLocalFiles) and log
//     directory, which both tools overwrite with the upstream's, are put
//     back; the server is configured as a standby of up and started;
//  7. Run returns once it streams.
//
// Passwords reach the tools through pgpass files named by PGPASSFILE, never
// in arguments. Once the server is known to belong to the upstream's
// cluster, the replication slot up.SlotName is made there if it lacks it.
// Run never starts the server as a primary: after a failure it is still running as it was (when the
// upstream could not be identified), stopped, or running as a standby.
func Run(ctx context.Context, srv Server, up database.Upstream, o Options, rec Recorder) (res Result, err error) {
	self, log, finish := begin(srv, up, o, &res, "rejoin %s to %s")
	defer finish(&err)
	method, err := o.method()
	if err != nil {
		return res, err
	}
	rewindConn := o.RewindConn
	if rewindConn.Host == "" {
		rewindConn.Host = up.Host
	}
	if rewindConn.Port == 0 {
		rewindConn.Port = up.Port
	}
	if rewindConn.Database == "" {
		rewindConn.Database = self.DefaultDatabase
	}
	if err := checkUpstreamAddress(self, up, rewindConn); err != nil {
		return res, err
	}
	p := &procedure{srv: srv, self: self, up: up, rec: rec, log: log, res: &res, timeout: o.StreamTimeout, steps: rejoinTail}
	if p.timeout <= 0 {
		p.timeout = defaultStreamTimeout
	}

	var already string
	_ = rec.Run(StepCheckStreaming, func() (string, error) {
		var ok bool
		ok, already = streamingFrom(ctx, srv, up)
		if ok {
			return already, nil
		}
		return "not streaming from " + res.Upstream + ": rejoin needed", nil
	})
	if already != "" {
		res.Method = None
		res.Evidence = already
		return res, nil
	}

	if err := p.identify(ctx, StepIdentifyUpstream); err != nil {
		return res, err
	}
	upst := p.upst

	if err := rec.Run(StepStop, func() (string, error) {
		running, pid, err := srv.Status(ctx)
		if err != nil {
			return "", err
		}
		if !running {
			return "not running", nil
		}
		if err := srv.Stop(ctx, pgctl.Fast); err != nil {
			return "", err
		}
		return fmt.Sprintf("stopped (fast) postmaster %d", pid), nil
	}); err != nil {
		return res, err
	}

	if err := rec.Run(StepAssess, func() (string, error) {
		cd, err := srv.ControlData(ctx)
		if err != nil {
			return "", err
		}
		if cd.SystemID != upst.SystemID {
			return "", fmt.Errorf("the server belongs to system %s and the upstream to system %s: not a former member of the upstream's cluster, refusing to replace its data", cd.SystemID, upst.SystemID)
		}
		d := database.AssessDivergence(cd, upst.Timeline, upst.LSN, upst.History)
		res.Divergence = &d
		return fmt.Sprintf("%s: %s", d.Verdict, d.Reason), nil
	}); err != nil {
		return res, err
	}

	p.upstreamSlot(ctx, StepUpstreamSlot)
	if err := p.keepNodeFiles(StepKeepNodeFiles, o.KeepFiles); err != nil {
		return res, err
	}

	if method == Rewind || method == Auto {
		rerr := p.byRewind(ctx, rewindConn, o.RewindPassFile)
		if rerr == nil || method == Rewind || ctx.Err() != nil {
			return res, rerr
		}
		res.RewindError = rerr.Error()
		log.Warn("rejoin: rewind failed, taking a base backup instead", "err", rerr)
		if err := rec.Run(StepStopAfterRewind, func() (string, error) {
			running, _, err := srv.Status(ctx)
			if err != nil {
				return "", err
			}
			if !running {
				return "not running", nil
			}
			return "stopped", stopAnyway(ctx, srv)
		}); err != nil {
			return res, err
		}
	}
	return res, p.byBaseBackup(ctx)
}

// Reinit rebuilds srv as a streaming standby of up by a base backup,
// whatever its data directory holds, each step recorded by rec: the
// operator's `vigil ctl reinit`, for a server too damaged to start or to
// stream. Unlike Run it takes neither the server's streaming nor its
// control file's verdict as a reason to spare it: a damaged directory can
// look healthy to both. So:
//
//  1. the upstream is identified (and the standby's slot made) before
//     anything changes, proving it can be copied from;
//  2. the server is stopped if it runs: fast, immediately when that fails;
//  3. its control file, when readable, is described for the record, never
//     trusted: a missing or foreign one does not stop the reinit;
//  4. the node's own configuration files are kept, the data directory is
//     moved aside (Result.MovedDataDir, never deleted: the old data stays
//     for the operator to inspect or remove) and pg_basebackup copies the
//     upstream into a new one;
//  5. the server is configured as a standby of up and started, and Reinit
//     returns once it streams.
//
// o's Method is ignored; KeepFiles, StreamTimeout and Logger apply. Like
// Run it never starts the server as a primary.
func Reinit(ctx context.Context, srv Server, up database.Upstream, o Options, rec Recorder) (res Result, err error) {
	return reinit(ctx, srv, up, o, rec, reinitNames)
}

// Clone is Reinit for a node whose data directory holds no cluster (empty,
// prepared for the build): the same procedure, its steps named clone_*.
func Clone(ctx context.Context, srv Server, up database.Upstream, o Options, rec Recorder) (res Result, err error) {
	return reinit(ctx, srv, up, o, rec, cloneNames)
}

func reinit(ctx context.Context, srv Server, up database.Upstream, o Options, rec Recorder, names reinitSteps) (res Result, err error) {
	self, log, finish := begin(srv, up, o, &res, names.what+" %s from %s")
	defer finish(&err)
	if err := checkUpstreamAddress(self, up, database.ConnConfig{Host: up.Host, Port: up.Port}); err != nil {
		return res, err
	}
	p := &procedure{srv: srv, self: self, up: up, rec: rec, log: log, res: &res, timeout: o.StreamTimeout, steps: names.tail, afterCopy: o.AfterCopy}
	if p.timeout <= 0 {
		p.timeout = defaultStreamTimeout
	}

	if err := p.identify(ctx, names.identify); err != nil {
		return res, err
	}

	// A clone has neither a server to stop nor a control file to inspect.
	if names.stop != "" {
		if err := stopForReinit(ctx, srv, rec, names.stop); err != nil {
			return res, err
		}
		inspectForReinit(ctx, srv, rec, names.inspect, p.upst.SystemID)
	}

	p.upstreamSlot(ctx, names.slot)
	if err := p.keepNodeFiles(names.keep, o.KeepFiles); err != nil {
		return res, err
	}

	if err := p.byBaseBackup(ctx); err != nil {
		return res, err
	}
	res.Evidence = fmt.Sprintf("built by a base backup (%s, %s); streaming from %s", p.copied, names.what, res.Upstream)
	if res.MovedDataDir != "" {
		res.Evidence = fmt.Sprintf("rebuilt by a base backup (%s, %s asked for); old data directory kept at %s; streaming from %s",
			p.copied, names.what, res.MovedDataDir, res.Upstream)
	}
	return res, nil
}

// stopForReinit stops the server if it runs, as step.
func stopForReinit(ctx context.Context, srv Server, rec Recorder, step string) error {
	return rec.Run(step, func() (string, error) {
		running, pid, err := srv.Status(ctx)
		if err != nil {
			return "", err
		}
		if !running {
			return "not running", nil
		}
		// A damaged server may not finish a fast shutdown; its data is
		// about to be replaced, so an immediate one loses nothing.
		if err := stopAnyway(ctx, srv); err != nil {
			return "", err
		}
		return fmt.Sprintf("stopped postmaster %d", pid), nil
	})
}

// inspectForReinit describes the server's control file for the record, as
// step; it never stops the reinit.
func inspectForReinit(ctx context.Context, srv Server, rec Recorder, step, upstreamSystem string) {
	_ = rec.Run(step, func() (string, error) {
		cd, err := srv.ControlData(ctx)
		if err != nil {
			return "control file unreadable (" + firstLine(err.Error()) + "): rebuilding regardless", nil
		}
		ev := fmt.Sprintf("control file: system %s, timeline %d, state %q, checkpoint %s", cd.SystemID, cd.Timeline, cd.State, cd.CheckpointLSN)
		if cd.SystemID != upstreamSystem {
			ev += fmt.Sprintf("; not the upstream's system %s", upstreamSystem)
		}
		return ev + ": rebuilding regardless, as asked", nil
	})
}

// begin opens res and the logger of a rejoin or reinit of srv from up;
// finish, deferred, stamps how long it took and names it in an error
// (failed is "rejoin %s to %s" or "reinit %s from %s").
func begin(srv Server, up database.Upstream, o Options, res *Result, failed string) (database.Self, *slog.Logger, func(*error)) {
	began := time.Now()
	self := srv.Self()
	*res = Result{Node: self.Name, Upstream: net.JoinHostPort(up.Host, strconv.Itoa(up.Port))}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	finish := func(err *error) {
		res.Took = time.Since(began)
		if *err != nil {
			*err = fmt.Errorf(failed+": %w", self.Name, res.Upstream, *err)
		}
	}
	return self, log.With("node", self.Name), finish
}

// identify asks the upstream who it is (and makes this standby's slot
// there), as step.
func (p *procedure) identify(ctx context.Context, step string) error {
	return p.rec.Run(step, func() (string, error) {
		var err error
		if p.upst, err = p.srv.IdentifyUpstream(ctx, p.up); err != nil {
			return "", err
		}
		return fmt.Sprintf("system %s, timeline %d, WAL at %s", p.upst.SystemID, p.upst.Timeline, p.upst.LSN), nil
	})
}

// upstreamSlot makes this standby's replication slot on the upstream when
// it lacks one, as step, once the server is known to belong there. A
// failure is noted, not fatal: the leader makes the slot for the members
// it sees, as before.
func (p *procedure) upstreamSlot(ctx context.Context, step string) {
	if p.up.SlotName == "" {
		return
	}
	_ = p.rec.Run(step, func() (string, error) {
		created, err := p.srv.EnsureUpstreamSlot(ctx, p.up)
		switch {
		case err != nil:
			return "not made (" + firstLine(err.Error()) + "): the leader makes it for the members it sees", nil
		case created:
			return fmt.Sprintf("replication slot %q created on the upstream", p.up.SlotName), nil
		}
		return fmt.Sprintf("replication slot %q exists on the upstream", p.up.SlotName), nil
	})
}

// keepNodeFiles puts the node's own files aside, as step, for after the
// rewind or base backup.
func (p *procedure) keepNodeFiles(step string, extra []string) error {
	return p.rec.Run(step, func() (string, error) {
		var err error
		if p.kept, err = p.srv.KeepNodeFiles(extra); err != nil {
			return "", err
		}
		if len(p.kept.Names()) == 0 {
			return "no file of the node's own to keep", nil
		}
		return "kept " + strings.Join(p.kept.Names(), ", "), nil
	})
}

// procedure is one rejoin under way, once the server is stopped.
type procedure struct {
	srv     Server
	self    database.Self
	up      database.Upstream
	upst    database.UpstreamIdentity
	kept    database.KeptFiles
	rec     Recorder
	log     *slog.Logger
	res     *Result
	timeout time.Duration
	steps   tailSteps
	// afterCopy: see Options.AfterCopy.
	afterCopy func() (string, error)
	// copied is what the base backup said it copied.
	copied string
}

// checkUpstreamAddress refuses an upstream (or rewind source) that is the
// server itself: a base backup would move its data aside and then fail to
// copy from the stopped server.
func checkUpstreamAddress(self database.Self, up database.Upstream, rewind database.ConnConfig) error {
	if up.Host == "" || up.Port <= 0 {
		return fmt.Errorf("upstream has no address (host %q, port %d)", up.Host, up.Port)
	}
	me := net.JoinHostPort(self.Host, strconv.Itoa(self.Port))
	for _, a := range []string{net.JoinHostPort(up.Host, strconv.Itoa(up.Port)), net.JoinHostPort(rewind.Host, strconv.Itoa(rewind.Port))} {
		if a == me {
			return fmt.Errorf("upstream %s is the server itself", a)
		}
	}
	return nil
}

// byRewind rewinds the stopped server, configures it as a standby, starts
// it and waits until it streams.
func (p *procedure) byRewind(ctx context.Context, src database.ConnConfig, passFile string) error {
	res := p.res
	if err := p.rec.Run(StepCheckpointUp, func() (string, error) {
		ev, err := p.srv.CheckpointIfStale(ctx, src, passFile)
		if err != nil {
			// Not fatal: the divergence check after the rewind catches
			// what a stale control file would hide.
			p.log.Warn("rejoin: could not check the upstream's control file", "err", err)
			return "not checked: " + err.Error(), nil
		}
		return ev, nil
	}); err != nil {
		return err
	}
	var rep database.RewindReport
	if err := p.rec.Run(StepRewind, func() (string, error) {
		var err error
		rep, err = p.srv.Rewind(ctx, src, passFile, p.kept)
		res.Rewind = &rep
		if err != nil {
			return rep.Summary, err
		}
		if rep.Required {
			return rep.Summary, nil
		}
		// pg_rewind decides from the source's control file; a second
		// opinion from the timeline history costs one pg_controldata.
		cd, err := p.srv.ControlData(ctx)
		if err != nil {
			return rep.Summary, err
		}
		if d := database.AssessDivergence(cd, p.upst.Timeline, p.upst.LSN, p.upst.History); d.Verdict == database.Diverged {
			return rep.Summary, fmt.Errorf("%s reported no rewind required, but the server diverged: %s", p.self.RewindBinary, d.Reason)
		}
		return rep.Summary, nil
	}); err != nil {
		return err
	}
	if err := p.startStandby(ctx); err != nil {
		return err
	}
	res.Method = Rewind
	if rep.Required {
		res.Evidence = fmt.Sprintf("rewound: %s; streaming from %s", rep.Summary, res.Upstream)
	} else {
		res.Evidence = fmt.Sprintf("no rewind required (%s); streaming from %s", res.Divergence.Reason, res.Upstream)
	}
	return nil
}

// byBaseBackup replaces the stopped server's data directory with a copy of
// the upstream and starts it as a standby.
func (p *procedure) byBaseBackup(ctx context.Context) error {
	res := p.res
	if err := p.rec.Run(p.steps.baseBackup, func() (string, error) {
		aside, ev, err := p.srv.BaseBackup(ctx, p.up, p.kept)
		res.MovedDataDir = aside
		p.copied = ev
		if aside != "" {
			// In the step, so that whoever reads the record (ctl prints
			// the steps) finds the old data where it went.
			ev += "; old data directory kept at " + aside
		}
		return ev, err
	}); err != nil {
		return err
	}
	if p.afterCopy != nil {
		if err := p.rec.Run(p.steps.nodeConfig, p.afterCopy); err != nil {
			return err
		}
	}
	if err := p.startStandby(ctx); err != nil {
		return err
	}
	res.Method = BaseBackup
	why := "base backup asked for"
	switch {
	case res.Rewind != nil && len(res.Rewind.Errors) > 0:
		why = "rewind failed: " + strings.Join(res.Rewind.Errors, "; ")
	case res.RewindError != "":
		why = "rewind failed: " + firstLine(res.RewindError)
	}
	res.Evidence = fmt.Sprintf("base backup (%s; %s); old data directory kept at %s; streaming from %s", p.copied, why, res.MovedDataDir, res.Upstream)
	return nil
}

// startStandby writes the standby configuration, starts the server and
// waits until it streams from the upstream.
func (p *procedure) startStandby(ctx context.Context) error {
	if err := p.rec.Run(p.steps.configure, func() (string, error) { return p.srv.ConfigureStandby(p.up) }); err != nil {
		return err
	}
	if err := p.rec.Run(p.steps.start, func() (string, error) {
		if err := p.srv.Start(ctx); err != nil {
			return "", err
		}
		return "started as a standby", nil
	}); err != nil {
		return err
	}
	return p.rec.Run(p.steps.waitStreaming, func() (string, error) {
		wctx, cancel := context.WithTimeout(ctx, p.timeout)
		defer cancel()
		if err := p.srv.WaitStreaming(wctx, p.up.Host, p.up.Port); err != nil {
			return "", err
		}
		return "streaming from " + p.res.Upstream, nil
	})
}

// stopAnyway stops the server, immediately when a fast shutdown fails: what
// follows replaces its data directory.
func stopAnyway(ctx context.Context, srv Server) error {
	if err := srv.Stop(ctx, pgctl.Fast); err != nil {
		if ierr := srv.Stop(ctx, pgctl.Immediate); ierr != nil {
			return fmt.Errorf("%w (immediate stop also failed: %v)", err, ierr)
		}
	}
	return nil
}

// streamingFrom reports whether the server already streams from up, with a
// description when it does.
func streamingFrom(ctx context.Context, srv Server, up database.Upstream) (bool, string) {
	matches := func(o database.Observation) bool {
		w := o.WALReceiver
		return o.InRecovery && w != nil && w.Status == "streaming" && w.SenderHost == up.Host &&
			w.SenderPort == up.Port && (up.SlotName == "" || w.SlotName == up.SlotName)
	}
	obs, err := srv.Observe(ctx)
	if err != nil || !obs.InRecovery {
		return false, ""
	}
	if !matches(obs) && obs.UpstreamHost == up.Host && obs.UpstreamPort == up.Port {
		deadline := time.Now().Add(streamingGrace)
		for !matches(obs) && time.Now().Before(deadline) {
			select {
			case <-ctx.Done():
				return false, ""
			case <-time.After(streamingPollInterval):
			}
			if obs, err = srv.Observe(ctx); err != nil || !obs.InRecovery {
				return false, ""
			}
		}
	}
	if !matches(obs) {
		return false, ""
	}
	return true, fmt.Sprintf("already streams from %s (slot %q, timeline %d, replayed %s): nothing to do",
		net.JoinHostPort(up.Host, strconv.Itoa(up.Port)), obs.WALReceiver.SlotName, obs.Timeline, obs.ReplayedLSN)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
