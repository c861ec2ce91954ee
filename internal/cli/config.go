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
	return &cobra.Command{
		Use:   "check FILE",
		Short: "Validate a node's configuration: one line per problem",
		Long: `Load and validate a node's configuration file, as the agent does at start.

Every problem is printed on its own line as FILE:LINE: key: what to do (the
line is left out for a key the file does not set), and the command exits
with status 2. Checks that look at this host (the control binary in bin_dir,
password and TLS files, the OS account, the VIP interface) are included, so
run it on the node the file is for. Warnings (for instance a password file
other accounts can read) are printed the same way but do not fail the check.
Notes name the faults the configuration does not survive for want of an
option (no fence, no failsafe, asynchronous replication); see the README's
reliability section.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			stderr := cmd.ErrOrStderr()
			cfg, err := config.Load(path)
			if err == nil {
				err = cfg.Validate()
			}
			var problems config.Problems
			switch {
			case errors.As(err, &problems):
				if err := printProblems(stderr, path, "", problems); err != nil {
					return err
				}
				return usageError(fmt.Errorf("%s: configuration rejected, see the lines above", path))
			case err != nil:
				return usageError(err)
			}
			if err := printProblems(stderr, path, "warning: ", cfg.Warnings()); err != nil {
				return err
			}
			if err := printProblems(stderr, path, "note: ", cfg.Limits()); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s: OK (cluster %s, node %s, flavor %s)\n", path, cfg.Cluster, cfg.Node.Name, cfg.Database.Flavor)
			return err
		},
	}
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
