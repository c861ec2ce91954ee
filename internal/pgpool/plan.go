// Package pgpool is Vigil as Pgpool-II's failover_command and
// follow_primary_command: a drop-in replacement for KingbaseES V8R3's
// failover_stream.sh (the seed incident's script) that keeps its steps and
// its log, and fixes their order and checks.
//
// The script moved the VIP to the standby, promoted it, ran "select 33333"
// and reported success; under load the new primary then refused writes
// for 35 s while clients reached it through the VIP. Here the VIP is the
// last step, after a real write has committed.
//
// What to do is decided by pure functions (Decide, AfterFence, SyncAction,
// DecideFollow) from Pgpool-II's placeholders and read-only observations;
// Failover and Follow do the I/O around them. Commands run on the nodes
// through a Runner: over SSH, or directly on this host.
package pgpool

import (
	"fmt"
	"slices"
	"strings"

	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/failover"
)

// Exit codes of `vigil failover-command` and `vigil follow-command`.
// Pgpool-II logs a failover_command's exit status and carries on whatever
// it is; the codes are for operators and monitoring.
const (
	ExitOK          = 0 // failed over; or a standby failed (detached only); or there was nothing left to do
	ExitFailed      = 1 // a step failed after the point of no return (see the log): act now
	ExitUsage       = 2 // bad flags, placeholders or configuration: nothing was done
	ExitIsolated    = 3 // no trusted IP answered: this side may be the one cut off; nothing was done
	ExitNoCandidate = 4 // no usable new primary (none given, or it does not answer): nothing was done
	ExitFenceFailed = 5 // the old primary could not be fenced: nothing was promoted
	ExitNotReady    = 6 // promoted, but no write committed within timing.readiness_timeout: the VIP was not moved
	ExitVIPFailed   = 7 // writable primary, but the VIP was not added (another host holds it) or does not answer
	ExitTimeout     = 8 // timing.total_timeout ran out; the log says during which step
)

// Case is what Pgpool-II's call is about.
type Case string

// Cases.
const (
	CaseIsolated     Case = "isolated"
	CaseInvalid      Case = "invalid"
	CaseStandbyDown  Case = "standby_failure"
	CasePrimaryDown  Case = "primary_failure"
	CaseNoCandidate  Case = "no_candidate"
	CaseAlreadyDone  Case = "already_done"
	CaseFollow       Case = "follow"
	CaseFollowDone   Case = "follow_done"
	CaseFollowSkip   Case = "follow_skipped"
	CaseFollowRefuse Case = "follow_refused"
)

// Action is one step of a plan; its name is the step's name in the step
// log, as the agent names the same steps.
type Action string

// Actions of a failover: the steps of failover.Pgpool(), the only order
// they may run in.
const (
	ActFence      Action = failover.StepFence
	ActPromote    Action = failover.StepPromote
	ActGate       Action = failover.StepReadinessGate
	ActSync       Action = failover.StepSynchronous
	ActCheckpoint Action = failover.StepCheckpoint
	ActVIP        Action = failover.StepRoutesUp
)

// Step names that are not plan actions.
const (
	StepIsolationGuard = failover.StepIsolationGuard
	StepDecide         = "decide"
	StepSyncToAsync    = failover.StepSyncToAsync
	StepFollow         = "follow_new_primary"
	StepAttach         = "attach_node"
)

// Ways to promote.
const (
	ViaSQL = "sql" // pg_promote / sys_promote through the adapter
	ViaSSH = "ssh" // the control binary on the node
)

// Promote methods of the configuration (promote.method).
const (
	MethodAuto = "auto"
	MethodSQL  = "sql"
	MethodSSH  = "ssh"
)

// Target is one node as the plan refers to it.
type Target struct {
	ID      int    `json:"id"`
	Name    string `json:"name"`
	Host    string `json:"host"`
	Port    int    `json:"port"`
	DataDir string `json:"data_dir"`
}

func (t Target) String() string {
	return fmt.Sprintf("%s (node %d, %s:%d)", t.Name, t.ID, t.Host, t.Port)
}

// Defaults fill what Pgpool-II did not pass.
type Defaults struct {
	Port    int
	DataDir string
	// Names are the nodes' names by Pgpool-II backend id.
	Names []string
}

// Name is the name of Pgpool-II backend id.
func (d Defaults) Name(id int) string {
	if id >= 0 && id < len(d.Names) && d.Names[id] != "" {
		return d.Names[id]
	}
	if id < 0 {
		return "unknown"
	}
	return fmt.Sprintf("node%d", id)
}

func orInt(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

func orString(v, def string) string {
	if v != "" {
		return v
	}
	return def
}

// OldPrimary is the node to fence: the failed node when it is the old
// primary, else %N/%S.
func (a Args) OldPrimary(d Defaults) Target {
	t := Target{ID: a.OldPrimaryID, Name: d.Name(a.OldPrimaryID)}
	if a.FailedID == a.OldPrimaryID {
		t.Host = orString(a.FailedHost, a.OldPrimaryHost)
		t.Port = orInt(a.FailedPort, orInt(a.OldPrimaryPort, d.Port))
		t.DataDir = orString(a.FailedDataDir, d.DataDir)
		return t
	}
	t.Host, t.Port, t.DataDir = a.OldPrimaryHost, orInt(a.OldPrimaryPort, d.Port), d.DataDir
	return t
}

// NewMain is the node to promote (failover) or to follow (follow).
func (a Args) NewMain(d Defaults) Target {
	return Target{ID: a.NewMainID, Name: d.Name(a.NewMainID), Host: a.NewMainHost,
		Port: orInt(a.NewMainPort, d.Port), DataDir: orString(a.NewMainData, d.DataDir)}
}

// Failed is the detached node (failover) or the standby to re-point (follow).
func (a Args) Failed(d Defaults) Target {
	return Target{ID: a.FailedID, Name: d.Name(a.FailedID), Host: a.FailedHost,
		Port: orInt(a.FailedPort, d.Port), DataDir: orString(a.FailedDataDir, d.DataDir)}
}

// Candidate is what a read-only look at the node to promote showed.
type Candidate struct {
	Reachable  bool `json:"reachable"`
	InRecovery bool `json:"in_recovery"`
	VersionNum int  `json:"server_version_num"`
	// PromoteFunction: the server has pg_promote (sys_promote), asked by
	// name: PostgreSQL 12 or later, KingbaseES V8R6, not V8R3.
	PromoteFunction bool   `json:"promote_function"`
	Backlog         uint64 `json:"replay_backlog_bytes"`
	// Writable: a write probe committed (probed only out of recovery).
	Writable bool `json:"writable"`
	// HasVIP: the VIP is on the candidate's interface already.
	HasVIP bool   `json:"has_vip"`
	Error  string `json:"error,omitempty"`
}

// Input is everything Decide looks at.
type Input struct {
	Args     Args
	Defaults Defaults
	// Trusted: a trusted IP answered; TrustedEvidence says which or why not.
	Trusted         bool
	TrustedEvidence string
	Candidate       Candidate
	VIP             bool   // a VIP is configured
	PromoteMethod   string // MethodAuto, MethodSQL or MethodSSH
}

// Plan is what to do about one call.
type Plan struct {
	Case   Case   `json:"case"`
	Reason string `json:"reason"`
	// Exit is the exit code when the plan has no steps, ExitOK otherwise
	// (steps that fail set their own, see ExitFor).
	Exit int    `json:"exit"`
	Old  Target `json:"old_primary"`
	New  Target `json:"new_primary"`
	// Procedure is what Failover runs: failover.Pgpool(), without the VIP
	// step when no VIP is configured; empty when nothing is to be done.
	Procedure failover.Plan `json:"procedure,omitzero"`
	// PromoteVia is ViaSQL or ViaSSH; empty when the candidate is already
	// out of recovery (a repeated call).
	PromoteVia string `json:"promote_via,omitempty"`
}

// NeedsCandidate reports whether Decide looks at the candidate for these
// placeholders: only for a failed primary with a new main node to promote.
// Otherwise the node is not even contacted.
func NeedsCandidate(a Args) bool {
	return a.FailedID >= 0 && a.FailedID == a.OldPrimaryID && a.NewMainID >= 0 && a.NewMainHost != "" && a.NewMainID != a.FailedID
}

// Decide is the whole decision of failover-command: given Pgpool-II's
// placeholders and what was observed, what to do. It is pure.
func Decide(in Input) Plan {
	a := in.Args
	p := Plan{Old: a.OldPrimary(in.Defaults), New: a.NewMain(in.Defaults)}
	stop := func(c Case, exit int, format string, args ...any) Plan {
		p.Case, p.Exit, p.Reason = c, exit, fmt.Sprintf(format, args...)
		return p
	}
	// 1. Nothing at all before the guard: a Pgpool-II that is itself cut
	// off sees every backend "fail".
	if !in.Trusted {
		return stop(CaseIsolated, ExitIsolated, "no trusted IP answered (%s): this side may be the one cut off; nothing fenced, nothing promoted", in.TrustedEvidence)
	}
	if a.FailedID < 0 {
		return stop(CaseInvalid, ExitUsage, "no failed node id (%%d): nothing to do")
	}
	// 2. A standby failed: Pgpool-II has detached it; no promotion.
	if a.OldPrimaryID < 0 {
		return stop(CaseStandbyDown, ExitOK, "node %d (%s) failed and Pgpool-II knows no primary (%%P = -1): detached only, nothing fenced or promoted", a.FailedID, a.FailedHost)
	}
	if a.FailedID != a.OldPrimaryID {
		return stop(CaseStandbyDown, ExitOK, "node %d (%s) is a standby (the primary is node %d): detached only, no promotion", a.FailedID, a.FailedHost, a.OldPrimaryID)
	}
	// The primary failed.
	switch {
	case a.NewMainID < 0 || a.NewMainHost == "":
		return stop(CaseNoCandidate, ExitNoCandidate, "the primary (node %d, %s) failed and Pgpool-II has no new main node (%%m = %d, %%H = %q): no standby to promote; nothing fenced", a.FailedID, a.FailedHost, a.NewMainID, a.NewMainHost)
	case a.NewMainID == a.FailedID:
		return stop(CaseNoCandidate, ExitNoCandidate, "the new main node %d is the failed node itself: nothing to promote; nothing fenced", a.NewMainID)
	}
	c := in.Candidate
	if !c.Reachable {
		return stop(CaseNoCandidate, ExitNoCandidate, "the new main node %s does not answer (%s): it cannot be promoted; nothing fenced", p.New, c.Error)
	}
	// A repeated call: the first one finished.
	if !c.InRecovery && c.Writable && (c.HasVIP || !in.VIP) {
		what := "is writable"
		if in.VIP {
			what += " and holds the VIP"
		}
		return stop(CaseAlreadyDone, ExitOK, "%s %s already: the failover is done (a repeated call)", p.New, what)
	}
	if c.InRecovery {
		switch {
		case in.PromoteMethod == MethodSSH:
			p.PromoteVia = ViaSSH
		case c.PromoteFunction:
			p.PromoteVia = ViaSQL
		case in.PromoteMethod == MethodSQL:
			return stop(CaseInvalid, ExitUsage, "promote.method is sql but %s (server version %d) has no promote function (PostgreSQL 12 or later, KingbaseES V8R6): use auto or ssh; nothing fenced", p.New, c.VersionNum)
		default:
			p.PromoteVia = ViaSSH
		}
	}
	p.Case, p.Exit = CasePrimaryDown, ExitOK
	p.Reason = fmt.Sprintf("the primary %s failed: fence it, promote %s", p.Old, p.New)
	if !c.InRecovery {
		p.Reason = fmt.Sprintf("the primary %s failed; %s is out of recovery already (an earlier call promoted it): fence, then finish from the readiness gate", p.Old, p.New)
	}
	p.Procedure = failover.Pgpool()
	if !in.VIP {
		p.Procedure = p.Procedure.Without(failover.StepRoutesUp)
	}
	return p
}

// Actions are the names of the procedure's steps, in order.
func (p Plan) Actions() []Action {
	var out []Action
	for _, name := range p.Procedure.Names() {
		out = append(out, Action(name))
	}
	return out
}

// FenceOutcome is what fencing the old primary found.
type FenceOutcome struct {
	// Reached: commands ran on the old primary's host.
	Reached bool
	// Stopped: its database is not running (status says so).
	Stopped bool
	// VIPGone: the VIP is not on its interface (true when there is no VIP).
	VIPGone bool
	// Detail says what went wrong.
	Detail string
}

// Fence policies (fence.if_unreachable).
const (
	FenceAbort    = "abort"
	FenceContinue = "continue"
)

// AfterFence decides whether the promotion may go ahead. A host that was
// reached must be proved fenced: a database still running or a VIP still
// there stops the failover. A host that cannot be reached stops it too,
// unless the configuration trusts the trusted-IP guard; then the VIP's
// duplicate-address check still refuses to take the address from a host
// that answers for it.
func AfterFence(o FenceOutcome, ifUnreachable string) (proceed bool, exit int, why string) {
	switch {
	case !o.Reached && ifUnreachable == FenceContinue:
		return true, ExitOK, "old primary's host unreachable (" + o.Detail + "): continuing on the trusted-IP guard (fence.if_unreachable: continue); the VIP goes up only if no other host answers for it"
	case !o.Reached:
		return false, ExitFenceFailed, "old primary's host unreachable (" + o.Detail + "): not promoting (fence.if_unreachable: abort)"
	case !o.Stopped:
		return false, ExitFenceFailed, "old primary's database is still running (" + o.Detail + "): not promoting"
	case !o.VIPGone:
		return false, ExitFenceFailed, "the VIP is still on the old primary (" + o.Detail + "): not promoting"
	}
	return true, ExitOK, "old primary fenced: its database is stopped and the VIP is not on it"
}

// ExitFor is the exit code when action fails; expired means timing.total_timeout
// ran out. Synchronous replication and the checkpoint never stop a
// failover (a write has committed by then), so they have no code.
func ExitFor(action Action, expired bool) int {
	if expired {
		return ExitTimeout
	}
	switch action {
	case ActFence:
		return ExitFenceFailed
	case ActGate:
		return ExitNotReady
	case ActVIP:
		return ExitVIPFailed
	}
	return ExitFailed
}

// SyncAction decides step 6 from a look at the new primary: commits must
// not wait for a synchronous standby that is not there. It returns whether
// to clear synchronous_standby_names, and why.
func SyncAction(obs database.Observation) (toAsync bool, why string) {
	names := database.ParseSyncStandbyNames(obs.SynchronousStandbyNames)
	if len(names) == 0 {
		return false, "synchronous_standby_names is empty: commits wait for no standby"
	}
	var streaming []string
	for _, sb := range obs.Standbys {
		if sb.State == "streaming" {
			streaming = append(streaming, sb.ApplicationName)
		}
	}
	for _, n := range names {
		if (n == "*" && len(streaming) > 0) || slices.Contains(streaming, n) {
			return false, fmt.Sprintf("synchronous standby %s streams: synchronous_standby_names kept (%s)", strings.Join(streaming, ", "), obs.SynchronousStandbyNames)
		}
	}
	got := "none"
	if len(streaming) > 0 {
		got = strings.Join(streaming, ", ")
	}
	return true, fmt.Sprintf("no synchronous standby left (synchronous_standby_names %q, streaming: %s): commits would wait forever", obs.SynchronousStandbyNames, got)
}
