package pgpool

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/internal/timeline"
)

// humanLog writes the failover log in failover_stream.sh's shape, so that
// operators read it as they always did and `vigil analyze` recognises every
// line (internal/analyze/kingbase): the banners, "ping trust ip ... success",
// "master down", "stop the old primary db", "DEL VIP NOW AT", "promote
// begin", "execute promote", "sync to async", "make checkpoint",
// "CHECKPOINT", "ADD VIP NOW AT", "execute: [...]". Vigil's own lines
// (the readiness gate) start with phrases the analyzer files as commentary
// ("after execute promote", "add vip on"), and only real failures contain
// the word "failed". Times carry milliseconds: the analyzer lines them up
// against the JSON step log, and a whole second would blur the gate and
// the VIP into one moment.
//
// It is an observer of the step records (timeline.Observer): the script's
// wording of each step lives here, and the procedures only record steps
// and note what they do (the notes below), so the log cannot tell a story
// other than the record's.
type humanLog struct {
	mu  sync.Mutex
	w   io.Writer
	now func() time.Time
	// asyncInSync: a sync_to_async step ran inside the running
	// synchronous_replication step, whose own outcome line then says
	// nothing more.
	asyncInSync bool
}

// Notes the procedures make for the human log (timeline.Note.What).
const (
	// noteCall: Text is the placeholders' summary line.
	noteCall = "call"
	// noteTrusted: one trusted IP probed (Host; Err when it did not
	// answer); without Host, none is configured.
	noteTrusted = "trusted_ip"
	// noteDecided: Value is the Case, Host the node to promote, Text the
	// reason.
	noteDecided = "decided"
	// noteDryRun: Text is a command the plan would run.
	noteDryRun = "dry_run"
	// noteOn: the step starts acting on Host.
	noteOn = "on_host"
	// noteReached: the old primary's Host was reached (Err: it was not).
	noteReached = "reached"
	// noteCommand: a command ran (Argv, Exit, Text its output; Err when
	// it could not run).
	noteCommand = "command"
	// noteSQL: Text is a statement sent (to Host, when named).
	noteSQL = "sql"
	// notePromote: the promotion is about to be asked for (by the command
	// or statement noted next).
	notePromote = "promote"
	// noteVIPMove and noteVIPMoved: the VIP is being removed or added on
	// interface Value, and the command is done.
	noteVIPMove  = "vip_move"
	noteVIPMoved = "vip_moved"
	// noteVIPState: Text says what the routes step found on Host.
	noteVIPState = "vip_state"
	// noteWaiting: Text says why the readiness gate still waits.
	noteWaiting = "waiting"
	// noteExit: the call ends with Exit, Text the reason (Host: the
	// standby of a follow call).
	noteExit = "exit"
)

// Record kinds of the Pgpool-II commands.
const (
	kindFailover = "failover"
	kindFollow   = "follow"
)

// timeLayout is the script's `date "+%Y-%m-%d %H:%M:%S"` with milliseconds.
const timeLayout = "2006-01-02 15:04:05.000"

func newHumanLog(w io.Writer, now func() time.Time) *humanLog {
	if w == nil {
		w = io.Discard
	}
	if now == nil {
		now = time.Now
	}
	return &humanLog{w: w, now: now}
}

// Observe implements timeline.Observer.
func (l *humanLog) Observe(e timeline.Event) {
	failover := e.Record.Kind == kindFailover
	switch e.Type {
	case timeline.Began:
		if failover {
			l.banner("failover beging")
		}
	case timeline.StepBegan:
		l.stepBegan(e.Step.Name)
	case timeline.Noted:
		l.noted(e.Record.Kind, e.Note)
	case timeline.StepEnded:
		l.stepEnded(e.Step)
	case timeline.Finished:
		if failover {
			l.banner("failover end")
		}
	}
}

func (l *humanLog) stepBegan(name string) {
	switch name {
	case StepIsolationGuard:
		l.line("----ping trust ip")
	case StepSyncToAsync:
		l.timed("sync to async")
	case string(ActSync):
		l.asyncInSync = false
	case string(ActCheckpoint):
		l.timed("make checkpoint")
		l.line("execute checkpoint")
	}
}

func (l *humanLog) stepEnded(s timeline.Step) {
	if !s.OK {
		return // the call's exit line says why
	}
	switch s.Name {
	case string(ActPromote):
		l.line("after execute promote, %s", s.Evidence)
	case string(ActGate):
		l.timed("after execute promote, readiness gate passed: %s", s.Evidence)
	case StepSyncToAsync:
		l.asyncInSync = true
	case string(ActSync):
		if !l.asyncInSync {
			l.line("after execute promote, %s", s.Evidence)
		}
	case string(ActCheckpoint):
		l.line("CHECKPOINT")
	}
}

func (l *humanLog) noted(kind string, n timeline.Note) {
	switch n.What {
	case noteCall:
		l.line("%s", n.Text)
	case noteTrusted:
		switch {
		case n.Host == "":
			l.line("ping trust ip: none configured, failed")
		case n.Err != "":
			l.line("ping trust ip %s failed: %s", n.Host, n.Err)
		default:
			l.line("ping trust ip %s success", n.Host)
		}
	case noteDecided:
		l.decided(Case(n.Value), n.Host, n.Text)
	case noteDryRun:
		l.line("dry run: %s", n.Text)
	case noteOn:
		switch n.Step {
		case string(ActFence):
			l.timed("del old primary VIP on %s", n.Host)
		case string(ActPromote):
			l.timed("promote begin...let %s become master", n.Host)
		case string(ActVIP):
			l.timed("add VIP on %s", n.Host)
		}
	case noteReached:
		if n.Err != "" {
			l.line("ssh connect host:%s failed: %s", n.Host, n.Err)
			return
		}
		l.line("ssh connect host:%s success, will stop old primary db and del the vip", n.Host)
		l.line("stop the old primary db")
	case notePromote:
		l.line("execute promote")
	case noteCommand, noteSQL:
		switch {
		case n.What == noteCommand:
			l.command(n)
		case n.Host != "":
			l.line("execute: %s on %s", n.Text, n.Host)
		default:
			l.line("execute: %s", n.Text)
		}
		if n.Step == string(ActPromote) {
			l.line("server promoting")
		}
	case noteVIPMove:
		verb := "ADD"
		if n.Step == string(ActFence) {
			verb = "DEL"
		}
		l.line("%s VIP NOW AT %s ON %s", verb, l.stamp(), n.Value)
	case noteVIPMoved:
		verb := "add"
		if n.Step == string(ActFence) {
			verb = "del"
		}
		l.line("Oprate %s ip cmd end.", verb)
	case noteVIPState:
		l.line("add vip on %s: %s", n.Host, n.Text)
	case noteWaiting:
		l.timed("after execute promote, readiness gate: %s", n.Text)
	case noteExit:
		switch {
		case kind == kindFollow:
			l.timed("follow primary %s: exit %d: %s", n.Host, n.Exit, n.Text)
		case n.Exit != ExitOK:
			l.line("failover failed (exit %d): %s", n.Exit, n.Text)
		}
	}
}

// decided words the decision as the script did; an isolated call says
// nothing more than its failed pings.
func (l *humanLog) decided(c Case, host, reason string) {
	if c == CaseIsolated {
		return
	}
	l.line("----determine whether the faulty db is master or standby")
	switch c {
	case CasePrimaryDown:
		l.line("master down, let %s become new primary.....", host)
	case CaseNoCandidate:
		l.line("master down, and no standby can become the new primary")
	case CaseStandbyDown:
		l.line("determine whether the faulty db is master or standby: standby down, %s", reason)
	case CaseAlreadyDone:
		l.line("determine whether the faulty db is master or standby: nothing to do, %s", reason)
	}
}

// stamp is the current time as the log writes it.
func (l *humanLog) stamp() string { return l.now().Format(timeLayout) }

// line writes one line. Write errors are ignored: a full disk must not stop
// a failover, and the JSON step log and Vigil's own log have the record too.
func (l *humanLog) line(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	s = strings.ReplaceAll(s, "\n", " / ")
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = io.WriteString(l.w, s+"\n")
}

// timed writes a line starting with the time, as the script's steps do.
func (l *humanLog) timed(format string, args ...any) {
	l.line("%s %s", l.stamp(), fmt.Sprintf(format, args...))
}

// banner writes "-----------------TIME failover beging-----..." (the
// script's spelling, which operators grep for) or "... failover end ...".
func (l *humanLog) banner(what string) {
	l.line("-----------------%s %s---------------------------------------", l.stamp(), what)
}

// command echoes a command the way the script did ("execute: [...]") with
// its exit status and output on the same line.
func (l *humanLog) command(n timeline.Note) {
	msg := fmt.Sprintf("execute: [%s]", strings.Join(n.Argv, " "))
	switch {
	case n.Err != "":
		msg += " could not run: " + n.Err
	default:
		msg += fmt.Sprintf(" exit %d", n.Exit)
		if out := strings.TrimSpace(n.Text); out != "" {
			msg += ": " + cut(out, 400)
		}
	}
	l.line("%s", msg)
}

// commandNote is the note of a command that ran.
func commandNote(argv []string, res Result, err error) timeline.Note {
	n := timeline.Note{What: noteCommand, Argv: argv, Exit: res.ExitCode, Text: string(res.Output)}
	if err != nil {
		n.Err = err.Error()
	}
	return n
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
