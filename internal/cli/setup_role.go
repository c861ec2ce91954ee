package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/internal/database"
)

func newSetupRoleCmd() *cobra.Command {
	var printSQL bool
	var role string
	var version int
	cmd := &cobra.Command{
		Use:   "setup-role --print [--role vigil] [--version 15]",
		Short: "Print the SQL that creates a least-privilege (non-superuser) database role for the agent",
		Long: `Print the SQL that creates, or brings up to date, a database role holding
exactly what the agent needs on PostgreSQL 15 or later, with the reason for
each grant. Run it as a superuser on the primary, in the database the agent
connects to (database.name); standbys get it through replication. Running it
again is harmless:

  vigil setup-role --print | psql -v ON_ERROR_STOP=1 -U postgres -d postgres

Then set the role's password (\password vigil in psql), give it a pg_hba.conf
line for the nodes' addresses (no replication line: the role needs the
REPLICATION attribute only to create slots), and name it in the agent's
configuration. pg_rewind and pg_basebackup keep their own accounts.

Before PostgreSQL 15, ALTER SYSTEM and CHECKPOINT cannot be granted: the
agent needs a superuser there, as on KingbaseES, and the command exits 2.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !printSQL {
				return usageError(errors.New("give --print: vigil prints the SQL for a superuser to review and run, it does not connect"))
			}
			grants, err := database.RoleSQL(version, role)
			if err != nil {
				return usageError(err)
			}
			return printRoleSQL(cmd.OutOrStdout(), version, role, grants)
		},
	}
	cmd.Flags().BoolVar(&printSQL, "print", false, "print the SQL (required)")
	cmd.Flags().StringVar(&role, "role", database.DefaultAgentRole, "the agent's role name")
	cmd.Flags().IntVar(&version, "version", 15, "the server's PostgreSQL major version")
	return cmd
}

func printRoleSQL(w io.Writer, version int, role string, grants []database.RoleGrant) error {
	var b strings.Builder
	fmt.Fprintf(&b, "-- Least-privilege role %q for the Vigil agent, PostgreSQL %d.\n", role, version)
	b.WriteString("-- Run as a superuser on the primary, in the database the agent connects to.\n\n")
	for _, g := range grants {
		fmt.Fprintf(&b, "-- %s\n%s;\n\n", g.Why, g.SQL)
	}
	b.WriteString("-- Not granted, because no agent call needs it:\n")
	for _, n := range database.RoleNotGranted() {
		fmt.Fprintf(&b, "--   %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
