// Package cli is the vigil command line: one cobra command per file, wired
// together here. Commands hold no logic of their own beyond parsing flags and
// printing; the work is done by the internal packages they call.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes, documented in the README.
const (
	ExitOK      = 0
	ExitFailure = 1 // the command ran and failed
	ExitUsage   = 2 // bad flags, arguments or configuration: nothing was done
)

// exitError carries the exit code a command wants alongside its error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError marks err as the user's input being wrong (exit code 2).
func usageError(err error) error { return &exitError{code: ExitUsage, err: err} }

// Main runs the command line and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(stderr, "vigil: %s\n", strings.TrimSpace(err.Error()))
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if isFlagError(err) {
		return ExitUsage
	}
	return ExitFailure
}

// isFlagError recognises cobra's argument and flag errors, which it returns
// as plain errors.
func isFlagError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown flag", "unknown shorthand", "unknown command", "accepts ", "requires at least", "required flag", "invalid argument", "flag needs an argument"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

type logOptions struct {
	level  string
	format string
}

func newRootCmd() *cobra.Command {
	var lo logOptions
	root := &cobra.Command{
		Use:   "vigil",
		Short: "Automatic failover for PostgreSQL and KingbaseES streaming replication",
		Long: `Vigil keeps a PostgreSQL or KingbaseES streaming-replication cluster writable.
It promotes the standby with the most WAL when the primary fails and routes
clients to a node only after that node has proved it can commit a write.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := newLogger(cmd.ErrOrStderr(), lo)
			if err != nil {
				return usageError(err)
			}
			cmd.SetContext(withLogger(cmd.Context(), logger))
			return nil
		},
	}
	root.PersistentFlags().StringVar(&lo.level, "log-level", "info", "log level: debug, info, warn, error")
	root.PersistentFlags().StringVar(&lo.format, "log-format", "text", "log format: text or json")
	root.AddCommand(
		newVersionCmd(),
		newConfigCmd(),
		newCertsCmd(),
		newSetupRoleCmd(),
		newLabCmd(),
		newAgentCmd(),
		newWitnessCmd(),
		newWorkloadCmd(),
		newDemoCmd(),
		newChaosCmd(),
		newBenchCmd(),
		newCtlCmd(),
		newAnalyzeCmd(),
		newFailoverCommandCmd(), newFollowCommandCmd(),
		newDocsCmd(),
		newPatroniCallbackCmd(),
	)
	return root
}

func newLogger(w io.Writer, lo logOptions) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(lo.level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", lo.level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch lo.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: use text or json", lo.format)
	}
}

type loggerKey struct{}

func withLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, l)
}

// logger returns the logger configured by the root command's flags.
func logger(cmd *cobra.Command) *slog.Logger {
	if l, ok := cmd.Context().Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
}
