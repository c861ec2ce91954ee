package pgpool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/timeline"
)

// FollowSettings configure follow-command.
type FollowSettings struct {
	ReplicationUser string
	// Passfile is a pgpass file on the standby's host for primary_conninfo.
	Passfile string
	// UseSlots: stream through a physical slot named after the standby,
	// created on the new primary first.
	UseSlots bool
	// AttachCommand runs on this host once the standby streams ({node_id}
	// replaced), e.g. pcp_attach_node; empty for none.
	AttachCommand []string
	// RemoteVigil and RemoteConfig re-point a remote standby whose server
	// reads primary_conninfo only at start: vigil runs there with --local.
	RemoteVigil, RemoteConfig string
	// Local: the standby is on this host (an address of this host, or
	// --local given).
	Local bool
	// Forced: --local was given; a standby that does not answer is
	// configured and started rather than skipped.
	Forced bool
}

// StandbyState is a read-only look at the standby to re-point.
type StandbyState struct {
	Reachable  bool
	InRecovery bool
	VersionNum int
	// Following: its WAL receiver streams from the new primary already.
	Following bool
	Error     string
}

// FollowInput is everything DecideFollow looks at.
type FollowInput struct {
	Args     Args
	Defaults Defaults
	Settings FollowSettings
	Standby  StandbyState
}

// Ways to re-point a standby.
const (
	FollowBySQL    = "sql"          // ALTER SYSTEM primary_conninfo + reload (server 13 or later)
	FollowLocally  = "local"        // the adapter on this host: reload, restart or start as needed
	FollowByRemote = "remote_vigil" // vigil follow-command --local on the standby's host
)

// versionReloadConninfo is the first server version that re-reads
// primary_conninfo on reload; before it a standby is re-pointed by a
// restart on its host (recovery.conf before 12, see database.Follow).
const versionReloadConninfo = 130000

// FollowPlan is what to do about one follow_primary_command call.
type FollowPlan struct {
	Case    Case   `json:"case"`
	Exit    int    `json:"exit"`
	Reason  string `json:"reason"`
	Standby Target `json:"standby"`
	Primary Target `json:"new_primary"`
	Method  string `json:"method,omitempty"`
}

// DecideFollow decides follow-command from the placeholders (%d %h %p %D
// the standby, %m %H %r %R the new primary) and a look at the standby. It
// is pure.
func DecideFollow(in FollowInput) FollowPlan {
	a, s := in.Args, in.Standby
	p := FollowPlan{Standby: a.Failed(in.Defaults), Primary: a.NewMain(in.Defaults)}
	stop := func(c Case, exit int, format string, args ...any) FollowPlan {
		p.Case, p.Exit, p.Reason = c, exit, fmt.Sprintf(format, args...)
		return p
	}
	switch {
	case a.FailedID < 0 || a.FailedHost == "":
		return stop(CaseInvalid, ExitUsage, "no standby given (%%d = %d, %%h = %q)", a.FailedID, a.FailedHost)
	case a.NewMainID < 0 || a.NewMainHost == "":
		return stop(CaseNoCandidate, ExitNoCandidate, "no new primary given (%%m = %d, %%H = %q)", a.NewMainID, a.NewMainHost)
	case a.FailedID == a.NewMainID:
		return stop(CaseFollowDone, ExitOK, "node %d is the new primary itself: nothing to re-point", a.FailedID)
	case s.Reachable && s.InRecovery && s.Following:
		return stop(CaseFollowDone, ExitOK, "%s streams from %s already", p.Standby, p.Primary)
	case s.Reachable && !s.InRecovery:
		return stop(CaseFollowRefuse, ExitFailed, "%s runs as a primary: its WAL may have diverged; rewind it first (vigil ctl rejoin, or pg_rewind); not re-pointed", p.Standby)
	case !s.Reachable && !in.Settings.Forced:
		return stop(CaseFollowSkip, ExitOK, "%s does not answer (%s): left detached, as Pgpool-II's sample script does; start it as a standby and attach it by hand", p.Standby, s.Error)
	}
	p.Case, p.Exit = CaseFollow, ExitOK
	switch {
	case in.Settings.Local:
		p.Method = FollowLocally
	case s.VersionNum >= versionReloadConninfo:
		p.Method = FollowBySQL
	case in.Settings.RemoteVigil != "":
		p.Method = FollowByRemote
	default:
		return stop(CaseFollowRefuse, ExitFailed, "%s runs server version %d, which reads primary_conninfo (recovery.conf before 12) only at start: set follow.remote_vigil so that vigil restarts it on its host", p.Standby, s.VersionNum)
	}
	p.Reason = fmt.Sprintf("re-point %s at %s (%s)", p.Standby, p.Primary, p.Method)
	return p
}

// RemoteFollowCommand is the command run on the standby's host for
// FollowByRemote: the same call, done there with --local.
func RemoteFollowCommand(s FollowSettings, a Args) []string {
	argv := []string{s.RemoteVigil, "follow-command", "--config", s.RemoteConfig, "--local", "--"}
	return append(argv, a.Positional()...)
}

// AttachCommand is s.AttachCommand with {node_id} replaced.
func AttachCommand(s FollowSettings, nodeID int) []string {
	if len(s.AttachCommand) == 0 {
		return nil
	}
	argv := make([]string, len(s.AttachCommand))
	for i, w := range s.AttachCommand {
		argv[i] = strings.ReplaceAll(w, "{node_id}", strconv.Itoa(nodeID))
	}
	return argv
}

// Follow is follow-command: re-point a remaining standby at the new
// primary, wait until it streams from it, and attach it in Pgpool-II.
func Follow(ctx context.Context, o Options, s FollowSettings, args Args) Outcome {
	o = o.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, o.Total)
	defer cancel()
	sb, pr := args.Failed(o.Defaults), args.NewMain(o.Defaults)
	rec := timeline.New(kindFollow, o.Cluster, sb.Name, pr.Name, o.StepLog, o.Logger, newHumanLog(o.Human, o.Now))
	finish := func(plan FollowPlan, exit int, err error) Outcome {
		reason := plan.Reason
		if err != nil {
			reason = err.Error()
		}
		rec.Note(timeline.Note{What: noteExit, Host: sb.Host, Exit: exit, Text: reason})
		r := rec.Finish(exit == ExitOK, reason)
		level := slog.LevelInfo
		if exit != ExitOK {
			level = slog.LevelError
		}
		o.Logger.Log(context.Background(), level, "follow-command finished", "exit", exit, "reason", reason, "timeline", "\n"+timeline.Format(r))
		return Outcome{Exit: exit, Err: err, Plan: Plan{Case: plan.Case, Reason: plan.Reason, New: plan.Primary, Old: plan.Standby}, Record: r}
	}

	in := FollowInput{Args: args, Defaults: o.Defaults, Settings: s}
	standby := o.Connect(sb)
	if args.FailedID >= 0 && args.FailedHost != "" {
		octx, ocancel := context.WithTimeout(ctx, o.DBTimeout)
		obs, err := standby.Observe(octx)
		ocancel()
		if err != nil {
			in.Standby.Error = err.Error()
		} else {
			in.Standby = StandbyState{Reachable: true, InRecovery: obs.InRecovery, VersionNum: obs.ServerVersionNum,
				Following: obs.WALReceiver != nil && obs.WALReceiver.Status == "streaming" && obs.WALReceiver.SenderHost == pr.Host && obs.WALReceiver.SenderPort == pr.Port}
		}
	}
	plan := DecideFollow(in)
	var decideErr error
	if plan.Exit != ExitOK {
		decideErr = errors.New(plan.Reason)
	}
	_ = rec.Run(StepDecide, func() (string, error) { return decision(plan.Case, plan.Reason, decideErr) })
	if plan.Case != CaseFollow {
		if plan.Case == CaseFollowDone && plan.Standby.ID != plan.Primary.ID {
			if err := attach(ctx, o, rec, s, args.FailedID); err != nil {
				return finish(plan, ExitFailed, err)
			}
		}
		return finish(plan, plan.Exit, decideErr)
	}
	if o.DryRun {
		rec.Note(timeline.Note{What: noteDryRun, Text: plan.Reason})
		return finish(plan, ExitOK, nil)
	}
	up := database.Upstream{Host: pr.Host, Port: pr.Port, User: s.ReplicationUser, PassFile: s.Passfile, ApplicationName: sb.Name}
	if s.UseSlots {
		up.SlotName = sb.Name
	}
	err := rec.Run(StepFollow, func() (string, error) {
		if s.UseSlots {
			sctx, scancel := context.WithTimeout(ctx, o.DBTimeout)
			err := o.Connect(pr).EnsureSlot(sctx, up.SlotName)
			scancel()
			if err != nil {
				return "", err
			}
		}
		if plan.Method == FollowByRemote {
			argv := RemoteFollowCommand(s, args)
			rctx, rcancel := context.WithTimeout(ctx, o.Total)
			res, err := o.Runner.Run(rctx, sb.Host, argv)
			rcancel()
			rec.Note(commandNote(argv, res, err))
			if err == nil && res.ExitCode != ExitOK {
				err = fmt.Errorf("vigil on %s exited %d", sb.Host, res.ExitCode)
			}
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("re-pointed by vigil on %s", sb.Host), nil
		}
		fctx, fcancel := context.WithTimeout(ctx, o.PromoteTimeout)
		err := standby.Follow(fctx, up)
		fcancel()
		if err != nil {
			return "", err
		}
		wctx, wcancel := context.WithTimeout(ctx, o.CommandTimeout)
		err = standby.WaitStreaming(wctx, pr.Host, pr.Port)
		wcancel()
		if err != nil {
			return "", fmt.Errorf("%w (a standby that was ahead of the promotion must be rewound: vigil ctl rejoin or pg_rewind)", err)
		}
		return fmt.Sprintf("%s streams from %s:%d (%s)", sb.Name, pr.Host, pr.Port, plan.Method), nil
	})
	if err != nil {
		return finish(plan, ExitFor(Action(StepFollow), errors.Is(ctx.Err(), context.DeadlineExceeded)), err)
	}
	if err := attach(ctx, o, rec, s, args.FailedID); err != nil {
		return finish(plan, ExitFailed, err)
	}
	return finish(plan, ExitOK, nil)
}

// attach runs the configured attach command on this host.
func attach(ctx context.Context, o Options, rec *timeline.Recorder, s FollowSettings, id int) error {
	argv := AttachCommand(s, id)
	if argv == nil {
		return nil
	}
	return rec.Run(StepAttach, func() (string, error) {
		actx, cancel := context.WithTimeout(ctx, o.CommandTimeout)
		defer cancel()
		res, err := o.Runner.Run(actx, "localhost", argv)
		if err == nil && res.ExitCode != 0 {
			err = fmt.Errorf("exit %d: %s", res.ExitCode, cut(strings.TrimSpace(string(res.Output)), 300))
		}
		if err != nil {
			return "", fmt.Errorf("%s: %w", argv[0], err)
		}
		return fmt.Sprintf("%s exited 0", argv[0]), nil
	})
}
