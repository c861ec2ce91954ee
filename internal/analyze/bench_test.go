package analyze_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/vigil-ha/vigil/internal/analyze"
	"github.com/vigil-ha/vigil/internal/analyze/input"
	"github.com/vigil-ha/vigil/internal/analyze/synth"
)

// Benchmarks of one pass over a synthetic server log; `vigil bench
// analyze` measures the same on a gigabyte with peak memory.
func benchmarkFormat(b *testing.B, format string) {
	var buf bytes.Buffer
	if _, err := synth.Write(&buf, synth.Options{Bytes: 32 << 20, Format: format, Seed: 1}); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		rep, err := analyze.Run(context.Background(), []input.Source{input.FromReader("synthetic.log", bytes.NewReader(data))}, analyze.Options{})
		if err != nil || rep.Findings == nil {
			b.Fatalf("no failover found: %v", err)
		}
	}
}

func BenchmarkStderr(b *testing.B)  { benchmarkFormat(b, synth.Stderr) }
func BenchmarkCSVLog(b *testing.B)  { benchmarkFormat(b, synth.CSV) }
func BenchmarkJSONLog(b *testing.B) { benchmarkFormat(b, synth.JSON) }
