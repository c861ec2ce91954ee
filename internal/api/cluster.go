package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
	"github.com/vigil-ha/vigil/internal/wal"
)

// clusterBody is the answer of /cluster: the DCS as this agent reads it now.
type clusterBody struct {
	Cluster      string       `json:"cluster"`
	Leader       string       `json:"leader"`
	Primary      *dcs.Primary `json:"primary"`
	Members      []memberBody `json:"members"`
	Paused       bool         `json:"paused"`
	SyncStandbys []string     `json:"sync_standbys"`
	LastLeader   dcs.Status   `json:"last_leader"`
	Request      *dcs.Request `json:"pending_request,omitempty"`
	Problems     []string     `json:"problems,omitempty"`
	Revision     int64        `json:"revision"`
	// SettingsRevision is the revision of the cluster-wide settings
	// (vigil ctl edit-config; 0: never set).
	SettingsRevision int64 `json:"settings_revision"`
}

type memberBody struct {
	Name      string        `json:"name"`
	Host      string        `json:"host"`
	Port      int           `json:"port"`
	Role      decision.Role `json:"role"`
	Leader    bool          `json:"leader"`
	Timeline  uint32        `json:"timeline"`
	WAL       wal.LSN       `json:"wal"`
	Writable  bool          `json:"writable"`
	Reachable bool          `json:"reachable"`
	Upstream  string        `json:"upstream,omitempty"`
	Isolated  bool          `json:"isolated"`
	Priority  int           `json:"priority"`
	APIURL    string        `json:"api_url,omitempty"`
	UpdatedAt time.Time     `json:"updated_at"`
	// PendingRestart names the parameters waiting for a server restart
	// ([] when none).
	PendingRestart []string `json:"pending_restart"`
	// SettingsApplied is the revision of the cluster-wide settings the
	// member's server has.
	SettingsApplied int64 `json:"settings_applied"`
}

func (s *Server) handleCluster(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.o.ClusterTimeout)
	defer cancel()
	v, err := s.o.Cluster.Snapshot(ctx)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("no answer from the DCS within %s: %w", s.o.ClusterTimeout, err)
		}
		s.writeError(w, http.StatusServiceUnavailable, fmt.Errorf("read the cluster from the DCS: %w", err))
		return
	}
	s.writeJSON(w, http.StatusOK, s.clusterBody(v))
}

func (s *Server) clusterBody(v dcs.View) clusterBody {
	b := clusterBody{
		Cluster:          s.o.ClusterName,
		Leader:           v.Leader,
		Primary:          v.Primary,
		Members:          make([]memberBody, 0, len(v.Members)),
		Paused:           v.Config.Paused,
		SyncStandbys:     v.Sync,
		LastLeader:       v.Status,
		Request:          v.Request,
		Problems:         v.Problems,
		Revision:         v.Revision,
		SettingsRevision: v.SettingsRevision,
	}
	if b.SyncStandbys == nil {
		// [] rather than null: scripts iterate over it.
		b.SyncStandbys = []string{}
	}
	for name, m := range v.Members {
		b.Members = append(b.Members, memberBody{
			Name: name, Host: m.Host, Port: m.Port, Role: m.Role, Leader: name == v.Leader,
			Timeline: m.Timeline, WAL: m.WAL, Writable: m.Writable, Reachable: m.Reachable,
			Upstream: m.Upstream, Isolated: m.Isolated, Priority: m.Priority,
			APIURL: m.APIURL, UpdatedAt: m.UpdatedAt,
			PendingRestart: append([]string{}, m.PendingRestart...), SettingsApplied: m.SettingsApplied,
		})
	}
	sort.Slice(b.Members, func(i, j int) bool { return b.Members[i].Name < b.Members[j].Name })
	return b
}
