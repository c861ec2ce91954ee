package agent

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
	"github.com/vigil-ha/vigil/internal/rejoin"
	"github.com/vigil-ha/vigil/internal/timeline"
)

// reinitControl is a Control whose Reinit answers as a test sets; the
// other methods are not called by runReinit.
type reinitControl struct {
	Control
	res rejoin.Result
	err error
	up  database.Upstream
}

func (c *reinitControl) Reinit(_ context.Context, up database.Upstream, _ rejoin.Options, rec rejoin.Recorder) (rejoin.Result, error) {
	c.up = up
	_ = rec.Run(rejoin.StepReinitBaseBackup, func() (string, error) { return "copied", c.err })
	return c.res, c.err
}

// historyStore is a Store that keeps the history records and request
// clearings runReinit makes.
type historyStore struct {
	Store
	records []timeline.Record
	cleared []int64
}

func (s *historyStore) AppendHistory(_ context.Context, _ time.Time, record any) error {
	s.records = append(s.records, record.(timeline.Record))
	return nil
}

func (s *historyStore) ClearRequest(_ context.Context, revision int64) error {
	s.cleared = append(s.cleared, revision)
	return nil
}

// TestReinitIsRecordedForWhoAskedAndClearsTheRequest: the agent's reinit
// copies from the leader's published address, writes a "reinit" history
// record naming the operator and where the old data directory went, and
// clears the request whether the reinit worked or not.
func TestReinitIsRecordedForWhoAskedAndClearsTheRequest(t *testing.T) {
	for _, failed := range []bool{false, true} {
		var buf bytes.Buffer
		a := auditAgent(&buf)
		ctl := &reinitControl{res: rejoin.Result{Method: rejoin.BaseBackup, MovedDataDir: "/data.vigil-rejoin-1", Evidence: "rebuilt; old data directory kept at /data.vigil-rejoin-1"}}
		if failed {
			ctl.res.Evidence = ""
			ctl.err = errors.New("the server does not stream")
		}
		store := &historyStore{}
		a.o.Control, a.o.Store, a.o.Cluster, a.o.DCSTimeout = ctl, store, "c", time.Second
		view := dcs.View{
			Leader:          "node1",
			Members:         map[string]dcs.Member{"node1": {Member: decision.Member{Name: "node1"}, Host: "10.0.0.1", Port: 5432}},
			Request:         &dcs.Request{Kind: decision.RequestReinit, To: "node2", Created: auditNow.Add(-time.Second), Actor: bob},
			RequestRevision: 7,
		}
		a.startAction(view, decision.Action{Kind: decision.Reinit, Target: "node1", Requested: true})
		err := a.runReinit(context.Background(), view, "node1", "the operator's reinit request")
		if (err != nil) != failed {
			t.Fatalf("failed=%v: runReinit = %v", failed, err)
		}
		if ctl.up.Host != "10.0.0.1" || ctl.up.Port != 5432 || ctl.up.SlotName != "node2" {
			t.Errorf("failed=%v: copied from %+v, want the leader's address and this node's slot", failed, ctl.up)
		}
		if len(store.records) != 1 {
			t.Fatalf("failed=%v: %d records, want 1", failed, len(store.records))
		}
		rec := store.records[0]
		if rec.Kind != "reinit" || rec.Node != "node2" || rec.OK == failed || rec.RequestedBy != bob.By || rec.RequestedFrom != bob.From {
			t.Errorf("failed=%v: record %+v", failed, rec)
		}
		if !strings.Contains(rec.Reason, "the operator's reinit request") || !strings.Contains(rec.Reason, "/data.vigil-rejoin-1") {
			t.Errorf("failed=%v: record's reason %q: want why and where the old data directory is", failed, rec.Reason)
		}
		if len(store.cleared) != 1 || store.cleared[0] != 7 {
			t.Errorf("failed=%v: request clearings %v, want one at revision 7", failed, store.cleared)
		}
	}
}
