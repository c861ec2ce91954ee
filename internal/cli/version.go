package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X ...cli.version=v1.2.3".
var version = "dev"

// commit is set at build time with -ldflags "-X ...cli.commit=SHA" by builds
// that know it (internal/packaging); otherwise the Go toolchain's VCS
// stamp is read, which builds with -buildvcs=false do not have.
var commit = ""

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the vigil version, its Go version and the commit it was built from",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			revision := commit
			if info, ok := debug.ReadBuildInfo(); ok && revision == "" {
				for _, s := range info.Settings {
					if s.Key == "vcs.revision" {
						revision = s.Value
					}
				}
			}
			if revision == "" {
				revision = "unknown"
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "vigil %s (commit %s, %s, %s/%s)\n", version, revision, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
}
