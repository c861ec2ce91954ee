package decision

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/internal/wal"
)

// Decide returns what this node's agent must do now. It is deterministic:
// the same input always yields the same output.
func Decide(in Input) Output {
	self := in.Self
	role := self.Role()
	out := func(reason string, actions ...Action) Output {
		return Output{Role: role, Actions: actions, Reason: reason}
	}

	if !in.Cluster.Reachable {
		return decideWithoutDCS(in, out)
	}
	leaderIsMe := in.Cluster.Leader == self.Name && in.HoldsLeader

	if !in.TrustedReachable {
		if leaderIsMe || role == RolePrimary {
			since, grace := in.TrustedUnreachableSince, in.Config.IsolationGrace()
			if !since.IsZero() && in.Now.Sub(since) < grace {
				o := decideConnected(in, out, leaderIsMe)
				o.Reason = fmt.Sprintf("no trusted IP answered for %s (the primary role is given up after %s); %s",
					in.Now.Sub(since).Round(msRound), grace, o.Reason)
				return o
			}
			actions := []Action{{Kind: WithdrawWritable}, {Kind: Demote}}
			if leaderIsMe {
				actions = append(actions, Action{Kind: ReleaseLeader})
			}
			return out("no trusted IP answers: this node may be the one cut off, so it gives up the primary role", actions...)
		}
		return out("no trusted IP answers: this node may be the one cut off, so it will not promote")
	}
	return decideConnected(in, out, leaderIsMe)
}

// decideConnected decides for a node that reaches the DCS and, but for a
// primary's short grace, a trusted IP.
func decideConnected(in Input, out outFunc, leaderIsMe bool) Output {
	self := in.Self
	role := self.Role()
	if self.NoData {
		return decideWithoutData(in, out)
	}
	if id := in.Cluster.InitializedSystemID; id != "" && self.SystemID != "" && self.SystemID != id {
		// Another cluster's data: nothing here may start, follow, rejoin
		// or be copied over it; the operator decides what it is.
		why := fmt.Sprintf("refused: the data directory holds system %s, but this cluster was initialized as system %s; nothing is changed, move the directory away to have this node cloned", self.SystemID, id)
		if role == RolePrimary {
			return out(why+"; its running primary is stopped", Action{Kind: WithdrawWritable}, Action{Kind: Demote})
		}
		return out(why)
	}
	switch {
	case leaderIsMe:
		return decideAsLeader(in, out)
	case in.Cluster.Leader == self.Name:
		// The key names us but this agent did not acquire it (a restart of
		// the agent): the lease belongs to a previous incarnation. Let it
		// expire rather than guess whether its server is still ours.
		if role == RolePrimary {
			return out("the leader key names this node from a previous agent run; demoting until it expires", Action{Kind: WithdrawWritable}, Action{Kind: Demote})
		}
		return out("the leader key names this node from a previous agent run; waiting for it to expire")
	case in.Cluster.Leader != "":
		return decideAsFollower(in, out)
	default:
		return decideWithoutLeader(in, out)
	}
}

type outFunc func(reason string, actions ...Action) Output

func decideWithoutDCS(in Input, out outFunc) Output {
	self := in.Self
	if in.HoldsLeader {
		elapsed := in.Now.Sub(in.LeaseRenewedAt)
		if holds, why := in.Config.FailsafeHolds(in.Now, in.FailsafeMembers, in.FailsafeAcks); holds && elapsed >= in.Config.DemoteAfter() {
			// No action: the lease keeper keeps trying to renew on its own.
			return out("DCS unreachable; keeping the primary role: " + why)
		}
		if elapsed >= in.Config.DemoteAfter() {
			return out(fmt.Sprintf("DCS unreachable for %s since the last lease renewal (limit %s): demoting before the lease can expire elsewhere",
				elapsed.Round(msRound), in.Config.DemoteAfter()),
				Action{Kind: WithdrawWritable}, Action{Kind: Demote})
		}
		return out(fmt.Sprintf("DCS unreachable; keeping the primary role for %s more, then demoting",
			(in.Config.DemoteAfter()-elapsed).Round(msRound)), Action{Kind: RenewLeader})
	}
	if self.Role() == RolePrimary {
		return out("DCS unreachable and this node does not hold the leader key: a primary without the key must not run", Action{Kind: WithdrawWritable}, Action{Kind: Demote})
	}
	return out("DCS unreachable: no promotion without the DCS")
}

func decideAsLeader(in Input, out outFunc) Output {
	self := in.Self
	renew := Action{Kind: RenewLeader}
	req := in.Cluster.Request
	if req.active(in.Now) && req.Kind == RequestReinit && req.To == self.Name {
		// A reinit copies the leader; the leader has nothing to copy from.
		// The operator was refused this when asking; the node became the
		// leader since.
		return withRequestDone(decideAsLeaderNoRequest(in, out), "; the reinit of this node was refused: it is the leader, and a reinit rebuilds a standby from the leader")
	}
	if req.active(in.Now) && req.To == self.Name {
		// The request made this node the leader: it is done.
		return withRequestDone(decideAsLeaderNoRequest(in, out), "; request done")
	}
	if req.active(in.Now) && !in.Cluster.Paused {
		switch {
		case req.Kind == RequestSwitchover && (req.From == "" || req.From == self.Name) && self.Role() == RolePrimary && !req.HandedOver:
			if in.Now.Before(req.At) {
				break
			}
			target, why := switchoverTarget(in, req.To)
			if target == "" {
				return out("switchover refused: "+why, renew, Action{Kind: ClearRequest})
			}
			return out(fmt.Sprintf("switchover to %s: %s", target, why), renew, Action{Kind: Switchover, Target: target, Requested: true})
		case req.Kind == RequestFailover && req.To != "" && !self.Writable:
			return out(fmt.Sprintf("manual failover to %s and this leader cannot write: giving up the key", req.To),
				Action{Kind: WithdrawWritable}, Action{Kind: Demote}, Action{Kind: ReleaseLeader})
		}
	} else if req != nil && !req.active(in.Now) {
		return withRequestDone(decideAsLeaderNoRequest(in, out), "; an expired request was cleared")
	}
	return decideAsLeaderNoRequest(in, out)
}

// sortCandidates puts the best candidate first: the most WAL (never less
// data), then the most WAL replayed (the least left to replay before it
// can take writes: the soonest writable), then the highest priority, then
// the name, so that every agent picks the same one.
func sortCandidates(cands []candidate) {
	sort.SliceStable(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if a.wal != b.wal {
			return a.wal > b.wal
		}
		if a.replayed != b.replayed {
			return a.replayed > b.replayed
		}
		if a.priority != b.priority {
			return a.priority > b.priority
		}
		return a.name < b.name
	})
}

func withRequestDone(o Output, note string) Output {
	o.Actions = append(o.Actions, Action{Kind: ClearRequest})
	o.Reason += note
	return o
}

func decideAsLeaderNoRequest(in Input, out outFunc) Output {
	self := in.Self
	renew := Action{Kind: RenewLeader}
	downFor := in.Now.Sub(self.DownSince)
	if self.DownSince.IsZero() {
		downFor = 0
	}
	switch self.Role() {
	case RolePrimary:
		actions := []Action{renew}
		reason := "leader: primary is healthy"
		if self.Writable {
			actions = append(actions, Action{Kind: PublishWritable})
		} else {
			actions = append(actions, Action{Kind: WithdrawWritable})
			reason = "leader: primary does not commit writes; routes withdrawn"
		}
		if in.Cluster.Paused {
			return out(reason+" (cluster paused)", actions...)
		}
		if a, why := syncAction(in); a != nil {
			actions = append(actions, *a)
			reason += "; " + why
		}
		return out(reason, actions...)
	case RoleStandby:
		if in.Cluster.Paused {
			return out("leader still in recovery, cluster paused: not completing the promotion", renew, Action{Kind: WithdrawWritable})
		}
		return out("leader still in recovery: completing the promotion", renew, Action{Kind: WithdrawWritable}, Action{Kind: CompletePromotion})
	case RoleUnknown:
		// Running but not answering: starting up, shutting down or hung.
		// Routes go at once; the key is kept for a short grace (one slow
		// probe is not a failure), then the server is killed and the key
		// released, unless the crash policy restarts in place.
		if grace := in.Config.UnresponsiveGrace(); downFor < grace && !in.Cluster.Paused && in.Config.PrimaryCrash != CrashRestart {
			return out(fmt.Sprintf("leader's database does not answer for %s: routes withdrawn; it is ended and the key released after %s",
				downFor.Round(msRound), grace), renew, Action{Kind: WithdrawWritable})
		}
		fallthrough
	default:
		if in.Cluster.Paused {
			return out("leader's database is down, cluster paused: no automatic action", renew, Action{Kind: WithdrawWritable})
		}
		if in.Config.PrimaryCrash == CrashRestart && downFor < in.Config.RestartTimeout {
			actions := []Action{renew, {Kind: WithdrawWritable}}
			if self.Role() == RoleStopped {
				actions = append(actions, Action{Kind: RestartPrimary})
			}
			return out(fmt.Sprintf("leader's database is down for %s: restarting it in place (policy restart, limit %s)",
				downFor.Round(msRound), in.Config.RestartTimeout), actions...)
		}
		return out("leader's database is down: releasing the leader key so that a standby takes over",
			Action{Kind: WithdrawWritable}, Action{Kind: Demote}, Action{Kind: ReleaseLeader})
	}
}

func decideAsFollower(in Input, out outFunc) Output {
	self := in.Self
	leader := in.Cluster.Leader
	// A second primary is ended first, whatever the operator asked for
	// this node: a reinit comes at the next loop, on a stopped server.
	switch {
	case self.Role() == RolePrimary:
		return out(fmt.Sprintf("%s holds the leader key but this node runs a primary: stopping it", leader),
			Action{Kind: WithdrawWritable}, Action{Kind: Demote})
	case self.Role() == RoleUnknown && !self.StandbyConfigured:
		// No standby signal: this is a primary that hangs. Were it to
		// resume (SIGCONT, a disk that comes back) it would accept
		// writes next to the leader until the next loop; end it now.
		return out(fmt.Sprintf("%s holds the leader key and this node runs a primary that does not answer: ending it", leader),
			Action{Kind: WithdrawWritable}, Action{Kind: Demote})
	case reinitRequested(in):
		// Before the rules below: a server that does not start, hangs or
		// cannot stream is what a reinit is for.
		return reinitOrWait(in, out)
	}
	switch self.Role() {
	case RoleStopped:
		if !self.StandbyConfigured {
			return rejoinOrWait(in, out)
		}
		if in.Cluster.Paused {
			return out("standby stopped, cluster paused: no automatic action")
		}
		return out(fmt.Sprintf("standby stopped: starting it to follow %s", leader),
			Action{Kind: StartStandby, Target: leader})
	case RoleUnknown:
		return out("database running but not answering: waiting")
	}
	if rejoinRequested(in) && self.Streaming && self.Upstream == leader {
		return out(fmt.Sprintf("rejoin requested, but this standby already streams from %s: nothing to do", leader), Action{Kind: ClearRequest})
	}
	if rejoinRequested(in) {
		// A standby that cannot follow (it diverged before a timeline
		// switch) is rejoined on the operator's word only.
		return rejoinOrWait(in, out)
	}
	if why := cannotFollow(in); why != "" {
		switch {
		case !in.Config.AutoRejoin:
			return out(fmt.Sprintf("%s: waiting for vigil ctl rejoin %s", why, self.Name))
		case in.Cluster.Paused:
			return out(why + ", cluster paused: not rejoining automatically")
		}
		return out(fmt.Sprintf("%s: automatic rejoin as a standby of %s", why, leader), Action{Kind: Rejoin, Target: leader})
	}
	if self.Upstream != leader && !in.Cluster.Paused {
		return out(fmt.Sprintf("standby streams from %q, leader is %s: following the leader", self.Upstream, leader),
			Action{Kind: Follow, Target: leader})
	}
	if len(self.SyncStandbys) > 0 && in.Config.SyncMode != SyncStrict {
		// Ready for a promotion: its first commits must not wait for a
		// standby (none streams from it yet), and the failover should not
		// spend a round trip on this after the leader key.
		return out(fmt.Sprintf("standby following %s; clearing its synchronous_standby_names so that a promotion finds it ready", leader),
			Action{Kind: SetSyncStandbys})
	}
	return out(fmt.Sprintf("standby following %s", leader))
}

// cannotFollow explains why this standby cannot follow the leader, or
// returns "": configured for the leader, it has not streamed from it for
// Config.CannotFollowAfter while the leader is writable. On an older
// timeline it most likely received WAL past the fork (from an old primary
// that kept writing after the promotion), and its receiver is refused
// until a rewind; on the leader's timeline its receiver is stuck (the
// chaos campaign saw a receiver wait over a minute for a connection's
// first answer, after a delaying proxy went away). The rejoin procedure
// handles both: it leaves a standby that streams alone, rewinds one that
// diverged, restarts the others.
func cannotFollow(in Input) string {
	self, leader := in.Self, in.Cluster.Leader
	if self.Role() != RoleStandby || self.Upstream != leader || self.Streaming || self.NotStreamingSince.IsZero() {
		return ""
	}
	m, ok := in.Cluster.Members[leader]
	if !ok || !m.Writable {
		return ""
	}
	silent := in.Now.Sub(self.NotStreamingSince)
	if silent < in.Config.CannotFollowAfter() {
		return ""
	}
	why := "its WAL receiver does not get through"
	if m.Timeline > self.Timeline {
		why = "it may hold WAL of the old timeline past the fork"
	}
	return fmt.Sprintf("standby on timeline %d has not streamed from %s (timeline %d) for %s (%s)",
		self.Timeline, leader, m.Timeline, silent.Round(msRound), why)
}

func decideWithoutLeader(in Input, out outFunc) Output {
	self := in.Self
	if in.PromisedUntil.After(in.Now) {
		return out(fmt.Sprintf("no leader, but this node promised the leader in failsafe mode not to take the key for %s more",
			in.PromisedUntil.Sub(in.Now).Round(msRound)))
	}
	if reinitRequested(in) && self.Role() != RolePrimary {
		// The operator declared this node's data unfit: it neither starts
		// nor promotes until the request is carried out or expires. (A
		// primary still takes the key; as the leader it refuses the
		// reinit.)
		return out("no leader; the reinit of this node waits for a writable primary to copy from, and this node neither starts nor promotes meanwhile")
	}
	if req := in.Cluster.Request; req.active(in.Now) && req.promotes() && req.To != "" && self.Role() == RoleStandby && self.Reachable {
		if req.To != self.Name {
			return out(fmt.Sprintf("no leader; waiting for %s, chosen by the operator's %s", req.To, req.Kind))
		}
		if req.Kind == RequestSwitchover && !req.HandedOver {
			return out("switchover to this node requested; waiting for the leader to hand over")
		}
		for _, m := range sortedMembers(in.Cluster.Members) {
			if m.Name != self.Name && m.Role == RolePrimary && m.Reachable {
				return out(fmt.Sprintf("%s requested, but %s runs a primary: not promoting next to it", req.Kind, m.Name))
			}
		}
		if sync := in.Cluster.SyncStandbys; in.Config.SyncMode != SyncOff && len(sync) > 0 && !slices.Contains(sync, self.Name) {
			// The package's synchronous rule holds for the operator too:
			// acknowledged commits may be only on the recorded standbys.
			return out(fmt.Sprintf("%s requested, but synchronous mode: only the recorded synchronous standbys %s may be promoted", req.Kind, strings.Join(sync, ", ")))
		}
		if req.Kind == RequestFailover && self.Streaming {
			// A primary whose agent died publishes nothing, but its WAL
			// still arrives here: it is alive and may accept writes. (A
			// switchover's old leader stopped cleanly: nothing streams.)
			return out(fmt.Sprintf("%s requested, but this standby still hears from %q: that server is alive, not promoting next to it", req.Kind, self.Upstream))
		}
		if req.Kind == RequestFailover && self.UpstreamIsPrimary {
			return out(fmt.Sprintf("%s requested, but the upstream this standby is configured for still answers as a primary: not promoting next to it", req.Kind))
		}
		return out(fmt.Sprintf("no leader; the operator's %s names this node", req.Kind), Action{Kind: Failover, Requested: true})
	}
	if in.Cluster.Paused {
		return out("no leader, cluster paused: no automatic action")
	}
	switch self.Role() {
	case RolePrimary:
		if !self.Reachable {
			return out("no leader; database not answering")
		}
		if newer := newerHistory(in); newer != "" {
			return out("no leader; this primary must not take the key: "+newer+": stopping it",
				Action{Kind: WithdrawWritable}, Action{Kind: Demote})
		}
		// The key is taken atomically: a standby that took it first wins and
		// this primary is stopped at the next loop. This is also how a
		// leader whose agent was paused past its lease keeps its role when
		// nobody replaced it.
		return out("no leader and this node runs the primary with the newest history: taking the leader key", Action{Kind: AcquireLeader})
	case RoleStopped:
		if self.StandbyConfigured {
			return out("no leader; standby stopped: starting it", Action{Kind: StartStandby})
		}
		if !in.GaveUpAt.IsZero() && in.Now.Sub(in.GaveUpAt) < in.Config.StayDownFor() {
			return out(fmt.Sprintf("former primary; this agent gave up the key %s ago because its server failed: staying stopped while a standby takes over (for up to %s)",
				in.Now.Sub(in.GaveUpAt).Round(msRound), in.Config.StayDownFor()))
		}
		if last := in.Cluster.LastLeader; last != "" && last != self.Name {
			return out(fmt.Sprintf("former primary; the last leader was %s: staying stopped until rejoined", last))
		}
		if newer := newerHistory(in); newer != "" {
			return out("former primary; " + newer + ": staying stopped until rejoined")
		}
		for _, m := range sortedMembers(in.Cluster.Members) {
			if m.Name != self.Name && m.Role == RolePrimary && m.Reachable {
				return out(fmt.Sprintf("former primary; %s runs a primary: staying stopped", m.Name))
			}
		}
		// The key first: a server started as primary without it would be a
		// second primary for as long as a promotion elsewhere overlaps.
		return out("no leader; former primary with the newest history: taking the key, then starting it",
			Action{Kind: AcquireLeader}, Action{Kind: StartPrimary})
	case RoleUnknown:
		return out("no leader; database running but not answering: waiting")
	}
	// A reachable standby. A failover replaces a leader that existed; it
	// never races a primary that is alive.
	if in.Cluster.LastLeaderTimeline == 0 {
		return out("the cluster has never had a leader: waiting for its primary to take the key (or a manual failover)")
	}
	for _, m := range sortedMembers(in.Cluster.Members) {
		if m.Name != self.Name && m.Role == RolePrimary && m.Reachable {
			return out(fmt.Sprintf("no leader, but %s runs a primary: waiting for it to take the key", m.Name))
		}
	}
	if self.Streaming {
		upstream := self.Upstream
		if upstream == "" {
			upstream = "an upstream that is not a member"
		}
		return out(fmt.Sprintf("no leader, but this standby still hears from %s: that server is alive, not promoting", upstream))
	}
	if self.UpstreamIsPrimary {
		return out("no leader, but the upstream this standby is configured for still answers as a primary: not promoting next to it")
	}
	ok, why := isBestCandidate(in)
	if !ok {
		return out("no leader; not promoting: " + why)
	}
	return out("no leader; "+why, Action{Kind: Failover})
}

// newerHistory says why this node's history is not the newest, "" when it
// is: the cluster's last leader reached a later timeline, or a member runs
// on one (a promotion happened elsewhere, perhaps while this agent was
// paused).
func newerHistory(in Input) string {
	self := in.Self
	if in.Cluster.LastLeaderTimeline > self.Timeline {
		return fmt.Sprintf("this server is on timeline %d but the cluster reached %d", self.Timeline, in.Cluster.LastLeaderTimeline)
	}
	// A standby on this node's timeline cannot be ahead of it: it is a
	// copy. Only a promotion elsewhere (a newer timeline) can be.
	for _, m := range sortedMembers(in.Cluster.Members) {
		switch {
		case m.Name == self.Name:
		case m.Timeline > self.Timeline:
			return fmt.Sprintf("%s is on a newer timeline (%d > %d)", m.Name, m.Timeline, self.Timeline)
		}
	}
	return ""
}

// candidate is a standby that may be promoted.
type candidate struct {
	name     string
	wal      uint64
	replayed uint64
	priority int
}

func localCandidate(l Local) candidate {
	return candidate{name: l.Name, wal: uint64(l.WAL), replayed: uint64(l.Replayed), priority: l.Priority}
}

func memberCandidate(m Member) candidate {
	return candidate{name: m.Name, wal: uint64(m.WAL), replayed: uint64(m.Replayed), priority: m.Priority}
}

// positions describes a candidate's WAL for a decision's reason.
func (c candidate) positions() string {
	return fmt.Sprintf("WAL %s, replayed %s", lsnString(c.wal), lsnString(c.replayed))
}

// isBestCandidate decides whether this standby should run the failover.
func isBestCandidate(in Input) (bool, string) {
	self := in.Self
	if self.Priority <= 0 {
		return false, "priority 0: this node never promotes"
	}
	last := in.Cluster.LastLeaderWAL
	if lag := last.Sub(self.WAL); last != 0 && lag > in.Config.MaximumLagOnFailover {
		return false, fmt.Sprintf("%d bytes behind the last leader position %s (maximum_lag_on_failover %d)", lag, last, in.Config.MaximumLagOnFailover)
	}
	cands := []candidate{localCandidate(self)}
	for _, m := range sortedMembers(in.Cluster.Members) {
		if m.Name == self.Name {
			continue
		}
		if m.Reachable && m.InRecovery && !m.Isolated && m.Priority > 0 && (m.SystemID == "" || self.SystemID == "" || m.SystemID == self.SystemID) {
			cands = append(cands, memberCandidate(m))
		}
	}

	sync := in.Cluster.SyncStandbys
	if in.Config.SyncMode != SyncOff && len(sync) > 0 {
		if !slices.Contains(sync, self.Name) {
			return false, fmt.Sprintf("synchronous mode: only the recorded synchronous standbys %s may be promoted", strings.Join(sync, ", "))
		}
		var missing []string
		for _, name := range sync {
			if name == self.Name {
				continue
			}
			if _, ok := in.Cluster.Members[name]; !ok {
				missing = append(missing, name)
			}
		}
		if len(missing) > 0 {
			return false, fmt.Sprintf("synchronous mode: cannot see synchronous standby %s, which may hold acknowledged commits this node lacks", strings.Join(missing, ", "))
		}
		cands = slices.DeleteFunc(cands, func(c candidate) bool { return !slices.Contains(sync, c.name) })
	}

	sortCandidates(cands)
	if best, me := cands[0], localCandidate(self); best.name != self.Name {
		return false, fmt.Sprintf("%s is a better candidate (%s, priority %d; this node %s, priority %d)",
			best.name, best.positions(), best.priority, me.positions(), me.priority)
	}
	return true, fmt.Sprintf("this node is the best candidate (%s, priority %d, %d candidates)", localCandidate(self).positions(), self.Priority, len(cands))
}

// syncAction moves the synchronous set one safe step towards the standbys
// that stream from this leader: DCS first when adding, PostgreSQL first when
// removing, so PostgreSQL's set is always within the recorded one.
func syncAction(in Input) (*Action, string) {
	if in.Config.SyncMode == SyncOff {
		if len(in.Self.SyncStandbys) > 0 {
			return &Action{Kind: SetSyncStandbys}, "synchronous mode off: making replication asynchronous"
		}
		return nil, ""
	}
	var desired []string
	for _, name := range in.Self.StreamingStandbys {
		if m, ok := in.Cluster.Members[name]; ok && m.Priority > 0 {
			desired = append(desired, name)
		}
	}
	sort.Strings(desired)
	if len(desired) == 0 && in.Config.SyncMode == SyncStrict {
		// Keep waiting for the standbys we have: strict never goes async.
		desired = sortedCopy(in.Self.SyncStandbys)
		if len(desired) == 0 {
			desired = sortedCopy(in.Cluster.SyncStandbys)
		}
	}
	recorded := sortedCopy(in.Cluster.SyncStandbys)
	current := sortedCopy(in.Self.SyncStandbys)
	if !subset(desired, recorded) {
		union := sortedCopy(append(slices.Clone(recorded), desired...))
		return &Action{Kind: SetSyncKey, Names: union}, "recording synchronous standbys " + strings.Join(union, ", ") + " before enabling them"
	}
	if !slices.Equal(current, desired) {
		if len(desired) == 0 {
			return &Action{Kind: SetSyncStandbys}, "no healthy standby: making replication asynchronous"
		}
		return &Action{Kind: SetSyncStandbys, Names: desired}, "synchronous standbys now " + strings.Join(desired, ", ")
	}
	if !slices.Equal(recorded, desired) {
		return &Action{Kind: SetSyncKey, Names: desired}, "recording synchronous standbys " + strings.Join(desired, ", ")
	}
	return nil, ""
}

func sortedMembers(m map[string]Member) []Member {
	out := make([]Member, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	sort.Strings(c)
	return slices.Compact(c)
}

func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

const msRound = time.Millisecond

func lsnString(v uint64) string { return wal.LSN(v).String() }

// rejoinRequested reports whether the operator asked this node to rejoin.
func rejoinRequested(in Input) bool {
	req := in.Cluster.Request
	return req.active(in.Now) && req.Kind == RequestRejoin && req.To == in.Self.Name
}

// rejoinOrWait is a non-leader that is not a healthy standby of the leader:
// it rejoins when asked to (or allowed to by AutoRejoin), and only once the
// leader is writable, so that pg_rewind compares against a primary whose
// history will not move again under it.
func rejoinOrWait(in Input, out outFunc) Output {
	leader := in.Cluster.Leader
	requested := rejoinRequested(in)
	if !requested && !in.Config.AutoRejoin {
		return out(fmt.Sprintf("former primary; %s is the leader now: staying stopped until rejoined (vigil ctl rejoin %s)", leader, in.Self.Name))
	}
	if !requested && in.Cluster.Paused {
		return out("former primary, cluster paused: not rejoining automatically")
	}
	if m, ok := in.Cluster.Members[leader]; !ok || !m.Writable {
		return out(fmt.Sprintf("rejoin waits until the leader %s is writable", leader))
	}
	why := "automatic rejoin"
	if requested {
		why = "the operator's rejoin request"
	}
	return out(fmt.Sprintf("%s: becoming a standby of %s", why, leader), Action{Kind: Rejoin, Target: leader, Requested: requested})
}

// reinitRequested reports whether the operator asked this node to be
// rebuilt.
func reinitRequested(in Input) bool {
	req := in.Cluster.Request
	return req.active(in.Now) && req.Kind == RequestReinit && req.To == in.Self.Name
}

// reinitOrWait is a non-leader whose reinit the operator asked for: it is
// rebuilt from the leader once the leader is writable (a base backup of a
// primary that may still fail or move would have to be taken again). A
// pause holds the reinit, as it holds every change of a server, until the
// cluster is resumed or the request expires; `vigil ctl reinit` refuses to
// ask while paused.
func reinitOrWait(in Input, out outFunc) Output {
	leader := in.Cluster.Leader
	if in.Cluster.Paused {
		return out("reinit of this node requested, but the cluster is paused: not rebuilding it until the cluster is resumed")
	}
	if m, ok := in.Cluster.Members[leader]; !ok || !m.Writable {
		return out(fmt.Sprintf("reinit waits until the leader %s is writable", leader))
	}
	return out(fmt.Sprintf("the operator's reinit request: rebuilding this node from %s by a base backup", leader),
		Action{Kind: Reinit, Target: leader, Requested: true})
}

// switchoverTarget picks the standby a switchover hands over to: the one
// named, or the best one, provided it streams from this leader, can be
// promoted and is close enough to catch up during the handover.
func switchoverTarget(in Input, named string) (string, string) {
	self := in.Self
	var cands []candidate
	var refusals []string
	for _, m := range sortedMembers(in.Cluster.Members) {
		if m.Name == self.Name || (named != "" && m.Name != named) {
			continue
		}
		lag := self.WAL.Sub(m.WAL)
		switch {
		case m.Role != RoleStandby || !m.Reachable:
			refusals = append(refusals, m.Name+" is not a running standby")
		case m.Isolated:
			refusals = append(refusals, m.Name+" cannot reach any trusted IP")
		case m.Priority <= 0:
			refusals = append(refusals, m.Name+" has priority 0")
		case m.Upstream != self.Name:
			refusals = append(refusals, fmt.Sprintf("%s does not stream from %s", m.Name, self.Name))
		case lag > in.Config.MaximumLagOnFailover:
			refusals = append(refusals, fmt.Sprintf("%s is %d bytes behind (maximum_lag_on_failover %d)", m.Name, lag, in.Config.MaximumLagOnFailover))
		default:
			cands = append(cands, memberCandidate(m))
		}
	}
	if len(cands) == 0 {
		if named != "" && len(refusals) == 0 {
			return "", named + " is not a member of the cluster"
		}
		if len(refusals) == 0 {
			return "", "no standby"
		}
		return "", strings.Join(refusals, "; ")
	}
	sortCandidates(cands)
	return cands[0].name, fmt.Sprintf("%s streams from this leader, %d bytes behind (%s)", cands[0].name, self.WAL.Sub(wal.LSN(cands[0].wal)), cands[0].positions())
}

// decideWithoutData is a node whose data directory holds no cluster: the
// first node of a cluster that was never created bootstraps it (the
// initialize key decides which); every other one clones the writable
// leader. It never promotes: only a streaming standby is a candidate.
func decideWithoutData(in Input, out outFunc) Output {
	c := in.Cluster
	if in.HoldsLeader && c.Leader == in.Self.Name {
		// The data directory went from under the leader: whatever still
		// runs there must not keep the routes or the key.
		return out("the leader's data directory holds no cluster any more: giving up the primary role",
			Action{Kind: WithdrawWritable}, Action{Kind: Demote}, Action{Kind: ReleaseLeader})
	}
	if c.Paused {
		return out("no data directory, cluster paused: not building this node")
	}
	leader := c.Leader
	if leader != "" && leader != in.Self.Name {
		if m, ok := c.Members[leader]; ok && m.Writable {
			return out(fmt.Sprintf("no data directory: cloning the writable leader %s", leader), Action{Kind: Clone, Target: leader})
		}
		return out(fmt.Sprintf("no data directory: waiting until the leader %s is writable to clone it", leader))
	}
	switch {
	case c.Initialize != "" && c.InitializedSystemID == "":
		return out(fmt.Sprintf("no data directory: %s is creating the cluster; waiting to clone it", c.Initialize))
	case c.Initialize != "":
		return out(fmt.Sprintf("no data directory: the cluster exists (system %s, created by %s); waiting for a writable leader to clone", c.InitializedSystemID, c.Initialize))
	case c.LastLeaderTimeline != 0:
		return out(fmt.Sprintf("no data directory: the cluster had a leader (%s); waiting for a writable leader to clone", c.LastLeader))
	}
	for _, m := range sortedMembers(c.Members) {
		if m.Name != in.Self.Name && m.SystemID != "" {
			return out(fmt.Sprintf("no data directory: %s holds the cluster's data (system %s); waiting for a writable leader to clone", m.Name, m.SystemID))
		}
	}
	return out("no data directory and the cluster was never created: bootstrapping it, if this node wins the initialize key", Action{Kind: Bootstrap})
}
