package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/internal/agent"
	"github.com/vigil-ha/vigil/internal/dcs"
)

// maxBodyBytes bounds a request body: the largest legitimate one is a
// switchover request of a few dozen bytes.
const maxBodyBytes = 64 << 10

// operatorHandler serves a mutating endpoint for by, the caller that
// authorized identified.
type operatorHandler func(w http.ResponseWriter, r *http.Request, by dcs.Actor)

// authorized guards the mutating endpoints. A client certificate verified
// against Options.ClientCAFile authorises as the token does. The order of
// the refusals is deliberate: without a token or a client CA nothing is
// open (403); an unauthenticated caller learns nothing else (401), not even
// whether the controller exists (501).
func (s *Server) authorized(next operatorHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		by, ok := s.identify(w, r)
		if !ok {
			return
		}
		if s.o.Control == nil {
			s.writeError(w, http.StatusNotImplemented, errors.New("this agent does not accept operator requests yet"))
			return
		}
		next(w, r, by)
	}
}

// identify authenticates the caller of a mutating endpoint and names them
// for the audit trail: by the subject of a verified client certificate,
// else by the name of the token they hold (never the token itself); from
// the address the request came from. A refusal is answered here.
func (s *Server) identify(w http.ResponseWriter, r *http.Request) (dcs.Actor, bool) {
	if subject, ok := s.verifiedClient(r); ok {
		s.log.Info("API request authorised by a client certificate", "path", r.URL.Path, "subject", subject, "remote", r.RemoteAddr)
		return dcs.Actor{By: "cert:" + subject, From: r.RemoteAddr}, true
	}
	if !s.tokenAuthorized(w, r) {
		return dcs.Actor{}, false
	}
	return dcs.Actor{By: "token:" + s.tokenName, From: r.RemoteAddr}, true
}

// TokenName names the holders of token in the audit trail: a fingerprint
// (the first 32 bits of its SHA-256) that tells two tokens apart but says
// nothing usable about the token, which must never be logged or stored.
// "" for no token.
func TokenName(token string) string {
	if token == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(sum[:4])
}

// verifiedClient returns the subject of the request's client certificate
// when the TLS handshake verified it against the client CA. The server
// only asks for certificates with a client CA, and refuses the handshake
// of one that does not verify.
func (s *Server) verifiedClient(r *http.Request) (string, bool) {
	if s.o.ClientCAFile == "" || r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return "", false
	}
	return r.TLS.VerifiedChains[0][0].Subject.String(), true
}

// tokenAuthorized checks the bearer token, answering the refusal itself.
func (s *Server) tokenAuthorized(w http.ResponseWriter, r *http.Request) bool {
	if s.o.Token == "" && s.o.ClientCAFile == "" {
		s.writeError(w, http.StatusForbidden, errors.New("operator endpoints are disabled: no API token is configured; set api.token_file (or api.client_ca_file)"))
		return false
	}
	if s.o.Token == "" {
		s.log.Warn("API request without a client certificate refused", "path", r.URL.Path, "remote", r.RemoteAddr)
		s.writeError(w, http.StatusUnauthorized, errors.New("a client certificate signed by api.client_ca_file is required"))
		return false
	}
	got, found := bearerToken(r.Header.Get("Authorization"))
	if !found {
		w.Header().Set("WWW-Authenticate", `Bearer realm="vigil"`)
		s.log.Warn("API request without a bearer token refused", "path", r.URL.Path, "remote", r.RemoteAddr)
		msg := "missing bearer token (Authorization: Bearer <token>)"
		if s.o.ClientCAFile != "" {
			msg += " or client certificate"
		}
		s.writeError(w, http.StatusUnauthorized, errors.New(msg))
		return false
	}
	if !tokenEqual(got, s.o.Token) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="vigil", error="invalid_token"`)
		s.log.Warn("API request with a wrong bearer token refused", "path", r.URL.Path, "remote", r.RemoteAddr)
		s.writeError(w, http.StatusUnauthorized, errors.New("invalid bearer token"))
		return false
	}
	return true
}

func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// tokenEqual compares digests so that neither the content nor the length of
// the configured token leaks through the comparison's timing.
func tokenEqual(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

type switchoverRequest struct {
	To string `json:"to"`
	At string `json:"at"`
}

type failoverRequest struct {
	To string `json:"to"`
}

func (s *Server) handleSwitchover(w http.ResponseWriter, r *http.Request, by dcs.Actor) {
	var req switchoverRequest
	if err := decodeBody(w, r, &req); err != nil {
		s.writeError(w, http.StatusBadRequest, err)
		return
	}
	var at time.Time
	if req.At != "" {
		var err error
		if at, err = time.Parse(time.RFC3339, req.At); err != nil {
			s.writeError(w, http.StatusBadRequest, fmt.Errorf("parse \"at\" as RFC 3339 (2006-01-02T15:04:05Z07:00): %w", err))
			return
		}
	}
	s.log.Info("switchover requested", "to", req.To, "at", at, "requested_by", by.By, "requested_from", by.From)
	ctx, cancel := s.controlContext(r)
	defer cancel()
	msg, err := s.o.Control.Switchover(ctx, by, req.To, at)
	s.writeControlResult(w, "switchover", msg, err)
}

func (s *Server) handleFailover(w http.ResponseWriter, r *http.Request, by dcs.Actor) {
	var req failoverRequest
	if err := decodeBody(w, r, &req); err != nil {
		s.writeError(w, http.StatusBadRequest, err)
		return
	}
	if strings.TrimSpace(req.To) == "" {
		// A manual failover picks no candidate on its own: the operator
		// overrides the automatic choice and must say which node.
		s.writeError(w, http.StatusBadRequest, errors.New(`a failover needs a target: {"to": "<member>"}`))
		return
	}
	s.log.Info("failover requested", "to", req.To, "requested_by", by.By, "requested_from", by.From)
	ctx, cancel := s.controlContext(r)
	defer cancel()
	msg, err := s.o.Control.Failover(ctx, by, req.To)
	s.writeControlResult(w, "failover", msg, err)
}

func (s *Server) handlePause(paused bool) operatorHandler {
	op, msg := "resume", "cluster resumed: automatic failover is on again"
	if paused {
		op, msg = "pause", "cluster paused: no automatic failover until resumed"
	}
	return func(w http.ResponseWriter, r *http.Request, by dcs.Actor) {
		s.log.Info(op+" requested", "requested_by", by.By, "requested_from", by.From)
		ctx, cancel := s.controlContext(r)
		defer cancel()
		s.writeControlResult(w, op, msg, s.o.Control.SetPaused(ctx, by, paused))
	}
}

// controlContext outlives the client's connection: an operator pressing
// Ctrl-C on curl must not abort a switchover half way. ControlTimeout
// still bounds it.
func (s *Server) controlContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(r.Context()), s.o.ControlTimeout)
}

// writeControlResult answers 200 with the controller's message, 409 when it
// refused because of the cluster state (ErrConflict), 504 when it ran out
// of time and 500 for anything else.
func (s *Server) writeControlResult(w http.ResponseWriter, op, msg string, err error) {
	if err == nil {
		s.log.Info(op+" accepted", "message", msg)
		s.writeJSON(w, http.StatusOK, map[string]string{"message": msg})
		return
	}
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrConflict):
		code = http.StatusConflict
	case errors.Is(err, context.DeadlineExceeded):
		code = http.StatusGatewayTimeout
	}
	s.log.Warn(op+" failed", "code", code, "err", err)
	s.writeError(w, code, fmt.Errorf("%s: %w", op, err))
}

// decodeBody reads one JSON object. Unknown fields are refused: a
// misspelt "to" would otherwise turn into a switchover to whichever node
// the controller picks.
func decodeBody(w http.ResponseWriter, r *http.Request, dst any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // no body: every field takes its default
		}
		return fmt.Errorf("decode JSON request body: %w", err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return errors.New("decode JSON request body: data after the first JSON object")
	}
	return nil
}

// handleFailsafe answers a failsafe leader's ping: 200 with the promise,
// 409 when this node may promote. It runs on every loop of a leader that
// lost the DCS, so only refusals are logged.
func (s *Server) handleFailsafe(w http.ResponseWriter, r *http.Request, _ dcs.Actor) {
	if s.o.Failsafe == nil {
		s.writeError(w, http.StatusNotImplemented, errors.New("this agent does not answer failsafe pings"))
		return
	}
	var req agent.FailsafeRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10)).Decode(&req); err != nil {
		s.writeError(w, http.StatusBadRequest, fmt.Errorf("failsafe request: %w", err))
		return
	}
	promise, err := s.o.Failsafe.ConfirmFailsafe(req.Leader)
	if err != nil {
		s.log.Warn("failsafe ping refused", "leader", req.Leader, "err", err)
		s.writeError(w, http.StatusConflict, err)
		return
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"promise_ms": promise.Milliseconds()})
}
