package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/internal/demo"
)

func newDemoCmd() *cobra.Command {
	var (
		o        demo.Options
		jsonOut  bool
		noLagArg bool
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Fail over a real 3-node cluster under load and print the timeline (needs root)",
		Long: `Run the incident Vigil was built for, for real, on this machine:

  1. start three vigil agents (embedded etcd) on three empty hosts in network
     namespaces behind a bridge, with a client host and a VIP: one agent wins
     the initialize key and creates the PostgreSQL 15 cluster, the two others
     clone it and stream;
  2. the client writes through the VIP continuously;
  3. the standbys fall behind on replay (replay paused while the primary
     writes: the seed's "heavy load"), with synchronous replication on;
  4. the primary node crashes (SIGKILL of its postmaster and its agent);
  5. print the failover timeline, the write outage the client saw, the
     read-only errors it saw through the VIP (0: the VIP moves only after a
     write commits) and acknowledged writes lost (0 in synchronous mode).

Everything is removed at the end unless --keep. Needs root: namespaces,
veth links and the VIP need CAP_NET_ADMIN and CAP_NET_RAW.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bin, err := os.Executable()
			if err != nil {
				return err
			}
			o.Binary = bin
			if noLagArg {
				o.LagMB = 0
			}
			if !jsonOut {
				o.Progress = cmd.ErrOrStderr()
			}
			res, err := demo.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			if jsonOut {
				res.Series = nil
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			fmt.Fprint(cmd.OutOrStdout(), demo.Format(res))
			if o.Keep {
				fmt.Fprint(cmd.OutOrStdout(), keepInstructions(res))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Dir, "dir", "/var/tmp/vigil-demo", "directory for the demo cluster (replaced if it holds an earlier demo)")
	f.BoolVar(&o.Keep, "keep", false, "leave the cluster running and print how to connect")
	f.BoolVar(&jsonOut, "json", false, "print the result as one JSON object")
	f.StringVar(&o.Scenario, "scenario", demo.NodeCrash, "node-crash (postmaster and agent killed), db-crash (postmaster only) or switchover (planned, vigil ctl switchover)")
	f.StringVar(&o.SyncMode, "sync-mode", "on", "synchronous_mode for the agents: off, on or strict")
	f.IntVar(&o.LagMB, "lag-mb", 128, "WAL (MB) written while the standbys' replay is paused")
	f.BoolVar(&noLagArg, "no-lag", false, "do not inject replay lag")
	f.IntVar(&o.Rate, "rate", 50, "client writes per second")
	f.IntVar(&o.BackgroundTPS, "background-tps", 100, "pgbench transactions per second through the VIP as background load (0: none)")
	return cmd
}

// keepInstructions says how to reach and remove a cluster left running by
// --keep.
func keepInstructions(res demo.Result) string {
	connect := make([]string, len(res.Connect))
	for i, a := range res.Connect {
		connect[i] = shellQuote(a)
	}
	dir := shellQuote(res.LabDir)
	return fmt.Sprintf("\nThe cluster is still running (--keep). Connect through the VIP from the client host:\n"+
		"  sudo %s\n"+
		"Inspect it with: sudo vigil lab status --dir %s\n"+
		"Remove it with:  sudo vigil lab down --dir %s   (agents included)\n", strings.Join(connect, " "), dir, dir)
}
