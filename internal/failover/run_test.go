package failover

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/timeline"
)

// fakeClock is a virtual clock: Sleep moves it on at once.
// The gate runs on one goroutine.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.now = c.now.Add(d)
	return nil
}

// fakeServer answers probes from a script; the last answer repeats.
type fakeServer struct {
	probes   []database.ProbeResult
	n        int
	observed int
	obs      database.Observation
}

func (s *fakeServer) ProbeWrite(context.Context) database.ProbeResult {
	r := s.probes[min(s.n, len(s.probes)-1)]
	s.n++
	return r
}

func (s *fakeServer) Observe(context.Context) (database.Observation, error) {
	s.observed++
	return s.obs, nil
}

var (
	committed  = database.ProbeResult{Class: database.ProbeOK}
	inRecovery = func(backlog uint64) database.ProbeResult {
		return database.ProbeResult{Class: database.ProbeInRecovery, Error: "cannot execute INSERT in a read-only transaction", ReplayBacklogBytes: backlog}
	}
	syncWait = database.ProbeResult{Class: database.ProbeSyncWait, Error: "waiting for a synchronous standby"}
	timedOut = database.ProbeResult{Class: database.ProbeTimeout, Error: "timeout"}
)

func ok(ev string) StepFunc { return func(context.Context) (string, error) { return ev, nil } }

func failing(err error) StepFunc {
	return func(context.Context) (string, error) { return "", err }
}

func TestRunner(t *testing.T) {
	boom := errors.New("boom")
	plan := Pgpool()
	all := func() Steps {
		s := Steps{}
		for _, n := range plan.Names() {
			s[n] = ok(n + " done")
		}
		return s
	}
	tests := []struct {
		name     string
		plan     Plan
		change   func(Steps)
		failed   string
		ran      []string
		failures []string // steps recorded as failed
		// nested: the gate records sync_to_async inside its own step,
		// through the recorder it shares with the runner.
		nested bool
	}{
		{name: "every step", plan: plan, ran: plan.Names()},
		{
			name:   "a failed fence aborts before the promotion",
			plan:   plan,
			change: func(s Steps) { s[StepFence] = failing(boom) },
			failed: StepFence, ran: []string{StepFence}, failures: []string{StepFence},
		},
		{
			name:   "a failed gate aborts before the routes",
			plan:   plan,
			change: func(s Steps) { s[StepReadinessGate] = failing(boom) },
			failed: StepReadinessGate, ran: []string{StepFence, StepSynchronous, StepPromote, StepReadinessGate}, failures: []string{StepReadinessGate},
		},
		{
			name:   "a failed checkpoint is recorded and the plan goes on",
			plan:   plan,
			change: func(s Steps) { s[StepCheckpoint] = failing(boom) },
			ran:    plan.Names(), failures: []string{StepCheckpoint},
		},
		{
			name:   "a missing implementation fails its step",
			plan:   plan,
			change: func(s Steps) { delete(s, StepPromote) },
			failed: StepPromote, ran: []string{StepFence, StepSynchronous, StepPromote}, failures: []string{StepPromote},
		},
		{
			name: "every step of the agent's plan, companions recorded after their step",
			plan: Agent(),
			ran:  Agent().Names(),
		},
		{
			name:   "a failed probe alongside the promotion is recorded and the plan goes on",
			plan:   Agent(),
			change: func(s Steps) { s[StepRoutesProbe] = failing(boom) },
			ran:    Agent().Names(), failures: []string{StepRoutesProbe},
		},
		{
			name:   "a failed promotion ends the plan once the probe beside it has ended",
			plan:   Agent(),
			change: func(s Steps) { s[StepPromote] = failing(boom) },
			failed: StepPromote, failures: []string{StepPromote},
			ran: []string{StepIsolationGuard, StepAcquireLeader, StepFence, StepSynchronous, StepPromote, StepRoutesProbe},
		},
		{
			name:   "failed routes alongside the publication end the plan after the publication",
			plan:   Agent(),
			change: func(s Steps) { s[StepRoutesUp] = failing(boom) },
			failed: StepRoutesUp, failures: []string{StepRoutesUp},
			ran: []string{StepIsolationGuard, StepAcquireLeader, StepFence, StepSynchronous, StepPromote, StepRoutesProbe,
				StepReadinessGate, StepPublish, StepRoutesUp},
		},
		{
			name:   "a step recording a part of its work as a step of its own",
			plan:   plan,
			nested: true,
			ran:    plan.Names(),
		},
		{
			name: "the legacy plan looks its steps up by what they do",
			plan: Legacy(),
			change: func(s Steps) {
				s[DoForceRoutesUp], s[DoRequestPromote], s[StepLivenessCheck] = ok("up"), ok("asked"), ok("answered")
			},
			ran: Legacy().Names(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			steps := all()
			for _, n := range Agent().Names() {
				steps[n] = ok(n)
			}
			if tt.change != nil {
				tt.change(steps)
			}
			rec := timeline.New("failover", "c", "n1", "n0", nil, nil)
			if tt.nested {
				steps[StepReadinessGate] = func(context.Context) (string, error) {
					_ = rec.Run(StepSyncToAsync, func() (string, error) { return "cleared", nil })
					return "committed", nil
				}
			}
			res := Run(context.Background(), tt.plan, rec, steps)
			if res.Failed != tt.failed || (tt.failed == "") != res.OK() || (tt.failed != "") != (res.Err != nil) {
				t.Errorf("failed %q (err %v), want %q", res.Failed, res.Err, tt.failed)
			}
			if !slices.Equal(res.Ran, tt.ran) {
				t.Errorf("ran %v, want %v", res.Ran, tt.ran)
			}
			var recorded, failures []string
			for _, s := range rec.Record().Steps {
				recorded = append(recorded, s.Name)
				if !s.OK {
					failures = append(failures, s.Name)
				}
			}
			want := slices.Clone(tt.ran)
			if tt.nested {
				// The inner step ends first.
				want = slices.Insert(want, slices.Index(want, StepReadinessGate), StepSyncToAsync)
			}
			if !slices.Equal(recorded, want) {
				t.Errorf("recorded %v, want %v", recorded, want)
			}
			if !slices.Equal(failures, tt.failures) {
				t.Errorf("recorded failures %v, want %v", failures, tt.failures)
			}
		})
	}
}

// TestRunnerRunsCompanionsAtTheSameTime: the publication waits for the
// routes to start and the routes for the publication, which only works if
// both run at once; run one after the other they would wait forever.
func TestRunnerRunsCompanionsAtTheSameTime(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	publishing, routing := make(chan struct{}), make(chan struct{})
	meet := func(mine, theirs chan struct{}) StepFunc {
		return func(ctx context.Context) (string, error) {
			close(mine)
			select {
			case <-theirs:
				return "met", nil
			case <-ctx.Done():
				return "", fmt.Errorf("the other step never started: %w", ctx.Err())
			}
		}
	}
	plan := Agent().From(StepPublish).Without(StepStandbysFollow, StepCheckpoint)
	rec := timeline.New("failover", "c", "n1", "n0", nil, nil)
	res := Run(ctx, plan, rec, Steps{StepPublish: meet(publishing, routing), StepRoutesUp: meet(routing, publishing)})
	if !res.OK() {
		t.Fatalf("publish and routes did not run at the same time: %v", res.Err)
	}
	steps := rec.Record().Steps
	if len(steps) != 2 || steps[1].Start.After(steps[0].End) {
		t.Errorf("steps %+v: the routes should start before the publication ends", steps)
	}
}

func TestGate(t *testing.T) {
	stuck := func(database.Observation) (bool, string) { return true, "no synchronous standby left" }
	tests := []struct {
		name        string
		probes      []database.ProbeResult
		toAsyncOnce bool
		syncStuck   bool
		timeout     time.Duration
		wantErr     bool
		attempts    int
		refused     int
		asyncs      int
		observed    int
		reports     []uint64 // backlogs reported, once a second
	}{
		{name: "first write commits", probes: []database.ProbeResult{committed}, timeout: time.Minute, attempts: 1},
		{
			name:   "waits out the replay backlog and reports it",
			probes: []database.ProbeResult{inRecovery(300), inRecovery(200), inRecovery(100), committed},
			// one probe a second: every refused probe is reported
			timeout: time.Minute, attempts: 4, refused: 3, reports: []uint64{300, 200, 100},
		},
		{
			name:    "times out while the server still refuses writes",
			probes:  []database.ProbeResult{inRecovery(500)},
			timeout: 3 * time.Second, wantErr: true, attempts: 3, refused: 3, reports: []uint64{500, 500, 500},
		},
		{
			name:   "a commit waiting for a gone synchronous standby goes asynchronous, every time (agent)",
			probes: []database.ProbeResult{syncWait, syncWait, committed}, timeout: time.Minute,
			attempts: 3, asyncs: 2, reports: []uint64{0, 0},
		},
		{
			name:   "at most once when asked (Pgpool-II)",
			probes: []database.ProbeResult{syncWait, syncWait, committed}, toAsyncOnce: true, timeout: time.Minute,
			attempts: 3, asyncs: 1, reports: []uint64{0, 0},
		},
		{
			name:   "a timed-out commit stuck on a synchronous standby goes asynchronous",
			probes: []database.ProbeResult{timedOut, committed}, toAsyncOnce: true, syncStuck: true, timeout: time.Minute,
			attempts: 2, asyncs: 1, observed: 1, reports: []uint64{0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &fakeServer{probes: tt.probes}
			clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			var asyncs, probed int
			var reports []uint64
			g := Gate{
				Server: srv, Clock: clk, Timeout: tt.timeout, ProbeTimeout: time.Second, Poll: time.Second,
				ToAsync: func(context.Context, string) bool { asyncs++; return !tt.toAsyncOnce },
				Probed:  func(database.ProbeResult) { probed++ },
				Report: func(p Progress) bool {
					reports = append(reports, p.Last.ReplayBacklogBytes)
					return true
				},
			}
			if tt.syncStuck {
				g.SyncStuck = stuck
			}
			p, err := g.Wait(context.Background())
			var nr *NotReadyError
			if tt.wantErr != errors.As(err, &nr) {
				t.Fatalf("err = %v, want a NotReadyError: %v", err, tt.wantErr)
			}
			if tt.wantErr && !strings.Contains(err.Error(), fmt.Sprintf("after %d attempts (%d refused as read-only)", tt.attempts, tt.refused)) {
				t.Errorf("err = %v: the attempts and refusals are the evidence", err)
			}
			if !tt.wantErr && !p.Last.Writable() {
				t.Errorf("passed on %+v", p.Last)
			}
			if p.Attempts != tt.attempts || p.Refused != tt.refused || probed != tt.attempts {
				t.Errorf("attempts %d (probed %d), refused %d; want %d, %d", p.Attempts, probed, p.Refused, tt.attempts, tt.refused)
			}
			if asyncs != tt.asyncs || srv.observed != tt.observed {
				t.Errorf("%d to async, %d observed; want %d, %d", asyncs, srv.observed, tt.asyncs, tt.observed)
			}
			if !slices.Equal(reports, tt.reports) {
				t.Errorf("reported backlogs %v, want %v", reports, tt.reports)
			}
		})
	}
}

func TestGateReportsAtMostOnceASecond(t *testing.T) {
	srv := &fakeServer{probes: []database.ProbeResult{inRecovery(1)}}
	clk := &fakeClock{now: time.Unix(0, 0)}
	reports, offered := 0, 0
	g := Gate{Server: srv, Clock: clk, Timeout: 10 * time.Second, ProbeTimeout: time.Second, Poll: 100 * time.Millisecond,
		Report: func(p Progress) bool {
			offered++
			// decline every other offer: the next probe is offered again
			if offered%2 == 1 {
				return false
			}
			reports++
			return true
		}}
	_, err := g.Wait(context.Background())
	if err == nil {
		t.Fatal("the gate passed a server that never committed")
	}
	if reports < 9 || reports > 11 {
		t.Errorf("%d reports over 10 s, want about one a second", reports)
	}
}
