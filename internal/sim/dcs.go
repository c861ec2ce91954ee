package sim

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/vigil-ha/vigil/internal/dcs"
)

// DCS is an in-memory etcd holding one cluster's keys, with leases on the
// virtual clock. It mirrors dcs.Store key for key: the leader key and the
// writable-primary record live under the leader's lease, each member's key
// under its own; the leader key is created only if absent.
type DCS struct {
	w      *World
	down   bool // quorum lost: nobody reaches it, and no lease expires
	rev    int64
	leases map[int64]time.Time // expiry
	nextID int64

	leader      string
	leaderLease int64
	primary     *dcs.Primary
	members     map[string]memberKey
	sync        []string
	status      dcs.Status
	request     *dcs.Request
	requestRev  int64
	paused      bool
	history     int
}

type memberKey struct {
	m     dcs.Member
	lease int64
}

func newDCS(w *World) *DCS {
	return &DCS{w: w, leases: map[int64]time.Time{}, members: map[string]memberKey{}}
}

// expire drops the leases whose time is up, and their keys. A DCS without
// quorum expires nothing: etcd's leases only run while it has a leader.
func (d *DCS) expire() {
	if d.down {
		return
	}
	for _, id := range slices.Sorted(maps.Keys(d.leases)) {
		if !d.w.now.Before(d.leases[id]) {
			d.revoke(id)
		}
	}
}

func (d *DCS) revoke(id int64) {
	if _, ok := d.leases[id]; !ok {
		return
	}
	delete(d.leases, id)
	d.rev++
	if d.leaderLease == id {
		d.w.note("DCS: leader key of " + d.leader + " gone (lease ended)")
		d.leader, d.leaderLease, d.primary = "", 0, nil
	}
	for name, k := range d.members {
		if k.lease == id {
			delete(d.members, name)
		}
	}
}

func (d *DCS) grant() int64 {
	d.nextID++
	d.leases[d.nextID] = d.w.now.Add(timing.LeaseTTL)
	return d.nextID
}

// setDown loses or restores the quorum. A new etcd leader extends every
// lease by its TTL, as etcd does.
func (d *DCS) setDown(down bool) {
	if d.down == down {
		return
	}
	d.down = down
	if !down {
		for id := range d.leases {
			d.leases[id] = d.w.now.Add(timing.LeaseTTL)
		}
		d.w.note("DCS quorum restored: every lease extended by its TTL")
		return
	}
	d.w.note("DCS quorum lost")
}

// Leader is the holder of the leader key.
func (d *DCS) Leader() string {
	d.expire()
	return d.leader
}

// session is one agent's connection to the DCS (a dcs.Store): it
// remembers its own leases, as dcs.Store does.
type session struct {
	d                        *DCS
	inc                      *incarnation
	leaderLease, memberLease int64
}

var errUnreachable = errors.New("etcd unreachable (simulated)")

// reach fails as a call to an unreachable etcd does.
func (s *session) reach(ctx context.Context) error {
	switch {
	case !s.inc.alive:
		return errKilled
	case ctx.Err() != nil:
		return ctx.Err()
	case s.d.down || s.inc.node.cutDCS:
		return errUnreachable
	}
	s.d.expire()
	return nil
}

func (s *session) Snapshot(ctx context.Context) (dcs.View, error) {
	if err := s.reach(ctx); err != nil {
		return dcs.View{}, fmt.Errorf("read cluster state from DCS: %w", err)
	}
	d := s.d
	v := dcs.View{Revision: d.rev, Leader: d.leader, Members: map[string]dcs.Member{}, Config: dcs.ClusterConfig{Paused: d.paused},
		Sync: slices.Clone(d.sync), Status: d.status, RequestRevision: d.requestRev}
	if d.primary != nil {
		p := *d.primary
		v.Primary = &p
	}
	if d.request != nil {
		r := *d.request
		v.Request = &r
	}
	for name, k := range d.members {
		v.Members[name] = k.m
	}
	return v, nil
}

func (s *session) AcquireLeader(ctx context.Context, name string) (bool, time.Time, error) {
	if err := s.reach(ctx); err != nil {
		return false, time.Time{}, fmt.Errorf("acquire leader key: %w", err)
	}
	d := s.d
	granted := d.w.now
	if d.leader != "" {
		return false, time.Time{}, nil
	}
	d.rev++
	s.leaderLease = d.grant()
	d.leader, d.leaderLease = name, s.leaderLease
	d.w.note("DCS: leader key taken by " + name)
	return true, granted, nil
}

func (s *session) RenewLeader(ctx context.Context, name string) (time.Time, error) {
	if s.leaderLease == 0 {
		return time.Time{}, dcs.ErrNotLeader
	}
	if err := s.reach(ctx); err != nil {
		return time.Time{}, fmt.Errorf("renew leader lease: %w", err)
	}
	d := s.d
	sent := d.w.now
	if _, ok := d.leases[s.leaderLease]; !ok {
		s.leaderLease = 0
		return time.Time{}, fmt.Errorf("renew leader lease: %w", dcs.ErrNotLeader)
	}
	d.leases[s.leaderLease] = d.w.now.Add(timing.LeaseTTL)
	if d.leader != name || d.leaderLease != s.leaderLease {
		s.leaderLease = 0
		return time.Time{}, dcs.ErrNotLeader
	}
	return sent, nil
}

func (s *session) ReleaseLeader(ctx context.Context) error {
	lease := s.leaderLease
	s.leaderLease = 0
	if lease == 0 {
		return nil
	}
	if err := s.reach(ctx); err != nil {
		return fmt.Errorf("release leader key: %w", err)
	}
	if s.d.leaderLease == lease {
		s.d.w.note("DCS: leader key released by " + s.d.leader)
	}
	s.d.revoke(lease)
	return nil
}

func (s *session) PublishPrimary(ctx context.Context, p dcs.Primary) error {
	if s.leaderLease == 0 {
		return fmt.Errorf("publish writable primary: %w", dcs.ErrNotLeader)
	}
	if err := s.reach(ctx); err != nil {
		return fmt.Errorf("publish writable primary: %w", err)
	}
	if s.d.leader != p.Node || s.d.leaderLease != s.leaderLease {
		return fmt.Errorf("publish writable primary: %w", dcs.ErrNotLeader)
	}
	s.d.rev++
	s.d.primary = &p
	return nil
}

func (s *session) WithdrawPrimary(ctx context.Context, node string) error {
	if err := s.reach(ctx); err != nil {
		return fmt.Errorf("withdraw writable primary: %w", err)
	}
	if s.d.primary != nil && s.d.primary.Node == node {
		s.d.rev++
		s.d.primary = nil
	}
	return nil
}

func (s *session) PublishMember(ctx context.Context, m dcs.Member) error {
	if err := s.reach(ctx); err != nil {
		return fmt.Errorf("publish member %s: %w", m.Name, err)
	}
	d := s.d
	if _, ok := d.leases[s.memberLease]; ok {
		d.leases[s.memberLease] = d.w.now.Add(timing.LeaseTTL)
	} else {
		s.memberLease = d.grant()
	}
	d.rev++
	d.members[m.Name] = memberKey{m: m, lease: s.memberLease}
	return nil
}

func (s *session) WithdrawMember(ctx context.Context) error {
	lease := s.memberLease
	s.memberLease = 0
	if lease == 0 {
		return nil
	}
	if err := s.reach(ctx); err != nil {
		return fmt.Errorf("withdraw member: %w", err)
	}
	s.d.revoke(lease)
	return nil
}

func (s *session) SetSync(ctx context.Context, names []string) error {
	if err := s.reach(ctx); err != nil {
		return fmt.Errorf("set sync: %w", err)
	}
	s.d.rev++
	s.d.sync = slices.Clone(names)
	return nil
}

func (s *session) SetStatus(ctx context.Context, st dcs.Status) error {
	if err := s.reach(ctx); err != nil {
		return fmt.Errorf("set status: %w", err)
	}
	s.d.rev++
	s.d.status = st
	return nil
}

func (s *session) SetRequest(ctx context.Context, r dcs.Request) error {
	if err := s.reach(ctx); err != nil {
		return fmt.Errorf("set request: %w", err)
	}
	s.d.setRequest(r)
	return nil
}

func (d *DCS) setRequest(r dcs.Request) {
	d.rev++
	d.request, d.requestRev = &r, d.rev
}

func (s *session) ClearRequest(ctx context.Context, revision int64) error {
	if err := s.reach(ctx); err != nil {
		return fmt.Errorf("clear request: %w", err)
	}
	if s.d.requestRev != revision {
		return fmt.Errorf("clear request: %w", dcs.ErrRequestChanged)
	}
	s.d.rev++
	s.d.request, s.d.requestRev = nil, 0
	return nil
}

func (s *session) AppendHistory(ctx context.Context, _ time.Time, _ any) error {
	if err := s.reach(ctx); err != nil {
		return fmt.Errorf("append history: %w", err)
	}
	s.d.rev++
	s.d.history++
	return nil
}

// MoveEtcdLeaderFrom: the simulated etcd has no members to move.
func (s *session) MoveEtcdLeaderFrom(context.Context, string) (string, error) { return "", nil }
