package control

import (
	"context"
	"fmt"

	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
	"github.com/vigil-ha/vigil/internal/timeline"
)

// reinitRecordKind is the Kind of the history record of an agent's reinit.
const reinitRecordKind = "reinit"

// Reinit requests that node, a standby (or a stopped former primary) but
// not the leader, be rebuilt from the writable primary by its agent: the
// server stopped, its data directory moved aside and replaced by a base
// backup, whatever it holds. Refused while the cluster is paused: a reinit
// replaces a server, which a paused cluster's agents do not do.
func (c Controller) Reinit(ctx context.Context, node string) (dcs.Request, error) {
	v, err := c.Store.Snapshot(ctx)
	if err != nil {
		return dcs.Request{}, fmt.Errorf("reinit: %w", err)
	}
	if node == "" {
		return dcs.Request{}, fmt.Errorf("reinit: %w", refuse("name the node to rebuild"))
	}
	if v.Config.Paused {
		return dcs.Request{}, fmt.Errorf("reinit: %w", refuse("the cluster is paused (maintenance mode): no agent stops or replaces a server while paused; run `vigil ctl resume` first"))
	}
	if err := c.noPending(v); err != nil {
		return dcs.Request{}, fmt.Errorf("reinit: %w", err)
	}
	m, ok := v.Members[node]
	switch {
	case !ok:
		return dcs.Request{}, fmt.Errorf("reinit: %w", refuse("%s is not a live member (members: %s): a node is rebuilt by its own agent, so start that first", node, MemberNames(v)))
	case node == v.Leader:
		return dcs.Request{}, fmt.Errorf("reinit: %w", refuse("%s is the leader: a reinit rebuilds a standby from the primary; switch over to another node first", node))
	case m.Role == decision.RolePrimary:
		return dcs.Request{}, fmt.Errorf("reinit: %w", refuse("%s runs a primary without the leader key (its agent stops it): retry once it has stopped", node))
	}
	if l, ok := v.Members[v.Leader]; !ok || !l.Writable {
		return dcs.Request{}, fmt.Errorf("reinit: %w", refuse("there is no writable primary to copy %s from", node))
	}
	r := dcs.Request{Kind: decision.RequestReinit, To: node, Created: c.now(), Actor: c.Actor}
	return r, c.store(ctx, r, v)
}

// CheckReinit says how far the reinit of req.To has come, with the rules
// of CheckRejoin, but a reinit always leaves a record: until its agent has
// written one, the node is not done even if it streams (a standby whose
// damage streaming does not show streams before its reinit, too).
func CheckReinit(v dcs.View, req dcs.Request, records []timeline.Record) RejoinProgress {
	return checkRebuild(v, req, records, reinitRecordKind)
}
