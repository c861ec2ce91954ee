package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
)

// topologyNode is a member with the standbys that stream from it.
type topologyNode struct {
	Name     string          `json:"name"`
	Role     decision.Role   `json:"role"`
	Leader   bool            `json:"leader,omitempty"`
	Timeline uint32          `json:"timeline"`
	LagBytes uint64          `json:"lag_bytes"`
	Sync     bool            `json:"synchronous,omitempty"`
	Standbys []*topologyNode `json:"standbys,omitempty"`
	// Upstream and Reason are set for a member outside the primary's
	// tree: the member it names as its upstream, and why it is outside.
	Upstream string `json:"upstream,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// topology is who streams from whom: the tree under the primary, and the
// members outside it, each with the standbys that hang from it in turn.
type topology struct {
	Cluster  string          `json:"cluster"`
	Primary  *topologyNode   `json:"primary,omitempty"`
	Detached []*topologyNode `json:"detached,omitempty"`
}

// buildTopology hangs every standby under the member it streams from
// (memberRow.Upstream, from its primary_conninfo), starting at the leader.
// A member that does not lead down to the leader is detached, with why.
func buildTopology(list listOutput) topology {
	rows := map[string]memberRow{}
	children := map[string][]string{}
	for _, r := range list.Members {
		rows[r.Name] = r
	}
	for _, r := range list.Members { // sorted by name, so are the children
		if r.Role == decision.RoleStandby && r.Upstream != "" && r.Upstream != r.Name {
			if _, ok := rows[r.Upstream]; ok {
				children[r.Upstream] = append(children[r.Upstream], r.Name)
			}
		}
	}
	placed := map[string]bool{}
	var grow func(name string) *topologyNode
	grow = func(name string) *topologyNode {
		placed[name] = true
		r := rows[name]
		n := &topologyNode{Name: r.Name, Role: r.Role, Leader: r.Leader, Timeline: r.Timeline, LagBytes: r.LagBytes, Sync: r.Sync}
		for _, c := range children[name] {
			if !placed[c] {
				n.Standbys = append(n.Standbys, grow(c))
			}
		}
		return n
	}
	t := topology{Cluster: list.Cluster}
	if _, ok := rows[list.Leader]; ok {
		t.Primary = grow(list.Leader)
	}
	// The roots of what is left: members that stream from nobody who is a
	// member. Members still left after them stream from each other in a
	// circle.
	for _, cycle := range []bool{false, true} {
		for _, r := range list.Members {
			if placed[r.Name] {
				continue
			}
			_, upstreamKnown := rows[r.Upstream]
			if !cycle && r.Role == decision.RoleStandby && upstreamKnown && r.Upstream != r.Name {
				continue
			}
			n := grow(r.Name)
			n.Upstream, n.Reason = r.Upstream, detachedReason(r, rows, list.Leader, cycle)
			t.Detached = append(t.Detached, n)
		}
	}
	return t
}

func detachedReason(r memberRow, rows map[string]memberRow, leader string, cycle bool) string {
	switch {
	case r.Role == decision.RolePrimary:
		return "runs a primary without the leader key"
	case r.Role == decision.RoleStopped:
		return "server stopped"
	case r.Role == decision.RoleUnknown:
		return "server not reachable over SQL"
	case r.Role != decision.RoleStandby:
		return "role " + string(r.Role)
	case r.Upstream == "":
		return "upstream unknown: its primary_conninfo names no member"
	case r.Upstream == r.Name:
		return "its primary_conninfo names itself"
	case cycle:
		return "streams from " + r.Upstream + ", in a circle of standbys that never reaches the primary"
	}
	if _, ok := rows[r.Upstream]; !ok {
		return "upstream " + r.Upstream + " is not a live member"
	}
	return "upstream " + r.Upstream + " does not lead to the primary " + orDash(leader)
}

func printTopology(w io.Writer, t topology) {
	fmt.Fprintf(w, "cluster %s\n", t.Cluster)
	if t.Primary == nil {
		fmt.Fprintln(w, "no primary: nobody holds the leader key")
	} else {
		printTree(w, t.Primary, "", "")
	}
	if len(t.Detached) > 0 {
		fmt.Fprintln(w, "not streaming from the primary's tree:")
		for _, n := range t.Detached {
			printTree(w, n, "  ", "  ")
		}
	}
}

// printTree draws n with first before its own line and rest before its
// standbys' lines, as tree(1) does.
func printTree(w io.Writer, n *topologyNode, first, rest string) {
	line := fmt.Sprintf("%s %s tl %d", n.label(), n.Role, n.Timeline)
	if n.Role == decision.RoleStandby {
		line += " lag " + shortBytes(n.LagBytes)
	}
	if n.Sync {
		line += " sync"
	}
	if n.Reason != "" {
		line += ": " + n.Reason
	}
	fmt.Fprintln(w, first+line)
	for i, c := range n.Standbys {
		if i == len(n.Standbys)-1 {
			printTree(w, c, rest+"└── ", rest+"    ")
		} else {
			printTree(w, c, rest+"├── ", rest+"│   ")
		}
	}
}

func (n *topologyNode) label() string {
	return memberRow{Name: n.Name, Leader: n.Leader}.label()
}

func newCtlTopologyCmd(o *ctlOptions) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "topology [--json]",
		Short: "Who streams from whom: the standbys under their upstream, cascades nested",
		Long: `Draw the replication tree from the primary (the leader) down: each standby
under the member its primary_conninfo names, cascading standbys nested under
theirs. Members outside the tree (stopped, unreachable, a primary without
the leader key, a standby whose upstream is unknown or does not lead to the
primary) are listed after it with the reason.`,
		Args: cobra.NoArgs,
		RunE: o.withStore(func(cmd *cobra.Command, _ []string, s *dcs.Store) error {
			v, err := o.snapshot(cmd.Context(), s)
			if err != nil {
				return err
			}
			t := buildTopology(buildList(o.clusterName, v))
			if asJSON || o.output == "json" {
				return writeJSON(cmd.OutOrStdout(), t)
			}
			printTopology(cmd.OutOrStdout(), t)
			return nil
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the tree as JSON (as -o json does)")
	return cmd
}
