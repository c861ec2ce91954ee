package decision

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/wal"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func cfg() Config {
	return Config{
		LeaseTTL:             10 * time.Second,
		LoopInterval:         time.Second,
		MaximumLagOnFailover: 1 << 20,
		SyncMode:             SyncOff,
		PrimaryCrash:         CrashFailover,
		RestartTimeout:       30 * time.Second,
	}
}

func primaryLocal(name string) Local {
	return Local{Name: name, Priority: 100, Running: true, Reachable: true, Timeline: 1, WAL: 0x5000000, Writable: true, SystemID: "7"}
}

func standbyLocal(name string, wal wal.LSN) Local {
	return Local{Name: name, Priority: 100, Running: true, Reachable: true, InRecovery: true, StandbyConfigured: true,
		Timeline: 1, WAL: wal, SystemID: "7", Upstream: "node1"}
}

func standbyMember(name string, wal wal.LSN, priority int) Member {
	return Member{Name: name, Role: RoleStandby, Reachable: true, InRecovery: true, Timeline: 1, WAL: wal, Priority: priority, SystemID: "7", Upstream: "node1"}
}

func members(ms ...Member) map[string]Member {
	out := map[string]Member{}
	for _, m := range ms {
		out[m.Name] = m
	}
	return out
}

// leaderInput: node1 holds the key and runs a healthy primary.
func leaderInput() Input {
	return Input{
		Now: t0, Config: cfg(), Self: primaryLocal("node1"), TrustedReachable: true,
		HoldsLeader: true, LeaseRenewedAt: t0.Add(-time.Second),
		Cluster: Cluster{Reachable: true, Leader: "node1", LastLeaderWAL: 0x5000000, LastLeaderTimeline: 1,
			Members: members(Member{Name: "node1", Role: RolePrimary, Reachable: true, Writable: true, Timeline: 1, WAL: 0x5000000, Priority: 100, SystemID: "7"},
				standbyMember("node2", 0x5000000, 100), standbyMember("node3", 0x5000000, 100))},
	}
}

// orphanInput: the leader (node1) is gone; node2 looks at the cluster.
func orphanInput(self Local, others ...Member) Input {
	return Input{
		Now: t0, Config: cfg(), Self: self, TrustedReachable: true,
		Cluster: Cluster{Reachable: true, Leader: "", LastLeaderWAL: 0x5000000, LastLeaderTimeline: 1, Members: members(others...)},
	}
}

// formerPrimaryInput: node2 took over and is writable; node1, the former
// primary, is stopped.
func formerPrimaryInput() Input {
	in := leaderInput()
	in.Cluster.Leader = "node2"
	in.HoldsLeader = false
	in.Self = Local{Name: "node1", Priority: 100, Timeline: 1}
	in.Cluster.Members = members(
		Member{Name: "node2", Role: RolePrimary, Reachable: true, Writable: true, Timeline: 2, WAL: 0x6000000, Priority: 100, SystemID: "7"},
		standbyMember("node3", 0x6000000, 100))
	return in
}

// stuckStandbyInput: node2 took over on timeline 2; node1 runs as a
// standby of node2 but has not streamed for 30 s, still on timeline 1.
func stuckStandbyInput() Input {
	in := formerPrimaryInput()
	in.Self = standbyLocal("node1", 0x5800000)
	in.Self.Upstream = "node2"
	in.Self.NotStreamingSince = t0.Add(-30 * time.Second)
	return in
}

// reinitInput: node1 leads and is writable; node3, a standby of node1,
// looks at the cluster with its reinit requested.
func reinitInput() Input {
	in := leaderInput()
	in.HoldsLeader = false
	in.Self = standbyLocal("node3", 0x5000000)
	in.Cluster.Request = &Request{Kind: RequestReinit, To: "node3", Created: t0}
	return in
}

func kinds(o Output) []ActionKind {
	var ks []ActionKind
	for _, a := range o.Actions {
		ks = append(ks, a.Kind)
	}
	return ks
}

func TestDecide(t *testing.T) {
	tests := []struct {
		name       string
		in         func() Input
		want       []ActionKind
		wantNames  []string // Names of the last action, when it matters
		wantReason string   // substring
	}{
		{
			name:       "healthy primary renews and publishes",
			in:         leaderInput,
			want:       []ActionKind{RenewLeader, PublishWritable},
			wantReason: "primary is healthy",
		},
		{
			name: "leader whose write probe fails withdraws its routes but keeps the key",
			in: func() Input {
				in := leaderInput()
				in.Self.Writable = false
				return in
			},
			want:       []ActionKind{RenewLeader, WithdrawWritable},
			wantReason: "does not commit writes",
		},
		{
			name: "primary database crashed, policy failover: release the key at once",
			in: func() Input {
				in := leaderInput()
				in.Self = Local{Name: "node1", Priority: 100, Timeline: 1, DownSince: t0.Add(-time.Second)}
				return in
			},
			want:       []ActionKind{WithdrawWritable, Demote, ReleaseLeader},
			wantReason: "releasing the leader key",
		},
		{
			name: "primary database crashed, policy restart, within the limit: restart in place",
			in: func() Input {
				in := leaderInput()
				in.Config.PrimaryCrash = CrashRestart
				in.Self = Local{Name: "node1", Priority: 100, Timeline: 1, DownSince: t0.Add(-5 * time.Second)}
				return in
			},
			want:       []ActionKind{RenewLeader, WithdrawWritable, RestartPrimary},
			wantReason: "restarting it in place",
		},
		{
			name: "primary database crashed, policy restart, limit passed: release",
			in: func() Input {
				in := leaderInput()
				in.Config.PrimaryCrash = CrashRestart
				in.Self = Local{Name: "node1", Priority: 100, Timeline: 1, DownSince: t0.Add(-31 * time.Second)}
				return in
			},
			want: []ActionKind{WithdrawWritable, Demote, ReleaseLeader},
		},
		{
			name: "primary running but not answering, policy restart: keep key, withdraw routes, do not start twice",
			in: func() Input {
				in := leaderInput()
				in.Config.PrimaryCrash = CrashRestart
				in.Self.Reachable = false
				in.Self.DownSince = t0.Add(-time.Second)
				return in
			},
			want: []ActionKind{RenewLeader, WithdrawWritable},
		},
		{
			name: "leader still in recovery after winning: complete the promotion",
			in: func() Input {
				in := leaderInput()
				in.Self.InRecovery = true
				in.Self.Writable = false
				return in
			},
			want: []ActionKind{RenewLeader, WithdrawWritable, CompletePromotion},
		},
		{
			name: "primary node gone: the standby with the most WAL fails over",
			in: func() Input {
				return orphanInput(standbyLocal("node2", 0x5000000), standbyMember("node2", 0x5000000, 100), standbyMember("node3", 0x4000000, 100))
			},
			want:       []ActionKind{Failover},
			wantReason: "best candidate",
		},
		{
			name: "a fresh cluster that never had a leader: standbys wait for the primary",
			in: func() Input {
				in := orphanInput(standbyLocal("node2", 0x5000000))
				in.Cluster.LastLeaderTimeline, in.Cluster.LastLeaderWAL = 0, 0
				return in
			},
			wantReason: "never had a leader",
		},
		{
			name: "no leader key but a member runs a primary: wait for it",
			in: func() Input {
				p := Member{Name: "node1", Role: RolePrimary, Reachable: true, Timeline: 1, WAL: 0x5000000, Priority: 100, SystemID: "7"}
				return orphanInput(standbyLocal("node2", 0x5000000), p)
			},
			wantReason: "node1 runs a primary",
		},
		{
			name: "no leader key but this standby still streams: its primary lives (agent died), no promotion",
			in: func() Input {
				self := standbyLocal("node2", 0x5000000)
				self.Streaming = true
				return orphanInput(self)
			},
			wantReason: "still hears from node1",
		},
		{
			name: "primary node gone: the standby with less WAL waits",
			in: func() Input {
				return orphanInput(standbyLocal("node3", 0x4F80000), standbyMember("node2", 0x5000000, 1), standbyMember("node3", 0x4F80000, 100))
			},
			want:       nil,
			wantReason: "node2 is a better candidate",
		},
		{
			name: "equal WAL: the standby with less left to replay wins over a higher priority",
			in: func() Input {
				self := standbyLocal("node2", 0x5000000)
				self.Replayed, self.Priority = 0x4F00000, 200
				other := standbyMember("node3", 0x5000000, 100)
				other.Replayed = 0x5000000
				return orphanInput(self, other)
			},
			wantReason: "node3 is a better candidate (WAL 0/5000000, replayed 0/5000000, priority 100; this node WAL 0/5000000, replayed 0/4F00000",
		},
		{
			name: "equal WAL: the standby with less left to replay fails over, its reason giving both positions",
			in: func() Input {
				self := standbyLocal("node3", 0x5000000)
				self.Replayed = 0x5000000
				other := standbyMember("node2", 0x5000000, 100)
				other.Replayed = 0x4000000
				return orphanInput(self, other)
			},
			want:       []ActionKind{Failover},
			wantReason: "best candidate (WAL 0/5000000, replayed 0/5000000",
		},
		{
			name: "never less data for a faster promotion: more WAL wins over less left to replay",
			in: func() Input {
				self := standbyLocal("node3", 0x4FFF000)
				self.Replayed = 0x4FFF000
				other := standbyMember("node2", 0x5000000, 100)
				other.Replayed = 0x4000000
				return orphanInput(self, other)
			},
			wantReason: "node2 is a better candidate",
		},
		{
			name: "a standby keeps synchronous_standby_names empty, ready for a promotion",
			in: func() Input {
				in := leaderInput()
				in.HoldsLeader = false
				in.Self = standbyLocal("node2", 0x5000000)
				in.Self.Streaming = true
				in.Self.SyncStandbys = []string{"node3"}
				in.Config.SyncMode = SyncOn
				return in
			},
			want: []ActionKind{SetSyncStandbys}, wantReason: "clearing its synchronous_standby_names",
		},
		{
			name: "strict mode: a standby's synchronous_standby_names is left for the failover to set",
			in: func() Input {
				in := leaderInput()
				in.HoldsLeader = false
				in.Self = standbyLocal("node2", 0x5000000)
				in.Self.Streaming = true
				in.Self.SyncStandbys = []string{"node3"}
				in.Config.SyncMode = SyncStrict
				return in
			},
			wantReason: "standby following node1",
		},
		{
			name: "equal WAL: higher priority wins",
			in: func() Input {
				self := standbyLocal("node2", 0x5000000)
				self.Priority = 50
				return orphanInput(self, standbyMember("node3", 0x5000000, 60))
			},
			want:       nil,
			wantReason: "node3 is a better candidate",
		},
		{
			name: "equal WAL and priority: smaller name wins",
			in: func() Input {
				return orphanInput(standbyLocal("node2", 0x5000000), standbyMember("node3", 0x5000000, 100))
			},
			want: []ActionKind{Failover},
		},
		{
			name: "equal WAL and priority: the larger name waits",
			in: func() Input {
				return orphanInput(standbyLocal("node3", 0x5000000), standbyMember("node2", 0x5000000, 100))
			},
			wantReason: "node2 is a better candidate",
		},
		{
			name: "candidate lagging more than maximum_lag_on_failover refuses",
			in: func() Input {
				return orphanInput(standbyLocal("node2", 0x5000000-(2<<20)))
			},
			wantReason: "maximum_lag_on_failover",
		},
		{
			name: "candidate lagging exactly the maximum may promote",
			in: func() Input {
				return orphanInput(standbyLocal("node2", 0x5000000-(1<<20)))
			},
			want: []ActionKind{Failover},
		},
		{
			name: "no candidate: priority 0 never promotes",
			in: func() Input {
				self := standbyLocal("node2", 0x5000000)
				self.Priority = 0
				return orphanInput(self)
			},
			wantReason: "priority 0",
		},
		{
			name: "members that are isolated, unreachable or priority 0 are not better candidates",
			in: func() Input {
				iso := standbyMember("node3", 0x6000000, 100)
				iso.Isolated = true
				down := standbyMember("node4", 0x6000000, 100)
				down.Reachable = false
				never := standbyMember("node5", 0x6000000, 0)
				other := standbyMember("node6", 0x6000000, 100)
				other.SystemID = "8" // another cluster's server
				return orphanInput(standbyLocal("node2", 0x5000000), iso, down, never, other)
			},
			want: []ActionKind{Failover},
		},
		{
			name: "paused cluster: no failover",
			in: func() Input {
				in := orphanInput(standbyLocal("node2", 0x5000000))
				in.Cluster.Paused = true
				return in
			},
			wantReason: "paused",
		},
		{
			name: "paused cluster: a leader whose database died keeps the key and does nothing else",
			in: func() Input {
				in := leaderInput()
				in.Cluster.Paused = true
				in.Self = Local{Name: "node1", Priority: 100, DownSince: t0.Add(-time.Hour)}
				return in
			},
			want: []ActionKind{RenewLeader, WithdrawWritable},
		},
		{
			name: "paused cluster: a standby on the wrong upstream is left alone",
			in: func() Input {
				in := leaderInput()
				in.Cluster.Leader = "node2"
				in.Cluster.Paused = true
				in.HoldsLeader = false
				in.Self = standbyLocal("node3", 0x5000000)
				return in
			},
			want: nil,
		},
		{
			name: "a member that cannot reach any trusted IP never promotes",
			in: func() Input {
				in := orphanInput(standbyLocal("node2", 0x5000000))
				in.TrustedReachable = false
				return in
			},
			wantReason: "will not promote",
		},
		{
			name: "an isolated leader demotes itself and releases the key",
			in: func() Input {
				in := leaderInput()
				in.TrustedReachable = false
				return in
			},
			want: []ActionKind{WithdrawWritable, Demote, ReleaseLeader},
		},
		{
			name: "a leader whose trusted-IP checks failed just now keeps its role within the grace",
			in: func() Input {
				in := leaderInput()
				in.TrustedReachable = false
				in.TrustedUnreachableSince = t0.Add(-in.Config.IsolationGrace() + time.Millisecond)
				return in
			},
			want: []ActionKind{RenewLeader, PublishWritable}, wantReason: "the primary role is given up after",
		},
		{
			name: "a leader whose trusted-IP checks fail for the grace demotes itself and releases the key",
			in: func() Input {
				in := leaderInput()
				in.TrustedReachable = false
				in.TrustedUnreachableSince = t0.Add(-in.Config.IsolationGrace())
				return in
			},
			want: []ActionKind{WithdrawWritable, Demote, ReleaseLeader}, wantReason: "gives up the primary role",
		},
		{
			name: "a standby whose trusted-IP checks failed just now does not promote, grace or not",
			in: func() Input {
				in := orphanInput(standbyLocal("node2", 0x5000000))
				in.TrustedReachable = false
				in.TrustedUnreachableSince = t0.Add(-time.Millisecond)
				return in
			},
			wantReason: "will not promote",
		},
		{
			name: "DCS unreachable, standby: no promotion",
			in: func() Input {
				in := orphanInput(standbyLocal("node2", 0x5000000))
				in.Cluster = Cluster{}
				return in
			},
			wantReason: "no promotion without the DCS",
		},
		{
			name: "DCS unreachable, primary without the key (agent start): demote",
			in: func() Input {
				in := leaderInput()
				in.Cluster = Cluster{}
				in.HoldsLeader = false
				return in
			},
			want: []ActionKind{WithdrawWritable, Demote},
		},
		{
			name: "partitioned leader before the demotion point keeps serving and retries",
			in: func() Input {
				in := leaderInput()
				in.Cluster = Cluster{}
				in.LeaseRenewedAt = t0.Add(-4 * time.Second)
				return in
			},
			want:       []ActionKind{RenewLeader},
			wantReason: "1s more",
		},
		{
			name: "partitioned leader at the demotion point demotes",
			in: func() Input {
				in := leaderInput()
				in.Cluster = Cluster{}
				in.LeaseRenewedAt = t0.Add(-5 * time.Second)
				return in
			},
			want:       []ActionKind{WithdrawWritable, Demote},
			wantReason: "before the lease can expire",
		},
		{
			name: "another node holds the key while this node runs a primary: demote",
			in: func() Input {
				in := leaderInput()
				in.Cluster.Leader = "node2"
				in.HoldsLeader = false
				return in
			},
			want: []ActionKind{WithdrawWritable, Demote},
		},
		{
			name: "the key names this node from a previous agent run: demote and wait",
			in: func() Input {
				in := leaderInput()
				in.HoldsLeader = false
				return in
			},
			want:       []ActionKind{WithdrawWritable, Demote},
			wantReason: "previous agent run",
		},
		{
			name: "former primary returns after a failover: stays stopped",
			in: func() Input {
				in := leaderInput()
				in.Cluster.Leader = "node2"
				in.HoldsLeader = false
				in.Self = Local{Name: "node1", Priority: 100, Timeline: 1}
				return in
			},
			want:       nil,
			wantReason: "staying stopped until rejoined",
		},
		{
			name: "stopped standby starts to follow the leader",
			in: func() Input {
				in := leaderInput()
				in.HoldsLeader = false
				in.Self = Local{Name: "node3", Priority: 100, StandbyConfigured: true}
				return in
			},
			want: []ActionKind{StartStandby},
		},
		{
			name: "standby streaming from the old primary follows the new leader",
			in: func() Input {
				in := leaderInput()
				in.Cluster.Leader = "node2"
				in.HoldsLeader = false
				in.Self = standbyLocal("node3", 0x5000000)
				return in
			},
			want:       []ActionKind{Follow},
			wantReason: "following the leader",
		},
		{
			name: "standby already following the leader does nothing",
			in: func() Input {
				in := leaderInput()
				in.HoldsLeader = false
				in.Self = standbyLocal("node3", 0x5000000)
				return in
			},
			want: nil,
		},
		{
			name: "cold start: a running primary with no leader takes the key",
			in: func() Input {
				in := orphanInput(primaryLocal("node1"))
				return in
			},
			want: []ActionKind{AcquireLeader},
		},
		{
			name: "no leader, running primary on an old timeline: stop it",
			in: func() Input {
				in := orphanInput(primaryLocal("node1"))
				in.Cluster.LastLeaderTimeline = 2
				return in
			},
			want: []ActionKind{WithdrawWritable, Demote},
		},
		{
			name: "cold start: a stopped former primary with the newest history takes the key, then starts",
			in: func() Input {
				return orphanInput(Local{Name: "node1", Priority: 100, Timeline: 1, WAL: 0x5000000}, standbyMember("node2", 0x4000000, 100))
			},
			want: []ActionKind{AcquireLeader, StartPrimary},
		},
		{
			name: "cold start: a stopped former primary behind a member stays stopped",
			in: func() Input {
				m := standbyMember("node2", 0x1000, 100)
				m.Timeline = 2
				return orphanInput(Local{Name: "node1", Priority: 100, Timeline: 1, WAL: 0x5000000}, m)
			},
			wantReason: "node2 is on a newer timeline",
		},
		{
			name: "a stopped former primary whose successor led last stays stopped",
			in: func() Input {
				in := orphanInput(Local{Name: "node1", Priority: 100, Timeline: 1, WAL: 0x5000000}, standbyMember("node2", 0x4000000, 100))
				in.Cluster.LastLeader = "node2"
				return in
			},
			wantReason: "the last leader was node2",
		},
		{
			name: "cold start of a cluster that had node1 as its last leader: node1 starts",
			in: func() Input {
				in := orphanInput(Local{Name: "node1", Priority: 100, Timeline: 1, WAL: 0x4000028}, standbyMember("node2", 0x40000A0, 100))
				in.Cluster.LastLeader = "node1"
				return in
			},
			want: []ActionKind{AcquireLeader, StartPrimary},
		},
		{
			name: "a former primary whose agent gave the key up after its server failed stays down (no start before a standby takes over)",
			in: func() Input {
				in := orphanInput(Local{Name: "node1", Priority: 100, Timeline: 1, WAL: 0x5000000}, standbyMember("node2", 0x5000000, 100))
				in.Cluster.LastLeader = "node1"
				in.GaveUpAt = t0.Add(-in.Config.StayDownFor() + time.Millisecond)
				return in
			},
			want:       nil,
			wantReason: "gave up the key",
		},
		{
			name: "a former primary that gave the key up long ago, when no standby could take it, starts again: the key first",
			in: func() Input {
				in := orphanInput(Local{Name: "node1", Priority: 100, Timeline: 1, WAL: 0x5000000}, standbyMember("node2", 0x4000000, 0))
				in.Cluster.LastLeader = "node1"
				in.GaveUpAt = t0.Add(-in.Config.StayDownFor())
				return in
			},
			want: []ActionKind{AcquireLeader, StartPrimary},
		},
		{
			name: "a stopped former primary next to a running primary stays stopped",
			in: func() Input {
				m := Member{Name: "node2", Role: RolePrimary, Reachable: true, Timeline: 1, WAL: 0x5000000, Priority: 100, SystemID: "7"}
				return orphanInput(Local{Name: "node1", Priority: 100, Timeline: 1, WAL: 0x5000000}, m)
			},
			want:       nil,
			wantReason: "node2 runs a primary",
		},
		{
			name: "paused agent back after its lease expired, nobody promoted: its running primary retakes the key",
			in: func() Input {
				in := orphanInput(primaryLocal("node1"), standbyMember("node2", 0x5000000, 100), standbyMember("node3", 0x5000000, 100))
				in.Cluster.LastLeader = "node1"
				return in
			},
			want:       []ActionKind{AcquireLeader},
			wantReason: "taking the leader key",
		},
		{
			name: "paused agent back after a standby promoted and lost the key again: its primary stops",
			in: func() Input {
				m := Member{Name: "node2", Role: RolePrimary, Reachable: true, Timeline: 2, WAL: 0x5000100, Priority: 100, SystemID: "7"}
				in := orphanInput(primaryLocal("node1"), m)
				in.Cluster.LastLeader = "node1"
				return in
			},
			want:       []ActionKind{WithdrawWritable, Demote},
			wantReason: "node2 is on a newer timeline",
		},
		{
			name: "leader whose server stops answering keeps the key for a grace, routes withdrawn",
			in: func() Input {
				in := leaderInput()
				in.Self.Reachable = false
				in.Self.Writable = false
				in.Self.DownSince = t0.Add(-in.Config.UnresponsiveGrace() + time.Millisecond)
				return in
			},
			want:       []ActionKind{RenewLeader, WithdrawWritable},
			wantReason: "does not answer",
		},
		{
			name: "leader whose server is hung past the grace ends it and releases the key",
			in: func() Input {
				in := leaderInput()
				in.Self.Reachable = false
				in.Self.Writable = false
				in.Self.DownSince = t0.Add(-in.Config.UnresponsiveGrace())
				return in
			},
			want:       []ActionKind{WithdrawWritable, Demote, ReleaseLeader},
			wantReason: "releasing the leader key",
		},
		{
			name: "a standby whose upstream is not a member names it plainly",
			in: func() Input {
				self := standbyLocal("node2", 0x5000000)
				self.Upstream = ""
				self.Streaming = true
				return orphanInput(self, standbyMember("node3", 0x5000000, 100))
			},
			want:       nil,
			wantReason: "still hears from an upstream that is not a member",
		},
		{
			name: "stopped standby with no leader starts",
			in: func() Input {
				return orphanInput(Local{Name: "node2", Priority: 100, StandbyConfigured: true})
			},
			want: []ActionKind{StartStandby},
		},
		{
			name: "synchronous mode: a standby outside the recorded set never promotes",
			in: func() Input {
				in := orphanInput(standbyLocal("node3", 0x6000000), standbyMember("node2", 0x5000000, 100))
				in.Config.SyncMode = SyncOn
				in.Cluster.SyncStandbys = []string{"node2"}
				return in
			},
			wantReason: "only the recorded synchronous standbys node2",
		},
		{
			name: "synchronous mode: the recorded standby promotes although another has more WAL",
			in: func() Input {
				in := orphanInput(standbyLocal("node2", 0x5000000), standbyMember("node3", 0x6000000, 100))
				in.Config.SyncMode = SyncOn
				in.Cluster.SyncStandbys = []string{"node2"}
				return in
			},
			want: []ActionKind{Failover},
		},
		{
			name: "synchronous mode: a recorded standby that cannot be seen blocks the failover",
			in: func() Input {
				in := orphanInput(standbyLocal("node2", 0x5000000))
				in.Config.SyncMode = SyncStrict
				in.Cluster.SyncStandbys = []string{"node2", "node3"}
				return in
			},
			wantReason: "cannot see synchronous standby node3",
		},
		{
			name: "synchronous mode: among recorded standbys the most WAL wins",
			in: func() Input {
				in := orphanInput(standbyLocal("node2", 0x5000000), standbyMember("node3", 0x5000100, 100))
				in.Config.SyncMode = SyncOn
				in.Cluster.SyncStandbys = []string{"node2", "node3"}
				return in
			},
			wantReason: "node3 is a better candidate",
		},
		{
			name: "sync: a new streaming standby is recorded in the DCS before PostgreSQL waits for it",
			in: func() Input {
				in := leaderInput()
				in.Config.SyncMode = SyncOn
				in.Self.StreamingStandbys = []string{"node3", "node2"}
				in.Self.SyncStandbys = []string{"node2"}
				in.Cluster.SyncStandbys = []string{"node2"}
				return in
			},
			want:      []ActionKind{RenewLeader, PublishWritable, SetSyncKey},
			wantNames: []string{"node2", "node3"},
		},
		{
			name: "sync: once recorded, PostgreSQL waits for it",
			in: func() Input {
				in := leaderInput()
				in.Config.SyncMode = SyncOn
				in.Self.StreamingStandbys = []string{"node2", "node3"}
				in.Self.SyncStandbys = []string{"node2"}
				in.Cluster.SyncStandbys = []string{"node2", "node3"}
				return in
			},
			want:      []ActionKind{RenewLeader, PublishWritable, SetSyncStandbys},
			wantNames: []string{"node2", "node3"},
		},
		{
			name: "sync: a standby that stopped streaming leaves PostgreSQL's set before the DCS record",
			in: func() Input {
				in := leaderInput()
				in.Config.SyncMode = SyncOn
				in.Self.StreamingStandbys = []string{"node2"}
				in.Self.SyncStandbys = []string{"node2", "node3"}
				in.Cluster.SyncStandbys = []string{"node2", "node3"}
				return in
			},
			want:      []ActionKind{RenewLeader, PublishWritable, SetSyncStandbys},
			wantNames: []string{"node2"},
		},
		{
			name: "sync: then the DCS record follows",
			in: func() Input {
				in := leaderInput()
				in.Config.SyncMode = SyncOn
				in.Self.StreamingStandbys = []string{"node2"}
				in.Self.SyncStandbys = []string{"node2"}
				in.Cluster.SyncStandbys = []string{"node2", "node3"}
				return in
			},
			want:      []ActionKind{RenewLeader, PublishWritable, SetSyncKey},
			wantNames: []string{"node2"},
		},
		{
			name: "sync on: no standby left goes asynchronous",
			in: func() Input {
				in := leaderInput()
				in.Config.SyncMode = SyncOn
				in.Self.SyncStandbys = []string{"node2"}
				in.Cluster.SyncStandbys = []string{"node2"}
				return in
			},
			want:      []ActionKind{RenewLeader, PublishWritable, SetSyncStandbys},
			wantNames: nil,
		},
		{
			name: "sync strict: no standby left keeps waiting for the last ones",
			in: func() Input {
				in := leaderInput()
				in.Config.SyncMode = SyncStrict
				in.Self.SyncStandbys = []string{"node2"}
				in.Cluster.SyncStandbys = []string{"node2"}
				return in
			},
			want: []ActionKind{RenewLeader, PublishWritable},
		},
		{
			name: "switchover requested: the leader hands over to the named healthy standby",
			in: func() Input {
				in := leaderInput()
				in.Cluster.Request = &Request{Kind: RequestSwitchover, From: "node1", To: "node3", Created: t0}
				return in
			},
			want: []ActionKind{RenewLeader, Switchover}, wantReason: "switchover to node3",
		},
		{
			name: "switchover without a target picks the best standby",
			in: func() Input {
				in := leaderInput()
				m := in.Cluster.Members["node3"]
				m.WAL = 0x4FFFF00
				in.Cluster.Members["node3"] = m
				in.Cluster.Request = &Request{Kind: RequestSwitchover, From: "node1", Created: t0}
				return in
			},
			want: []ActionKind{RenewLeader, Switchover}, wantReason: "switchover to node2",
		},
		{
			name: "switchover to a lagging standby is refused and cleared",
			in: func() Input {
				in := leaderInput()
				m := in.Cluster.Members["node3"]
				m.WAL = 0x1000000
				in.Cluster.Members["node3"] = m
				in.Cluster.Request = &Request{Kind: RequestSwitchover, From: "node1", To: "node3", Created: t0}
				return in
			},
			want: []ActionKind{RenewLeader, ClearRequest}, wantReason: "node3 is 67108864 bytes behind",
		},
		{
			name: "switchover to a standby that streams from elsewhere is refused",
			in: func() Input {
				in := leaderInput()
				m := in.Cluster.Members["node3"]
				m.Upstream = "node2"
				in.Cluster.Members["node3"] = m
				in.Cluster.Request = &Request{Kind: RequestSwitchover, To: "node3", Created: t0}
				return in
			},
			want: []ActionKind{RenewLeader, ClearRequest}, wantReason: "node3 does not stream from node1",
		},
		{
			name: "switchover scheduled later: nothing yet",
			in: func() Input {
				in := leaderInput()
				in.Cluster.Request = &Request{Kind: RequestSwitchover, To: "node3", Created: t0, At: t0.Add(time.Hour)}
				return in
			},
			want: []ActionKind{RenewLeader, PublishWritable},
		},
		{
			name: "an expired request is cleared",
			in: func() Input {
				in := leaderInput()
				in.Cluster.Request = &Request{Kind: RequestSwitchover, To: "node3", Created: t0.Add(-2 * RequestTimeout)}
				return in
			},
			want: []ActionKind{RenewLeader, PublishWritable, ClearRequest},
		},
		{
			name: "handed-over switchover: the target takes the key although another standby has more WAL",
			in: func() Input {
				in := orphanInput(standbyLocal("node3", 0x5000000), standbyMember("node2", 0x5000100, 100))
				in.Cluster.Request = &Request{Kind: RequestSwitchover, From: "node1", To: "node3", Created: t0, HandedOver: true}
				return in
			},
			want: []ActionKind{Failover},
		},
		{
			name: "switchover not yet handed over: the target waits",
			in: func() Input {
				in := orphanInput(standbyLocal("node3", 0x5000000))
				in.Cluster.Request = &Request{Kind: RequestSwitchover, From: "node1", To: "node3", Created: t0}
				return in
			},
			wantReason: "waiting for the leader to hand over",
		},
		{
			name: "a request for another node keeps the others from promoting",
			in: func() Input {
				in := orphanInput(standbyLocal("node2", 0x5000000), standbyMember("node3", 0x4000000, 100))
				in.Cluster.Request = &Request{Kind: RequestFailover, To: "node3", Created: t0}
				return in
			},
			wantReason: "waiting for node3",
		},
		{
			name: "manual failover to a lagging standby of a cluster that never had a leader",
			in: func() Input {
				in := orphanInput(standbyLocal("node3", 0x1000000))
				in.Cluster.LastLeaderTimeline = 0
				in.Cluster.Paused = true
				in.Cluster.Request = &Request{Kind: RequestFailover, To: "node3", Created: t0}
				return in
			},
			want: []ActionKind{Failover},
		},
		{
			name: "manual failover refused next to a live primary",
			in: func() Input {
				p := Member{Name: "node1", Role: RolePrimary, Reachable: true, Timeline: 1, Priority: 100}
				in := orphanInput(standbyLocal("node3", 0x5000000), p)
				in.Cluster.Request = &Request{Kind: RequestFailover, To: "node3", Created: t0}
				return in
			},
			wantReason: "node1 runs a primary",
		},
		{
			// Found by the simulation (internal/sim): a failover request the
			// healthy leader ignored was still pending when that leader's
			// agent died; its server kept accepting writes while the target
			// promoted next to it.
			name: "manual failover refused while the primary's WAL still arrives (its agent died)",
			in: func() Input {
				self := standbyLocal("node3", 0x5000000)
				self.Streaming, self.Upstream = true, "node1"
				in := orphanInput(self)
				in.Cluster.Request = &Request{Kind: RequestFailover, To: "node3", Created: t0}
				return in
			},
			wantReason: "still hears from \"node1\"",
		},
		{
			// Found by the simulation: a stale failover request promoted a
			// standby that had crashed and missed commits acknowledged by
			// the remaining synchronous standby.
			name: "manual failover refused to a standby outside the recorded synchronous set",
			in: func() Input {
				in := orphanInput(standbyLocal("node2", 0x5000000))
				in.Config.SyncMode = SyncOn
				in.Cluster.SyncStandbys = []string{"node3"}
				in.Cluster.Request = &Request{Kind: RequestFailover, To: "node2", Created: t0}
				return in
			},
			wantReason: "only the recorded synchronous standbys node3 may be promoted",
		},
		{
			// Found by the simulation: a hung former primary whose agent
			// does not hold the key was left running; when it resumed it
			// accepted writes next to the new leader for a loop.
			name: "follower: a hung server without a standby signal is ended",
			in: func() Input {
				in := leaderInput()
				in.HoldsLeader, in.Cluster.Leader = false, "node2"
				in.Self.Reachable, in.Self.Writable = false, false
				return in
			},
			want: []ActionKind{WithdrawWritable, Demote},
		},
		{
			name: "manual failover: a leader that cannot write gives up the key",
			in: func() Input {
				in := leaderInput()
				in.Self.Writable = false
				in.Cluster.Request = &Request{Kind: RequestFailover, To: "node3", Created: t0}
				return in
			},
			want: []ActionKind{WithdrawWritable, Demote, ReleaseLeader},
		},
		{
			name: "manual failover is ignored by a healthy leader",
			in: func() Input {
				in := leaderInput()
				in.Cluster.Request = &Request{Kind: RequestFailover, To: "node3", Created: t0}
				return in
			},
			want: []ActionKind{RenewLeader, PublishWritable},
		},
		{
			name: "the request's target, now leader, clears it",
			in: func() Input {
				in := leaderInput()
				in.Cluster.Request = &Request{Kind: RequestFailover, To: "node1", Created: t0}
				return in
			},
			want: []ActionKind{RenewLeader, PublishWritable, ClearRequest},
		},
		{
			name: "rejoin requested: the stopped former primary rejoins the writable leader",
			in: func() Input {
				in := formerPrimaryInput()
				in.Cluster.Request = &Request{Kind: RequestRejoin, To: "node1", Created: t0}
				return in
			},
			want: []ActionKind{Rejoin}, wantReason: "the operator's rejoin request: becoming a standby of node2",
		},
		{
			name: "rejoin requested even while paused: the operator asked",
			in: func() Input {
				in := formerPrimaryInput()
				in.Cluster.Paused = true
				in.Cluster.Request = &Request{Kind: RequestRejoin, To: "node1", Created: t0}
				return in
			},
			want: []ActionKind{Rejoin},
		},
		{
			name: "rejoin waits for a writable leader",
			in: func() Input {
				in := formerPrimaryInput()
				m := in.Cluster.Members["node2"]
				m.Writable = false
				in.Cluster.Members["node2"] = m
				in.Cluster.Request = &Request{Kind: RequestRejoin, To: "node1", Created: t0}
				return in
			},
			wantReason: "rejoin waits until the leader node2 is writable",
		},
		{
			name: "rejoin of another node: this former primary stays stopped",
			in: func() Input {
				in := formerPrimaryInput()
				in.Cluster.Request = &Request{Kind: RequestRejoin, To: "node3", Created: t0}
				return in
			},
			wantReason: "staying stopped until rejoined (vigil ctl rejoin node1)",
		},
		{
			name: "expired rejoin request is not acted on",
			in: func() Input {
				in := formerPrimaryInput()
				in.Cluster.Request = &Request{Kind: RequestRejoin, To: "node1", Created: t0.Add(-2 * RequestTimeout)}
				return in
			},
			wantReason: "staying stopped until rejoined",
		},
		{
			name: "automatic rejoin",
			in: func() Input {
				in := formerPrimaryInput()
				in.Config.AutoRejoin = true
				return in
			},
			want: []ActionKind{Rejoin}, wantReason: "automatic rejoin: becoming a standby of node2",
		},
		{
			name: "automatic rejoin holds off while paused",
			in: func() Input {
				in := formerPrimaryInput()
				in.Config.AutoRejoin = true
				in.Cluster.Paused = true
				return in
			},
			wantReason: "cluster paused: not rejoining automatically",
		},
		{
			name: "a running former primary without the key is stopped before it rejoins",
			in: func() Input {
				in := formerPrimaryInput()
				in.Self = primaryLocal("node1")
				in.Cluster.Request = &Request{Kind: RequestRejoin, To: "node1", Created: t0}
				return in
			},
			want: []ActionKind{WithdrawWritable, Demote},
		},
		{
			name: "rejoin requested for a standby that cannot follow (diverged)",
			in: func() Input {
				in := formerPrimaryInput()
				in.Self = standbyLocal("node1", 0x5000000)
				in.Self.Upstream = "node2"
				in.Cluster.Request = &Request{Kind: RequestRejoin, To: "node1", Created: t0}
				return in
			},
			want: []ActionKind{Rejoin},
		},
		{
			name: "rejoin request for a standby already streaming from the leader is done",
			in: func() Input {
				in := formerPrimaryInput()
				in.Self = standbyLocal("node1", 0x6000000)
				in.Self.Upstream, in.Self.Streaming = "node2", true
				in.Cluster.Request = &Request{Kind: RequestRejoin, To: "node1", Created: t0}
				return in
			},
			want: []ActionKind{ClearRequest}, wantReason: "already streams from node2",
		},
		{
			name: "a rejoin request does not stop an orphaned standby's failover",
			in: func() Input {
				in := orphanInput(standbyLocal("node2", 0x5000000), standbyMember("node3", 0x4000000, 100))
				in.Cluster.Request = &Request{Kind: RequestRejoin, To: "node3", Created: t0}
				return in
			},
			want: []ActionKind{Failover},
		},
		{
			name: "no leader, quiet receiver, but the upstream answers as a primary: no promotion",
			in: func() Input {
				self := standbyLocal("node2", 0x5000000)
				self.UpstreamIsPrimary = true
				return orphanInput(self, standbyMember("node3", 0x4000000, 100))
			},
			wantReason: "still answers as a primary: not promoting next to it",
		},
		{
			name: "automatic rejoin of a standby stuck on the old timeline",
			in: func() Input {
				in := stuckStandbyInput()
				in.Config.AutoRejoin = true
				return in
			},
			want: []ActionKind{Rejoin}, wantReason: "has not streamed from node2 (timeline 2) for 30s (it may hold WAL of the old timeline past the fork): automatic rejoin",
		},
		{
			name:       "a stuck standby waits for the operator without automatic rejoin",
			in:         stuckStandbyInput,
			wantReason: "past the fork): waiting for vigil ctl rejoin node1",
		},
		{
			name: "a stuck standby is not rejoined while paused",
			in: func() Input {
				in := stuckStandbyInput()
				in.Config.AutoRejoin, in.Cluster.Paused = true, true
				return in
			},
			wantReason: "cluster paused: not rejoining automatically",
		},
		{
			name: "a standby that stopped streaming only recently is left to reconnect",
			in: func() Input {
				in := stuckStandbyInput()
				in.Config.AutoRejoin = true
				in.Self.NotStreamingSince = t0.Add(-in.Config.CannotFollowAfter() + time.Millisecond)
				return in
			},
			wantReason: "standby following node2",
		},
		{
			name: "a standby whose receiver is stuck on the leader's timeline is rejoined (restarted)",
			in: func() Input {
				in := stuckStandbyInput()
				in.Config.AutoRejoin = true
				in.Self.Timeline = 2
				return in
			},
			want: []ActionKind{Rejoin}, wantReason: "(its WAL receiver does not get through): automatic rejoin as a standby of node2",
		},
		{
			name: "a standby configured for another upstream follows the leader first",
			in: func() Input {
				in := stuckStandbyInput()
				in.Config.AutoRejoin = true
				in.Self.Upstream = "node3"
				return in
			},
			want: []ActionKind{Follow}, wantReason: "following the leader",
		},
		{
			name: "a standby is not rejoined to a leader that is not writable",
			in: func() Input {
				in := stuckStandbyInput()
				in.Config.AutoRejoin = true
				m := in.Cluster.Members["node2"]
				m.Writable = false
				in.Cluster.Members["node2"] = m
				return in
			},
			wantReason: "standby following node2",
		},
		{
			name: "a standby that streams is not rejoined",
			in: func() Input {
				in := stuckStandbyInput()
				in.Config.AutoRejoin = true
				in.Self.Streaming = true
				return in
			},
			wantReason: "standby following node2",
		},
		{
			name: "sync off: leftover synchronous settings are removed",
			in: func() Input {
				in := leaderInput()
				in.Self.SyncStandbys = []string{"node2"}
				return in
			},
			want: []ActionKind{RenewLeader, PublishWritable, SetSyncStandbys},
		},
		{
			name: "reinit requested: a standby that fails to start is rebuilt from the writable leader",
			in: func() Input {
				in := reinitInput()
				in.Self = Local{Name: "node3", Priority: 100, StandbyConfigured: true}
				return in
			},
			want: []ActionKind{Reinit}, wantReason: "the operator's reinit request: rebuilding this node from node1 by a base backup",
		},
		{
			name: "reinit requested: a standby that streams is rebuilt all the same (damage streaming does not show)",
			in: func() Input {
				in := reinitInput()
				in.Self.Streaming = true
				return in
			},
			want: []ActionKind{Reinit},
		},
		{
			name: "reinit requested: a standby server that runs but does not answer is rebuilt",
			in: func() Input {
				in := reinitInput()
				in.Self.Reachable = false
				return in
			},
			want: []ActionKind{Reinit},
		},
		{
			name: "reinit requested: a stopped former primary (no standby signal) is rebuilt, whatever its divergence",
			in: func() Input {
				in := formerPrimaryInput()
				in.Cluster.Request = &Request{Kind: RequestReinit, To: "node1", Created: t0}
				return in
			},
			want: []ActionKind{Reinit}, wantReason: "rebuilding this node from node2",
		},
		{
			name: "reinit requested: a running primary without the key is stopped first",
			in: func() Input {
				in := formerPrimaryInput()
				in.Self = primaryLocal("node1")
				in.Cluster.Request = &Request{Kind: RequestReinit, To: "node1", Created: t0}
				return in
			},
			want: []ActionKind{WithdrawWritable, Demote},
		},
		{
			name: "reinit requested: a hung primary without the key is ended first",
			in: func() Input {
				in := formerPrimaryInput()
				in.Self = primaryLocal("node1")
				in.Self.Reachable = false
				in.Cluster.Request = &Request{Kind: RequestReinit, To: "node1", Created: t0}
				return in
			},
			want: []ActionKind{WithdrawWritable, Demote},
		},
		{
			name: "reinit held while the cluster is paused",
			in: func() Input {
				in := reinitInput()
				in.Cluster.Paused = true
				return in
			},
			wantReason: "the cluster is paused: not rebuilding it until the cluster is resumed",
		},
		{
			name: "reinit waits for a writable leader",
			in: func() Input {
				in := reinitInput()
				m := in.Cluster.Members["node1"]
				m.Writable = false
				in.Cluster.Members["node1"] = m
				return in
			},
			wantReason: "reinit waits until the leader node1 is writable",
		},
		{
			name: "reinit of another node: this standby just follows",
			in: func() Input {
				in := reinitInput()
				in.Self = standbyLocal("node2", 0x5000000)
				in.Self.Streaming = true
				return in
			},
			wantReason: "standby following node1",
		},
		{
			name: "an expired reinit request is not acted on: the stopped standby is started",
			in: func() Input {
				in := reinitInput()
				in.Self = Local{Name: "node3", Priority: 100, StandbyConfigured: true}
				in.Cluster.Request.Created = t0.Add(-2 * RequestTimeout)
				return in
			},
			want: []ActionKind{StartStandby},
		},
		{
			name: "the leader refuses a reinit of itself and clears the request",
			in: func() Input {
				in := leaderInput()
				in.Cluster.Request = &Request{Kind: RequestReinit, To: "node1", Created: t0}
				return in
			},
			want: []ActionKind{RenewLeader, PublishWritable, ClearRequest}, wantReason: "the reinit of this node was refused: it is the leader",
		},
		{
			name: "no leader: a standby whose reinit is pending neither starts nor promotes",
			in: func() Input {
				in := orphanInput(standbyLocal("node2", 0x5000000), standbyMember("node3", 0x4000000, 100))
				in.Cluster.Request = &Request{Kind: RequestReinit, To: "node2", Created: t0}
				return in
			},
			wantReason: "waits for a writable primary to copy from",
		},
		{
			name: "no leader: a stopped standby whose reinit is pending is not started",
			in: func() Input {
				in := orphanInput(Local{Name: "node2", Priority: 100, StandbyConfigured: true}, standbyMember("node3", 0x4000000, 100))
				in.Cluster.Request = &Request{Kind: RequestReinit, To: "node2", Created: t0}
				return in
			},
			wantReason: "neither starts nor promotes",
		},
		{
			name: "no leader: a reinit requested for another node does not name a failover target",
			in: func() Input {
				in := orphanInput(standbyLocal("node2", 0x5000000), standbyMember("node3", 0x4000000, 100))
				in.Cluster.Request = &Request{Kind: RequestReinit, To: "node3", Created: t0}
				return in
			},
			want: []ActionKind{Failover}, wantReason: "best candidate",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in()
			got := Decide(in)
			if !reflect.DeepEqual(kinds(got), tt.want) {
				t.Errorf("actions = %v, want %v (reason: %s)", kinds(got), tt.want, got.Reason)
			}
			if tt.wantNames != nil && len(got.Actions) > 0 {
				if last := got.Actions[len(got.Actions)-1]; !reflect.DeepEqual(last.Names, tt.wantNames) {
					t.Errorf("names = %v, want %v", last.Names, tt.wantNames)
				}
			}
			if !strings.Contains(got.Reason, tt.wantReason) {
				t.Errorf("reason = %q, want it to contain %q", got.Reason, tt.wantReason)
			}
			if got.Reason == "" {
				t.Error("empty reason")
			}
			// Deterministic: the same input gives the same output.
			if again := Decide(tt.in()); !reflect.DeepEqual(again, got) {
				t.Errorf("second call differs: %+v vs %+v", again, got)
			}
		})
	}
}

// TestPartitionedLeaderDemotesBeforeLeaseCanExpire walks a leader that lost
// the DCS through every loop tick and checks the lease arithmetic: it
// demotes at a tick that leaves at least the documented demotion budget
// before any other node could acquire the key.
func TestPartitionedLeaderDemotesBeforeLeaseCanExpire(t *testing.T) {
	for _, c := range []struct{ ttl, loop time.Duration }{
		{10 * time.Second, time.Second},
		{4 * time.Second, 500 * time.Millisecond},
		{3 * time.Second, 200 * time.Millisecond},
		{30 * time.Second, 10*time.Second - time.Millisecond},
	} {
		in := leaderInput()
		in.Config.LeaseTTL, in.Config.LoopInterval = c.ttl, c.loop
		renewed := t0
		in.LeaseRenewedAt = renewed
		in.Cluster = Cluster{}
		var demotedAt time.Duration = -1
		// Ticks start at an arbitrary phase after the last renewal.
		for tick := c.loop / 3; tick < 2*c.ttl; tick += c.loop {
			in.Now = renewed.Add(tick)
			if Decide(in).Has(Demote) {
				demotedAt = tick
				break
			}
		}
		if demotedAt < 0 {
			t.Fatalf("ttl %s loop %s: never demoted", c.ttl, c.loop)
		}
		budget := c.ttl - demotedAt
		if want := c.ttl/2 - c.loop; budget < want {
			t.Errorf("ttl %s loop %s: demoted %s after the last renewal, leaving %s before the lease can expire; want at least %s",
				c.ttl, c.loop, demotedAt, budget, want)
		}
	}
}

// Candidate ranking must not depend on map iteration order.
func TestCandidateOrderIsIndependentOfMapOrder(t *testing.T) {
	for i := 0; i < 50; i++ {
		in := orphanInput(standbyLocal("node4", 0x5000000),
			standbyMember("node2", 0x5000000, 100), standbyMember("node3", 0x5000000, 100), standbyMember("node5", 0x5000000, 100))
		if got := Decide(in); got.Has(Failover) || !strings.Contains(got.Reason, "node2 is a better candidate") {
			t.Fatalf("run %d: %+v", i, got)
		}
	}
}

// TestDecideMarksRequestedActions: an action that carries out the
// operator's pending request says so, for the audit; what an agent does on
// its own, with another node's request pending or with its own expired,
// does not.
func TestDecideMarksRequestedActions(t *testing.T) {
	fresh := t0.Add(-time.Second)
	tests := []struct {
		name      string
		in        func() Input
		kind      ActionKind
		requested bool
	}{
		{"manual failover to this node", func() Input {
			in := orphanInput(standbyLocal("node2", 0x5000000), standbyMember("node3", 0x5000000, 100))
			in.Cluster.Request = &Request{Kind: RequestFailover, To: "node2", Created: fresh}
			return in
		}, Failover, true},
		{"handed-over switchover to this node", func() Input {
			in := orphanInput(standbyLocal("node2", 0x5000000), standbyMember("node3", 0x5000000, 100))
			in.Cluster.Request = &Request{Kind: RequestSwitchover, From: "node1", To: "node2", Created: fresh, HandedOver: true}
			return in
		}, Failover, true},
		{"the old leader's side of a switchover", func() Input {
			in := leaderInput()
			for _, n := range []string{"node2", "node3"} {
				m := in.Cluster.Members[n]
				m.Upstream = "node1"
				in.Cluster.Members[n] = m
			}
			in.Cluster.Request = &Request{Kind: RequestSwitchover, From: "node1", To: "node2", Created: fresh}
			return in
		}, Switchover, true},
		{"rejoin of this node", func() Input {
			in := formerPrimaryInput()
			in.Cluster.Request = &Request{Kind: RequestRejoin, To: "node1", Created: fresh}
			return in
		}, Rejoin, true},
		{"reinit of this node", func() Input {
			in := formerPrimaryInput()
			in.Self = standbyLocal("node1", 0x5000000)
			in.Cluster.Request = &Request{Kind: RequestReinit, To: "node1", Created: fresh}
			return in
		}, Reinit, true},
		{"automatic failover", func() Input {
			return orphanInput(standbyLocal("node2", 0x5000000), standbyMember("node3", 0x4000000, 100))
		}, Failover, false},
		{"automatic failover with this node's request expired", func() Input {
			in := orphanInput(standbyLocal("node2", 0x5000000), standbyMember("node3", 0x4000000, 100))
			in.Cluster.Request = &Request{Kind: RequestFailover, To: "node2", Created: t0.Add(-2 * RequestTimeout)}
			return in
		}, Failover, false},
		{"failover while this node's rejoin is pending", func() Input {
			in := orphanInput(standbyLocal("node2", 0x5000000), standbyMember("node3", 0x4000000, 100))
			in.Cluster.Request = &Request{Kind: RequestRejoin, To: "node2", Created: fresh}
			return in
		}, Failover, false},
		{"automatic rejoin while another node's rejoin is pending", func() Input {
			in := formerPrimaryInput()
			in.Config.AutoRejoin = true
			in.Cluster.Request = &Request{Kind: RequestRejoin, To: "node3", Created: fresh}
			return in
		}, Rejoin, false},
		{"automatic rejoin of a standby that cannot follow", func() Input {
			in := stuckStandbyInput()
			in.Config.AutoRejoin = true
			return in
		}, Rejoin, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Decide(tt.in())
			var act *Action
			for i := range got.Actions {
				if got.Actions[i].Kind == tt.kind {
					act = &got.Actions[i]
				}
			}
			if act == nil {
				t.Fatalf("no %s action: %v (%s)", tt.kind, kinds(got), got.Reason)
			}
			if act.Requested != tt.requested {
				t.Errorf("%s Requested = %v, want %v (%s)", tt.kind, act.Requested, tt.requested, got.Reason)
			}
		})
	}
}

func TestUpstreamSilentAfter(t *testing.T) {
	c := cfg() // lease TTL 10 s
	for _, tt := range []struct {
		walSenderTimeout, want time.Duration
	}{
		{-1, 10 * time.Second},               // unknown: the lease alone
		{0, 0},                               // no keepalives: silence proves nothing
		{4 * time.Second, 12 * time.Second},  // the lab's: a keepalive gap of 2 s
		{time.Minute, 40 * time.Second},      // PostgreSQL's default
		{20 * time.Second, 20 * time.Second}, // gap 10 s, then a lease
	} {
		got := c.UpstreamSilentAfter(tt.walSenderTimeout)
		if got != tt.want {
			t.Errorf("UpstreamSilentAfter(%s) = %s, want %s", tt.walSenderTimeout, got, tt.want)
		}
		// A silence bound must outlast the keepalive gap by a lease.
		if gap := tt.walSenderTimeout / 2; tt.walSenderTimeout > 0 && got-gap < c.LeaseTTL {
			t.Errorf("UpstreamSilentAfter(%s) = %s leaves less than a lease over the keepalive gap %s", tt.walSenderTimeout, got, gap)
		}
	}
}

func TestCheckTiming(t *testing.T) {
	tests := []struct {
		ttl, loop, dcs time.Duration
		wantField      string
	}{
		{3 * time.Second, 500 * time.Millisecond, 500 * time.Millisecond, ""},
		{10 * time.Second, time.Second, time.Second, ""},
		{0, time.Second, 0, "lease_ttl"},
		{3 * time.Second, 0, 0, "loop_interval"},
		{3 * time.Second, 1500 * time.Millisecond, 0, "loop_interval"},
		{3 * time.Second, time.Second, 500 * time.Millisecond, "dcs_timeout"},
		{3 * time.Second, 500 * time.Millisecond, -time.Second, "dcs_timeout"},
	}
	for _, tt := range tests {
		c := Config{LeaseTTL: tt.ttl, LoopInterval: tt.loop, DCSTimeout: tt.dcs}
		p := c.CheckTiming()
		switch {
		case tt.wantField == "" && p != nil:
			t.Errorf("ttl %s loop %s dcs %s: unexpected problem %v", tt.ttl, tt.loop, tt.dcs, p)
		case tt.wantField != "" && (p == nil || p.Field != tt.wantField):
			t.Errorf("ttl %s loop %s dcs %s: problem %v, want one with %s", tt.ttl, tt.loop, tt.dcs, p, tt.wantField)
		}
		if p == nil && c.DemotionBudget() <= 0 {
			t.Errorf("ttl %s loop %s dcs %s accepted with no demotion budget", tt.ttl, tt.loop, tt.dcs)
		}
	}
}

func TestFailsafeHolds(t *testing.T) {
	c := cfg() // T 10 s, L 1 s
	c.Failsafe = true
	c.DCSTimeout = time.Second
	// Deadline = oldest ack + P - L - renewal timeout - demotion budget
	// = oldest + 10 - 1 - 1 - 3 = oldest + 5 s.
	others := []string{"node2", "node3"}
	tests := []struct {
		name string
		cfg  func() Config
		m    []string
		acks map[string]time.Time
		want bool
	}{
		{"every member confirmed just now", c.copy, others, map[string]time.Time{"node2": t0, "node3": t0}, true},
		{"the oldest confirmation is still within the promise", c.copy, others, map[string]time.Time{"node2": t0.Add(-4999 * time.Millisecond), "node3": t0}, true},
		{"the oldest confirmation is too old", c.copy, others, map[string]time.Time{"node2": t0.Add(-5 * time.Second), "node3": t0}, false},
		{"one member never confirmed", c.copy, others, map[string]time.Time{"node2": t0}, false},
		{"no other member: nobody can confirm", c.copy, nil, nil, false},
		{"failsafe off", func() Config { o := c; o.Failsafe = false; return o }, others, map[string]time.Time{"node2": t0, "node3": t0}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := tt.cfg().FailsafeHolds(t0, tt.m, tt.acks)
			if got != tt.want {
				t.Errorf("FailsafeHolds = %v (%s), want %v", got, why, tt.want)
			}
			// Safety: whenever it holds, a demotion started at the next
			// loop and a ping later ends before any promise expires.
			if got {
				oldest := t0
				for _, a := range tt.acks {
					if a.Before(oldest) {
						oldest = a
					}
				}
				c := tt.cfg()
				if end := t0.Add(c.LoopInterval + c.RenewalTimeout() + c.DemotionBudget()); !end.Before(oldest.Add(c.FailsafePromise())) {
					t.Errorf("demotion would end at %s, after the earliest promise expires at %s", end, oldest.Add(c.FailsafePromise()))
				}
			}
		})
	}
}

func (c Config) copy() Config { return c }

func TestDecideFailsafe(t *testing.T) {
	withoutDCS := func(acks map[string]time.Time) Input {
		in := leaderInput()
		in.Config.Failsafe = true
		in.Config.DCSTimeout = time.Second
		in.Cluster = Cluster{}
		in.LeaseRenewedAt = t0.Add(-in.Config.DemoteAfter())
		in.FailsafeMembers = []string{"node2", "node3"}
		in.FailsafeAcks = acks
		return in
	}
	tests := []struct {
		name       string
		in         Input
		want       []ActionKind
		wantReason string
	}{
		{"DCS down, every member confirmed: the primary keeps writing", withoutDCS(map[string]time.Time{"node2": t0, "node3": t0}),
			nil, "all 2 other members confirmed"},
		{"DCS down, a member does not answer: demote as without failsafe", withoutDCS(map[string]time.Time{"node2": t0}),
			[]ActionKind{WithdrawWritable, Demote}, "demoting"},
		{"a standby that promised does not promote although the key is free", func() Input {
			in := orphanInput(standbyLocal("node2", 0x5000000), standbyMember("node3", 0x5000000, 100))
			in.PromisedUntil = t0.Add(time.Second)
			return in
		}(), nil, "promised the leader"},
		{"once the promise expired it promotes as usual", func() Input {
			in := orphanInput(standbyLocal("node2", 0x5000000), standbyMember("node3", 0x5000000, 100))
			in.Self.Upstream = ""
			in.PromisedUntil = t0
			return in
		}(), []ActionKind{Failover}, "best candidate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := Decide(tt.in)
			if !reflect.DeepEqual(kinds(o), tt.want) || !strings.Contains(o.Reason, tt.wantReason) {
				t.Errorf("Decide = %v (%s), want %v with %q", kinds(o), o.Reason, tt.want, tt.wantReason)
			}
		})
	}
}
