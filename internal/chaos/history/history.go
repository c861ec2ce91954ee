// Package history is the record of a chaos campaign: what the client wrote
// and what each write saw, which faults were injected and when the cluster
// recovered from each, and the cluster's state once every fault was healed.
// The runner writes it; the checker and the report read it, also from a
// directory saved by an earlier run. It does no I/O beyond its directory.
package history

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// File names inside a campaign directory.
const (
	RunFile    = "run.json"
	WritesFile = "writes.jsonl"
	FaultsFile = "faults.jsonl"
	FinalFile  = "final.json"
)

// Run describes the campaign: enough to rerun it.
type Run struct {
	Seed     int64     `json:"seed"`
	Duration Duration  `json:"duration"`
	Faults   []string  `json:"faults"`
	SyncMode string    `json:"sync_mode"` // off | on | strict
	DCS      string    `json:"dcs"`       // embedded | external
	Nodes    []string  `json:"nodes"`
	LeaseTTL Duration  `json:"lease_ttl"`
	MaxLag   int64     `json:"maximum_lag_on_failover"` // bytes
	Started  time.Time `json:"started"`
	Ended    time.Time `json:"ended"`
	Command  string    `json:"command"` // the command line that reproduces it
}

// Outcome of one write attempt, as the client saw it.
type Outcome string

const (
	OK         Outcome = "ok"         // committed and acknowledged
	ReadOnly   Outcome = "read_only"  // the server refused: read-only transaction or recovery
	Connection Outcome = "connection" // no server, or the connection broke
	Unknown    Outcome = "unknown"    // the connection broke after COMMIT was sent: may or may not have committed
	Other      Outcome = "other"
)

// Route by which the client reached the server.
type Route string

const (
	RouteVIP    Route = "vip"    // the service address
	RouteDirect Route = "direct" // a node's own address, chosen because its agent's /primary said 200
)

// Write is one write attempt: one row with a unique id in its own transaction.
type Write struct {
	ID      int64     `json:"id"`
	Route   Route     `json:"route"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"` // when the outcome was known (for OK: the acknowledgement)
	Outcome Outcome   `json:"outcome"`
	Error   string    `json:"error,omitempty"`
	// The server that acknowledged it (OK only): its address, system
	// identifier, timeline, the node's name when known, and the WAL
	// position of the commit.
	Server   string `json:"server,omitempty"`
	Node     string `json:"node,omitempty"`
	SystemID string `json:"system_id,omitempty"`
	Timeline uint32 `json:"timeline,omitempty"`
	LSN      string `json:"lsn,omitempty"`
}

// Fault is one injected fault and what followed it.
type Fault struct {
	Step   int    `json:"step"`   // 1, 2, … in schedule order; with the seed it reproduces the fault
	Type   string `json:"type"`   // catalogue name, e.g. "db-hung"
	Target string `json:"target"` // node, link or member it hit
	Detail string `json:"detail,omitempty"`
	// Injected and Healed bound the fault; Recovered is when the cluster was
	// back to one writable primary with every standby streaming, zero when
	// it was not within RecoveryBound of Healed.
	Injected      time.Time `json:"injected"`
	Healed        time.Time `json:"healed"`
	Recovered     time.Time `json:"recovered"`
	RecoveryBound Duration  `json:"recovery_bound"`
	// Primary before the fault and after recovery (node names).
	PrimaryBefore string `json:"primary_before,omitempty"`
	PrimaryAfter  string `json:"primary_after,omitempty"`
}

// Fork is where a timeline began: the WAL position at which its parent's
// history ends on the final primary.
type Fork struct {
	Timeline uint32 `json:"timeline"`
	Parent   uint32 `json:"parent"`
	LSN      string `json:"lsn"`
}

// Final is the cluster after the last heal and settle period.
type Final struct {
	At       time.Time `json:"at"`
	Primary  string    `json:"primary"` // node name; empty when there was no writable primary
	SystemID string    `json:"system_id,omitempty"`
	Timeline uint32    `json:"timeline,omitempty"`
	// Present holds the ids of every write row found on the final primary.
	Present []int64 `json:"present"`
	// Forks is the final primary's timeline history.
	Forks []Fork `json:"forks,omitempty"`
	// Streaming lists the standbys that stream from the final primary.
	Streaming []string `json:"streaming,omitempty"`
	// Panics holds agent log lines that show a panic; Leaks every process,
	// namespace or address the run created and did not remove.
	Panics []string `json:"panics,omitempty"`
	Leaks  []string `json:"leaks,omitempty"`
}

// History is a whole campaign.
type History struct {
	Run    Run
	Writes []Write
	Faults []Fault
	Final  Final
}

// Duration is a time.Duration that reads and writes as "1.5s" in JSON.
type Duration time.Duration

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: %w", b, err)
	}
	*d = Duration(v)
	return nil
}

// Recorder appends writes and faults to a campaign directory as they
// happen, so that an interrupted run still leaves a history to check.
type Recorder struct {
	dir    string
	writes *json.Encoder
	faults *json.Encoder
	files  []*os.File
}

// NewRecorder creates dir (it must not hold a history yet) and writes run.json.
func NewRecorder(dir string, run Run) (*Recorder, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create history directory: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, RunFile)); err == nil {
		return nil, fmt.Errorf("%s already holds a history", dir)
	}
	r := &Recorder{dir: dir}
	if err := r.WriteRun(run); err != nil {
		return nil, err
	}
	for _, name := range []string{WritesFile, FaultsFile} {
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("open %s: %w", name, err)
		}
		r.files = append(r.files, f)
	}
	r.writes = json.NewEncoder(r.files[0])
	r.faults = json.NewEncoder(r.files[1])
	return r, nil
}

// WriteRun (re)writes run.json, e.g. to set Ended.
func (r *Recorder) WriteRun(run Run) error { return writeJSON(filepath.Join(r.dir, RunFile), run) }

// Write records one write attempt. Not safe for concurrent use.
func (r *Recorder) Write(w Write) error { return r.writes.Encode(w) }

// Fault records one fault once its outcome is known.
func (r *Recorder) Fault(f Fault) error { return r.faults.Encode(f) }

// Final records the cluster's final state.
func (r *Recorder) Final(f Final) error { return writeJSON(filepath.Join(r.dir, FinalFile), f) }

// Close closes the files.
func (r *Recorder) Close() error {
	var errs []error
	for _, f := range r.files {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return os.Rename(tmp, path)
}

// Load reads a campaign directory. A missing final.json (an interrupted
// run) leaves Final zero; the checker reports that as no writable primary.
func Load(dir string) (History, error) {
	var h History
	b, err := os.ReadFile(filepath.Join(dir, RunFile))
	if err != nil {
		return h, fmt.Errorf("read campaign %s: %w", dir, err)
	}
	if err := json.Unmarshal(b, &h.Run); err != nil {
		return h, fmt.Errorf("parse %s: %w", RunFile, err)
	}
	if h.Writes, err = readLines[Write](filepath.Join(dir, WritesFile)); err != nil {
		return h, err
	}
	if h.Faults, err = readLines[Fault](filepath.Join(dir, FaultsFile)); err != nil {
		return h, err
	}
	b, err = os.ReadFile(filepath.Join(dir, FinalFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return h, fmt.Errorf("read %s: %w", FinalFile, err)
	default:
		if err := json.Unmarshal(b, &h.Final); err != nil {
			return h, fmt.Errorf("parse %s: %w", FinalFile, err)
		}
	}
	return h, nil
}

func readLines[T any](path string) ([]T, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", filepath.Base(path), err)
	}
	defer f.Close()
	var out []T
	dec := json.NewDecoder(bufio.NewReader(f))
	for {
		var v T
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			// A run killed mid-line leaves a torn last record; keep the rest.
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return out, nil
			}
			return out, fmt.Errorf("parse %s record %d: %w", filepath.Base(path), len(out)+1, err)
		}
		out = append(out, v)
	}
}
