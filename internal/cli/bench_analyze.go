package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/internal/analyze/perf"
	"github.com/vigil-ha/vigil/internal/analyze/synth"
)

func newBenchAnalyzeCmd() *cobra.Command {
	var (
		sizeMB  int
		format  string
		dir     string
		keep    bool
		jsonOut bool
	)
	cmd := &cobra.Command{
		Use:   "analyze [--size-mb N]",
		Short: "Measure `vigil analyze` on a large synthetic server log: throughput and peak memory",
		Long: `Write a synthetic PostgreSQL server log of --size-mb megabytes (a busy
server's statements, connections, errors and checkpoints, with a promotion
and 35 s of read-only errors in the middle), then analyse it in one pass
and report the time, throughput, peak heap and the process's maximum RSS.
It also checks that every read-only error written was found.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if sizeMB < 1 {
				return usageError(fmt.Errorf("--size-mb %d: want at least 1", sizeMB))
			}
			switch format {
			case synth.Stderr, synth.CSV, synth.JSON:
			default:
				return usageError(fmt.Errorf("--format %q: use stderr, csvlog or jsonlog", format))
			}
			res, err := perf.Run(cmd.Context(), perf.Options{Bytes: int64(sizeMB) << 20, Format: format, Dir: dir, Keep: keep})
			if err != nil {
				return err
			}
			if jsonOut {
				data, err := json.MarshalIndent(res, "", "  ")
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(append(data, '\n'))
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "synthetic %s log: %.0f MB, %d lines (written in %.1f s)\n", res.Format, float64(res.Bytes)/1e6, res.Lines, res.GenerateS)
			fmt.Fprintf(w, "analyze:   %.2f s  %.0f MB/s  %.2f M lines/s  (GOMAXPROCS %d)\n", res.AnalyzeS, res.MBPerS, res.LinesPerS/1e6, res.GOMAXPROCS)
			fmt.Fprintf(w, "memory:    peak heap %.1f MB, max RSS %.1f MB\n", res.PeakHeapMB, res.MaxRSSMB)
			fmt.Fprintf(w, "found:     %d of %d read-only errors written (%d during the promotion), replay %.1f s\n", res.Found, res.Generated, res.WindowErrors, res.ReplayS)
			if res.File != "" {
				fmt.Fprintf(w, "log kept:  %s\n", res.File)
			}
			if res.Found != res.Generated || res.WindowErrors != res.Generated {
				return fmt.Errorf("the analysis found %d read-only errors (%d during the promotion), the log holds %d", res.Found, res.WindowErrors, res.Generated)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&sizeMB, "size-mb", 1024, "size of the synthetic log in MiB")
	f.StringVar(&format, "format", synth.Stderr, "log format: stderr, csvlog or jsonlog")
	f.StringVar(&dir, "dir", "/var/tmp/vigil-bench-analyze", "directory for the synthetic log")
	f.BoolVar(&keep, "keep", false, "keep the synthetic log")
	f.BoolVar(&jsonOut, "json", false, "print the measurement as JSON")
	return cmd
}
