package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/vigil-ha/vigil/internal/chaos/history"
)

// Table receives the campaign's writes, one row per transaction.
const Table = "vigil_chaos_writes"

// writeSQL inserts one row and returns, from the same transaction, who
// took it: the address the client reached, the node (cluster_name is the
// node's name in a lab), the system identifier, the WAL file name (its
// first 8 hex digits are the timeline) and the WAL position.
const writeSQL = `INSERT INTO ` + Table + ` (id, route) VALUES ($1, $2)
RETURNING host(inet_server_addr()), current_setting('cluster_name'),
  (SELECT system_identifier FROM pg_control_system())::text,
  pg_walfile_name(pg_current_wal_lsn()), pg_current_wal_lsn()::text`

// Login is how a client logs in to the lab's servers.
type Login struct {
	Port                     int
	User, Password, Database string
}

// client writes through the VIP and directly to the node whose agent
// says /primary 200, from the client host's namespace, and sends every
// attempt to out.
type client struct {
	ns      string
	vip     string
	nodes   []nodeAddr
	pg      Login
	every   time.Duration
	timeout time.Duration
	out     chan<- history.Write
	nextID  atomic.Int64
	http    *http.Client
}

type nodeAddr struct{ name, host, api string }

func newClient(ns, vip string, nodes []nodeAddr, pg Login, out chan<- history.Write) *client {
	d := nsDialer{ns: ns}
	return &client{
		ns: ns, vip: vip, nodes: nodes, pg: pg, every: 100 * time.Millisecond, timeout: 2 * time.Second, out: out,
		http: &http.Client{Timeout: 500 * time.Millisecond, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}},
	}
}

// run writes on both routes until ctx ends.
func (c *client) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.loop(ctx, history.RouteVIP) }()
	go func() { defer wg.Done(); c.loop(ctx, history.RouteDirect) }()
	wg.Wait()
}

func (c *client) loop(ctx context.Context, route history.Route) {
	var conn *pgx.Conn
	var connNode string
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	tick := time.NewTicker(c.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		w := history.Write{ID: c.nextID.Add(1), Route: route, Start: time.Now()}
		host := c.vip
		if route == history.RouteDirect {
			node, err := c.primary(ctx, connNode)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				w.End, w.Outcome, w.Error = time.Now(), history.Connection, err.Error()
				c.out <- w
				continue
			}
			if node.name != connNode && conn != nil {
				conn.Close(context.Background())
				conn = nil
			}
			connNode, host = node.name, node.host
		}
		var broken bool
		conn, broken = c.write(ctx, conn, host, &w)
		if broken && conn != nil {
			conn.Close(context.Background())
			conn = nil
		}
		if ctx.Err() != nil && w.Outcome != history.OK {
			return // the campaign ended mid-write: nothing to record
		}
		c.out <- w
	}
}

// WriteThroughVIP writes one row into Table through vip every 100 ms, from
// namespace ns, until ctx ends, and sends every attempt to out (the
// campaign client's VIP route alone: it needs no agent API). out must be
// drained; it is not closed.
func WriteThroughVIP(ctx context.Context, ns, vip string, login Login, out chan<- history.Write) {
	newClient(ns, vip, nil, login, out).loop(ctx, history.RouteVIP)
}

// primary returns the node whose agent answers /primary with 200,
// asking last first.
func (c *client) primary(ctx context.Context, last string) (nodeAddr, error) {
	for _, n := range c.nodes {
		if n.name == last && c.isPrimary(ctx, n) {
			return n, nil
		}
	}
	var errs []string
	for _, n := range c.nodes {
		if n.name != last && c.isPrimary(ctx, n) {
			return n, nil
		}
		errs = append(errs, n.name)
	}
	return nodeAddr{}, fmt.Errorf("no agent answers /primary with 200 (asked %s)", strings.Join(errs, ", "))
}

func (c *client) isPrimary(ctx context.Context, n nodeAddr) bool {
	return primaryStatus(ctx, c.http, n.api) == http.StatusOK
}

// primaryStatus is the HTTP status of GET api/primary, 0 without answer.
func primaryStatus(ctx context.Context, hc *http.Client, api string) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, api+"/primary", nil)
	if err != nil {
		return 0
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// write performs one attempt on conn (connecting to host first when nil)
// and fills w. It returns the connection to use next and whether it is
// broken.
func (c *client) write(ctx context.Context, conn *pgx.Conn, host string, w *history.Write) (*pgx.Conn, bool) {
	wctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	fail := func(o history.Outcome, err error) (*pgx.Conn, bool) {
		w.End, w.Outcome, w.Error = time.Now(), o, err.Error()
		return conn, true
	}
	if conn == nil {
		var err error
		if conn, err = c.connect(wctx, host); err != nil {
			return fail(history.Connection, err)
		}
	}
	tx, err := conn.Begin(wctx)
	if err != nil {
		return fail(classify(err, false), err)
	}
	var server, node, sysID, walFile, lsn string
	err = tx.QueryRow(wctx, writeSQL, w.ID, string(w.Route)).Scan(&server, &node, &sysID, &walFile, &lsn)
	if err != nil {
		tx.Rollback(context.Background())
		return fail(classify(err, false), err)
	}
	if err := tx.Commit(wctx); err != nil {
		return fail(classify(err, true), err)
	}
	w.End, w.Outcome = time.Now(), history.OK
	w.Server, w.Node, w.SystemID, w.LSN = server, node, sysID, lsn
	if len(walFile) >= 8 {
		if tl, err := strconv.ParseUint(walFile[:8], 16, 32); err == nil {
			w.Timeline = uint32(tl)
		}
	}
	return conn, false
}

func (c *client) connect(ctx context.Context, host string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return nil, err
	}
	cfg.Host, cfg.Port, cfg.User, cfg.Password, cfg.Database = host, uint16(c.pg.Port), c.pg.User, c.pg.Password, c.pg.Database
	cfg.ConnectTimeout = c.timeout
	cfg.RuntimeParams = map[string]string{"application_name": "vigil-chaos"}
	cfg.Fallbacks = nil
	cfg.DialFunc = nsDialer{ns: c.ns}.DialContext
	return pgx.ConnectConfig(ctx, cfg)
}

// classify says what a failed attempt means. afterCommit: the error came
// from COMMIT, so a broken connection leaves the outcome unknown.
func classify(err error, afterCommit bool) history.Outcome {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "25006": // read_only_sql_transaction: a standby or a read-only primary
			return history.ReadOnly
		case "57P01", "57P02", "57P03": // shutdowns, cannot connect now
			if afterCommit {
				return history.Unknown
			}
			return history.Connection
		}
		return history.Other
	}
	var ne net.Error
	broken := errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || pgconn.Timeout(err)
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return history.Connection
	}
	if broken || pgconn.SafeToRetry(err) {
		if afterCommit && !pgconn.SafeToRetry(err) {
			return history.Unknown
		}
		return history.Connection
	}
	if afterCommit {
		return history.Unknown
	}
	return history.Other
}

// CreateWritesTable creates Table on the primary at host (reached from
// this process's namespace); on a standby it fails, read-only.
func CreateWritesTable(ctx context.Context, host string, pg Login) error {
	c := client{pg: pg, timeout: 5 * time.Second}
	conn, err := c.connect(ctx, host)
	if err != nil {
		return fmt.Errorf("connect to the primary %s: %w", host, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+Table+" (id bigint PRIMARY KEY, route text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())"); err != nil {
		return fmt.Errorf("create %s: %w", Table, err)
	}
	return nil
}
