package check

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/vigil-ha/vigil/internal/chaos/history"
)

// Report file names in a campaign directory.
const (
	JSONFile = "report.json"
	HTMLFile = "report.html"
)

// Report is the JSON form of a judged campaign: the run that reproduces
// it, then the Result's fields (faults, violations, …) at the top level.
type Report struct {
	Passed   bool             `json:"passed"`
	Seed     int64            `json:"seed"`
	Command  string           `json:"command,omitempty"`
	SyncMode string           `json:"sync_mode"`
	DCS      string           `json:"dcs,omitempty"`
	Duration history.Duration `json:"duration"`
	Started  time.Time        `json:"started"`
	Ended    time.Time        `json:"ended"`
	Nodes    []string         `json:"nodes"`
	MaxLag   int64            `json:"maximum_lag_on_failover"`
	// Settled is false when the run left no final state (interrupted).
	Settled bool   `json:"settled"`
	Primary string `json:"final_primary"`
	Result
}

// NewReport pairs a history with its judgement. Empty lists stay lists, so
// that a program reading "violations" always finds an array.
func NewReport(h history.History, r Result) Report {
	r.Violations = nonNil(r.Violations)
	r.Steps = nonNil(r.Steps)
	r.Lost = nonNil(r.Lost)
	r.Warnings = nonNil(r.Warnings)
	if r.Faults == nil {
		r.Faults = map[string]FaultStats{}
	}
	return Report{
		Passed: r.Passed(), Seed: h.Run.Seed, Command: h.Run.Command, SyncMode: h.Run.SyncMode, DCS: h.Run.DCS,
		Duration: h.Run.Duration, Started: h.Run.Started, Ended: h.Run.Ended, Nodes: nonNil(h.Run.Nodes),
		MaxLag: h.Run.MaxLag, Settled: !h.Final.At.IsZero(), Primary: h.Final.Primary, Result: r,
	}
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// WriteJSON writes the report as one indented JSON object.
func WriteJSON(w io.Writer, h history.History, r Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(NewReport(h, r)); err != nil {
		return fmt.Errorf("write JSON report: %w", err)
	}
	return nil
}

// WriteReports writes report.json and report.html into the campaign
// directory dir.
func WriteReports(dir string, h history.History, r Result) error {
	for _, out := range []struct {
		name  string
		write func(io.Writer, history.History, Result) error
	}{{JSONFile, WriteJSON}, {HTMLFile, WriteHTML}} {
		var b bytes.Buffer
		if err := out.write(&b, h, r); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, out.name), b.Bytes(), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", out.name, err)
		}
	}
	return nil
}
