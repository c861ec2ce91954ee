package rejoin_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/pgctl"
	"github.com/vigil-ha/vigil/internal/rejoin"
	"github.com/vigil-ha/vigil/internal/timeline"
)

// fakeServer is a rejoin.Server whose answers a test sets; it logs the
// operations that change something.
type fakeServer struct {
	obs       database.Observation
	cd        pgctl.ControlData
	rewind    database.RewindReport
	rewindErr error
	backupErr error
	// cdErr fails ControlData (a damaged control file); fastStopErr a
	// fast shutdown.
	cdErr       error
	fastStopErr error
	running     bool
	did         []string
}

func (f *fakeServer) Self() database.Self {
	return database.Self{Name: "node1", Host: "10.0.0.1", Port: 5432, DefaultDatabase: "postgres", RewindBinary: "pg_rewind"}
}
func (f *fakeServer) Observe(context.Context) (database.Observation, error) { return f.obs, nil }
func (f *fakeServer) Status(context.Context) (bool, int, error)             { return f.running, 42, nil }
func (f *fakeServer) Stop(_ context.Context, mode pgctl.StopMode) error {
	f.did = append(f.did, "stop "+string(mode))
	if mode == pgctl.Fast && f.fastStopErr != nil {
		return f.fastStopErr
	}
	f.running = false
	return nil
}
func (f *fakeServer) Start(context.Context) error {
	f.did = append(f.did, "start")
	f.running = true
	return nil
}
func (f *fakeServer) ControlData(context.Context) (pgctl.ControlData, error) { return f.cd, f.cdErr }
func (f *fakeServer) IdentifyUpstream(context.Context, database.Upstream) (database.UpstreamIdentity, error) {
	return database.UpstreamIdentity{SystemID: "7001", Timeline: 2, LSN: 0x5000000,
		History: []database.TimelineSwitch{{Timeline: 1, SwitchPoint: 0x3000000}}}, nil
}
func (f *fakeServer) EnsureUpstreamSlot(context.Context, database.Upstream) (bool, error) {
	return false, nil
}
func (f *fakeServer) CheckpointIfStale(context.Context, database.ConnConfig, string) (string, error) {
	return "", errors.New("connection refused")
}
func (f *fakeServer) KeepNodeFiles([]string) (database.KeptFiles, error) {
	return database.KeptFiles{}, nil
}
func (f *fakeServer) Rewind(context.Context, database.ConnConfig, string, database.KeptFiles) (database.RewindReport, error) {
	f.did = append(f.did, "rewind")
	return f.rewind, f.rewindErr
}
func (f *fakeServer) BaseBackup(context.Context, database.Upstream, database.KeptFiles) (string, string, error) {
	f.did = append(f.did, "basebackup")
	if f.backupErr != nil {
		return "", "", f.backupErr
	}
	return "/data.vigil-rejoin-1", "copied 100 kB", nil
}
func (f *fakeServer) ConfigureStandby(database.Upstream) (string, error) {
	f.did = append(f.did, "configure")
	return "standby.signal", nil
}
func (f *fakeServer) WaitStreaming(context.Context, string, int) error { return nil }

// diverged is an old primary that wrote past the upstream's switch point.
func diverged() *fakeServer {
	return &fakeServer{running: true, cd: pgctl.ControlData{SystemID: "7001", State: "shut down", Timeline: 1, CheckpointLSN: "0/4000000"}}
}

func names(steps []timeline.Step) []string {
	var out []string
	for _, s := range steps {
		n := s.Name
		if !s.OK {
			n += "!"
		}
		out = append(out, n)
	}
	return out
}

// TestRunOrderAndFallbacks checks the procedure's order and its fallbacks
// against a fake server: which steps run, what the server was made to do,
// and what the result says.
func TestRunOrderAndFallbacks(t *testing.T) {
	up := database.Upstream{Host: "10.0.0.2", Port: 5432, SlotName: "node1"}
	rewound := database.RewindReport{Required: true, DivergedAt: 0x3000000, DivergedTimeline: 1, CommonCheckpoint: 0x2000000, Summary: "diverged at 0/3000000 on timeline 1"}
	tests := []struct {
		name    string
		srv     func() *fakeServer
		method  rejoin.Method
		wantErr string
		method2 rejoin.Method // the result's
		steps   []string
		did     []string
	}{
		{
			name: "a server already streaming from the upstream is left alone",
			srv: func() *fakeServer {
				f := diverged()
				f.obs = database.Observation{InRecovery: true, Timeline: 2, WALReceiver: &database.WALReceiver{Status: "streaming", SenderHost: "10.0.0.2", SenderPort: 5432, SlotName: "node1"}}
				return f
			},
			method2: rejoin.None,
			steps:   []string{rejoin.StepCheckStreaming},
		},
		{
			name:    "rewind",
			srv:     func() *fakeServer { f := diverged(); f.rewind = rewound; return f },
			method2: rejoin.Rewind,
			steps: []string{rejoin.StepCheckStreaming, rejoin.StepIdentifyUpstream, rejoin.StepStop, rejoin.StepAssess, rejoin.StepUpstreamSlot, rejoin.StepKeepNodeFiles,
				rejoin.StepCheckpointUp, rejoin.StepRewind, rejoin.StepConfigure, rejoin.StepStart, rejoin.StepWaitStreaming},
			did: []string{"stop fast", "rewind", "configure", "start"},
		},
		{
			name:    "a failed rewind falls back to a base backup",
			srv:     func() *fakeServer { f := diverged(); f.rewindErr = errors.New("could not find WAL"); return f },
			method2: rejoin.BaseBackup,
			steps: []string{rejoin.StepCheckStreaming, rejoin.StepIdentifyUpstream, rejoin.StepStop, rejoin.StepAssess, rejoin.StepUpstreamSlot, rejoin.StepKeepNodeFiles,
				rejoin.StepCheckpointUp, rejoin.StepRewind + "!", rejoin.StepStopAfterRewind, rejoin.StepBaseBackup, rejoin.StepConfigure, rejoin.StepStart, rejoin.StepWaitStreaming},
			did: []string{"stop fast", "rewind", "basebackup", "configure", "start"},
		},
		{
			name:    "rewind only: a failed rewind fails the rejoin, the server stays down",
			srv:     func() *fakeServer { f := diverged(); f.rewindErr = errors.New("could not find WAL"); return f },
			method:  rejoin.Rewind,
			wantErr: "could not find WAL",
			steps: []string{rejoin.StepCheckStreaming, rejoin.StepIdentifyUpstream, rejoin.StepStop, rejoin.StepAssess, rejoin.StepUpstreamSlot, rejoin.StepKeepNodeFiles,
				rejoin.StepCheckpointUp, rejoin.StepRewind + "!"},
			did: []string{"stop fast", "rewind"},
		},
		{
			name: "pg_rewind's \"no rewind required\" is not believed for a server that diverged",
			srv: func() *fakeServer {
				f := diverged()
				f.rewind = database.RewindReport{Summary: "no rewind required"}
				return f
			},
			method:  rejoin.Rewind,
			wantErr: "reported no rewind required, but the server diverged",
			steps: []string{rejoin.StepCheckStreaming, rejoin.StepIdentifyUpstream, rejoin.StepStop, rejoin.StepAssess, rejoin.StepUpstreamSlot, rejoin.StepKeepNodeFiles,
				rejoin.StepCheckpointUp, rejoin.StepRewind + "!"},
			did: []string{"stop fast", "rewind"},
		},
		{
			name:    "another cluster's server is refused before its data is touched",
			srv:     func() *fakeServer { f := diverged(); f.cd.SystemID = "9999"; return f },
			wantErr: "refusing to replace its data",
			steps:   []string{rejoin.StepCheckStreaming, rejoin.StepIdentifyUpstream, rejoin.StepStop, rejoin.StepAssess + "!"},
			did:     []string{"stop fast"},
		},
		{
			name:    "base backup asked for",
			srv:     diverged,
			method:  rejoin.BaseBackup,
			method2: rejoin.BaseBackup,
			steps: []string{rejoin.StepCheckStreaming, rejoin.StepIdentifyUpstream, rejoin.StepStop, rejoin.StepAssess, rejoin.StepUpstreamSlot, rejoin.StepKeepNodeFiles,
				rejoin.StepBaseBackup, rejoin.StepConfigure, rejoin.StepStart, rejoin.StepWaitStreaming},
			did: []string{"stop fast", "basebackup", "configure", "start"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := tt.srv()
			rec := timeline.New("rejoin", "c", "node1", "node2", nil, nil)
			res, err := rejoin.Run(context.Background(), srv, up, rejoin.Options{Method: tt.method}, rec)
			if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err %v, want %q", err, tt.wantErr)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "rejoin node1 to 10.0.0.2:5432: ") {
				t.Errorf("err %v: want what was being done", err)
			}
			steps := rec.Record().Steps
			if got := names(steps); !slices.Equal(got, tt.steps) {
				t.Errorf("steps\n got %v\nwant %v", got, tt.steps)
			}
			if !slices.Equal(srv.did, tt.did) {
				t.Errorf("did %v, want %v", srv.did, tt.did)
			}
			if res.Method != tt.method2 {
				t.Errorf("method %q, want %q", res.Method, tt.method2)
			}
			// A source whose control file cannot be read is not fatal.
			if st, ok := stepNamed(steps, rejoin.StepCheckpointUp); ok && (!st.OK || !strings.HasPrefix(st.Evidence, "not checked: ")) {
				t.Errorf("checkpoint step %+v", st)
			}
			if tt.method2 == rejoin.BaseBackup && (res.MovedDataDir == "" || !strings.Contains(res.Evidence, res.MovedDataDir)) {
				t.Errorf("base backup result %+v: want where the old data directory went", res)
			}
		})
	}
}
