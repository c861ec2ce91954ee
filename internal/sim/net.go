package sim

import (
	"context"
	"fmt"

	"github.com/vigil-ha/vigil/internal/agent"
	"github.com/vigil-ha/vigil/internal/isolation"
)

// trusted is a node's isolation check: the trusted IPs answer unless the
// node is cut from them.
type trusted struct{ inc *incarnation }

func (t trusted) Check(context.Context) isolation.Result {
	if t.inc.node.cutTrusted {
		return isolation.Result{Reachable: false, Evidence: "no trusted IP answers (simulated cut)"}
	}
	return isolation.Result{Reachable: true, Evidence: "trusted IP answers (simulated)"}
}

// route is a node's VIP. Like vip.Manager it refuses to come up while
// another host has the address.
type route struct{ inc *incarnation }

func (r route) Name() string { return "vip" }

func (r route) Up(ctx context.Context) error {
	if !r.inc.alive {
		return errKilled
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	w, n := r.inc.w, r.inc.node
	if n.vipUp {
		return nil
	}
	for _, o := range w.nodes {
		if o != n && o.vipUp {
			return fmt.Errorf("vip: the address answers from %s", o.Name)
		}
	}
	if s := n.srv; !s.responsive() || s.inRecovery || s.probed != s.lin {
		w.violate(RouteNoProbe, "routes up on %s, whose server has no committed write probe on its timeline (running %v, in recovery %v)",
			n.Name, s.running, s.inRecovery)
	}
	n.vipUp = true
	w.note(n.Name + " VIP up")
	return nil
}

func (r route) Down(ctx context.Context) error {
	if !r.inc.alive {
		return errKilled
	}
	if r.inc.node.vipUp {
		r.inc.node.vipUp = false
		r.inc.w.note(r.inc.node.Name + " VIP down")
	}
	return nil
}

// pinger carries failsafe pings between agents: the members' agents must
// be running and not frozen, and both nodes linked.
type pinger struct{ w *World }

func (p pinger) PingFailsafe(_ context.Context, leader, member, _ string) error {
	from, to := p.w.Node(leader), p.w.Node(member)
	switch {
	case from == nil || to == nil:
		return fmt.Errorf("failsafe ping %s -> %s: no such node", leader, member)
	case from.cutPeers || to.cutPeers:
		return fmt.Errorf("failsafe ping %s -> %s: unreachable (simulated)", leader, member)
	case to.inc == nil || to.inc.frozen:
		return fmt.Errorf("failsafe ping %s -> %s: agent does not answer", leader, member)
	}
	_, err := to.inc.agent.ConfirmFailsafe(leader)
	return err
}

var (
	_ agent.Server         = serverHandle{}
	_ agent.Control        = serverHandle{}
	_ agent.Store          = (*session)(nil)
	_ agent.TrustedChecker = trusted{}
	_ agent.Router         = route{}
	_ agent.FailsafePinger = pinger{}
	_ agent.Clock          = vclock{}
)
