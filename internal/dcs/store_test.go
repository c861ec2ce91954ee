package dcs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vigil-ha/vigil/internal/decision"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startCluster starts n embedded members on loopback with fast raft timers
// and returns them with their client URLs.
func startCluster(t *testing.T, n int) ([]*EmbeddedMember, []string) {
	t.Helper()
	initial := map[string]string{}
	clientURLs := make([]string, n)
	for i := range n {
		name := fmt.Sprintf("m%d", i+1)
		initial[name] = fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
		clientURLs[i] = fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	}
	members := make([]*EmbeddedMember, n)
	for i := range n {
		name := fmt.Sprintf("m%d", i+1)
		m, err := StartMember(MemberConfig{
			Name: name, DataDir: t.TempDir(), PeerURL: initial[name], ClientURL: clientURLs[i],
			InitialCluster: initial, ClusterToken: "test", TickMs: 10, ElectionMs: 100,
		})
		if err != nil {
			t.Fatal(err)
		}
		members[i] = m
		t.Cleanup(func() { m.Close(5 * time.Second) })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, m := range members {
		if err := m.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return members, clientURLs
}

func openStore(t *testing.T, endpoints []string, ttl time.Duration) *Store {
	t.Helper()
	s, err := Open(Options{Endpoints: endpoints, Cluster: "test", LeaseTTL: ttl, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestLeaderKeyIsExclusiveAndExpires(t *testing.T) {
	_, urls := startCluster(t, 1)
	ctx := ctxT(t)
	a := openStore(t, urls, 2*time.Second)
	b := openStore(t, urls, 2*time.Second)

	ok, grantedAt, err := a.AcquireLeader(ctx, "a")
	if err != nil || !ok || grantedAt.IsZero() {
		t.Fatalf("a acquire: %v %v %v", ok, grantedAt, err)
	}
	if ok, _, err := b.AcquireLeader(ctx, "b"); err != nil || ok {
		t.Fatalf("b acquired a held key: %v %v", ok, err)
	}
	if _, err := a.RenewLeader(ctx, "a"); err != nil {
		t.Fatalf("renew: %v", err)
	}
	if err := a.PublishPrimary(ctx, Primary{Node: "a", Timeline: 1}); err != nil {
		t.Fatal(err)
	}
	if err := b.PublishPrimary(ctx, Primary{Node: "b"}); !errors.Is(err, ErrNotLeader) {
		t.Errorf("non-leader publish: %v, want ErrNotLeader", err)
	}
	v, err := b.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.Leader != "a" || v.Primary == nil || v.Primary.Node != "a" {
		t.Fatalf("snapshot leader %q primary %+v", v.Leader, v.Primary)
	}

	// Stop renewing: the key and the writable record expire together.
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err = b.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v.Leader == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("leader key did not expire")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if v.Primary != nil {
		t.Errorf("writable record outlived the leader lease: %+v", v.Primary)
	}
	if _, err := a.RenewLeader(ctx, "a"); !errors.Is(err, ErrNotLeader) {
		t.Errorf("renew after expiry: %v, want ErrNotLeader", err)
	}
	if ok, _, err := b.AcquireLeader(ctx, "b"); err != nil || !ok {
		t.Fatalf("b acquire after expiry: %v %v", ok, err)
	}

	// Release makes the key free at once.
	if err := b.ReleaseLeader(ctx); err != nil {
		t.Fatal(err)
	}
	if v, _ := a.Snapshot(ctx); v.Leader != "" {
		t.Errorf("leader after release = %q", v.Leader)
	}
	if err := b.ReleaseLeader(ctx); err != nil {
		t.Errorf("second release: %v", err)
	}
}

func TestRenewDetectsKeyTakenAway(t *testing.T) {
	_, urls := startCluster(t, 1)
	ctx := ctxT(t)
	a := openStore(t, urls, 5*time.Second)
	if ok, _, err := a.AcquireLeader(ctx, "a"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	// An operator deletes the key (or another tool overwrites it).
	if _, err := a.Client().Delete(ctx, a.key("leader")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.RenewLeader(ctx, "a"); !errors.Is(err, ErrNotLeader) {
		t.Errorf("renew after the key was deleted: %v, want ErrNotLeader", err)
	}
	if a.HoldsLeaderLease() {
		t.Error("store still believes it holds the lease")
	}
}

func TestMembersGarbageAndRecords(t *testing.T) {
	_, urls := startCluster(t, 1)
	ctx := ctxT(t)
	s := openStore(t, urls, 2*time.Second)
	m := Member{Member: decision.Member{Name: "node1", Role: decision.RoleStandby, Priority: 100, WAL: 0x3000148}, Host: "127.0.0.1", Port: 5432}
	if err := s.PublishMember(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := s.PublishMember(ctx, m); err != nil {
		t.Fatalf("second publish (lease renewal): %v", err)
	}
	// A member publishing garbage, and one whose record names someone else.
	if _, err := s.Client().Put(ctx, s.key("members", "evil"), "{not json"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client().Put(ctx, s.key("members", "liar"), `{"name":"node1"}`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client().Put(ctx, s.key("primary"), "garbage"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSync(ctx, []string{"node2"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetStatus(ctx, Status{Leader: "node1", WAL: "0/3000148", Timeline: 3}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPaused(ctx, true); err != nil {
		t.Fatal(err)
	}
	v, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Members) != 1 || v.Members["node1"].WAL != 0x3000148 || v.Members["node1"].Host != "127.0.0.1" {
		t.Errorf("members = %+v", v.Members)
	}
	if len(v.Problems) != 3 {
		t.Errorf("problems = %q, want 3 (evil, liar, primary)", v.Problems)
	}
	if v.Primary != nil {
		t.Errorf("garbage primary record decoded: %+v", v.Primary)
	}
	if len(v.Sync) != 1 || v.Sync[0] != "node2" || v.Status.Timeline != 3 || !v.Config.Paused {
		t.Errorf("sync %v status %+v config %+v", v.Sync, v.Status, v.Config)
	}

	// The member key lives under its own lease: gone after the TTL once
	// the agent stops publishing, at once when it withdraws.
	if err := s.WithdrawMember(ctx); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Snapshot(ctx); len(v.Members) != 0 {
		t.Errorf("members after withdraw = %+v", v.Members)
	}
	if err := s.PublishMember(ctx, m); err != nil {
		t.Fatalf("publish after withdraw: %v", err)
	}

	t1 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i, rec := range []string{"first", "second"} {
		if err := s.AppendHistory(ctx, t1.Add(time.Duration(i)*time.Second), map[string]string{"n": rec}); err != nil {
			t.Fatal(err)
		}
	}
	h, err := s.History(ctx)
	if err != nil || len(h) != 2 || string(h[0]) != `{"n":"first"}` {
		t.Errorf("history = %s, %v", h, err)
	}
}

// With a majority gone, nothing can be acquired: the basis of "no quorum,
// no promotion".
func TestNoQuorumNoLeader(t *testing.T) {
	members, urls := startCluster(t, 3)
	ctx := ctxT(t)
	s := openStore(t, urls[:1], 2*time.Second)
	if ok, _, err := s.AcquireLeader(ctx, "x"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if err := s.ReleaseLeader(ctx); err != nil {
		t.Fatal(err)
	}
	members[1].Close(5 * time.Second)
	// One member down: the remaining two still have quorum.
	if ok, _, err := s.AcquireLeader(ctx, "x"); !ok || err != nil {
		t.Fatalf("acquire with 2 of 3: %v %v", ok, err)
	}
	members[2].Close(5 * time.Second)
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := s.Snapshot(clientv3.WithRequireLeader(short)); err == nil {
		t.Error("snapshot without quorum succeeded")
	}
	short2, cancel2 := context.WithTimeout(ctx, 2*time.Second)
	defer cancel2()
	if ok, _, err := s.AcquireLeader(short2, "y"); ok || err == nil {
		t.Errorf("acquire without quorum: %v %v", ok, err)
	}
}

// Open must not block when etcd is down: the agent has to start and say so.
func TestOpenDoesNotWaitForEtcd(t *testing.T) {
	start := time.Now()
	s, err := Open(Options{Endpoints: []string{fmt.Sprintf("http://127.0.0.1:%d", freePort(t))}, Cluster: "c", LeaseTTL: 2 * time.Second, DialTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := s.Snapshot(ctx); err == nil {
		t.Error("snapshot of a closed port succeeded")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s", d)
	}
}

// TestMoveEtcdLeaderFrom: the member that leads hands leadership to another
// live member; asked of a member that does not lead, nothing moves.
func TestMoveEtcdLeaderFrom(t *testing.T) {
	_, urls := startCluster(t, 3)
	ctx := ctxT(t)
	leaderURL := func() string {
		t.Helper()
		s := openStore(t, urls, 3*time.Second)
		for _, u := range urls {
			st, err := s.client.Status(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			if st.Leader == st.Header.MemberId {
				return u
			}
		}
		t.Fatal("no member leads")
		return ""
	}
	lead := leaderURL()
	for _, u := range urls {
		if u == lead {
			continue
		}
		s := openStore(t, []string{u}, 3*time.Second)
		if to, err := s.MoveEtcdLeaderFrom(ctx, u); err != nil || to != "" {
			t.Errorf("a follower moved leadership: %q, %v", to, err)
		}
	}
	s := openStore(t, []string{lead}, 3*time.Second)
	to, err := s.MoveEtcdLeaderFrom(ctx, lead)
	if err != nil || to == "" {
		t.Fatalf("the leader did not hand over: %q, %v", to, err)
	}
	if now := leaderURL(); now == lead {
		t.Errorf("leadership still at %s after moving it to %s", lead, to)
	}
}

// Clearing a request removes only the one that was read: a request written
// in between (an operator's next one) survives.
func TestClearRequestOnlyTheOneRead(t *testing.T) {
	_, urls := startCluster(t, 1)
	ctx := ctxT(t)
	s := openStore(t, urls, 5*time.Second)
	first := Request{Kind: "rejoin", To: "node1", Created: time.Now()}
	if err := s.SetRequest(ctx, first); err != nil {
		t.Fatal(err)
	}
	read, err := s.Snapshot(ctx)
	if err != nil || read.Request == nil || read.RequestRevision == 0 {
		t.Fatalf("snapshot: %+v, %v", read.Request, err)
	}
	next := Request{Kind: "switchover", From: "node2", To: "node3", Created: time.Now()}
	if err := s.SetRequest(ctx, next); err != nil {
		t.Fatal(err)
	}
	if err := s.ClearRequest(ctx, read.RequestRevision); !errors.Is(err, ErrRequestChanged) {
		t.Errorf("clear of a request replaced since: %v, want ErrRequestChanged", err)
	}
	v, err := s.Snapshot(ctx)
	if err != nil || v.Request == nil || v.Request.Kind != "switchover" {
		t.Fatalf("the newer request: %+v, %v", v.Request, err)
	}
	if err := s.ClearRequest(ctx, v.RequestRevision); err != nil {
		t.Fatalf("clear of the request read: %v", err)
	}
	if v, err := s.Snapshot(ctx); err != nil || v.Request != nil {
		t.Errorf("after clearing: %+v, %v", v.Request, err)
	}
}
