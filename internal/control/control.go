// Package control turns an operator's wish (switchover, manual failover,
// rejoin, pause) into a request in the DCS, after checking that the
// cluster's state allows it. The agents carry requests out; `vigil ctl` and
// the agents' HTTP API both go through here, so an operator gets the same
// answer from either. Every request and every pause or resume names who
// asked and from where (Controller.Actor): the agent that acts on it logs
// them and its history record keeps them.
package control

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
	"github.com/vigil-ha/vigil/internal/timeline"
)

// ErrRefused wraps every refusal caused by the cluster's state: retrying
// the same request unchanged will not help.
var ErrRefused = errors.New("refused")

// Store is the part of the DCS a controller needs.
type Store interface {
	Snapshot(ctx context.Context) (dcs.View, error)
	ReplaceRequest(ctx context.Context, r dcs.Request, revision int64) error
	// SetConfig stores the cluster's run-time settings together with the
	// history record of the change.
	SetConfig(ctx context.Context, c dcs.ClusterConfig, record any) error
}

func refuse(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, args...))
}

// Controller validates and stores requests. Now is the clock (time.Now when
// nil), so tests can check expiry.
type Controller struct {
	Store Store
	Now   func() time.Time
	// Actor is the operator the requests are made for: every request and
	// every pause or resume names them, for the audit trail.
	Actor dcs.Actor
	// Cluster names the cluster in the history records of pauses.
	Cluster string
}

// As is c acting for by: one controller serves every caller of an API.
func (c Controller) As(by dcs.Actor) Controller {
	c.Actor = by
	return c
}

func (c Controller) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Switchover requests a planned handover from the healthy leader to `to`
// (the best standby when empty), starting at `at` (now when zero).
func (c Controller) Switchover(ctx context.Context, to string, at time.Time) (dcs.Request, error) {
	v, err := c.Store.Snapshot(ctx)
	if err != nil {
		return dcs.Request{}, fmt.Errorf("switchover: %w", err)
	}
	if err := c.noPending(v); err != nil {
		return dcs.Request{}, fmt.Errorf("switchover: %w", err)
	}
	leader, ok := v.Members[v.Leader]
	if !ok || !leader.Writable {
		return dcs.Request{}, fmt.Errorf("switchover: %w", refuse("there is no healthy writable primary to hand over from; use a failover to a named node"))
	}
	if to != "" {
		m, ok := v.Members[to]
		switch {
		case !ok:
			return dcs.Request{}, fmt.Errorf("switchover: %w", refuse("%s is not a live member (members: %s)", to, MemberNames(v)))
		case to == v.Leader:
			return dcs.Request{}, fmt.Errorf("switchover: %w", refuse("%s is already the primary", to))
		case m.Role != decision.RoleStandby || !m.Reachable:
			return dcs.Request{}, fmt.Errorf("switchover: %w", refuse("%s is not a running standby (role %s)", to, m.Role))
		case m.Upstream != v.Leader:
			return dcs.Request{}, fmt.Errorf("switchover: %w", refuse("%s does not stream from the primary %s", to, v.Leader))
		case m.Isolated:
			return dcs.Request{}, fmt.Errorf("switchover: %w", refuse("%s cannot reach any trusted IP", to))
		}
	}
	if !at.IsZero() && at.Before(c.now().Add(-time.Minute)) {
		return dcs.Request{}, fmt.Errorf("switchover: %w", refuse("--at %s is in the past", at.Format(time.RFC3339)))
	}
	r := dcs.Request{Kind: decision.RequestSwitchover, From: v.Leader, To: to, At: at, Created: c.now(), Actor: c.Actor}
	return r, c.store(ctx, r, v)
}

// Failover requests that `to` be promoted although the cluster has no
// healthy primary. A healthy primary is refused: a switchover loses nothing.
func (c Controller) Failover(ctx context.Context, to string) (dcs.Request, error) {
	v, err := c.Store.Snapshot(ctx)
	if err != nil {
		return dcs.Request{}, fmt.Errorf("failover: %w", err)
	}
	if err := c.noPending(v); err != nil {
		return dcs.Request{}, fmt.Errorf("failover: %w", err)
	}
	m, ok := v.Members[to]
	switch {
	case to == "":
		return dcs.Request{}, fmt.Errorf("failover: %w", refuse("name the node to promote"))
	case !ok:
		return dcs.Request{}, fmt.Errorf("failover: %w", refuse("%s is not a live member (members: %s)", to, MemberNames(v)))
	case m.Role != decision.RoleStandby || !m.Reachable:
		return dcs.Request{}, fmt.Errorf("failover: %w", refuse("%s is not a running standby (role %s)", to, m.Role))
	case m.Isolated:
		return dcs.Request{}, fmt.Errorf("failover: %w", refuse("%s cannot reach any trusted IP", to))
	}
	if l, ok := v.Members[v.Leader]; ok && l.Writable {
		return dcs.Request{}, fmt.Errorf("failover: %w", refuse("%s is a healthy writable primary; use a switchover to %s, which loses no data", v.Leader, to))
	}
	r := dcs.Request{Kind: decision.RequestFailover, To: to, Created: c.now(), Actor: c.Actor}
	return r, c.store(ctx, r, v)
}

// Rejoin requests that node, a former primary or a standby that can no
// longer follow, become a standby of the writable leader.
func (c Controller) Rejoin(ctx context.Context, node string) (dcs.Request, error) {
	v, err := c.Store.Snapshot(ctx)
	if err != nil {
		return dcs.Request{}, fmt.Errorf("rejoin: %w", err)
	}
	if err := c.noPending(v); err != nil {
		return dcs.Request{}, fmt.Errorf("rejoin: %w", err)
	}
	m, ok := v.Members[node]
	switch {
	case node == "":
		return dcs.Request{}, fmt.Errorf("rejoin: %w", refuse("name the node to rejoin"))
	case !ok:
		return dcs.Request{}, fmt.Errorf("rejoin: %w", refuse("%s has no live agent (members: %s): start its agent first", node, MemberNames(v)))
	case node == v.Leader:
		return dcs.Request{}, fmt.Errorf("rejoin: %w", refuse("%s is the leader", node))
	case m.Role == decision.RoleStandby && m.Upstream == v.Leader && m.Timeline >= leaderTimeline(v):
		return dcs.Request{}, fmt.Errorf("rejoin: %w", refuse("%s already streams from the leader %s", node, v.Leader))
	}
	if l, ok := v.Members[v.Leader]; !ok || !l.Writable {
		return dcs.Request{}, fmt.Errorf("rejoin: %w", refuse("there is no writable primary to rejoin"))
	}
	r := dcs.Request{Kind: decision.RequestRejoin, To: node, Created: c.now(), Actor: c.Actor}
	return r, c.store(ctx, r, v)
}

func leaderTimeline(v dcs.View) uint32 {
	if l, ok := v.Members[v.Leader]; ok {
		return l.Timeline
	}
	return 0
}

// History record kinds of maintenance mode turned on and off.
const (
	PauseRecordKind  = "pause"
	ResumeRecordKind = "resume"
)

// SetPaused turns maintenance mode on or off, with a history record naming
// who asked; doing it twice is no error (and two records).
func (c Controller) SetPaused(ctx context.Context, paused bool) error {
	at := c.now()
	cfg := dcs.ClusterConfig{Paused: paused, ChangedBy: c.Actor, ChangedAt: at}
	if err := c.Store.SetConfig(ctx, cfg, PauseRecord(c.Cluster, cfg)); err != nil {
		return fmt.Errorf("set paused=%t: %w", paused, err)
	}
	return nil
}

// PauseRecord is the history record of cfg's pause or resume: no steps,
// no node (the whole cluster changes mode), who asked and from where.
func PauseRecord(cluster string, cfg dcs.ClusterConfig) timeline.Record {
	kind, reason := ResumeRecordKind, "maintenance mode off: automatic failover again"
	if cfg.Paused {
		kind, reason = PauseRecordKind, "maintenance mode on: no automatic failover until resumed"
	}
	by := cfg.ChangedBy.OrUnknown()
	return timeline.Record{
		ID:   fmt.Sprintf("%s-%s", kind, cfg.ChangedAt.UTC().Format("20060102T150405.000Z")),
		Kind: kind, Cluster: cluster, Reason: reason,
		Start: cfg.ChangedAt, End: cfg.ChangedAt, OK: true,
		RequestedBy: by.By, RequestedFrom: by.From,
	}
}

// OperatorActor names the operator of `vigil ctl` for the audit trail: by
// the subject of the client certificate it shows etcd, else by its etcd
// user, else by its OS user; from the OS account and host it runs on,
// which a certificate shared by several people does not tell.
func OperatorActor(certSubject, etcdUser, osUser, host string) dcs.Actor {
	if osUser == "" {
		osUser = dcs.Unknown
	}
	if host == "" {
		host = dcs.Unknown
	}
	where := osUser + "@" + host
	switch {
	case certSubject != "":
		return dcs.Actor{By: "cert:" + certSubject, From: where}
	case etcdUser != "":
		return dcs.Actor{By: "etcd-user:" + etcdUser, From: where}
	default:
		return dcs.Actor{By: "os:" + where, From: where}
	}
}

// noPending refuses a new request while another one still stands: one
// operation at a time, and nobody silently cancels a colleague's.
func (c Controller) noPending(v dcs.View) error {
	r := v.Request
	if r == nil || !decision.RequestActive(r.Created, r.At, c.now()) {
		return nil // none, or expired: the agents ignore it, so may we
	}
	to := r.To
	if to == "" {
		to = "the best standby"
	}
	return refuse("a %s to %s requested at %s is still pending", r.Kind, to, r.Created.Format(time.RFC3339))
}

func (c Controller) store(ctx context.Context, r dcs.Request, v dcs.View) error {
	if err := c.Store.ReplaceRequest(ctx, r, v.RequestRevision); err != nil {
		if errors.Is(err, dcs.ErrRequestChanged) {
			return fmt.Errorf("%s: %w", r.Kind, refuse("another request was stored at the same time; look at the cluster and retry"))
		}
		return fmt.Errorf("%s: %w", r.Kind, err)
	}
	return nil
}

// MemberNames lists the live members, sorted.
func MemberNames(v dcs.View) string {
	names := make([]string, 0, len(v.Members))
	for n := range v.Members {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
