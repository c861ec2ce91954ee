package rejoin_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/rejoin"
	"github.com/vigil-ha/vigil/internal/timeline"
)

// TestReinitRebuildsWhateverTheServerSays checks the reinit's order on a
// fake server: whatever the server shows (streaming, an unreadable or
// foreign control file, a shutdown that hangs), it is stopped and rebuilt
// by a base backup, its old data directory kept; only a failure to reach
// the upstream or to copy it stops the reinit.
func TestReinitRebuildsWhateverTheServerSays(t *testing.T) {
	up := database.Upstream{Host: "10.0.0.2", Port: 5432, SlotName: "node1"}
	all := []string{rejoin.StepReinitIdentifyUpstream, rejoin.StepReinitStop, rejoin.StepReinitInspect, rejoin.StepReinitUpstreamSlot, rejoin.StepReinitKeepNodeFiles,
		rejoin.StepReinitBaseBackup, rejoin.StepReinitConfigure, rejoin.StepReinitStart, rejoin.StepReinitWaitStreaming}
	tests := []struct {
		name      string
		srv       func() *fakeServer
		up        database.Upstream
		wantErr   string
		steps     []string
		did       []string
		inspected string // in the inspect step's evidence
	}{
		{
			name: "a standby that streams is rebuilt all the same",
			srv: func() *fakeServer {
				f := diverged()
				f.obs = database.Observation{InRecovery: true, Timeline: 2, WALReceiver: &database.WALReceiver{Status: "streaming", SenderHost: "10.0.0.2", SenderPort: 5432, SlotName: "node1"}}
				return f
			},
			steps:     all,
			did:       []string{"stop fast", "basebackup", "configure", "start"},
			inspected: "control file: system 7001, timeline 1",
		},
		{
			name: "an unreadable control file does not stop the reinit",
			srv: func() *fakeServer {
				f := diverged()
				f.running = false
				f.cdErr = errors.New("could not open file \"global/pg_control\"")
				return f
			},
			steps:     all,
			did:       []string{"basebackup", "configure", "start"},
			inspected: "control file unreadable (could not open file \"global/pg_control\"): rebuilding regardless",
		},
		{
			name:      "a control file of another system is no reason to stop either",
			srv:       func() *fakeServer { f := diverged(); f.cd.SystemID = "9999"; return f },
			steps:     all,
			did:       []string{"stop fast", "basebackup", "configure", "start"},
			inspected: "not the upstream's system 7001",
		},
		{
			name:  "a server that does not stop fast is stopped immediately",
			srv:   func() *fakeServer { f := diverged(); f.fastStopErr = errors.New("server does not shut down"); return f },
			steps: all,
			did:   []string{"stop fast", "stop immediate", "basebackup", "configure", "start"},
		},
		{
			name: "a failed base backup fails the reinit",
			srv: func() *fakeServer {
				f := diverged()
				f.backupErr = errors.New("pg_basebackup: could not connect")
				return f
			},
			wantErr: "could not connect",
			steps:   append(slices.Clone(all[:5]), rejoin.StepReinitBaseBackup+"!"),
			did:     []string{"stop fast", "basebackup"},
		},
		{
			name:    "the server itself as the upstream is refused before anything is done",
			srv:     diverged,
			up:      database.Upstream{Host: "10.0.0.1", Port: 5432},
			wantErr: "is the server itself",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := tt.srv()
			target := up
			if tt.up.Host != "" {
				target = tt.up
			}
			rec := timeline.New("reinit", "c", "node1", "node2", nil, nil)
			res, err := rejoin.Reinit(context.Background(), srv, target, rejoin.Options{Method: rejoin.Rewind}, rec)
			if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err %v, want %q", err, tt.wantErr)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "reinit node1 from ") {
				t.Errorf("err %v: want what was being done", err)
			}
			steps := rec.Record().Steps
			if got := names(steps); !slices.Equal(got, tt.steps) {
				t.Errorf("steps\n got %v\nwant %v", got, tt.steps)
			}
			if !slices.Equal(srv.did, tt.did) {
				t.Errorf("did %v, want %v", srv.did, tt.did)
			}
			if tt.inspected != "" {
				if st, ok := stepNamed(steps, rejoin.StepReinitInspect); !ok || !st.OK || !strings.Contains(st.Evidence, tt.inspected) {
					t.Errorf("inspect step %+v, want evidence with %q", st, tt.inspected)
				}
			}
			if err != nil {
				return
			}
			// The Method option is not obeyed: a reinit is a base backup.
			if res.Method != rejoin.BaseBackup || res.MovedDataDir == "" || !strings.Contains(res.Evidence, res.MovedDataDir) {
				t.Errorf("result %+v: want a base backup and where the old data directory went", res)
			}
		})
	}
}
