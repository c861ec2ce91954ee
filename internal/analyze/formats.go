// Package analyze lines up failover and database logs into one timeline
// and says what happened: when the service address came up, when the
// database could really write, how many client statements failed in
// between, and what to change. It is the engine of `vigil analyze`; the
// parsers live in the subpackages (one per log format) and the renderers
// in package report.
package analyze

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/vigil-ha/vigil/internal/analyze/clock"
	"github.com/vigil-ha/vigil/internal/analyze/event"
	"github.com/vigil-ha/vigil/internal/analyze/input"
	"github.com/vigil-ha/vigil/internal/analyze/kingbase"
	"github.com/vigil-ha/vigil/internal/analyze/pglog"
	"github.com/vigil-ha/vigil/internal/analyze/pgpool"
	"github.com/vigil-ha/vigil/internal/analyze/steplog"
)

// parseFunc reads one file into a sink. Cancellation comes through lines
// (input.NewLinesContext): a parser returns lines.Canceled() when its read
// was cut short. The context argument is there for parsers that need one
// beyond reading lines.
type parseFunc func(ctx context.Context, lines *input.Lines, sink *event.Sink, res *clock.Resolver) error

type format struct {
	name  string
	sniff func([]byte) int
	parse parseFunc
	// tool: the format is a failover tool's log (its lane is "cluster").
	tool bool
}

// formats in the order ties are broken.
func formats() []format {
	return []format{
		{name: steplog.Format, sniff: steplog.Sniff, parse: steplog.Parse, tool: true},
		{name: kingbase.Format, sniff: kingbase.Sniff, parse: kingbase.Parse, tool: true},
		{name: pglog.FormatJSON, sniff: pglog.SniffJSON, parse: pglog.ParseJSON},
		{name: pglog.FormatCSV, sniff: pglog.SniffCSV, parse: pglog.ParseCSV},
		{name: pgpool.Format, sniff: pgpool.Sniff, parse: pgpool.Parse, tool: true},
		{name: pglog.FormatStderr, sniff: pglog.SniffStderr, parse: pglog.ParseStderr},
		{name: pglog.FormatSysLog, sniff: func([]byte) int { return 0 }, parse: pglog.ParseStderr},
		{name: pglog.FormatClient, sniff: pglog.SniffClient, parse: pglog.ParseClient},
	}
}

// FormatNames lists what --format accepts.
func FormatNames() []string {
	var out []string
	for _, f := range formats() {
		out = append(out, f.name)
	}
	return out
}

func lookupFormat(name string) (format, error) {
	for _, f := range formats() {
		if f.name == name {
			return f, nil
		}
	}
	return format{}, fmt.Errorf("unknown format %q: use one of %s", name, strings.Join(FormatNames(), ", "))
}

// detect picks the format whose sniffer scores sample highest.
func detect(name string, sample []byte) (format, int) {
	best, score := format{}, 0
	for _, f := range formats() {
		if s := f.sniff(sample); s > score {
			best, score = f, s
		}
	}
	if best.name == pglog.FormatStderr && pglog.IsKingbase(name, sample) {
		f, _ := lookupFormat(pglog.FormatSysLog)
		return f, score
	}
	return best, score
}

// labels gives each file a short, unique lane name: its base name, with
// the first directory that tells it apart from files of the same name
// ("node1/postgresql.log").
func labels(names []string) []string {
	out := make([]string, len(names))
	byBase := map[string][]int{}
	for i, n := range names {
		if n == "-" {
			out[i] = "stdin"
			continue
		}
		b := filepath.Base(n)
		byBase[b] = append(byBase[b], i)
		out[i] = b
	}
	for base, idx := range byBase {
		if len(idx) < 2 {
			continue
		}
		split := make([][]string, len(idx))
		for k, i := range idx {
			split[k] = strings.Split(filepath.ToSlash(filepath.Clean(names[i])), "/")
		}
		for k, i := range idx {
			parts := split[k]
			label := base
			// The nearest directory (from the file up) that differs from
			// every other file's directory at the same depth from the root.
			for d := 0; d < len(parts)-1; d++ {
				differs := true
				for m := range split {
					if m != k && d < len(split[m])-1 && split[m][d] == parts[d] {
						differs = false
						break
					}
				}
				if differs {
					label = parts[d] + "/" + base
					break
				}
			}
			out[i] = label
		}
	}
	// Still equal (the same path twice): number them.
	seen := map[string]int{}
	for i, l := range out {
		seen[l]++
		if seen[l] > 1 {
			out[i] = fmt.Sprintf("%s#%d", l, seen[l])
		}
	}
	return out
}
