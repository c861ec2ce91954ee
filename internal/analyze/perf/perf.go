// Package perf measures `vigil analyze` on a large synthetic server log:
// throughput and peak memory, and whether it found what the log holds.
// It backs `vigil bench analyze`; measurements are not tests.
package perf

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/vigil-ha/vigil/internal/analyze"
	"github.com/vigil-ha/vigil/internal/analyze/event"
	"github.com/vigil-ha/vigil/internal/analyze/input"
	"github.com/vigil-ha/vigil/internal/analyze/synth"
)

// Options of a measurement.
type Options struct {
	// Bytes of log to generate.
	Bytes int64
	// Format: synth.Stderr, synth.CSV or synth.JSON.
	Format string
	// Dir receives the generated file.
	Dir string
	// Keep leaves the file in Dir.
	Keep bool
}

// Result is one measurement.
type Result struct {
	Format       string  `json:"format"`
	Bytes        int64   `json:"bytes"`
	Lines        int64   `json:"lines"`
	GenerateS    float64 `json:"generate_s"`
	AnalyzeS     float64 `json:"analyze_s"`
	MBPerS       float64 `json:"mb_per_s"`
	LinesPerS    float64 `json:"lines_per_s"`
	PeakHeapMB   float64 `json:"peak_heap_mb"`
	MaxRSSMB     float64 `json:"max_rss_mb"`
	GOMAXPROCS   int     `json:"gomaxprocs"`
	Generated    int64   `json:"read_only_errors_written"`
	Found        int64   `json:"read_only_errors_found"`
	WindowErrors int64   `json:"read_only_errors_in_promotion"`
	ReplayS      float64 `json:"replay_s"`
	File         string  `json:"file,omitempty"`
}

// Run generates the log, then analyses it while sampling the heap.
func Run(ctx context.Context, o Options) (Result, error) {
	res := Result{Format: o.Format, GOMAXPROCS: runtime.GOMAXPROCS(0)}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return res, fmt.Errorf("bench dir: %w", err)
	}
	path := filepath.Join(o.Dir, "synthetic-"+o.Format+".log")
	f, err := os.Create(path)
	if err != nil {
		return res, fmt.Errorf("create synthetic log: %w", err)
	}
	start := time.Now()
	st, err := synth.Write(f, synth.Options{Bytes: o.Bytes, Format: o.Format, Seed: 1})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return res, fmt.Errorf("generate synthetic log: %w", err)
	}
	if !o.Keep {
		defer os.Remove(path)
	} else {
		res.File = path
	}
	res.GenerateS = time.Since(start).Seconds()
	res.Bytes, res.Lines, res.Generated = st.Bytes, st.Lines, st.ReadOnlyErrors

	// The generator's buffers are garbage now; start from a clean heap.
	runtime.GC()
	debug.FreeOSMemory()
	var peak uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse+ms.StackInuse)
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	start = time.Now()
	rep, err := analyze.Run(ctx, []input.Source{fileSource(path)}, analyze.Options{})
	elapsed := time.Since(start)
	close(stop)
	<-sampled
	if err != nil {
		return res, err
	}
	res.AnalyzeS = elapsed.Seconds()
	res.MBPerS = float64(st.Bytes) / 1e6 / res.AnalyzeS
	res.LinesPerS = float64(st.Lines) / res.AnalyzeS
	res.PeakHeapMB = float64(peak) / (1 << 20)
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		res.MaxRSSMB = float64(ru.Maxrss) / 1024 // Linux reports KiB
	}
	for _, s := range rep.ClientErrors {
		if s.Kind == event.ReadOnlyError {
			res.Found += s.Count
		}
	}
	if rep.Findings != nil {
		res.WindowErrors = rep.Findings.ReadOnlyErrors
		if rep.Findings.ReplayS != nil {
			res.ReplayS = *rep.Findings.ReplayS
		}
	}
	return res, nil
}

func fileSource(path string) input.Source {
	srcs, _ := input.Expand([]string{path}, nil)
	if len(srcs) == 1 {
		return srcs[0]
	}
	return input.FromReader(path, nil)
}
