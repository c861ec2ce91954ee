package agent

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/bootstrap"
	"github.com/vigil-ha/vigil/internal/clock"
	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
	"github.com/vigil-ha/vigil/internal/rejoin"
)

// fakeBuilder records what the agent asked of it.
type fakeBuilder struct {
	mu         sync.Mutex
	bootstraps int
	clones     []string
	err        error
	// cloneBlocks and bootstrapBlocks: the build waits for its context
	// to end, as a copy from a primary that died would.
	cloneBlocks, bootstrapBlocks bool
	// bootstrapTakes: the bootstrap lasts this many of the agent's loops
	// (its context permitting).
	bootstrapTakes int
}

func (b *fakeBuilder) NoData() (bool, error) { return true, nil }

func (b *fakeBuilder) Bootstrap(ctx context.Context, _ []string, rec rejoin.Recorder) (string, error) {
	b.mu.Lock()
	b.bootstraps++
	b.mu.Unlock()
	return "42", rec.Run(bootstrap.StepInitDB, func() (string, error) {
		if b.bootstrapBlocks {
			<-ctx.Done()
			return "", ctx.Err()
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(time.Duration(b.bootstrapTakes) * buildLoop):
		}
		return "initdb", b.err
	})
}

func (b *fakeBuilder) Clone(ctx context.Context, up database.Upstream, rec rejoin.Recorder, progress func(bootstrap.Progress)) (string, error) {
	b.mu.Lock()
	b.clones = append(b.clones, up.Host)
	b.mu.Unlock()
	progress(bootstrap.Progress{BytesDone: 1, BytesTotal: 2, ETA: -1})
	if b.cloneBlocks {
		<-ctx.Done()
		return "", ctx.Err()
	}
	return "streaming", nil
}

// initStore is a DCS with an initialize key and a history.
type initStore struct {
	historyStore
	mu                       sync.Mutex
	taken                    bool
	finished                 *dcs.Initialize
	released                 int
	view                     dcs.View
	published                []dcs.Member
	acquireErr, finishResult error
	renewErr                 error
}

func (s *initStore) AcquireInitialize(context.Context, string, time.Time) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.acquireErr != nil || s.taken {
		return false, s.acquireErr
	}
	s.taken = true
	return true, nil
}
func (s *initStore) RenewInitialize(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.renewErr
}
func (s *initStore) FinishInitialize(_ context.Context, rec dcs.Initialize) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.finished = &rec
	return s.finishResult
}
func (s *initStore) ReleaseInitialize(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.released++
	return nil
}
func (s *initStore) Snapshot(context.Context) (dcs.View, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.view, nil
}
func (s *initStore) PublishMember(_ context.Context, m dcs.Member) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.published = append(s.published, m)
	return nil
}

// buildLoop is the loop interval of the agents these tests build.
const buildLoop = 10 * time.Millisecond

func buildAgent(b Builder, s *initStore) *Agent {
	var buf bytes.Buffer
	a := auditAgent(&buf)
	a.clock = clock.Real{}
	a.o.Cluster, a.o.DCSTimeout, a.o.Builder, a.o.Initializer, a.o.Store = "c", time.Second, b, s, s
	a.o.Decision.LoopInterval = buildLoop
	a.lease = &leaseKeeper{}
	return a
}

// TestBootstrapOnlyByTheInitializeKeysWinner: an agent that loses the
// initialize key builds nothing and records nothing; the winner creates
// the cluster and makes the key permanent with the system identifier;
// a failed bootstrap gives the key up and is recorded as failed.
func TestBootstrapOnlyByTheInitializeKeysWinner(t *testing.T) {
	lost := &initStore{taken: true}
	b := &fakeBuilder{}
	if err := buildAgent(b, lost).runBootstrap(context.Background(), dcs.View{}, "why"); err != nil || b.bootstraps != 0 || len(lost.records) != 0 {
		t.Fatalf("loser: err %v, %d bootstraps, %d records; want none", err, b.bootstraps, len(lost.records))
	}

	won := &initStore{}
	if err := buildAgent(b, won).runBootstrap(context.Background(), dcs.View{}, "why"); err != nil {
		t.Fatal(err)
	}
	if b.bootstraps != 1 || won.finished == nil || won.finished.SystemID != "42" || won.finished.Node != "node2" {
		t.Fatalf("winner: %d bootstraps, initialize key finished as %+v", b.bootstraps, won.finished)
	}
	if len(won.records) != 1 || won.records[0].Kind != "bootstrap" || !won.records[0].OK {
		t.Fatalf("winner's records %+v", won.records)
	}

	failing := &initStore{}
	fb := &fakeBuilder{err: errors.New("disk full")}
	if err := buildAgent(fb, failing).runBootstrap(context.Background(), dcs.View{}, "why"); err == nil {
		t.Fatal("a failed bootstrap reported no error")
	}
	if failing.released != 1 || failing.finished != nil || len(failing.records) != 1 || failing.records[0].OK {
		t.Fatalf("failed bootstrap: released %d, finished %+v, records %+v", failing.released, failing.finished, failing.records)
	}
}

// TestCloneAbandonedWhenTheLeaderChanges: a clone whose primary is no
// longer the writable leader is cancelled, recorded as abandoned, and the
// member's published state showed the clone's progress meanwhile.
func TestCloneAbandonedWhenTheLeaderChanges(t *testing.T) {
	leader := dcs.Member{Member: decision.Member{Name: "node1", Writable: true}, Host: "10.0.0.1", Port: 5432}
	s := &initStore{view: dcs.View{Leader: "node3", Members: map[string]dcs.Member{"node1": leader}}}
	b := &fakeBuilder{cloneBlocks: true}
	a := buildAgent(b, s)
	start := dcs.View{Leader: "node1", Members: map[string]dcs.Member{"node1": leader}}
	err := a.runClone(context.Background(), start, "node1", "no data directory")
	if !errors.Is(err, errLeaderChanged) {
		t.Fatalf("runClone = %v, want the leader change", err)
	}
	if len(b.clones) != 1 || b.clones[0] != "10.0.0.1" {
		t.Fatalf("clones %v", b.clones)
	}
	if len(s.records) != 1 || s.records[0].Kind != "clone" || s.records[0].OK || !strings.Contains(s.records[0].Reason, "no longer the leader") {
		t.Fatalf("records %+v", s.records)
	}
	var sawProgress bool
	for _, m := range s.published {
		if m.Phase == "clone" && m.Clone != nil && m.Clone.From == "node1" && m.Clone.BytesTotal == 2 && m.Clone.ETASeconds == -1 {
			sawProgress = true
		}
		if m.Role != decision.RoleStopped {
			t.Errorf("a node being cloned published role %s", m.Role)
		}
	}
	if !sawProgress {
		t.Errorf("no published member record carried the clone's progress: %+v", s.published)
	}
	// The next clone is not delayed: the failure was the primary's.
	if !a.buildMayRun() {
		t.Error("a clone abandoned for a leader change delays the next one")
	}
}

// TestBootstrapStopsWhenTheInitializeKeyIsLost: a renewal that times out
// does not stop a bootstrap, a key found lost does: another node may be
// creating the cluster.
func TestBootstrapStopsWhenTheInitializeKeyIsLost(t *testing.T) {
	transient := &initStore{renewErr: context.DeadlineExceeded}
	b := &fakeBuilder{bootstrapTakes: 10}
	if err := buildAgent(b, transient).runBootstrap(context.Background(), dcs.View{}, "why"); err != nil || transient.finished == nil {
		t.Fatalf("a slow renewal stopped the bootstrap: %v (finished %+v)", err, transient.finished)
	}
	lost := &initStore{renewErr: dcs.ErrNotInitializer}
	blocked := &fakeBuilder{bootstrapBlocks: true}
	err := buildAgent(blocked, lost).runBootstrap(context.Background(), dcs.View{}, "why")
	if !errors.Is(err, dcs.ErrNotInitializer) || lost.finished != nil {
		t.Fatalf("bootstrap with its key lost: %v (finished %+v), want ErrNotInitializer and no finish", err, lost.finished)
	}
	if len(lost.records) != 1 || lost.records[0].OK {
		t.Fatalf("records %+v", lost.records)
	}
}
