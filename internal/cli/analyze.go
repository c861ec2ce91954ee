package cli

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/internal/analyze"
	"github.com/vigil-ha/vigil/internal/analyze/clock"
	"github.com/vigil-ha/vigil/internal/analyze/input"
	"github.com/vigil-ha/vigil/internal/analyze/report"
)

func newAnalyzeCmd() *cobra.Command {
	var (
		format, tz, htmlOut, color, since, until string
		jsonOut                                  bool
		maxLineKB                                int
	)
	cmd := &cobra.Command{
		Use:   "analyze FILE...",
		Short: "Line up failover and database logs into one timeline and say what clients saw",
		Long: `Read failover logs (KingbaseES failover_stream.sh, Vigil's step log,
Pgpool-II) and database server logs (PostgreSQL stderr with any common
log_line_prefix, csvlog, jsonlog, KingbaseES sys_log), put their milestones
on one timeline and report, for each failover found:

  - the read-only exposure window: the VIP (or any route) up before the new
    primary could write, and how many client statements failed in it;
  - the write outage: first sign of failure to the first moment writes worked;
  - how long the promoted server replayed WAL, and the likely cause;
  - health checks that passed while the database was read-only;
  - a verdict in plain language, and what to change.

FILE may be a file, a directory (read recursively), or - for standard input;
gzip is read whatever the name. Formats are detected per file (--format
forces one). Times without a zone are read in --tz, else in the zone the
other logs agree on, else local time.`,
		Example: `  vigil analyze failover.log sys_log/kingbase-2023-09-19.log --tz Asia/Shanghai
  vigil analyze --json /var/log/vigil/node2.steps.jsonl node*/log/postgresql.log
  vigil analyze --html report.html logs/`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			loc, err := clock.LoadTZ(tz)
			if err != nil {
				return usageError(fmt.Errorf("--tz: %w", err))
			}
			if format != "" && format != "auto" {
				if !slices.Contains(analyze.FormatNames(), format) {
					return usageError(fmt.Errorf("--format %q: use auto or one of %s", format, strings.Join(analyze.FormatNames(), ", ")))
				}
			}
			o := analyze.Options{Format: format, TZ: loc, Logger: logger(cmd), MaxLine: maxLineKB << 10}
			if maxLineKB < 1 || maxLineKB > 16<<10 {
				return usageError(fmt.Errorf("--max-line-kb %d: use 1 to 16384", maxLineKB))
			}
			if o.Since, err = analyzeTime(since, loc); err != nil {
				return usageError(fmt.Errorf("--since: %w", err))
			}
			if o.Until, err = analyzeTime(until, loc); err != nil {
				return usageError(fmt.Errorf("--until: %w", err))
			}
			var colour bool
			switch color {
			case "auto":
				colour = analyzeIsTerminal(cmd.OutOrStdout()) && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
			case "always":
				colour = true
			case "never":
			default:
				return usageError(fmt.Errorf("--color %q: use auto, always or never", color))
			}
			sources, errs := input.Expand(args, cmd.InOrStdin())
			for _, e := range errs {
				fmt.Fprintf(cmd.ErrOrStderr(), "vigil analyze: %v\n", e)
			}
			if len(sources) == 0 {
				return usageError(fmt.Errorf("nothing to analyse"))
			}
			rep, err := analyze.Run(cmd.Context(), sources, o)
			if err != nil {
				return err
			}
			for _, f := range rep.Files {
				if f.Problem != "" {
					fmt.Fprintf(cmd.ErrOrStderr(), "vigil analyze: %s: %s\n", f.Name, f.Problem)
				}
			}
			if htmlOut != "" {
				if err := analyzeWriteHTML(htmlOut, rep); err != nil {
					return err
				}
			}
			if jsonOut {
				err = report.JSON(cmd.OutOrStdout(), rep)
			} else {
				err = report.Text(cmd.OutOrStdout(), rep, colour)
			}
			if err != nil {
				return fmt.Errorf("write report: %w", err)
			}
			if !rep.Readable() {
				return fmt.Errorf("no file could be analysed")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "auto", "force a format for every file: auto, "+strings.Join(analyze.FormatNames(), ", "))
	f.StringVar(&tz, "tz", "", `zone of times written without one, and of ambiguous abbreviations like "CST": an IANA name (Asia/Shanghai) or an offset (+08:00)`)
	f.BoolVar(&jsonOut, "json", false, "print the analysis as JSON (milestones, client_errors, failovers, findings)")
	f.StringVar(&htmlOut, "html", "", "also write a self-contained HTML report with an SVG timeline to this file")
	f.StringVar(&color, "color", "auto", "colour the text report: auto (only on a terminal), always, never")
	f.StringVar(&since, "since", "", `keep only milestones from this time ("2006-01-02 15:04:05" in --tz, or RFC 3339)`)
	f.StringVar(&until, "until", "", "keep only milestones up to this time")
	f.IntVar(&maxLineKB, "max-line-kb", input.DefaultMaxLine>>10, "cut lines longer than this (KiB): memory stays bounded whatever the input")
	return cmd
}

func analyzeTime(s string, loc *time.Location) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if loc == nil {
		loc = time.Local
	}
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q: use \"2006-01-02 15:04:05\" or RFC 3339", s)
}

// analyzeIsTerminal reports a character device: colour only where a person reads.
func analyzeIsTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func analyzeWriteHTML(path string, rep *analyze.Report) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--html: %w", err)
	}
	if err := report.HTML(f, rep); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
