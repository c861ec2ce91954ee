package dcs

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// RestartPlan is a rolling restart (`vigil ctl restart`): the members in
// Order restart one at a time, standbys first, each back to streaming
// before the next; the leader's turn is a switchover, in which it restarts
// as a standby. The leader's agent advances the plan; each member's agent
// restarts its own server on its turn, so a plan survives the command that
// made it (--scheduled).
type RestartPlan struct {
	ID    string   `json:"id"`
	Order []string `json:"order"`
	// At is when the plan may start (zero: at once).
	At time.Time `json:"at,omitzero"`
	// Current is the member whose turn it is ("" between turns), Phase
	// what that turn is: RestartPhaseRestart or RestartPhaseSwitchover.
	Current string `json:"current,omitempty"`
	Phase   string `json:"phase,omitempty"`
	// TurnStarted is when Current's turn began.
	TurnStarted time.Time `json:"turn_started,omitzero"`
	// Done are the members whose turn is over.
	Done    []string  `json:"done,omitempty"`
	Created time.Time `json:"created"`
	Actor   Actor     `json:"actor,omitzero"`
}

// Phases of a member's turn in a RestartPlan.
const (
	RestartPhaseRestart    = "restart"
	RestartPhaseSwitchover = "switchover"
)

// ReplaceRestart stores p (nil: removes the plan) only if the plan key is
// still at revision (0: absent), with record (when not nil) as a history
// record at recordAt. A plan is advanced by one agent at a time; the
// revision keeps a plan replaced meanwhile from being overwritten.
func (s *Store) ReplaceRestart(ctx context.Context, p *RestartPlan, revision int64, recordAt time.Time, record any) error {
	op := clientv3.OpDelete(s.key("restart"))
	if p != nil {
		data, err := json.Marshal(p)
		if err != nil {
			return err
		}
		op = clientv3.OpPut(s.key("restart"), string(data))
	}
	ops, err := s.withRecord([]clientv3.Op{op}, recordAt, record)
	if err != nil {
		return err
	}
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(s.key("restart")), "=", revision)).
		Then(ops...).
		Commit()
	if err != nil {
		return fmt.Errorf("write restart plan: %w", s.diag.explain(err))
	}
	if !resp.Succeeded {
		return fmt.Errorf("write restart plan: %w", ErrRequestChanged)
	}
	return nil
}
