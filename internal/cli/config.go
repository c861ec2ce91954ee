package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/vigil-ha/vigil/internal/config"
	"github.com/vigil-ha/vigil/internal/flavor"
)

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check a node's configuration file, or print the defaults",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newConfigCheckCmd(), newConfigDefaultsCmd())
	return cmd
}

func newConfigCheckCmd() *cobra.Command {
	var pgpoolFile bool
	cmd := &cobra.Command{
		Use:   "check FILE",
		Short: "Validate a node's configuration (or, with --pgpool, the Pgpool command's): one line per problem",
		Long: `Load and validate a node's configuration file, as the agent does at start,
or with --pgpool the configuration of failover-command and follow-command, as
they do when Pgpool-II runs them. Both kinds of file share their sections
(database, vip, trusted_ips, the timing of a promotion, SSH) and their names.

Every problem is printed on its own line as FILE:LINE: key: what to do (the
line is left out for a key the file does not set), and the command exits
with status 2. Checks that look at this host (the control binary in bin_dir,
password, SSH and TLS files, the OS account, the VIP interface) are included,
so run it on the host the file is for. Warnings (for instance a password file
other accounts can read, or a key written with its old name) are printed the
same way but do not fail the check. Notes name the faults a node's
configuration does not survive for want of an option (no fence, no
failsafe, asynchronous replication); see the README's reliability section.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if pgpoolFile {
				return checkPgpoolConfig(cmd, args[0])
			}
			return checkNodeConfig(cmd, args[0])
		},
	}
	cmd.Flags().BoolVar(&pgpoolFile, "pgpool", false, "FILE is the Pgpool command's configuration (failover-command, follow-command)")
	return cmd
}

func checkNodeConfig(cmd *cobra.Command, path string) error {
	stderr := cmd.ErrOrStderr()
	cfg, err := config.Load(path)
	if err == nil {
		err = cfg.Validate()
	}
	if err := rejected(stderr, path, err); err != nil {
		return err
	}
	if err := printProblems(stderr, path, "warning: ", cfg.Warnings()); err != nil {
		return err
	}
	if err := printProblems(stderr, path, "note: ", cfg.Limits()); err != nil {
		return err
	}
	_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s: OK (cluster %s, node %s, flavor %s)\n", path, cfg.Cluster, cfg.Node.Name, cfg.Database.Flavor)
	return err
}

func checkPgpoolConfig(cmd *cobra.Command, path string) error {
	stderr := cmd.ErrOrStderr()
	cfg, err := config.LoadPgpool(path)
	if err == nil {
		err = cfg.Validate()
	}
	if err == nil {
		err = cfg.HostProblems()
	}
	if err := rejected(stderr, path, err); err != nil {
		return err
	}
	if err := printProblems(stderr, path, "warning: ", cfg.Warnings()); err != nil {
		return err
	}
	_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s: OK (Pgpool command, cluster %s, flavor %s)\n", path, cfg.Cluster, cfg.Database.Flavor)
	return err
}

// rejected prints the problems of a configuration that failed to load or
// validate and returns the usage error to exit with; nil when err is.
func rejected(w io.Writer, path string, err error) error {
	var problems config.Problems
	switch {
	case errors.As(err, &problems):
		if err := printProblems(w, path, "", problems); err != nil {
			return err
		}
		return usageError(fmt.Errorf("%s: configuration rejected, see the lines above", path))
	case err != nil:
		return usageError(err)
	}
	return nil
}

// printProblems writes one line per problem in the FILE:LINE: form editors
// and grep -n users recognise.
func printProblems(w io.Writer, path, kind string, ps config.Problems) error {
	for _, p := range ps {
		where := path
		if p.Line > 0 {
			where = fmt.Sprintf("%s:%d", path, p.Line)
		}
		field := ""
		if p.Field != "" {
			field = p.Field + ": "
		}
		if _, err := fmt.Fprintf(w, "%s: %s%s%s\n", where, kind, field, p.Message); err != nil {
			return err
		}
	}
	return nil
}

func newConfigDefaultsCmd() *cobra.Command {
	var flavorName string
	cmd := &cobra.Command{
		Use:   "defaults",
		Short: "Print the default configuration as YAML",
		Long: `Print the configuration every key a file leaves out falls back to.
Keys without a default (cluster, node.name, node.host, database.bin_dir,
database.data_dir, the DCS and trusted_ips) are printed empty. The port and
superuser depend on the flavor: --flavor selects which to show.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := flavor.Lookup(flavorName); err != nil {
				return usageError(fmt.Errorf("--flavor: %w", err))
			}
			out := cmd.OutOrStdout()
			if _, err := fmt.Fprintf(out, "# Vigil defaults for flavor %s; examples/vigil.yaml explains every key.\n"+
				"# Empty values are required keys, or derived from other keys: connect_host\n"+
				"# from node.host, os_user from data_dir's owner, dcs.embedded.data_dir from data_dir.\n", flavorName); err != nil {
				return err
			}
			enc := yaml.NewEncoder(out)
			enc.SetIndent(2)
			if err := enc.Encode(config.DefaultsFor(flavorName)); err != nil {
				return fmt.Errorf("print defaults: %w", err)
			}
			return enc.Close()
		},
	}
	cmd.Flags().StringVar(&flavorName, "flavor", string(flavor.Postgres), "show the defaults for this flavor: "+strings.Join(flavor.Names(), ", "))
	return cmd
}
