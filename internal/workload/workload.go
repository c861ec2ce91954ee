// Package workload is the application in demos and benchmarks: it writes
// through the service address at a fixed rate, one committed row per write,
// and records what every write saw. From that record come the numbers the
// seed incident was about: how long writes failed, how many failed because
// the server was read-only, and whether any acknowledged write was lost.
package workload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Options configure a run.
type Options struct {
	Host     string
	Port     int
	User     string
	Password string
	Database string
	// Rate is writes per second.
	Rate     int
	Duration time.Duration
	// Timeout bounds one write, connection included.
	Timeout time.Duration
}

// Outcome classifies one write.
type Outcome string

// Outcomes.
const (
	OK         Outcome = "ok"
	ReadOnly   Outcome = "read_only" // SQLSTATE 25006: the seed's error
	Connection Outcome = "connection"
	Other      Outcome = "other"
)

// Write is one attempt.
type Write struct {
	ID      int64     `json:"id"`
	At      time.Time `json:"at"`
	Outcome Outcome   `json:"outcome"`
	// Server is the address that committed it (inet_server_addr).
	Server string `json:"server,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Result is the record of a run.
type Result struct {
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Writes []Write   `json:"writes"`
}

// Table is where the workload writes.
const Table = "vigil_workload"

// Run writes until the duration passes or ctx ends.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.Rate <= 0 {
		o.Rate = 50
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	res := Result{Start: time.Now()}
	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	ticker := time.NewTicker(time.Second / time.Duration(o.Rate))
	defer ticker.Stop()
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	for id := int64(1); ; id++ {
		w := Write{ID: id, At: time.Now()}
		wctx, wcancel := context.WithTimeout(ctx, o.Timeout)
		if conn == nil {
			c, err := connect(wctx, o)
			if err != nil {
				w.Outcome, w.Error = classify(err), err.Error()
			} else {
				conn = c
			}
		}
		if conn != nil {
			err := conn.QueryRow(wctx, "INSERT INTO "+Table+" (id) VALUES ($1) RETURNING host(inet_server_addr())", id).Scan(&w.Server)
			if err != nil {
				w.Outcome, w.Error = classify(err), err.Error()
				// A broken session, or one on a server that may no
				// longer be the primary: reconnect through the VIP.
				conn.Close(context.Background())
				conn = nil
			} else {
				w.Outcome = OK
			}
		}
		wcancel()
		if ctx.Err() != nil && w.Outcome != OK {
			break // the run ended mid-write: not a failure of the server
		}
		res.Writes = append(res.Writes, w)
		select {
		case <-ctx.Done():
			res.End = time.Now()
			return res, nil
		case <-ticker.C:
		}
	}
	res.End = time.Now()
	return res, nil
}

// Prepare creates the workload's table on the primary.
func Prepare(ctx context.Context, o Options) error {
	conn, err := connect(ctx, o)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+Table+" (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())"); err != nil {
		return fmt.Errorf("create workload table: %w", err)
	}
	_, err = conn.Exec(ctx, "TRUNCATE "+Table)
	return err
}

func connect(ctx context.Context, o Options) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return nil, err
	}
	cfg.Host, cfg.Port, cfg.User, cfg.Password, cfg.Database = o.Host, uint16(o.Port), o.User, o.Password, o.Database
	cfg.ConnectTimeout = o.Timeout
	cfg.RuntimeParams = map[string]string{"application_name": "vigil-workload"}
	cfg.Fallbacks = nil
	return pgx.ConnectConfig(ctx, cfg)
}

func classify(err error) Outcome {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "25006":
			return ReadOnly
		case "57P01", "57P02", "57P03":
			return Connection
		}
		return Other
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || pgconn.SafeToRetry(err) {
		return Connection
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return Connection
	}
	// A proxy that drops its sessions to a server it marked down cuts the
	// query mid-flight: the client sees the connection end, not an error
	// of the server. Not acknowledged, so not counted as committed.
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return Connection
	}
	return Other
}

// Summary is what a run shows about an outage that began at Crash.
type Summary struct {
	Writes         int `json:"writes"`
	OK             int `json:"ok"`
	ReadOnlyErrors int `json:"read_only_errors"`
	// ConnectionErrors are refused or broken connections: the client saw
	// the service down, not a server that lied about being ready.
	ConnectionErrors int `json:"connection_errors"`
	OtherErrors      int `json:"other_errors"`
	// WriteOutage is from Crash to the first write committed after it.
	WriteOutageS float64 `json:"write_outage_s"`
	// LastOKBefore and FirstOKAfter bracket the outage.
	LastOKBefore time.Time `json:"last_ok_before,omitzero"`
	FirstOKAfter time.Time `json:"first_ok_after,omitzero"`
	FirstServer  string    `json:"first_server,omitempty"`
	LastServer   string    `json:"last_server,omitempty"`
}

// Summarize counts the outcomes and measures the outage after crash: up to
// the first write committed after the first failure that follows the
// crash. A write already in flight when the crash was ordered may still
// commit on the dying server; it is counted (and checked for loss) but does
// not end the outage.
func (r Result) Summarize(crash time.Time) Summary {
	s := Summary{Writes: len(r.Writes)}
	firstFail := len(r.Writes)
	for i, w := range r.Writes {
		if w.Outcome != OK && w.At.After(crash) {
			firstFail = i
			break
		}
	}
	for i, w := range r.Writes {
		switch w.Outcome {
		case OK:
			s.OK++
			if s.FirstServer == "" {
				s.FirstServer = w.Server
			}
			s.LastServer = w.Server
			switch {
			case i < firstFail && (firstFail < len(r.Writes) || !w.At.After(crash)):
				s.LastOKBefore = w.At
			case s.FirstOKAfter.IsZero():
				s.FirstOKAfter = w.At
			}
		case ReadOnly:
			s.ReadOnlyErrors++
		case Connection:
			s.ConnectionErrors++
		default:
			s.OtherErrors++
		}
	}
	if !s.FirstOKAfter.IsZero() && !crash.IsZero() {
		s.WriteOutageS = s.FirstOKAfter.Sub(crash).Seconds()
	}
	return s
}

// OutageAfter is the write outage that a planned change starting at from
// caused: from the last write committed before the first failure after
// from, to the first write committed after that failure. Zero when no
// write failed (or none committed afterwards).
func (r Result) OutageAfter(from time.Time) time.Duration {
	var lastOK time.Time
	for i, w := range r.Writes {
		if w.Outcome == OK {
			lastOK = w.At
			continue
		}
		if w.At.Before(from) {
			continue
		}
		if lastOK.IsZero() {
			lastOK = from
		}
		for _, after := range r.Writes[i+1:] {
			if after.Outcome == OK {
				return after.At.Sub(lastOK)
			}
		}
		return 0
	}
	return 0
}

// Acked lists the ids of the writes that committed.
func (r Result) Acked() []int64 {
	var ids []int64
	for _, w := range r.Writes {
		if w.Outcome == OK {
			ids = append(ids, w.ID)
		}
	}
	return ids
}

// Lost returns the acknowledged ids missing from the table on the server
// reached with o (the new primary).
func Lost(ctx context.Context, o Options, acked []int64) ([]int64, error) {
	conn, err := connect(ctx, o)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, "SELECT id FROM "+Table)
	if err != nil {
		return nil, fmt.Errorf("read workload table: %w", err)
	}
	present := map[int64]bool{}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("read workload table: %w", err)
	}
	for _, id := range ids {
		present[id] = true
	}
	var lost []int64
	for _, id := range acked {
		if !present[id] {
			lost = append(lost, id)
		}
	}
	return lost, nil
}

// String renders a summary in one line.
func (s Summary) String() string {
	return "writes " + strconv.Itoa(s.Writes) + ", ok " + strconv.Itoa(s.OK) + ", read-only errors " + strconv.Itoa(s.ReadOnlyErrors) +
		", connection errors " + strconv.Itoa(s.ConnectionErrors) + ", other errors " + strconv.Itoa(s.OtherErrors) +
		fmt.Sprintf(", write outage %.2fs", s.WriteOutageS)
}
