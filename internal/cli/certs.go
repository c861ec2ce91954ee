package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/internal/certs"
)

const certsLayout = `Files, in the directory given by --dir:

  DIR/ca.crt     cluster CA certificate: every node and operator needs it (0644)
  DIR/ca.key     CA private key: only where certificates are issued (0600)
  DIR/NAME.crt   a node's or operator's certificate (0644)
  DIR/NAME.key   its private key (0600)

Keys are ECDSA P-256. Nothing is overwritten without --force: a replaced CA
invalidates every certificate issued from it.`

func newCertsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Make the cluster's CA and its node and operator certificates (no openssl needed)",
		Long: `Make the TLS material that closes the cluster to hosts that are not part of
it: one CA per cluster, one certificate per node (etcd peer, etcd server,
etcd client and HTTP API server in one), one client certificate per
operator (vigil ctl).

  vigil certs init   --dir /etc/vigil/pki --cluster main
  vigil certs node   --dir /etc/vigil/pki --name node1 --host 10.0.0.11,node1.example.com
  vigil certs client --dir /etc/vigil/pki --name alice

Copy ca.crt, NAME.crt and NAME.key to each node (keep the key's mode 0600),
and keep ca.key where the certificates are issued, not on the nodes.

` + certsLayout,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newCertsInitCmd(), newCertsNodeCmd(), newCertsClientCmd())
	return cmd
}

// certsFlags are the flags every certs subcommand shares.
type certsFlags struct {
	dir      string
	validity time.Duration
	force    bool
}

func (f *certsFlags) register(cmd *cobra.Command, defaultValidity time.Duration) {
	cmd.Flags().StringVar(&f.dir, "dir", "", "certificate directory (required)")
	cmd.Flags().DurationVar(&f.validity, "validity", defaultValidity, "how long the certificate is valid, in hours (8760h is a year); a leaf is cut to its CA's expiry")
	cmd.Flags().BoolVar(&f.force, "force", false, "replace existing files")
	_ = cmd.MarkFlagRequired("dir")
}

func (f *certsFlags) options() (certs.Options, error) {
	if f.validity <= 0 {
		return certs.Options{}, usageError(fmt.Errorf("--validity %s: must be positive", f.validity))
	}
	return certs.Options{Validity: f.validity, Force: f.force}, nil
}

func newCertsInitCmd() *cobra.Command {
	var f certsFlags
	var cluster string
	cmd := &cobra.Command{
		Use:   "init --dir DIR --cluster NAME",
		Short: "Make the cluster's certificate authority: DIR/ca.crt and DIR/ca.key",
		Long:  "Make the cluster's certificate authority, DIR/ca.crt and DIR/ca.key.\n\n" + certsLayout,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if strings.TrimSpace(cluster) == "" {
				return usageError(errors.New("--cluster: give the cluster's name"))
			}
			return runIssue(cmd, &f, func(o certs.Options) (certs.Issued, error) { return certs.InitCA(f.dir, cluster, o) })
		},
	}
	f.register(cmd, certs.DefaultCAValidity)
	cmd.Flags().StringVar(&cluster, "cluster", "", "the cluster's name, recorded in every certificate (required)")
	_ = cmd.MarkFlagRequired("cluster")
	return cmd
}

func newCertsNodeCmd() *cobra.Command {
	var f certsFlags
	var name string
	var hosts []string
	cmd := &cobra.Command{
		Use:   "node --dir DIR --name NODE --host IP[,DNS...]",
		Short: "Issue a node certificate: DIR/NODE.crt and DIR/NODE.key",
		Long: `Issue a node certificate from the CA in DIR: DIR/NODE.crt and DIR/NODE.key.

One certificate serves every TLS role of a node: etcd peer, etcd server,
etcd client and HTTP API server (extended key usages server and client
authentication). It is valid for the addresses and names given by --host;
list every one that members, agents and operators use to reach the node,
including 127.0.0.1 and localhost if local tools connect over loopback.

` + certsLayout,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var hs []string
			for _, h := range hosts {
				if h = strings.TrimSpace(h); h != "" {
					hs = append(hs, h)
				}
			}
			if len(hs) == 0 {
				return usageError(errors.New("--host: give the node's IP addresses and DNS names, comma-separated"))
			}
			return runIssue(cmd, &f, func(o certs.Options) (certs.Issued, error) { return certs.IssueNode(f.dir, name, hs, o) })
		},
	}
	f.register(cmd, certs.DefaultLeafValidity)
	cmd.Flags().StringVar(&name, "name", "", "the node's name, as node.name in its configuration (required)")
	cmd.Flags().StringSliceVar(&hosts, "host", nil, "IP addresses and DNS names the node is reached by, comma-separated (required)")
	_ = cmd.MarkFlagRequired("name")
	_ = cmd.MarkFlagRequired("host")
	return cmd
}

func newCertsClientCmd() *cobra.Command {
	var f certsFlags
	var name string
	cmd := &cobra.Command{
		Use:   "client --dir DIR --name OPERATOR",
		Short: "Issue an operator's client certificate for vigil ctl: DIR/OPERATOR.crt and DIR/OPERATOR.key",
		Long: `Issue an operator's client certificate from the CA in DIR, for vigil ctl:
DIR/OPERATOR.crt and DIR/OPERATOR.key. Its common name is the operator's
name: the audit trail records it, and etcd takes it as the user name when
client certificate authentication is on.

` + certsLayout,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runIssue(cmd, &f, func(o certs.Options) (certs.Issued, error) { return certs.IssueClient(f.dir, name, o) })
		},
	}
	f.register(cmd, certs.DefaultLeafValidity)
	cmd.Flags().StringVar(&name, "name", "", "the operator's name (required)")
	_ = cmd.MarkFlagRequired("name")
	return cmd
}

// runIssue is what every certs subcommand does once its own flags are
// checked: issue with the shared flags' options and print what was written.
func runIssue(cmd *cobra.Command, f *certsFlags, issue func(certs.Options) (certs.Issued, error)) error {
	o, err := f.options()
	if err != nil {
		return err
	}
	is, err := issue(o)
	if err != nil {
		return issueError(err)
	}
	return printIssued(cmd.OutOrStdout(), is)
}

// issueError maps refusals of the arguments to exit code 2: a file that
// exists without --force, a bad name or host, a --dir without a CA. Nothing
// was written, and the command needs other arguments.
func issueError(err error) error {
	if errors.Is(err, certs.ErrExists) || errors.Is(err, certs.ErrInput) || errors.Is(err, fs.ErrNotExist) {
		return usageError(err)
	}
	return err
}

func printIssued(w io.Writer, is certs.Issued) error {
	expiry := is.NotAfter.UTC().Format(time.RFC3339)
	if is.Capped {
		expiry += " (cut to the CA's expiry)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "wrote %s (mode 0600)\n", is.KeyFile)
	fmt.Fprintf(&b, "wrote %s (mode 0644)\n", is.CertFile)
	fmt.Fprintf(&b, "  subject  %s\n", is.Subject)
	if len(is.Hosts) > 0 {
		fmt.Fprintf(&b, "  hosts    %s\n", strings.Join(is.Hosts, ", "))
	}
	fmt.Fprintf(&b, "  expires  %s (in %d days)\n", expiry, int(time.Until(is.NotAfter).Hours()/24))
	_, err := io.WriteString(w, b.String())
	return err
}
