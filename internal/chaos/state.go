package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-ha/vigil/internal/chaos/history"
	"github.com/vigil-ha/vigil/internal/clock"
	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/proc"
)

// cluster looks at the cluster from the host: healthy when exactly one
// agent answers /primary with 200 and every other node streams from that
// primary per its pg_stat_replication. primary is the node answering 200
// when there is exactly one; why says what is missing.
func (r *campaign) cluster(ctx context.Context) (healthy bool, primary, why string) {
	var primaries []string
	for _, n := range r.nodes {
		if primaryStatus(ctx, r.hc, r.c.APIURL(n.Name)) == http.StatusOK {
			primaries = append(primaries, n.Name)
		}
	}
	if len(primaries) != 1 {
		return false, "", fmt.Sprintf("agents answering /primary with 200: %v", primaries)
	}
	primary = primaries[0]
	streaming, err := r.streaming(ctx, primary)
	if err != nil {
		return false, primary, err.Error()
	}
	for _, n := range r.nodes {
		if n.Name != primary && !slices.Contains(streaming, n.Name) {
			return false, primary, fmt.Sprintf("%s is not streaming from %s (streaming: %v)", n.Name, primary, streaming)
		}
	}
	return true, primary, ""
}

// waitRecovered polls the cluster until it is healthy, for at most bound;
// it returns when it was first seen healthy (zero if never) and the
// primary then (or last seen).
func (r *campaign) waitRecovered(ctx context.Context, bound time.Duration) (time.Time, string, string) {
	deadline := time.Now().Add(bound)
	var primary, why string
	for {
		var ok bool
		ok, primary, why = r.cluster(ctx)
		if ok {
			return time.Now(), primary, ""
		}
		if time.Now().After(deadline) || clock.Sleep(ctx, 250*time.Millisecond) != nil {
			return time.Time{}, primary, why
		}
	}
}

// sql connects to node from the host as the superuser.
func (r *campaign) sql(ctx context.Context, node string) (*pgx.Conn, error) {
	n, err := r.l.Node(node)
	if err != nil {
		return nil, err
	}
	c := client{pg: r.pg, timeout: 2 * time.Second}
	return c.connect(ctx, n.Host)
}

// streaming lists the nodes that stream from primary, by application
// name or address.
func (r *campaign) streaming(ctx context.Context, primary string) ([]string, error) {
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := r.sql(qctx, primary)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", primary, err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(qctx, "SELECT application_name, coalesce(host(client_addr), '') FROM pg_stat_replication WHERE state = 'streaming'")
	if err != nil {
		return nil, fmt.Errorf("pg_stat_replication on %s: %w", primary, err)
	}
	var out []string
	for rows.Next() {
		var app, addr string
		if err := rows.Scan(&app, &addr); err != nil {
			return nil, err
		}
		for _, n := range r.nodes {
			if n.Name == app || n.Host == addr {
				out = append(out, n.Name)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), rows.Err()
}

// finalState reads the cluster after the last settle period.
func (r *campaign) finalState(ctx context.Context) history.Final {
	f := history.Final{At: time.Now()}
	_, primary, why := r.cluster(ctx)
	f.Panics = r.panics()
	if primary == "" {
		r.say("final: no single writable primary (%s)", why)
		return f
	}
	f.Primary = primary
	if s, err := r.streaming(ctx, primary); err == nil {
		for _, n := range s {
			if n != primary {
				f.Streaming = append(f.Streaming, n)
			}
		}
	}
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := r.sql(qctx, primary)
	if err != nil {
		r.say("final: connect to %s: %v", primary, err)
		return f
	}
	defer conn.Close(context.Background())
	var tl int64
	if err := conn.QueryRow(qctx, "SELECT (SELECT system_identifier FROM pg_control_system())::text, (SELECT timeline_id FROM pg_control_checkpoint())").Scan(&f.SystemID, &tl); err != nil {
		r.say("final: identity of %s: %v", primary, err)
	}
	// The checkpoint's timeline lags a promotion until the next
	// checkpoint; the WAL file name has the current one.
	var walFile string
	if err := conn.QueryRow(qctx, "SELECT pg_walfile_name(pg_current_wal_lsn())").Scan(&walFile); err == nil && len(walFile) >= 8 {
		if v, err := strconv.ParseUint(walFile[:8], 16, 32); err == nil {
			tl = int64(v)
		}
	}
	f.Timeline = uint32(tl)
	rows, err := conn.Query(qctx, "SELECT id FROM "+Table+" ORDER BY id")
	if err == nil {
		f.Present, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	}
	if err != nil {
		r.say("final: read %s on %s: %v", Table, primary, err)
	}
	if f.Present == nil {
		f.Present = []int64{}
	}
	if tl > 1 {
		var text string
		if err := conn.QueryRow(qctx, "SELECT pg_read_file($1)", fmt.Sprintf("pg_wal/%08X.history", tl)).Scan(&text); err != nil {
			r.say("final: timeline history of %s: %v", primary, err)
		} else if switches, err := database.ParseTimelineHistory(text); err != nil {
			r.say("final: timeline history of %s: %v", primary, err)
		} else {
			f.Forks = forks(switches, uint32(tl))
		}
	}
	return f
}

// forks turns a timeline history (database.ParseTimelineHistory: each
// line a parent timeline and where it ended) into the timelines that began
// there.
func forks(switches []database.TimelineSwitch, current uint32) []history.Fork {
	out := make([]history.Fork, 0, len(switches))
	for i, sw := range switches {
		next := current
		if i+1 < len(switches) {
			next = switches[i+1].Timeline
		}
		out = append(out, history.Fork{Timeline: next, Parent: sw.Timeline, LSN: sw.SwitchPoint.String()})
	}
	return out
}

// panics returns the agent log lines that show a panic.
func (r *campaign) panics() []string {
	if r.c == nil {
		return nil
	}
	panicLine := regexp.MustCompile(`(^|")panic: |^goroutine \d+ \[|^fatal error: `)
	var logs []string
	for _, dir := range r.logDirs() {
		more, _ := filepath.Glob(filepath.Join(dir, "*.log"))
		logs = append(logs, more...)
	}
	var out []string
	for _, path := range logs {
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if panicLine.MatchString(sc.Text()) {
				out = append(out, filepath.Base(path)+": "+sc.Text())
			}
		}
		f.Close()
	}
	return out
}

// teardown heals every fault, stops the agents, keeps their logs in the
// campaign directory and removes the lab. A second call does nothing.
func (r *campaign) teardown(ctx context.Context) error {
	var errs []error
	errs = append(errs, r.healAll(ctx))
	r.stopEtcd()
	if r.c != nil {
		r.c.StopAll()
		if err := r.keepLogs(); err != nil {
			errs = append(errs, err)
		}
		r.c = nil
	}
	if r.l != nil {
		// The client and nodes' nft tables go with their namespaces.
		if err := r.l.Down(ctx); err != nil {
			errs = append(errs, fmt.Errorf("lab down: %w", err))
		} else {
			r.l = nil
		}
	}
	if r.l == nil {
		// The servers are gone with the lab: their WAL can be unmounted.
		if err := r.unmountWAL(); err != nil {
			errs = append(errs, err)
		}
	}
	if r.l == nil && len(r.walFS) == 0 && r.labDir != "" {
		if err := os.RemoveAll(r.labDir); err != nil {
			errs = append(errs, err)
		} else {
			r.labDir = ""
		}
	}
	return errors.Join(errs...)
}

// keepLogs copies the agents' logs and step logs into OUT/agents.
func (r *campaign) keepLogs() error {
	if r.rec == nil {
		return nil
	}
	dst := filepath.Join(r.o.Out, "agents")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, dir := range r.logDirs() {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.IsDir() || !(strings.HasSuffix(e.Name(), ".log") || strings.HasSuffix(e.Name(), ".jsonl")) {
				continue
			}
			data, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// logDirs are the directories of the agents' and etcd members' logs.
func (r *campaign) logDirs() []string {
	dirs := []string{r.c.Dir}
	if r.etcdDir != "" {
		dirs = append(dirs, r.etcdDir)
	}
	return dirs
}

// leaks lists what the campaign created and is still there after
// teardown: processes working in the lab directory, namespaces and links
// named after the lab, addresses of its subnet on the host, mounts.
func (r *campaign) leaks() []string {
	var out []string
	id, dir, subnet := r.labID, r.labRoot, r.subnet
	if dir != "" {
		pids, _ := cmdlineContains(dir)
		for _, pid := range pids {
			cmd, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
			out = append(out, fmt.Sprintf("process %d: %s", pid, strings.ReplaceAll(strings.TrimRight(string(cmd), "\x00"), "\x00", " ")))
		}
		if mounts, err := os.ReadFile("/proc/self/mounts"); err == nil {
			for _, l := range strings.Split(string(mounts), "\n") {
				if f := strings.Fields(l); len(f) > 1 && strings.HasPrefix(f[1], dir) {
					out = append(out, "mount "+f[1])
				}
			}
		}
		if _, err := os.Stat(dir); err == nil {
			out = append(out, "directory "+dir)
		}
	}
	if id != "" {
		if list, err := exec.Command("ip", "netns", "list").Output(); err == nil {
			for _, l := range strings.Split(string(list), "\n") {
				if f := strings.Fields(l); len(f) > 0 && strings.Contains(f[0], "vigil-"+id+"-") {
					out = append(out, "namespace "+f[0])
				}
			}
		}
		links, _ := filepath.Glob("/sys/class/net/*" + id + "*")
		for _, l := range links {
			out = append(out, "link "+filepath.Base(l))
		}
	}
	if subnet != "" {
		prefix := strings.TrimSuffix(subnet, "0/24")
		if addrs, err := exec.Command("ip", "-4", "-o", "addr", "show").Output(); err == nil {
			for _, l := range strings.Split(string(addrs), "\n") {
				if strings.Contains(l, " "+prefix) {
					out = append(out, "address "+strings.Join(strings.Fields(l), " "))
				}
			}
		}
	}
	return out
}

// cmdlineContains lists the processes whose command line or working
// directory mentions s.
func cmdlineContains(s string) ([]int, error) {
	self := os.Getpid()
	return proc.Processes(func(pid int) bool {
		if pid == self {
			return false
		}
		dir := filepath.Join("/proc", strconv.Itoa(pid))
		b, err := os.ReadFile(filepath.Join(dir, "cmdline"))
		cwd, _ := os.Readlink(filepath.Join(dir, "cwd"))
		return (err == nil && strings.Contains(string(b), s)) || strings.HasPrefix(cwd, s)
	})
}
