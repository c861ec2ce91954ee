package control

import (
	"fmt"

	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
	"github.com/vigil-ha/vigil/internal/timeline"
)

// rejoinRecordKind is the Kind of the history record of an agent's rejoin.
const rejoinRecordKind = "rejoin"

// RejoinProgress is where a requested rejoin or reinit stands, as read in
// one view of the cluster.
type RejoinProgress struct {
	// Done: the node's agent published, after the rejoin (or reinit),
	// that its server is a standby of the leader on the leader's timeline.
	Done bool
	// Failed explains why the rejoin did not complete; "" while it may.
	Failed string
	// Finished: the request is gone (its agent clears it once it has
	// acted, the leader once it expired), so no further attempt will come
	// from it. Until Done or Failed, the node's agent has yet to publish
	// its new state.
	Finished bool
	// Waiting says what is awaited (for messages).
	Waiting string
}

// CheckRejoin says how far the rejoin of req.To has come. records are the
// history records written since the request was made, oldest first (any
// node, any kind). The outcome does not depend on the order in which the
// agent's steps become visible: the request may be cleared before or
// after the node's new state is published, and a published state counts
// only once it is newer than the rejoin's record.
func CheckRejoin(v dcs.View, req dcs.Request, records []timeline.Record) RejoinProgress {
	return checkRebuild(v, req, records, rejoinRecordKind)
}

// checkRebuild is CheckRejoin and CheckReinit: kind is the record kind the
// node's agent writes when it has acted.
func checkRebuild(v dcs.View, req dcs.Request, records []timeline.Record, kind string) RejoinProgress {
	node := req.To
	var rec *timeline.Record
	for i := range records {
		if records[i].Kind == kind && records[i].Node == node {
			rec = &records[i]
		}
	}
	m, live := v.Members[node]
	var notFollowing string
	switch {
	case !live:
		notFollowing = fmt.Sprintf("%s has no live agent", node)
	case v.Leader == "":
		notFollowing = "the cluster has no leader"
	case m.Role != decision.RoleStandby || m.Upstream != v.Leader || m.Timeline < leaderTimeline(v):
		notFollowing = fmt.Sprintf("%s is %s, upstream %q, timeline %d; the leader %s is on timeline %d",
			node, m.Role, m.Upstream, m.Timeline, v.Leader, leaderTimeline(v))
	case rec != nil && !m.UpdatedAt.After(rec.End):
		// Both times come from the node's agent: no clock skew between them.
		notFollowing = fmt.Sprintf("%s's agent has not published its state since the %s finished", node, kind)
	}
	if rec != nil && rec.OK && notFollowing == "" {
		// Whether or not the agent has cleared the request yet.
		return RejoinProgress{Done: true, Finished: !samePendingRequest(v.Request, req)}
	}
	if samePendingRequest(v.Request, req) {
		switch {
		case rec != nil && !rec.OK && kind == reinitRecordKind:
			// No automatic reinit exists: this is the request's own
			// attempt, and its agent clears the request next.
			return RejoinProgress{Waiting: fmt.Sprintf("%s's reinit failed (%s); its agent has not cleared the request yet", node, failure(*rec))}
		case rec != nil && !rec.OK:
			// An automatic attempt failed; the agent still owes the
			// operator's request an attempt of its own.
			return RejoinProgress{Waiting: fmt.Sprintf("%s's agent has not acted on the request yet (an earlier attempt failed: %s)", node, failure(*rec))}
		case rec == nil && v.Config.Paused && kind == reinitRecordKind:
			// A requested rejoin goes ahead while paused; a reinit waits.
			return RejoinProgress{Waiting: fmt.Sprintf("the cluster is paused: %s's agent does not start the %s until `vigil ctl resume`", node, kind)}
		}
		return RejoinProgress{Waiting: fmt.Sprintf("%s's agent has not finished the %s", node, kind)}
	}
	if rec != nil && !rec.OK {
		return RejoinProgress{Finished: true, Failed: fmt.Sprintf("%s of %s failed: %s", kind, node, failure(*rec))}
	}
	if rec == nil && kind == reinitRecordKind {
		// A reinit always ends in a record: without one the request
		// expired unanswered or was refused (the node became the leader),
		// unless the record is about to appear.
		why := "it expired unanswered, was refused, or its agent is still rebuilding"
		switch {
		case v.Leader == node:
			why = node + " is the leader now, whose agent refuses a reinit"
		case v.Config.Paused:
			why = "the cluster is paused, so it was not carried out before it expired"
		}
		return RejoinProgress{Finished: true, Waiting: fmt.Sprintf("the request is gone but %s's agent has written no reinit record: %s", node, why)}
	}
	// No record and the request gone: the agent found the node streaming
	// already and had nothing to do, or the request expired unanswered.
	return RejoinProgress{Finished: true, Done: notFollowing == "", Waiting: notFollowing}
}

// samePendingRequest reports whether pending is the request req (and not
// one made since).
func samePendingRequest(pending *dcs.Request, req dcs.Request) bool {
	return pending != nil && pending.Kind == req.Kind && pending.To == req.To && pending.Created.Equal(req.Created)
}

// failure names the first failed step of rec and its error, else its reason.
func failure(rec timeline.Record) string {
	for _, st := range rec.Steps {
		if !st.OK {
			return fmt.Sprintf("step %s: %s", st.Name, st.Error)
		}
	}
	if rec.Reason != "" {
		return rec.Reason
	}
	return "the record shows no failed step"
}
