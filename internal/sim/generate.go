package sim

import (
	"time"

	"fmt"
	"math/rand/v2"

	"github.com/vigil-ha/vigil/internal/decision"
)

// Generate makes the random schedule of a seed: a configuration, one to
// four episodes of faults, each healed after a random time, then every
// fault healed and convergence required within a bound.
//
// Two kinds of episode are left out on purpose: an agent that is killed or
// frozen while its own server hangs or its node is cut off. No agent can
// demote a primary it does not run; surviving that needs a fence or a
// watchdog (issue 12), which the simulation does not model.
func Generate(seed uint64) *Script {
	rng := rand.New(rand.NewPCG(seed, 0x76696769))
	modes := []decision.SyncMode{decision.SyncOff, decision.SyncOn, decision.SyncStrict}
	sc := &Script{Config: Config{Nodes: 3, Sync: modes[rng.IntN(len(modes))], Failsafe: rng.IntN(2) == 0, AutoRejoin: true}, Phases: seed}
	add := func(op string, args ...string) { sc.Steps = append(sc.Steps, Step{Op: op, Args: args}) }
	wait := func(lo, hi time.Duration) {
		add("wait", (lo + time.Duration(rng.Int64N(int64(hi-lo)))).Round(100*time.Millisecond).String())
	}
	target := func() string {
		switch rng.IntN(4) {
		case 0, 1:
			return "@primary"
		case 2:
			return "@standby"
		}
		return fmt.Sprintf("node%d", 1+rng.IntN(sc.Config.Nodes))
	}
	wait(3*time.Second, 6*time.Second)
	for range 1 + rng.IntN(4) {
		node := target()
		switch k := rng.IntN(12); k {
		case 0:
			add("crash", node)
		case 1:
			add("hang", node)
			wait(500*time.Millisecond, 12*time.Second)
			add("resume", node)
		case 2:
			add("kill-agent", node)
			if rng.IntN(2) == 0 { // the server dies too: a host reboot
				wait(0, 2*time.Second)
				add("crash", node)
			}
			wait(500*time.Millisecond, 12*time.Second)
			add("restart-agent", "@dead")
		case 3:
			add("freeze-agent", node)
			stall := rng.IntN(2) == 0 // a loaded host: its WAL stream goes quiet too
			if stall {
				add("stall-wal", node)
			}
			wait(500*time.Millisecond, 12*time.Second)
			if stall {
				add("unstall-wal", node)
			}
			add("thaw-agent", "@frozen")
		case 4, 5, 6:
			op := []string{"dcs", "trusted", "peers"}[k-4]
			add("cut-"+op, node)
			if rng.IntN(3) == 0 { // a second, overlapping cut elsewhere
				other := target()
				op2 := []string{"dcs", "trusted", "peers"}[rng.IntN(3)]
				wait(0, 3*time.Second)
				add("cut-"+op2, other)
				wait(500*time.Millisecond, 12*time.Second)
				add("heal-"+op2, other)
			}
			wait(500*time.Millisecond, 12*time.Second)
			add("heal-"+op, node)
		case 7:
			add("dcs-down")
			wait(500*time.Millisecond, 12*time.Second)
			add("dcs-up")
		case 8:
			if rng.IntN(2) == 0 {
				add("switchover")
			} else {
				add("switchover", "@standby")
			}
		case 9:
			add("failover", "@standby")
		case 10:
			add("lag", "@standby")
			add("load", fmt.Sprint(1+rng.IntN(16)))
			wait(500*time.Millisecond, 4*time.Second)
			add("crash", "@primary")
			wait(time.Second, 8*time.Second)
			add("unlag", "node1")
			add("unlag", "node2")
			add("unlag", "node3")
		case 11:
			add("crash", node)
			wait(0, 2*time.Second)
			add("crash", target())
		}
		wait(0, 8*time.Second)
	}
	add("heal")
	add("check", "converged", "60s")
	return sc
}
