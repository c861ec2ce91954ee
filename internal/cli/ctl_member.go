package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/internal/config"
	"github.com/vigil-ha/vigil/internal/dcs"
)

func newCtlMemberCmd(o *ctlOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "member",
		Short: "Members of the embedded etcd cluster: list, add, promote, remove",
		Long: `Grow, shrink or repair the etcd cluster the agents' embedded members form,
while everything runs.

Grow: ` + "`member add NAME --peer-url URL`" + ` adds NAME as a learner (a member without
a vote, so that a new member slow to catch up cannot cost the quorum) and
prints what NAME's configuration needs: initial_cluster as printed and
initial_cluster_state: existing. Start NAME's agent with an empty
dcs.embedded.data_dir: its member fetches the cluster from its peers, and
the agent promotes it to a voting member once it has caught up (` + "`member\npromote`" + ` does the same by hand). One member at a time: the next add is
refused until the last one votes. Its database joins as a standby.

Shrink: ` + "`member remove NAME`" + ` removes NAME's member; its agent notices, shuts
down as on SIGTERM and exits 0, leaving its database as it is. Refused when
the members left could not keep a quorum, for the last member, and for the
node holding the leader key (` + "`vigil ctl switchover`" + ` first). When NAME is the
etcd leader, leadership moves to another member first.

Replace a dead node: remove it, then add the new one (etcd admits a new
member only while every voting member is connected).`,
	}
	cmd.AddCommand(newCtlMemberListCmd(o), newCtlMemberAddCmd(o), newCtlMemberPromoteCmd(o), newCtlMemberRemoveCmd(o))
	return cmd
}

// membershipWait is how long add and remove keep asking while etcd answers
// that the cluster is not ready for a membership change.
const membershipWait = 30 * time.Second

func newCtlMemberListCmd(o *ctlOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "One row per etcd member: name, ID, URLs, learner, healthy, leader",
		Args:  cobra.NoArgs,
		RunE: o.withStore(func(cmd *cobra.Command, _ []string, s *dcs.Store) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			ms, err := s.EtcdMembers(ctx)
			if err != nil {
				return err
			}
			if o.output == "json" {
				return writeJSON(cmd.OutOrStdout(), ms)
			}
			printEtcdMembers(cmd.OutOrStdout(), ms)
			return nil
		}),
	}
}

func printEtcdMembers(w io.Writer, ms []dcs.EtcdMember) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tPEER URLS\tCLIENT URLS\tLEARNER\tHEALTHY\tLEADER")
	for _, m := range ms {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", orDash(m.Name), m.HexID(), strings.Join(m.PeerURLs, ","),
			orDash(strings.Join(m.ClientURLs, ",")), yes(m.Learner), yes(m.Healthy), yes(m.Leader))
	}
	tw.Flush()
}

// addedMemberOutput is what `member add -o json` prints.
type addedMemberOutput struct {
	Name                string            `json:"name"`
	ID                  string            `json:"id"`
	PeerURL             string            `json:"peer_url"`
	InitialCluster      map[string]string `json:"initial_cluster"`
	InitialClusterState string            `json:"initial_cluster_state"`
}

func newCtlMemberAddCmd(o *ctlOptions) *cobra.Command {
	var peerURL string
	cmd := &cobra.Command{
		Use:   "add NAME --peer-url URL",
		Short: "Add NAME's etcd member as a learner and print the configuration its node needs",
		Args:  cobra.ExactArgs(1),
		RunE: o.withStore(func(cmd *cobra.Command, args []string, s *dcs.Store) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), membershipWait)
			defer cancel()
			a, err := s.AddEtcdMember(ctx, args[0], peerURL)
			if err != nil {
				return membershipError(err)
			}
			out := addedMemberOutput{Name: a.Name, ID: a.HexID(), PeerURL: peerURL, InitialCluster: a.InitialCluster, InitialClusterState: config.ClusterStateExisting}
			if o.output == "json" {
				return writeJSON(cmd.OutOrStdout(), out)
			}
			printAddedMember(cmd.OutOrStdout(), out)
			return nil
		}),
	}
	cmd.Flags().StringVar(&peerURL, "peer-url", "", "where the other members reach the new one: its dcs.embedded.peer_url (required)")
	_ = cmd.MarkFlagRequired("peer-url")
	return cmd
}

func printAddedMember(w io.Writer, a addedMemberOutput) {
	fmt.Fprintf(w, "added etcd member %s (ID %s) as a learner: it votes once its agent has promoted it, after catching up.\n", a.Name, a.ID)
	fmt.Fprintf(w, "In %s's configuration (its dcs.embedded.data_dir empty), then start its agent:\n\n", a.Name)
	fmt.Fprintf(w, "dcs:\n  embedded:\n    peer_url: %s\n    initial_cluster_state: %s\n    initial_cluster:\n", a.PeerURL, a.InitialClusterState)
	names := make([]string, 0, len(a.InitialCluster))
	for n := range a.InitialCluster {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "      %s: %s\n", n, a.InitialCluster[n])
	}
}

func newCtlMemberPromoteCmd(o *ctlOptions) *cobra.Command {
	return newCtlMemberChangeCmd(o, "promote NAME", "Make the learner NAME a voting member (its agent does so by itself once it has caught up)",
		o.timeout, (*dcs.Store).PromoteEtcdMember, "etcd member %s (ID %s) is a voting member\n")
}

func newCtlMemberRemoveCmd(o *ctlOptions) *cobra.Command {
	return newCtlMemberChangeCmd(o, "remove NAME", "Remove NAME's etcd member (NAME, its ID or its peer URL); its agent stops",
		membershipWait, (*dcs.Store).RemoveEtcdMember, "removed etcd member %s (ID %s): its agent stops by itself and its database is left as it is\n")
}

// newCtlMemberChangeCmd makes a command that applies change to the member
// its one argument names, within wait, and reports the member with done
// (its label and ID).
func newCtlMemberChangeCmd(o *ctlOptions, use, short string, wait time.Duration,
	change func(*dcs.Store, context.Context, string) (dcs.EtcdMember, error), done string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: o.withStore(func(cmd *cobra.Command, args []string, s *dcs.Store) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), wait)
			defer cancel()
			m, err := change(s, ctx, args[0])
			if err != nil {
				return membershipError(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), done, m.Label(), m.HexID())
			return nil
		}),
	}
}

// membershipError makes a refused change a usage error (exit 2): nothing
// was asked of etcd.
func membershipError(err error) error {
	if errors.Is(err, dcs.ErrMembershipRefused) {
		return usageError(err)
	}
	return err
}
