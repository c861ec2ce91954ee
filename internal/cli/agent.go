package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/internal/config"
	"github.com/vigil-ha/vigil/internal/node"
)

func newAgentCmd() *cobra.Command {
	var configPath, stepLog string
	var legacy bool
	cmd := &cobra.Command{
		Use:   "agent --config FILE",
		Short: "Run the HA agent beside one database node",
		Long: `Run the HA agent beside one database node until SIGINT or SIGTERM.

Every loop interval the agent observes its server (and, on the primary,
commits a real write), reads the cluster from etcd, checks that a trusted IP
answers, and acts: it renews the leader lease, promotes the best standby when
the leader is gone, demotes a primary that lost the lease, and points
standbys at the leader. Each failover step is logged with its time and
evidence, and the whole record is kept in etcd.

On SIGTERM it takes routes down, stops a primary it leads (so that no
second primary can appear), releases the leader key and exits.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadValidConfig(configPath)
			if err != nil {
				return err
			}
			return runAgent(cmd.Context(), cfg, stepLog, legacy, logger(cmd))
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "node configuration file (required)")
	cmd.Flags().StringVar(&stepLog, "step-log", "", "append failover steps as JSON lines to this file (default: the log)")
	cmd.Flags().BoolVar(&legacy, "legacy-order", false, "benchmark baseline only: fail over in failover_stream.sh's order (VIP first, select 1 as readiness)")
	_ = cmd.Flags().MarkHidden("legacy-order")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}

// loadValidConfig loads and validates; problems are a usage error.
func loadValidConfig(path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		return nil, usageError(fmt.Errorf("configuration rejected (each line names the file):\n%w", err))
	}
	return cfg, nil
}

// runAgent runs the node; a configuration value found unusable on the way
// is a usage error (exit 2), as one found by Validate is.
func runAgent(ctx context.Context, cfg *config.Config, stepLogPath string, legacy bool, log *slog.Logger) error {
	err := node.Run(ctx, cfg, node.Options{StepLogPath: stepLogPath, Legacy: legacy, Version: version, Logger: log})
	if ce := (*node.ConfigError)(nil); errors.As(err, &ce) {
		return usageError(err)
	}
	return err
}
