package agent

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
	"github.com/vigil-ha/vigil/internal/pgparam"
)

// fakeParameters records what the agent applies.
type fakeParameters struct {
	applied []map[string]string
	reset   [][]string
	pending []string
	err     error
}

func (f *fakeParameters) ParameterSpecs(context.Context) (string, []pgparam.Spec, error) {
	return "15.8", nil, nil
}
func (f *fakeParameters) ApplyParameters(_ context.Context, set map[string]string, reset []string) error {
	if f.err != nil {
		return f.err
	}
	f.applied = append(f.applied, maps.Clone(set))
	f.reset = append(f.reset, reset)
	return nil
}
func (f *fakeParameters) PendingRestart(context.Context) ([]string, error) { return f.pending, nil }

// TestSettingsAppliedOncePerRevisionAndPublished: a standby's agent
// applies a new revision of the cluster-wide settings once, retries one
// that failed, and publishes the revision its server has and the
// parameters pending restart.
func TestSettingsAppliedOncePerRevisionAndPublished(t *testing.T) {
	params := &fakeParameters{err: errors.New("server shutting down")}
	a, err := New(Options{Node: "node2", Cluster: "c", Server: struct{ Server }{}, Control: &reinitControl{}, Store: &historyStore{},
		Decision: decision.Config{LeaseTTL: 3 * time.Second, LoopInterval: 300 * time.Millisecond}, Parameters: params, Clock: fixedClock{auditNow}})
	if err != nil {
		t.Fatal(err)
	}
	v := dcs.View{SettingsRevision: 5, Settings: dcs.Settings{Parameters: map[string]string{"work_mem": "8MB"}, Removed: []string{"log_connections"}}}
	up := decision.Local{Name: "node2", Running: true, Reachable: true, InRecovery: true}

	a.syncSettings(context.Background(), v, up)
	if m := a.memberRecord(up, false); m.SettingsApplied != 0 {
		t.Fatalf("a failed apply published revision %d", m.SettingsApplied)
	}
	params.err, params.pending = nil, []string{"max_connections"}
	a.syncSettings(context.Background(), v, up)
	a.syncSettings(context.Background(), v, up)
	if len(params.applied) != 1 || params.applied[0]["work_mem"] != "8MB" || !slices.Equal(params.reset[0], []string{"log_connections"}) {
		t.Fatalf("applied %v, reset %v: want revision 5 applied once after its failure", params.applied, params.reset)
	}
	m := a.memberRecord(up, false)
	if m.SettingsApplied != 5 || !slices.Equal(m.PendingRestart, []string{"max_connections"}) {
		t.Fatalf("published applied %d, pending %v", m.SettingsApplied, m.PendingRestart)
	}
	// A server that does not answer is left alone.
	v.SettingsRevision = 6
	a.syncSettings(context.Background(), v, decision.Local{Name: "node2"})
	if len(params.applied) != 1 {
		t.Fatalf("applied to an unreachable server: %v", params.applied)
	}
}
