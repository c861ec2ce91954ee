package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/internal/workload"
)

// newWorkloadCmd is the client that demo and bench run inside a client
// namespace; it writes through the service address and prints its record.
func newWorkloadCmd() *cobra.Command {
	var o workload.Options
	var passwordFile string
	cmd := &cobra.Command{
		Use:    "workload --host VIP --port P --user U --password-file F",
		Short:  "Write through an address at a fixed rate and print every outcome as JSON (used by demo and bench)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if passwordFile != "" {
				data, err := os.ReadFile(passwordFile)
				if err != nil {
					return usageError(fmt.Errorf("--password-file: %w", err))
				}
				o.Password = strings.TrimRight(string(data), "\r\n")
			}
			res, err := workload.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			return json.NewEncoder(cmd.OutOrStdout()).Encode(res)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Host, "host", "", "address to write through (the VIP)")
	f.IntVar(&o.Port, "port", 5432, "port")
	f.StringVar(&o.User, "user", "postgres", "user")
	f.StringVar(&passwordFile, "password-file", "", "file holding the user's password")
	f.StringVar(&o.Database, "database", "postgres", "database")
	f.IntVar(&o.Rate, "rate", 50, "writes per second")
	f.DurationVar(&o.Duration, "duration", 30*time.Second, "how long to write")
	f.DurationVar(&o.Timeout, "timeout", time.Second, "bound on one write, connection included")
	return cmd
}
