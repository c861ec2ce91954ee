package cli

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/internal/certs"
	"github.com/vigil-ha/vigil/internal/dcs"
)

func newWitnessCmd() *cobra.Command {
	var (
		m       dcs.MemberConfig
		initial string
		cluster string
		files   dcs.MemberTLS
	)
	cmd := &cobra.Command{
		Use:   "witness --name NAME --data-dir DIR --peer-url URL --client-url URL --initial-cluster n1=URL,...",
		Short: "Run an etcd member without a database, the third vote of a 2-node cluster",
		Long: `Run an etcd member that holds no database. Two database nodes with embedded
etcd members cannot keep a quorum when one of them fails; a witness on a
third machine gives the survivor the majority it needs to fail over, and
keeps a node that is cut off from both from promoting.

--initial-cluster lists every member (the agents' embedded members and this
witness) as name=peer-URL pairs, exactly as in the agents' configuration.

With the agents' dcs.embedded.tls, give the witness the same CA and a
certificate of its own (` + "`vigil certs node --name witness --host IP`" + `) with
--cacert, --cert and --key, and https:// URLs. Without them it listens on
loopback only, unless --insecure.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			peers, err := parseInitialCluster(initial)
			if err != nil {
				return usageError(err)
			}
			if _, ok := peers[m.Name]; !ok {
				return usageError(fmt.Errorf("--initial-cluster does not list this witness (%s)", m.Name))
			}
			m.InitialCluster = peers
			switch {
			case files != (dcs.MemberTLS{}) && (files.CAFile == "" || files.CertFile == "" || files.KeyFile == ""):
				return usageError(errors.New("--cacert, --cert and --key go together: mutual TLS needs the cluster's CA and this witness's certificate and key"))
			case files != (dcs.MemberTLS{}) && m.Insecure:
				return usageError(errors.New("--insecure with --cacert/--cert/--key: remove --insecure (TLS is on)"))
			case files != (dcs.MemberTLS{}):
				if err := certs.CheckFiles(files.CAFile, files.CertFile, files.KeyFile, time.Now()); err != nil {
					return usageError(err)
				}
				m.TLS = &files
			}
			m.ClusterToken = "vigil-" + cluster
			log := logger(cmd)
			member, err := dcs.StartMember(m)
			if errors.Is(err, dcs.ErrInsecureMember) {
				return usageError(err)
			}
			if err != nil {
				return err
			}
			defer member.Close(5 * time.Second)
			log.Info("witness started", "name", m.Name, "peer_url", m.PeerURL, "client_url", m.ClientURL, "mutual_tls", m.TLS != nil)
			select {
			case <-cmd.Context().Done():
				log.Info("witness stopping")
				return nil
			case err := <-member.Err():
				return fmt.Errorf("witness etcd member: %w", err)
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&cluster, "cluster", "", "cluster name, as in the agents' configuration (required)")
	f.StringVar(&m.Name, "name", "", "member name (required)")
	f.StringVar(&m.DataDir, "data-dir", "", "etcd data directory (required)")
	f.StringVar(&m.PeerURL, "peer-url", "", "URL the other members reach this one at, e.g. https://10.0.0.3:2380 (required)")
	f.StringVar(&m.ClientURL, "client-url", "", "URL clients reach this member at, e.g. https://10.0.0.3:2379 (required)")
	f.StringVar(&files.CAFile, "cacert", "", "the cluster's CA certificate (mutual TLS, as dcs.embedded.tls.ca_file)")
	f.StringVar(&files.CertFile, "cert", "", "this witness's certificate, valid for the host of its URLs")
	f.StringVar(&files.KeyFile, "key", "", "private key of --cert")
	f.BoolVar(&m.Insecure, "insecure", false, "listen on a non-loopback address without TLS: anyone reaching it can write the leader key")
	f.StringVar(&initial, "initial-cluster", "", "every member as name=peer-URL, comma separated (required)")
	f.UintVar(&m.TickMs, "tick-ms", 0, "etcd heartbeat interval in ms (default etcd's 100)")
	f.UintVar(&m.ElectionMs, "election-ms", 0, "etcd election timeout in ms (default etcd's 1000)")
	for _, name := range []string{"cluster", "name", "data-dir", "peer-url", "client-url", "initial-cluster"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

func parseInitialCluster(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		name, url, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || name == "" || url == "" {
			return nil, fmt.Errorf("--initial-cluster: %q is not name=peer-URL", part)
		}
		out[name] = url
	}
	return out, nil
}
