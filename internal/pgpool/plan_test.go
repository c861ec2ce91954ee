package pgpool

import (
	"slices"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/internal/database"
)

// placeholders builds Args the way Pgpool-II substitutes them, positionally.
func placeholders(t *testing.T, values ...string) Args {
	t.Helper()
	a, err := ParsePositional(values)
	if err != nil {
		t.Fatalf("ParsePositional(%q): %v", values, err)
	}
	return a
}

// Observations of the node to promote.
const (
	pg15 = 150004
	v8r3 = 90600 // KingbaseES V8R3 is based on PostgreSQL 9.6
)

func standbyOK() Candidate {
	return Candidate{Reachable: true, InRecovery: true, VersionNum: pg15, PromoteFunction: true, Backlog: 1 << 20}
}
func standbyV8() Candidate { return Candidate{Reachable: true, InRecovery: true, VersionNum: v8r3} }
func promoted() Candidate {
	return Candidate{Reachable: true, Writable: true, VersionNum: pg15, PromoteFunction: true}
}

func TestDecide(t *testing.T) {
	fullSteps := []Action{ActFence, ActSync, ActPromote, ActGate, ActVIP, ActCheckpoint}
	noVIPSteps := []Action{ActFence, ActSync, ActPromote, ActGate, ActCheckpoint}
	standbyOK, standbyV8, promoted := standbyOK(), standbyV8(), promoted()
	// Node 0 (192.168.1.201) was the primary, node 1 (.202) the standby:
	// the seed's cluster.
	primaryDown := []string{"0", "192.168.1.201", "54321", "/data", "1", "192.168.1.202", "0", "0", "54321", "/data", "192.168.1.201", "54321"}
	standbyDown := []string{"1", "192.168.1.202", "54321", "/data", "0", "192.168.1.201", "0", "0", "54321", "/data", "192.168.1.201", "54321"}
	withValue := func(vals []string, i int, v string) []string {
		out := slices.Clone(vals)
		out[i] = v
		return out
	}
	tests := []struct {
		name      string
		args      []string
		trusted   bool
		cand      Candidate
		vip       bool
		method    string
		wantCase  Case
		wantExit  int
		wantSteps []Action
		wantVia   string
		reason    string // a phrase the reason must contain
	}{
		{name: "primary down: full procedure, SQL promote", args: primaryDown, trusted: true, cand: standbyOK, vip: true,
			wantCase: CasePrimaryDown, wantSteps: fullSteps, wantVia: ViaSQL, reason: "fence it, promote"},
		{name: "primary down without a VIP", args: primaryDown, trusted: true, cand: standbyOK,
			wantCase: CasePrimaryDown, wantSteps: noVIPSteps, wantVia: ViaSQL},
		{name: "primary down, Pgpool-II before 4.1 (no %N %S)", args: primaryDown[:10], trusted: true, cand: standbyOK, vip: true,
			wantCase: CasePrimaryDown, wantSteps: fullSteps, wantVia: ViaSQL},
		{name: "KingbaseES V8R3 (9.6 based): no sys_promote, control binary over SSH", args: primaryDown, trusted: true, cand: standbyV8, vip: true,
			wantCase: CasePrimaryDown, wantSteps: fullSteps, wantVia: ViaSSH},
		{name: "promote.method ssh on a new server", args: primaryDown, trusted: true, cand: standbyOK, vip: true, method: MethodSSH,
			wantCase: CasePrimaryDown, wantSteps: fullSteps, wantVia: ViaSSH},
		{name: "promote.method sql on a server without the function", args: primaryDown, trusted: true, cand: standbyV8, method: MethodSQL,
			wantCase: CaseInvalid, wantExit: ExitUsage, reason: "no promote function"},
		{name: "trusted IP unreachable, primary down: nothing at all", args: primaryDown, trusted: false, cand: standbyOK, vip: true,
			wantCase: CaseIsolated, wantExit: ExitIsolated, reason: "no trusted IP answered"},
		{name: "trusted IP unreachable, standby down", args: standbyDown, trusted: false,
			wantCase: CaseIsolated, wantExit: ExitIsolated},
		{name: "standby down: detach only", args: standbyDown, trusted: true, cand: standbyOK, vip: true,
			wantCase: CaseStandbyDown, wantExit: ExitOK, reason: "detached only, no promotion"},
		{name: "no primary known (%P = -1)", args: withValue(standbyDown, 7, "-1"), trusted: true,
			wantCase: CaseStandbyDown, wantExit: ExitOK, reason: "knows no primary"},
		{name: "no new main node (%m = -1, %H empty)", args: withValue(withValue(primaryDown, 4, "-1"), 5, ""), trusted: true, vip: true,
			wantCase: CaseNoCandidate, wantExit: ExitNoCandidate, reason: "no new main node"},
		{name: "new main node id without a host", args: withValue(primaryDown, 5, ""), trusted: true, cand: standbyOK,
			wantCase: CaseNoCandidate, wantExit: ExitNoCandidate},
		{name: "the new main node is the failed node", args: withValue(primaryDown, 4, "0"), trusted: true, cand: standbyOK,
			wantCase: CaseNoCandidate, wantExit: ExitNoCandidate, reason: "failed node itself"},
		{name: "the new main node does not answer", args: primaryDown, trusted: true, cand: Candidate{Error: "connection refused"}, vip: true,
			wantCase: CaseNoCandidate, wantExit: ExitNoCandidate, reason: "connection refused"},
		{name: "no failed node id", args: withValue(primaryDown, 0, ""), trusted: true,
			wantCase: CaseInvalid, wantExit: ExitUsage},
		{name: "repeated call: writable with the VIP", args: primaryDown, trusted: true, cand: Candidate{Reachable: true, Writable: true, HasVIP: true}, vip: true,
			wantCase: CaseAlreadyDone, wantExit: ExitOK, reason: "repeated call"},
		{name: "repeated call without a VIP configured", args: primaryDown, trusted: true, cand: promoted,
			wantCase: CaseAlreadyDone, wantExit: ExitOK},
		{name: "interrupted call: promoted, VIP missing: finish without promoting again", args: primaryDown, trusted: true, cand: promoted, vip: true,
			wantCase: CasePrimaryDown, wantSteps: fullSteps, wantVia: "", reason: "out of recovery already"},
		{name: "promoted but not writable yet: the gate still runs", args: primaryDown, trusted: true, cand: Candidate{Reachable: true, HasVIP: true}, vip: true,
			wantCase: CasePrimaryDown, wantSteps: fullSteps, wantVia: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := placeholders(t, tt.args...)
			method := tt.method
			if method == "" {
				method = MethodAuto
			}
			p := Decide(Input{Args: a, Defaults: Defaults{Port: 54321, Names: []string{"kb1", "kb2"}}, Trusted: tt.trusted, TrustedEvidence: "test",
				Candidate: tt.cand, VIP: tt.vip, PromoteMethod: method})
			if p.Case != tt.wantCase || p.Exit != tt.wantExit || !slices.Equal(p.Actions(), tt.wantSteps) || p.PromoteVia != tt.wantVia {
				t.Errorf("Decide = case %s exit %d steps %v via %q, want case %s exit %d steps %v via %q\nreason: %s",
					p.Case, p.Exit, p.Actions(), p.PromoteVia, tt.wantCase, tt.wantExit, tt.wantSteps, tt.wantVia, p.Reason)
			}
			if !strings.Contains(p.Reason, tt.reason) {
				t.Errorf("reason %q lacks %q", p.Reason, tt.reason)
			}
			if len(p.Actions()) > 0 && p.Exit != ExitOK {
				t.Errorf("a plan with steps has exit %d", p.Exit)
			}
		})
	}
}

// TestDecideOrderInvariants checks every combination of the values that
// matter: whatever Pgpool-II passes and whatever was observed, nothing runs
// without the guard, a standby failure never promotes, the fence comes
// before the promotion and the readiness gate before the VIP.
func TestDecideOrderInvariants(t *testing.T) {
	ids := []string{"-1", "0", "1", "2", ""}
	hosts := []string{"", "10.0.0.2"}
	cands := []Candidate{{}, standbyOK(), standbyV8(), promoted(), {Reachable: true, Writable: true, HasVIP: true}, {Reachable: true}}
	n, withSteps := 0, 0
	for _, d := range ids {
		for _, m := range ids {
			for _, p := range ids {
				for _, h := range hosts {
					for ci, c := range cands {
						for _, trusted := range []bool{false, true} {
							for _, vip := range []bool{false, true} {
								a := placeholders(t, d, "10.0.0.1", "5432", "/d", m, h, "0", p, "5432", "/d", "10.0.0.1", "5432")
								pl := Decide(Input{Args: a, Trusted: trusted, Candidate: c, VIP: vip, PromoteMethod: MethodAuto})
								n++
								// The candidate is only looked at when it matters.
								if unseen := Decide(Input{Args: a, Trusted: trusted, VIP: vip, PromoteMethod: MethodAuto}); !NeedsCandidate(a) &&
									(unseen.Case != pl.Case || unseen.Exit != pl.Exit || !slices.Equal(unseen.Actions(), pl.Actions())) {
									t.Fatalf("d=%s m=%s P=%s H=%s: the plan depends on a candidate that is not observed", d, m, p, h)
								}
								where := func() string {
									return "d=" + d + " m=" + m + " P=" + p + " H=" + h + " cand " + string(rune('0'+ci))
								}
								if len(pl.Actions()) == 0 {
									continue
								}
								withSteps++
								if !trusted {
									t.Fatalf("%s: steps without a trusted IP: %v", where(), pl.Actions())
								}
								if a.FailedID != a.OldPrimaryID || a.OldPrimaryID < 0 {
									t.Fatalf("%s: a standby failure got steps %v", where(), pl.Actions())
								}
								if !c.Reachable || a.NewMainHost == "" || a.NewMainID < 0 || a.NewMainID == a.FailedID {
									t.Fatalf("%s: steps %v without a usable candidate", where(), pl.Actions())
								}
								if pl.Actions()[0] != ActFence || slices.Index(pl.Actions(), ActSync) != 1 || slices.Index(pl.Actions(), ActPromote) != 2 || slices.Index(pl.Actions(), ActGate) != 3 {
									t.Fatalf("%s: order %v", where(), pl.Actions())
								}
								if i := slices.Index(pl.Actions(), ActVIP); vip != (i >= 0) || (i >= 0 && i != 4) {
									t.Fatalf("%s: the VIP must come right after the gate exactly when configured: %v", where(), pl.Actions())
								}
							}
						}
					}
				}
			}
		}
	}
	if n < 1000 || withSteps == 0 {
		t.Fatalf("only %d combinations checked, %d with steps", n, withSteps)
	}
}

func TestTargets(t *testing.T) {
	d := Defaults{Port: 54321, DataDir: "/default", Names: []string{"kb1", "", "kb3"}}
	a := placeholders(t, "0", "10.0.0.1", "", "", "2", "10.0.0.3", "0", "0", "", "", "", "")
	if got, want := a.OldPrimary(d), (Target{ID: 0, Name: "kb1", Host: "10.0.0.1", Port: 54321, DataDir: "/default"}); got != want {
		t.Errorf("old primary = %+v, want %+v", got, want)
	}
	if got, want := a.NewMain(d), (Target{ID: 2, Name: "kb3", Host: "10.0.0.3", Port: 54321, DataDir: "/default"}); got != want {
		t.Errorf("new main = %+v, want %+v", got, want)
	}
	// A standby failed while node 1 was primary: the old primary is %N/%S.
	b := placeholders(t, "2", "10.0.0.3", "5433", "/d3", "1", "10.0.0.2", "1", "1", "5432", "/d2", "10.0.0.2", "5432")
	if got, want := b.OldPrimary(d), (Target{ID: 1, Name: "node1", Host: "10.0.0.2", Port: 5432, DataDir: "/default"}); got != want {
		t.Errorf("old primary = %+v, want %+v", got, want)
	}
	if got, want := b.Failed(d), (Target{ID: 2, Name: "kb3", Host: "10.0.0.3", Port: 5433, DataDir: "/d3"}); got != want {
		t.Errorf("failed = %+v, want %+v", got, want)
	}
}

func TestAfterFence(t *testing.T) {
	tests := []struct {
		name    string
		out     FenceOutcome
		policy  string
		proceed bool
		exit    int
	}{
		{"stopped, VIP gone", FenceOutcome{Reached: true, Stopped: true, VIPGone: true}, FenceAbort, true, ExitOK},
		{"unreachable, abort", FenceOutcome{Detail: "i/o timeout"}, FenceAbort, false, ExitFenceFailed},
		{"unreachable, continue on the guard", FenceOutcome{Detail: "i/o timeout"}, FenceContinue, true, ExitOK},
		{"reached, still running, even with continue", FenceOutcome{Reached: true, VIPGone: true}, FenceContinue, false, ExitFenceFailed},
		{"reached, VIP still there", FenceOutcome{Reached: true, Stopped: true}, FenceContinue, false, ExitFenceFailed},
		{"reached but the session failed (host key, auth)", FenceOutcome{Reached: true, Detail: "unknown SSH host key"}, FenceContinue, false, ExitFenceFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proceed, exit, why := AfterFence(tt.out, tt.policy)
			if proceed != tt.proceed || exit != tt.exit || why == "" {
				t.Errorf("AfterFence = %v, %d, %q; want %v, %d", proceed, exit, why, tt.proceed, tt.exit)
			}
		})
	}
}

func TestExitFor(t *testing.T) {
	for _, tt := range []struct {
		act     Action
		expired bool
		want    int
	}{
		{ActFence, false, ExitFenceFailed},
		{ActPromote, false, ExitFailed},
		{ActGate, false, ExitNotReady},
		{ActVIP, false, ExitVIPFailed},
		{ActGate, true, ExitTimeout},
		{ActSync, false, ExitFailed},
		{ActCheckpoint, false, ExitFailed},
	} {
		if got := ExitFor(tt.act, tt.expired); got != tt.want {
			t.Errorf("ExitFor(%s, %v) = %d, want %d", tt.act, tt.expired, got, tt.want)
		}
	}
}

func TestSyncAction(t *testing.T) {
	streaming := func(names ...string) []database.Standby {
		var out []database.Standby
		for _, n := range names {
			out = append(out, database.Standby{ApplicationName: n, State: "streaming"})
		}
		return out
	}
	tests := []struct {
		names    string
		standbys []database.Standby
		toAsync  bool
	}{
		{"", nil, false},
		{"node1", nil, true}, // the seed: the old primary named, nobody streams
		{"FIRST 1 (node1, node3)", streaming("node3"), false}, // another synchronous standby is there
		{"ANY 1 (node1)", streaming("node3"), true},           // a standby streams, but not a synchronous one
		{"*", streaming("node3"), false},
		{"*", nil, true},
		{"node3", []database.Standby{{ApplicationName: "node3", State: "catchup"}}, true},
	}
	for _, tt := range tests {
		got, why := SyncAction(database.Observation{SynchronousStandbyNames: tt.names, Standbys: tt.standbys})
		if got != tt.toAsync || why == "" {
			t.Errorf("SyncAction(%q, %v) = %v (%s), want %v", tt.names, tt.standbys, got, why, tt.toAsync)
		}
		if strings.Contains(why, "sync to async") {
			t.Errorf("reason %q would read as the seed's sync-to-async step in vigil analyze", why)
		}
	}
}

func TestDecideFollow(t *testing.T) {
	// Node 2 (.203) follows; node 1 (.202) is the new primary.
	args := []string{"2", "192.168.1.203", "5432", "/data", "1", "192.168.1.202", "0", "0", "5432", "/data", "192.168.1.201", "5432"}
	streaming := StandbyState{Reachable: true, InRecovery: true, VersionNum: 150004}
	tests := []struct {
		name     string
		args     []string
		settings FollowSettings
		standby  StandbyState
		wantCase Case
		exit     int
		method   string
	}{
		{"remote, server 15: ALTER SYSTEM and reload", args, FollowSettings{}, streaming, CaseFollow, ExitOK, FollowBySQL},
		{"local standby", args, FollowSettings{Local: true}, streaming, CaseFollow, ExitOK, FollowLocally},
		{"already following", args, FollowSettings{}, StandbyState{Reachable: true, InRecovery: true, Following: true}, CaseFollowDone, ExitOK, ""},
		{"runs as a primary: rewind first", args, FollowSettings{}, StandbyState{Reachable: true}, CaseFollowRefuse, ExitFailed, ""},
		{"down: left detached", args, FollowSettings{}, StandbyState{Error: "refused"}, CaseFollowSkip, ExitOK, ""},
		{"down, --local: configure and start it here", args, FollowSettings{Local: true, Forced: true}, StandbyState{Error: "refused"}, CaseFollow, ExitOK, FollowLocally},
		{"server 12, remote vigil configured: restart there", args, FollowSettings{RemoteVigil: "/usr/local/bin/vigil"}, StandbyState{Reachable: true, InRecovery: true, VersionNum: 120004}, CaseFollow, ExitOK, FollowByRemote},
		{"server 12, no way to restart it", args, FollowSettings{}, StandbyState{Reachable: true, InRecovery: true, VersionNum: 120004}, CaseFollowRefuse, ExitFailed, ""},
		{"KingbaseES V8R3 here: recovery.conf and a restart", args, FollowSettings{RemoteVigil: "/usr/local/bin/vigil", Local: true}, StandbyState{Reachable: true, InRecovery: true, VersionNum: v8r3}, CaseFollow, ExitOK, FollowLocally},
		{"KingbaseES V8R3 elsewhere: restart there", args, FollowSettings{RemoteVigil: "/usr/local/bin/vigil"}, StandbyState{Reachable: true, InRecovery: true, VersionNum: v8r3}, CaseFollow, ExitOK, FollowByRemote},
		{"KingbaseES V8R3, no way to restart it", args, FollowSettings{}, StandbyState{Reachable: true, InRecovery: true, VersionNum: v8r3}, CaseFollowRefuse, ExitFailed, ""},
		{"the new primary itself", []string{"1", "192.168.1.202", "5432", "/data", "1", "192.168.1.202", "0", "0", "5432", "/data", "", ""}, FollowSettings{}, streaming, CaseFollowDone, ExitOK, ""},
		{"no new primary", []string{"2", "192.168.1.203", "5432", "/data", "-1", "", "0", "0", "", "", "", ""}, FollowSettings{}, streaming, CaseNoCandidate, ExitNoCandidate, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := DecideFollow(FollowInput{Args: placeholders(t, tt.args...), Settings: tt.settings, Standby: tt.standby})
			if p.Case != tt.wantCase || p.Exit != tt.exit || p.Method != tt.method {
				t.Errorf("DecideFollow = %s exit %d method %q (%s), want %s exit %d method %q", p.Case, p.Exit, p.Method, p.Reason, tt.wantCase, tt.exit, tt.method)
			}
		})
	}
}

func TestRemoteAndAttachCommands(t *testing.T) {
	s := FollowSettings{RemoteVigil: "/usr/local/bin/vigil", RemoteConfig: "/etc/vigil/pgpool.yaml",
		AttachCommand: []string{"pcp_attach_node", "-w", "-h", "localhost", "-U", "pgpool", "-n", "{node_id}"}}
	a := placeholders(t, "2", "h3", "5432", "/d", "1", "h2", "0", "0", "5432", "/d", "h1", "")
	got := RemoteFollowCommand(s, a)
	want := []string{"/usr/local/bin/vigil", "follow-command", "--config", "/etc/vigil/pgpool.yaml", "--local", "--",
		"2", "h3", "5432", "/d", "1", "h2", "0", "0", "5432", "/d", "h1", ""}
	if !slices.Equal(got, want) {
		t.Errorf("RemoteFollowCommand = %q, want %q", got, want)
	}
	if got := AttachCommand(s, 2); got[len(got)-1] != "2" || got[0] != "pcp_attach_node" {
		t.Errorf("AttachCommand = %q", got)
	}
	if AttachCommand(FollowSettings{}, 2) != nil {
		t.Error("no attach command configured, but one was built")
	}
}
