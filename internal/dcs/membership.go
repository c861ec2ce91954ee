package dcs

// Runtime membership of the etcd cluster (`vigil ctl member`): the checks
// are pure functions of a member list, so that the arithmetic that refuses
// a change is tested on its own; the Store methods read the list, check,
// and call etcd's member API.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// EtcdMember is one member of the etcd cluster as `vigil ctl member list`
// shows it. A member added but not started yet has no name and no client
// URL.
type EtcdMember struct {
	ID         uint64   `json:"id"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peer_urls"`
	ClientURLs []string `json:"client_urls"`
	Learner    bool     `json:"learner"`
	// Healthy: the member answered a status request just now.
	Healthy bool `json:"healthy"`
	// Leader: the member is the raft leader of the etcd cluster.
	Leader bool `json:"leader"`
}

// HexID is the member's ID as etcd prints it.
func (m EtcdMember) HexID() string { return strconv.FormatUint(m.ID, 16) }

// Label names the member in messages: its name, or for a member not
// started yet its ID and peer URL.
func (m EtcdMember) Label() string {
	if m.Name != "" {
		return m.Name
	}
	return fmt.Sprintf("%s (not started, %s)", m.HexID(), strings.Join(m.PeerURLs, ","))
}

// matches reports whether ref names m: its name, its hexadecimal ID, or one
// of its peer URLs (a member not started yet has no name).
func (m EtcdMember) matches(ref string) bool {
	return ref != "" && (m.Name == ref || m.HexID() == strings.ToLower(ref) || slices.Contains(m.PeerURLs, ref))
}

// ErrMembershipRefused is returned when a membership change is refused
// before anything was asked of etcd.
var ErrMembershipRefused = errors.New("refused")

func refuse(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMembershipRefused, fmt.Sprintf(format, args...))
}

// Quorum is the number of voting members that must agree for an etcd
// cluster of voters voting members to commit anything.
func Quorum(voters int) int { return voters/2 + 1 }

// CheckAdd refuses to add name at peerURL when either is already present,
// or while another member has not finished joining: etcd admits one
// learner at a time, and the new member's initial_cluster must name every
// member.
func CheckAdd(members []EtcdMember, name, peerURL string) error {
	if name == "" || peerURL == "" {
		return refuse("a new member needs a name and a peer URL")
	}
	for _, m := range members {
		switch {
		case m.Name == name:
			return refuse("a member named %s is already present (ID %s, peer URL %s)", name, m.HexID(), strings.Join(m.PeerURLs, ","))
		case slices.Contains(m.PeerURLs, peerURL):
			return refuse("peer URL %s already belongs to member %s", peerURL, m.Label())
		}
	}
	for _, m := range members {
		switch {
		case m.Name == "":
			return refuse("member %s was added but has not started: start it, or remove it, before adding another", m.Label())
		case m.Learner:
			return refuse("member %s is still a learner: let it catch up and be promoted before adding another (one member at a time)", m.Label())
		}
	}
	return nil
}

// CheckRemove finds the member ref names and refuses its removal when the
// cluster could not keep a quorum without it: the members left must hold
// a majority of the new voting membership among the healthy ones. It also
// refuses to remove the last voting member, and the node that holds the
// database leader key (leaderKey), whose agent would stop and leave its
// primary unmanaged: a switchover moves the key first.
func CheckRemove(members []EtcdMember, ref, leaderKey string) (EtcdMember, error) {
	i := slices.IndexFunc(members, func(m EtcdMember) bool { return m.matches(ref) })
	if i < 0 {
		names := make([]string, 0, len(members))
		for _, m := range members {
			names = append(names, m.Label())
		}
		return EtcdMember{}, refuse("no etcd member %s (members: %s)", ref, strings.Join(names, ", "))
	}
	target := members[i]
	if target.Name != "" && target.Name == leaderKey {
		return target, refuse("%s holds the leader key (its database is the primary): its agent would stop and leave the primary unmanaged; move the primary first with `vigil ctl switchover`", target.Name)
	}
	if target.Learner {
		return target, nil // a learner has no vote: quorum does not change
	}
	voters, healthyLeft := 0, 0
	var healthyNames []string
	for _, m := range members {
		if m.Learner {
			continue
		}
		voters++
		if m.Healthy && m.ID != target.ID {
			healthyLeft++
			healthyNames = append(healthyNames, m.Label())
		}
	}
	left := voters - 1
	if left == 0 {
		return target, refuse("%s is the last voting member: a cluster without members holds nothing", target.Label())
	}
	if need := Quorum(left); healthyLeft < need {
		return target, refuse("removing %s leaves %d voting members, of which %d must be healthy for a quorum, and only %d are (%s)",
			target.Label(), left, need, healthyLeft, strings.Join(healthyNames, ", "))
	}
	return target, nil
}

// memberStatusTimeout bounds the status request to each member: a member
// that does not answer within it counts as unhealthy.
const memberStatusTimeout = 2 * time.Second

// EtcdMembers lists the etcd cluster's members, asking each started one
// for its status (healthy, leader).
func (s *Store) EtcdMembers(ctx context.Context) ([]EtcdMember, error) {
	resp, err := s.client.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("etcd member list: %w", s.diag.explain(err))
	}
	out := make([]EtcdMember, len(resp.Members))
	leaders := make([]uint64, len(resp.Members))
	var wg sync.WaitGroup
	for i, pm := range resp.Members {
		out[i] = etcdMember(pm)
		wg.Add(1)
		// In parallel, each bounded: a dead member costs one timeout, not
		// one per member.
		go func() {
			defer wg.Done()
			for _, u := range out[i].ClientURLs {
				sctx, cancel := context.WithTimeout(ctx, memberStatusTimeout)
				st, err := s.client.Status(sctx, u)
				cancel()
				if err == nil {
					out[i].Healthy, leaders[i] = true, st.Leader
					return
				}
			}
		}()
	}
	wg.Wait()
	// Members agree on the leader but for a moment around an election:
	// the first answer stands.
	var leader uint64
	if i := slices.IndexFunc(leaders, func(l uint64) bool { return l != 0 }); i >= 0 {
		leader = leaders[i]
	}
	for i := range out {
		out[i].Leader = out[i].ID == leader
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

func etcdMember(m *etcdserverpb.Member) EtcdMember {
	return EtcdMember{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, Learner: m.IsLearner}
}

// handOverEtcdLeadership moves etcd's leadership from the member leading
// to the first healthy voting member by name other than target (about to
// be removed) and the node holding the database leader key, whose agent
// would move it away again (see MoveEtcdLeaderFrom). With nobody to hand
// over to it does nothing.
func (s *Store) handOverEtcdLeadership(ctx context.Context, members []EtcdMember, leading, target EtcdMember, holder string) error {
	for _, m := range members {
		if m.ID == leading.ID || m.ID == target.ID || m.Learner || !m.Healthy || m.Name == holder {
			continue
		}
		if err := s.moveLeader(ctx, leading.ClientURLs[0], m.ID); err != nil {
			return fmt.Errorf("move etcd leadership from %s to %s: %w", leading.Label(), m.Label(), s.diag.explain(err))
		}
		return nil
	}
	return nil
}

// whileUnhealthy calls change until etcd stops answering that the cluster
// is unhealthy, or ctx ends: etcd accepts a membership change only once the
// member deciding it has been connected to the voting members for five
// seconds, which a cluster that just started, or just changed, has not.
func whileUnhealthy(ctx context.Context, change func() error) error {
	for {
		err := change()
		if !errors.Is(err, rpctypes.ErrUnhealthy) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (etcd admits a membership change once the voting members have been connected for 5 s; a member down must be removed first)", err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// AddedMember is what the new member's configuration needs.
type AddedMember struct {
	EtcdMember
	// InitialCluster names every member, the new one included, with its
	// peer URL: the new node's dcs.embedded.initial_cluster.
	InitialCluster map[string]string
}

// AddEtcdMember adds name at peerURL as a learner, after CheckAdd. The new
// member takes no vote until it has caught up and is promoted (its agent
// does so, see EmbeddedMember.PromoteWhenCaughtUp).
func (s *Store) AddEtcdMember(ctx context.Context, name, peerURL string) (AddedMember, error) {
	members, err := s.EtcdMembers(ctx)
	if err != nil {
		return AddedMember{}, fmt.Errorf("add etcd member %s: %w", name, err)
	}
	if err := CheckAdd(members, name, peerURL); err != nil {
		return AddedMember{}, fmt.Errorf("add etcd member %s: %w", name, err)
	}
	var resp *clientv3.MemberAddResponse
	err = whileUnhealthy(ctx, func() (err error) {
		resp, err = s.client.MemberAddAsLearner(ctx, []string{peerURL})
		return err
	})
	if err != nil {
		return AddedMember{}, fmt.Errorf("add etcd member %s at %s: %w", name, peerURL, s.diag.explain(err))
	}
	added := AddedMember{EtcdMember: etcdMember(resp.Member), InitialCluster: map[string]string{}}
	added.Name = name
	for _, m := range resp.Members {
		n := m.Name
		if m.ID == resp.Member.ID {
			n = name
		}
		for _, u := range m.PeerURLs {
			added.InitialCluster[n] = u
		}
	}
	return added, nil
}

// PromoteEtcdMember makes the learner ref names a voting member; etcd
// refuses while it has not caught up with the leader.
func (s *Store) PromoteEtcdMember(ctx context.Context, ref string) (EtcdMember, error) {
	members, err := s.EtcdMembers(ctx)
	if err != nil {
		return EtcdMember{}, fmt.Errorf("promote etcd member %s: %w", ref, err)
	}
	i := slices.IndexFunc(members, func(m EtcdMember) bool { return m.matches(ref) })
	switch {
	case i < 0:
		return EtcdMember{}, fmt.Errorf("promote etcd member %s: %w", ref, refuse("no such member"))
	case !members[i].Learner:
		return members[i], fmt.Errorf("promote etcd member %s: %w", ref, refuse("it is a voting member already"))
	}
	if _, err := s.client.MemberPromote(ctx, members[i].ID); err != nil {
		return members[i], fmt.Errorf("promote etcd member %s: %w", ref, s.diag.explain(err))
	}
	members[i].Learner = false
	return members[i], nil
}

// RemoveEtcdMember removes the member ref names (its name, hexadecimal ID
// or peer URL) after CheckRemove. When it is the etcd leader, leadership
// moves to another healthy voting member first, so that the cluster does
// not wait for an election. Its server stops on its own; so does the agent
// that embeds it.
func (s *Store) RemoveEtcdMember(ctx context.Context, ref string) (EtcdMember, error) {
	members, err := s.EtcdMembers(ctx)
	if err != nil {
		return EtcdMember{}, fmt.Errorf("remove etcd member %s: %w", ref, err)
	}
	leaderKey, err := s.client.Get(ctx, s.key("leader"))
	if err != nil {
		return EtcdMember{}, fmt.Errorf("remove etcd member %s: read the leader key: %w", ref, s.diag.explain(err))
	}
	holder := ""
	if len(leaderKey.Kvs) > 0 {
		holder = string(leaderKey.Kvs[0].Value)
	}
	target, err := CheckRemove(members, ref, holder)
	if err != nil {
		return target, fmt.Errorf("remove etcd member %s: %w", ref, err)
	}
	// The etcd leader must be neither the member removed (it would step
	// down only once its removal commits, and the cluster would wait for
	// an election) nor on the primary's node: applying a removal stalls the
	// leader until its connection to the removed member is closed, up to
	// etcd's 5 s write timeout for a member whose host went dark, and the
	// primary's agent, which renews its lease through its own member,
	// would lose the leader key meanwhile.
	if i := slices.IndexFunc(members, func(m EtcdMember) bool { return m.Leader }); i >= 0 {
		if leading := members[i]; (leading.ID == target.ID || leading.Name == holder) && len(leading.ClientURLs) > 0 {
			if err := s.handOverEtcdLeadership(ctx, members, leading, target, holder); err != nil {
				return target, fmt.Errorf("remove etcd member %s: %w", target.Label(), err)
			}
		}
	}
	if err := whileUnhealthy(ctx, func() error {
		_, err := s.client.MemberRemove(ctx, target.ID)
		return err
	}); err != nil {
		return target, fmt.Errorf("remove etcd member %s: %w", target.Label(), s.diag.explain(err))
	}
	return target, nil
}
