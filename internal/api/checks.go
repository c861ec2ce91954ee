package api

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/internal/agent"
	"github.com/vigil-ha/vigil/internal/decision"
)

// statusBody is the answer of the role endpoints: the agent's status with
// "reason" explaining the status code. agent.Status names the decision
// core's reason "reason" too; it moves to "decision_reason" so that the
// explanation of the code, which is what an operator reading a failing
// health check wants, keeps the obvious name.
type statusBody struct {
	agent.Status
	Reason         string `json:"reason"`
	DecisionReason string `json:"decision_reason"`
}

func (s *Server) handlePrimary(w http.ResponseWriter, r *http.Request) {
	st := s.o.Agent.Status()
	ok, why := s.primaryCheck(st, time.Now())
	s.writeStatus(w, ok, st, why)
}

func (s *Server) handleReplica(w http.ResponseWriter, r *http.Request) {
	limit, err := s.lagLimit(r)
	if err != nil {
		s.writeError(w, http.StatusBadRequest, err)
		return
	}
	st := s.o.Agent.Status()
	ok, why := s.replicaCheck(st, time.Now(), limit)
	s.writeStatus(w, ok, st, why)
}

func (s *Server) handleReadOnly(w http.ResponseWriter, r *http.Request) {
	limit, err := s.lagLimit(r)
	if err != nil {
		s.writeError(w, http.StatusBadRequest, err)
		return
	}
	st := s.o.Agent.Status()
	now := time.Now()
	if ok, why := s.primaryCheck(st, now); ok {
		s.writeStatus(w, true, st, why)
		return
	}
	ok, why := s.replicaCheck(st, now, limit)
	s.writeStatus(w, ok, st, why)
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	st := s.o.Agent.Status()
	ok, why := s.healthCheck(st, time.Now())
	s.writeStatus(w, ok, st, why)
}

// fresh fails a status that no recent loop produced.
func (s *Server) fresh(st agent.Status, now time.Time) (bool, string) {
	if st.UpdatedAt.IsZero() {
		return false, "the agent has not completed a loop yet"
	}
	if age := now.Sub(st.UpdatedAt); age > s.o.StaleAfter {
		return false, fmt.Sprintf("the agent's last loop was %s ago (limit %s): its status is no evidence", age.Round(time.Millisecond), s.o.StaleAfter)
	}
	return true, ""
}

// primaryCheck passes only a node that may receive writes: a leader still
// promoting or in its readiness gate holds the key but fails, because
// sending clients there would fail their writes or, worse, make them wait
// on a server that is replaying a backlog.
func (s *Server) primaryCheck(st agent.Status, now time.Time) (bool, string) {
	if ok, why := s.fresh(st, now); !ok {
		return false, why
	}
	switch {
	case st.Writable && st.HoldsLeader:
		return true, "holds the leader key and its last write probe committed"
	case st.HoldsLeader:
		why := "holds the leader key but is not writable yet (promotion or readiness gate in progress)"
		if st.LastProbe != nil {
			why += "; last write probe: " + string(st.LastProbe.Class)
		}
		return false, why
	case roleOf(st) == decision.RolePrimary:
		return false, "runs as primary without the leader key: clients must not be sent here"
	case st.Leader == "":
		return false, "not the leader; the cluster has no leader"
	default:
		return false, fmt.Sprintf("not the leader; the leader is %s", st.Leader)
	}
}

// replicaCheck passes a standby that streams and is within limit bytes of
// the leader. Pause does not matter: it stops failovers, not replication.
func (s *Server) replicaCheck(st agent.Status, now time.Time, limit uint64) (bool, string) {
	if ok, why := s.fresh(st, now); !ok {
		return false, why
	}
	switch role := roleOf(st); {
	case role != decision.RoleStandby:
		return false, fmt.Sprintf("role is %s, not standby", role)
	case !st.Streaming:
		return false, "standby is not streaming from its upstream"
	case st.LagBytes > limit:
		return false, fmt.Sprintf("lag of %d bytes exceeds the limit of %d bytes", st.LagBytes, limit)
	default:
		return true, fmt.Sprintf("streaming standby, lag of %d bytes within the limit of %d bytes", st.LagBytes, limit)
	}
}

// healthCheck is liveness, not readiness: the agent loops and its database
// runs, whatever its role.
func (s *Server) healthCheck(st agent.Status, now time.Time) (bool, string) {
	if ok, why := s.fresh(st, now); !ok {
		return false, why
	}
	switch role := roleOf(st); role {
	case decision.RoleStopped:
		return false, "the database is stopped"
	case decision.RoleUnknown:
		return false, "the database state is unknown: it runs but does not answer SQL"
	default:
		return true, fmt.Sprintf("the agent loops and the database runs as %s", role)
	}
}

// roleOf treats the empty role of a status no loop has filled as unknown.
func roleOf(st agent.Status) decision.Role {
	if st.Role == "" {
		return decision.RoleUnknown
	}
	return st.Role
}

func (s *Server) lagLimit(r *http.Request) (uint64, error) {
	v := r.URL.Query().Get("lag")
	if v == "" {
		return s.o.DefaultMaxLagBytes, nil
	}
	n, err := parseBytes(v)
	if err != nil {
		return 0, fmt.Errorf("parse ?lag=: %w", err)
	}
	return n, nil
}

// parseBytes reads a size such as "1048576", "16MB" or "1 GiB". Units are
// powers of 1024, as in PostgreSQL's settings ("16MB" of WAL is one
// default segment), whether written kB, KB or KiB.
func parseBytes(v string) (uint64, error) {
	s := strings.TrimSpace(v)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("%q is not a size: want a whole number of bytes, optionally followed by kB, MB, GB or TB", v)
	}
	n, err := strconv.ParseUint(s[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size: %w", v, err)
	}
	var mult uint64
	switch strings.ToLower(strings.TrimSpace(s[i:])) {
	case "", "b":
		mult = 1
	case "k", "kb", "kib":
		mult = 1 << 10
	case "m", "mb", "mib":
		mult = 1 << 20
	case "g", "gb", "gib":
		mult = 1 << 30
	case "t", "tb", "tib":
		mult = 1 << 40
	default:
		return 0, fmt.Errorf("%q has an unknown unit: want B, kB, MB, GB or TB", v)
	}
	if n > math.MaxUint64/mult {
		return 0, fmt.Errorf("%q is too large", v)
	}
	return n * mult, nil
}

func (s *Server) writeStatus(w http.ResponseWriter, ok bool, st agent.Status, why string) {
	code := http.StatusOK
	if !ok {
		code = http.StatusServiceUnavailable
	}
	s.writeJSON(w, code, statusBody{Status: st, Reason: why, DecisionReason: st.Reason})
}

func (s *Server) writeError(w http.ResponseWriter, code int, err error) {
	s.writeJSON(w, code, map[string]string{"error": err.Error()})
}

// writeJSON encodes before writing the header so that an encoding failure
// can still become a 500 instead of a truncated 200.
func (s *Server) writeJSON(w http.ResponseWriter, code int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		s.log.Error("encode API response", "err", err)
		http.Error(w, "encode response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	// A cached health answer is a wrong health answer.
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	// A write error means the client went away; there is no one to tell.
	_, _ = w.Write(append(data, '\n'))
}
