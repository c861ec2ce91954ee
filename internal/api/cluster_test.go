package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
)

func TestCluster(t *testing.T) {
	view := dcs.View{
		Revision: 42,
		Leader:   "node1",
		Primary:  &dcs.Primary{Node: "node1", Host: "10.0.0.1", Port: 5432, Timeline: 3, CommitLSN: "0/3000060"},
		Members: map[string]dcs.Member{
			"node2": {Member: decision.Member{Name: "node2", Role: decision.RoleStandby, Reachable: true, InRecovery: true, Timeline: 3, WAL: 0x3000000, Upstream: "node1", Isolated: true}, Host: "10.0.0.2", Port: 5433,
				PendingRestart: []string{"shared_buffers"}, SettingsApplied: 40},
			"node1": {Member: decision.Member{Name: "node1", Role: decision.RolePrimary, Reachable: true, Writable: true, Timeline: 3, WAL: 0x3000060}, Host: "10.0.0.1", Port: 5432},
		},
		Config: dcs.ClusterConfig{Paused: true},
		Sync:   []string{"node2"},
	}
	type member struct {
		Name     string   `json:"name"`
		Host     string   `json:"host"`
		Port     int      `json:"port"`
		Role     string   `json:"role"`
		Leader   bool     `json:"leader"`
		Timeline uint32   `json:"timeline"`
		WAL      string   `json:"wal"`
		Writable bool     `json:"writable"`
		Upstream string   `json:"upstream"`
		Isolated bool     `json:"isolated"`
		Pending  []string `json:"pending_restart"`
		Applied  int64    `json:"settings_applied"`
	}
	type body struct {
		Cluster      string       `json:"cluster"`
		Leader       string       `json:"leader"`
		Primary      *dcs.Primary `json:"primary"`
		Members      []member     `json:"members"`
		Paused       bool         `json:"paused"`
		SyncStandbys []string     `json:"sync_standbys"`
	}
	want := body{
		Cluster: "main",
		Leader:  "node1",
		Primary: view.Primary,
		Members: []member{
			{Name: "node1", Host: "10.0.0.1", Port: 5432, Role: "primary", Leader: true, Timeline: 3, WAL: "0/3000060", Writable: true, Pending: []string{}},
			{Name: "node2", Host: "10.0.0.2", Port: 5433, Role: "standby", Timeline: 3, WAL: "0/3000000", Upstream: "node1", Isolated: true,
				Pending: []string{"shared_buffers"}, Applied: 40},
		},
		Paused:       true,
		SyncStandbys: []string{"node2"},
	}

	s := newServer(t, writablePrimary(), func(o *Options) { o.Cluster = fakeCluster{view: view} })
	r := do(t, s, http.MethodGet, "/cluster", "", nil)
	if r.code != http.StatusOK {
		t.Fatalf("/cluster = %d: %s", r.code, r.body)
	}
	var got body
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	gotJSON, _ := json.Marshal(got)
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) {
		t.Errorf("/cluster\n got %s\nwant %s", gotJSON, wantJSON)
	}
}

func TestClusterEmptyLists(t *testing.T) {
	s := newServer(t, writablePrimary(), func(o *Options) { o.Cluster = fakeCluster{view: dcs.View{Members: map[string]dcs.Member{}}} })
	r := do(t, s, http.MethodGet, "/cluster", "", nil)
	for _, field := range []string{`"members":[]`, `"sync_standbys":[]`, `"primary":null`} {
		if !strings.Contains(string(r.body), field) {
			t.Errorf("body lacks %s: %s", field, r.body)
		}
	}
}

func TestClusterDCSErrors(t *testing.T) {
	tests := []struct {
		name    string
		src     fakeCluster
		wantMsg string
	}{
		{"read error", fakeCluster{err: errors.New("etcdserver: no leader")}, "etcdserver: no leader"},
		{"no answer", fakeCluster{block: true}, "no answer from the DCS within 50ms"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, writablePrimary(), func(o *Options) {
				o.Cluster = tc.src
				o.ClusterTimeout = 50 * time.Millisecond
			})
			start := time.Now()
			r := do(t, s, http.MethodGet, "/cluster", "", nil)
			if r.code != http.StatusServiceUnavailable {
				t.Fatalf("/cluster = %d, want 503: %s", r.code, r.body)
			}
			if time.Since(start) > 5*time.Second {
				t.Errorf("/cluster took %s: ClusterTimeout was not applied", time.Since(start))
			}
			if msg, _ := r.json(t)["error"].(string); !strings.Contains(msg, tc.wantMsg) {
				t.Errorf("error = %q, want it to contain %q", msg, tc.wantMsg)
			}
		})
	}
}
