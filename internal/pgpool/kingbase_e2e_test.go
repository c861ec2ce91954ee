package pgpool

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/flavor"
	"github.com/vigil-ha/vigil/internal/lab"
	"github.com/vigil-ha/vigil/internal/lab/labtest"
	"github.com/vigil-ha/vigil/internal/proc"
)

// kingbaseWrapper is one program of the fixture bin directory: a KingbaseES
// name that runs the PostgreSQL program of the same role. exec -a gives it
// the KingbaseES name as argv[0], so that it speaks as KingbaseES's does
// ("sys_ctl: no server running"). Every call is logged to calls.log.
const kingbaseWrapper = `#!/bin/bash
printf '%%s\n' "$(basename "$0") $*" >> "$(dirname "$0")/calls.log"
exec -a "$0" %s "$@"
`

// kingbaseBinDir writes the fixture: a bin directory holding only
// KingbaseES's names (sys_ctl, ksql, kingbase, sys_basebackup, ...), each a
// wrapper around the PostgreSQL program in pgBinDir that the flavor table
// pairs it with. A PostgreSQL name used anywhere would not be found there.
// It returns the directory and the path of the calls log.
func kingbaseBinDir(t *testing.T, pgBinDir string) (string, string) {
	t.Helper()
	// Readable by the database's OS user, which runs sys_ctl (runuser):
	// not under t.TempDir's 0700 directory.
	parent, err := os.MkdirTemp("", "vigil-kingbase-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "bin")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	pg, kb := flavor.MustLookup(flavor.Postgres), flavor.MustLookup(flavor.Kingbase)
	pairs := [][2]string{
		{kb.ControlBinary, pg.ControlBinary}, {kb.ClientBinary, pg.ClientBinary}, {kb.ServerBinary, pg.ServerBinary},
		{kb.InitDBBinary, pg.InitDBBinary}, {kb.BaseBackupBinary, pg.BaseBackupBinary}, {kb.RewindBinary, pg.RewindBinary},
		{kb.ControlDataBin, pg.ControlDataBin},
	}
	for _, p := range pairs {
		target := filepath.Join(pgBinDir, p[1])
		if _, err := os.Stat(target); err != nil {
			t.Fatalf("%s wraps %s: %v", p[0], target, err)
		}
		if err := os.WriteFile(filepath.Join(dir, p[0]), []byte(fmt.Sprintf(kingbaseWrapper, target)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	calls := filepath.Join(dir, "calls.log")
	if err := os.WriteFile(calls, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(calls, 0o666); err != nil { // past the umask: sys_ctl runs as the database's user
		t.Fatal(err)
	}
	return dir, calls
}

// placeholderName is a {{pg_name}} placeholder of the adapter's SQL.
var placeholderName = regexp.MustCompile(`\{\{(pg_[a-z0-9_]+)\}\}`)

// flavoredNames lists every {{pg_name}} the adapter (internal/database)
// and these procedures can send, read from their source, so that a name
// added there gets its wrapper here.
func flavoredNames(t *testing.T) []string {
	t.Helper()
	seen := map[string]bool{}
	for _, pattern := range []string{"../database/*.go", "*.go"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(string(data), "\n") {
				if strings.HasPrefix(strings.TrimSpace(line), "//") {
					continue // a comment's {{pg_name}} is no statement's
				}
				for _, m := range placeholderName.FindAllStringSubmatch(line, -1) {
					seen[m[1]] = true
				}
			}
		}
	}
	var names []string
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) < 10 {
		t.Fatalf("found only %v in the adapter's SQL", names)
	}
	return names
}

// createSysWrappers gives database c what KingbaseES has and PostgreSQL
// lacks: for every pg_ function and view the adapter names, a sys_ one in
// schema public (on the search path) that calls it, with the same
// arguments, defaults, result and volatility.
//
// With v8r3, the wrappers have KingbaseES V8R3's names instead (PostgreSQL
// 9.6's, renamed sys_): sys_current_xlog_location for pg_current_wal_lsn,
// sys_stat_replication with sent_location and no lag columns, and no
// sys_promote; none of the post-10 names exist.
func createSysWrappers(t *testing.T, ctx context.Context, c *pgx.Conn, names []string, v8r3 bool) []string {
	t.Helper()
	var created []string
	for _, pgName := range names {
		sysName := flavor.MustLookup(flavor.Kingbase).Ident(pgName)
		if v8r3 {
			if pgName == "pg_promote" {
				continue // 9.6 has none: V8R3 is promoted with sys_ctl
			}
			if old, ok := database.XLogName(pgName); ok {
				sysName = flavor.MustLookup(flavor.Kingbase).Ident(old)
			}
		}
		rows, err := c.Query(ctx, `SELECT pg_get_function_arguments(p.oid), pg_get_function_result(p.oid), p.pronargs, p.provolatile::text
			FROM pg_proc p WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname = $1 AND p.prokind = 'f'`, pgName)
		if err != nil {
			t.Fatal(err)
		}
		type fn struct {
			args, result, volatility string
			nargs                    int
		}
		var fns []fn
		for rows.Next() {
			var f fn
			if err := rows.Scan(&f.args, &f.result, &f.nargs, &f.volatility); err != nil {
				t.Fatal(err)
			}
			fns = append(fns, f)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		var stmts []string
		for _, f := range fns {
			params := make([]string, f.nargs)
			for i := range params {
				params[i] = fmt.Sprintf("$%d", i+1)
			}
			vol := map[string]string{"i": "IMMUTABLE", "s": "STABLE", "v": "VOLATILE"}[f.volatility]
			stmts = append(stmts, fmt.Sprintf("CREATE FUNCTION public.%s(%s) RETURNS %s LANGUAGE sql %s AS $body$ SELECT * FROM pg_catalog.%s(%s) $body$",
				sysName, f.args, f.result, vol, pgName, strings.Join(params, ", ")))
		}
		if len(fns) == 0 {
			var kind string
			err := c.QueryRow(ctx, `SELECT relkind::text FROM pg_class WHERE relnamespace = 'pg_catalog'::regnamespace AND relname = $1`, pgName).Scan(&kind)
			if err != nil || kind != "v" {
				t.Fatalf("%s is neither a function nor a view of pg_catalog (relkind %q, %v): no wrapper for %s", pgName, kind, err, sysName)
			}
			stmts = append(stmts, fmt.Sprintf("CREATE VIEW public.%s AS SELECT %s FROM pg_catalog.%s", sysName, viewColumns(t, ctx, c, pgName, v8r3), pgName))
		}
		for _, s := range stmts {
			if _, err := c.Exec(ctx, s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
			created = append(created, s)
		}
	}
	return created
}

// viewColumns lists the columns of pg_catalog's view pgName, for a wrapper
// view: all of them, or with v8r3 as 9.6 had them (renamed, and without the
// lag columns that came in 10).
func viewColumns(t *testing.T, ctx context.Context, c *pgx.Conn, pgName string, v8r3 bool) string {
	t.Helper()
	rows, err := c.Query(ctx, `SELECT attname::text FROM pg_attribute WHERE attrelid = ('pg_catalog.' || $1)::regclass AND attnum > 0 ORDER BY attnum`, pgName)
	if err != nil {
		t.Fatal(err)
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, col := range cols {
		switch old, renamed := database.XLogName(col); {
		case !v8r3:
			out = append(out, col)
		case strings.HasSuffix(col, "_lag"):
		case renamed:
			out = append(out, col+" AS "+old)
		default:
			out = append(out, col)
		}
	}
	return strings.Join(out, ", ")
}

// loggedStatements returns the statements a server logged (log_statement),
// each whole even when it spans lines.
func loggedStatements(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entryStart := regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \S+ \[\d+\] `)
	var entries []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if entryStart.MatchString(line) || len(entries) == 0 {
			entries = append(entries, line)
			continue
		}
		entries[len(entries)-1] += "\n" + line
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.Contains(e, "LOG:  statement: ") || strings.Contains(e, "LOG:  execute ") {
			out = append(out, e)
		}
	}
	return out
}

// TestKingbaseE2EFailoverCommandThroughWrapperBinaries runs the KingbaseES
// path end to end against real PostgreSQL 15 servers, with the flavor table
// swapped where the difference is only a name: database.flavor kingbase,
// bin_dir a fixture directory holding only KingbaseES's program names
// (wrappers around PostgreSQL's), the sys_ functions and views the adapter
// uses created in the database as wrappers of the pg_ ones, and everything
// else the kingbase defaults: port 54321 (the lab listens there, and the
// placeholders carry no port, as failover_stream.sh's did), superuser
// "system", database "test".
//
// Three nodes: node1 crashes and failover-command promotes node2 by SQL
// (sys_promote); follow-command re-points node3 at node2 (through a slot);
// node2 crashes and failover-command promotes node3 with sys_ctl over SSH
// (promote.method ssh, the V8R3 way). Each time the new primary must be
// writable and hold the VIP; every control-binary command must be sys_ctl,
// every statement the servers received from Vigil must use sys_ names, and
// no PostgreSQL name may appear in Vigil's logs.
func TestKingbaseE2EFailoverCommandThroughWrapperBinaries(t *testing.T) {
	t.Run("V8R6 names", func(t *testing.T) { kingbaseE2E(t, false) })
	t.Run("V8R3 names", func(t *testing.T) { kingbaseE2E(t, true) })
}

// kingbaseE2E is the test, with the functions and views of KingbaseES V8R6
// (PostgreSQL 12's names, sys_ for pg_), or with v8r3 those of V8R3
// (PostgreSQL 9.6's: sys_current_xlog_location, no sys_promote). Vigil must
// find out which it faces by itself; on V8R3 it promotes with sys_ctl.
func kingbaseE2E(t *testing.T, v8r3 bool) {
	requireFile(t, realArping, "iputils-arping")
	kb := flavor.MustLookup(flavor.Kingbase)
	l := labtest.New(t, lab.Options{Nodes: 3, Netns: true, BasePort: kb.DefaultPort})
	ctx := testCtx(t, 12*time.Minute)
	nodes := labNodes(t, l, "node1", "node2", "node3")
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	for _, n := range nodes {
		if n.Port != kb.DefaultPort {
			t.Fatalf("%s listens on port %d, want KingbaseES's %d", n.Name, n.Port, kb.DefaultPort)
		}
	}
	ssh := startSSH(t, n1, n2, n3)
	binDir, callsLog := kingbaseBinDir(t, l.BinDir())
	vip, bridge := labAddresses(t, l)
	if _, err := (proc.Runner{Netns: n1.Netns}).Run(ctx, realIP, "addr", "add", vip.String(), "dev", "eth0", "label", "eth0:2"); err != nil {
		t.Fatal(err)
	}

	// KingbaseES's superuser and database, and its sys_ names, on the
	// primary; the standbys get them by replication.
	labUser, labPassword, err := l.Superuser()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sysPassword := newPassword(t)
	sysPasswordFile := filepath.Join(dir, "system.password")
	if err := os.WriteFile(sysPasswordFile, []byte(sysPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	func() {
		c, err := sqlConn(ctx, n1, labUser, labPassword, "postgres")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background())
		for _, s := range []string{
			fmt.Sprintf("CREATE ROLE %s SUPERUSER LOGIN PASSWORD '%s'", pgx.Identifier{kb.DefaultSuperuser}.Sanitize(), sysPassword),
			"CREATE DATABASE " + pgx.Identifier{kb.DefaultDatabase}.Sanitize(),
			// Every statement of Vigil's sessions reaches the server logs.
			fmt.Sprintf("ALTER ROLE %s SET log_statement = 'all'", pgx.Identifier{kb.DefaultSuperuser}.Sanitize()),
		} {
			if _, err := c.Exec(ctx, s); err != nil {
				t.Fatalf("%s: %v", strings.Replace(s, sysPassword, "***", 1), err)
			}
		}
	}()
	names := flavoredNames(t)
	func() {
		c, err := sqlConn(ctx, n1, labUser, labPassword, kb.DefaultDatabase)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background())
		created := createSysWrappers(t, ctx, c, names, v8r3)
		t.Logf("%d sys_ wrappers for %v", len(created), names)
	}()
	// The adapter as Vigil builds it for KingbaseES: flavor kingbase,
	// port 54321, user system, database test.
	kbServer := func(n lab.Node) *database.Server {
		return &database.Server{Name: n.Name, Flavor: kb, Conn: database.ConnConfig{Host: n.Host, Port: kb.DefaultPort,
			User: kb.DefaultSuperuser, Password: sysPassword, Database: kb.DefaultDatabase, ConnectTimeout: 5 * time.Second}}
	}
	// Waited for with PostgreSQL's names: Vigil's adapter asks a server for
	// its names once, and a standby must have the wrappers by then.
	pg1, pg2, pg3 := labtest.Server(t, l, "node1"), labtest.Server(t, l, "node2"), labtest.Server(t, l, "node3")
	labtest.WaitFor(t, ctx, "the standbys to replay the sys_ wrappers", func() bool {
		p, ok := observe(t, ctx, pg1)
		if !ok {
			return false
		}
		for _, s := range []*database.Server{pg2, pg3} {
			if o, ok := observe(t, ctx, s); !ok || o.ReplayedLSN < p.CurrentLSN {
				return false
			}
		}
		return true
	})
	s1, s2, s3 := kbServer(n1), kbServer(n2), kbServer(n3)
	// node2's commits would wait for node1 once promoted: "sync to async".
	execSQL(t, ctx, s2, "ALTER SYSTEM SET synchronous_standby_names = 'node1'")
	execSQL(t, ctx, s2, "SELECT sys_reload_conf()")

	config := func(name string, extra map[string]any) string {
		cfg := map[string]any{
			"cluster": "kingbase-e2e",
			// No port, user or database: the kingbase flavor's defaults.
			"database": map[string]any{
				"flavor": "kingbase", "bin_dir": binDir, "os_user": lab.DefaultOSUser,
				"superuser": map[string]any{"password_file": sysPasswordFile},
			},
			"nodes":       []map[string]string{{"name": "node1"}, {"name": "node2"}, {"name": "node3"}},
			"trusted_ips": []string{bridge.String() + ":1"},
			"ssh":         map[string]any{"user": "root", "key_file": ssh.keyFile, "known_hosts_file": ssh.knownHosts, "timeout": "5s"},
			"vip":         map[string]any{"address": vip.String(), "interface": "eth0"},
			"commands":    map[string]any{"ip": realIP, "arping": realArping},
			"follow":      map[string]any{"use_slots": true, "passfile": l.PassFile()},
			"timing":      map[string]any{"total_timeout": "4m", "readiness_timeout": "3m"},
			"log": map[string]any{
				"failover_log": filepath.Join(dir, "failover.log"),
				"step_log":     filepath.Join(dir, "failover-steps.jsonl"),
			},
		}
		for k, v := range extra {
			cfg[k] = v
		}
		return writeYAML(t, filepath.Join(dir, name+".yaml"), cfg)
	}
	sqlConfig := config("kingbase", nil)
	sshConfig := config("kingbase-ssh", map[string]any{"promote": map[string]any{"method": "ssh"}})
	// Placeholders with the ports left empty: the flavor's 54321 applies.
	failover := func(cfg string, old, nw lab.Node, oldID, newID int) vigilResult {
		t.Helper()
		o, m := fmt.Sprint(oldID), fmt.Sprint(newID)
		r := runVigil(t, ctx, "", "failover-command", "--config", cfg, "--", o, old.Host, "", old.DataDir, m, nw.Host, o, o, "", nw.DataDir, old.Host, "")
		t.Logf("failover-command %s -> %s: exit %d\n%s", old.Name, nw.Name, r.exit, r.stdout)
		if r.exit != ExitOK {
			t.Fatalf("failover-command %s -> %s: exit %d\n%s", old.Name, nw.Name, r.exit, r.stderr)
		}
		return r
	}

	// crash kills old's server and runs failover-command to promote nw,
	// which must then be writable and hold the VIP, alone.
	crash := func(cfg string, old, nw lab.Node, oldS, nwS *database.Server, oldID, newID int) vigilResult {
		t.Helper()
		waitReceived(t, ctx, oldS, nwS)
		if err := l.Kill(ctx, old); err != nil {
			t.Fatal(err)
		}
		r := failover(cfg, old, nw, oldID, newID)
		if p := nwS.ProbeWrite(ctx); !p.Writable() {
			t.Fatalf("%s is not writable: %v", nw.Name, p)
		}
		if hasVIP(t, ctx, old, vip) || !hasVIP(t, ctx, nw, vip) {
			t.Fatalf("the VIP is not (only) on %s: %s %s, %s %s", nw.Name, old.Name, addresses(t, ctx, old.Netns), nw.Name, addresses(t, ctx, nw.Netns))
		}
		return r
	}

	// 1. node1 crashes; node2 is promoted by SQL (sys_promote), or on V8R3
	// (which has none) with sys_ctl over SSH.
	waitReceived(t, ctx, s1, s3)
	first := crash(sqlConfig, n1, n2, s1, s2, 0, 1)
	wantPromote := fmt.Sprintf("execute: select sys_promote(true, 60) on %s:%d", n2.Host, kb.DefaultPort)
	if v8r3 { // no sys_promote: the control binary over SSH
		wantPromote = fmt.Sprintf("execute: [runuser -u %s -- %s -D %s promote -w", lab.DefaultOSUser, filepath.Join(binDir, kb.ControlBinary), n2.DataDir)
	}
	if !strings.Contains(first.stdout, wantPromote) {
		t.Errorf("the first failover did not promote as it should: no %q", wantPromote)
	}

	// 2. node3 follows node2, through a slot created by sys_ SQL.
	r := runVigil(t, ctx, "", "follow-command", "--config", sqlConfig, "--", "2", n3.Host, "", n3.DataDir, "1", n2.Host, "0", "0", "", n2.DataDir, n1.Host, "")
	t.Logf("follow-command node3 -> node2: exit %d\n%s", r.exit, r.stdout)
	if r.exit != ExitOK {
		t.Fatalf("follow-command: exit %d\n%s\n%s", r.exit, r.stdout, r.stderr)
	}
	if o, err := s3.Observe(ctx); err != nil || o.WALReceiver == nil || o.WALReceiver.SenderHost != n2.Host || o.WALReceiver.SlotName != "node3" {
		t.Fatalf("node3's WAL receiver %+v, %v: want streaming from node2 through slot node3", o.WALReceiver, err)
	}
	w := s2.ProbeWrite(ctx)
	if !w.Writable() {
		t.Fatalf("node2: %v", w)
	}
	labtest.WaitFor(t, ctx, "node3 to replay node2's write", func() bool {
		o, ok := observe(t, ctx, s3)
		return ok && o.ReplayedLSN >= w.CommitLSN
	})

	// 3. node2 crashes; node3 is promoted with sys_ctl over SSH.
	second := crash(sshConfig, n2, n3, s2, s3, 1, 2)

	// Every control-binary command was the fixture's sys_ctl, and ran.
	ctl := filepath.Join(binDir, kb.ControlBinary)
	wantCtl := []string{
		fmt.Sprintf("runuser -u %s -- %s -D %s stop -m immediate", lab.DefaultOSUser, ctl, n1.DataDir),
		fmt.Sprintf("runuser -u %s -- %s -D %s status", lab.DefaultOSUser, ctl, n1.DataDir),
		fmt.Sprintf("runuser -u %s -- %s -D %s stop -m immediate", lab.DefaultOSUser, ctl, n2.DataDir),
		fmt.Sprintf("runuser -u %s -- %s -D %s status", lab.DefaultOSUser, ctl, n2.DataDir),
		fmt.Sprintf("runuser -u %s -- %s -D %s promote -w", lab.DefaultOSUser, ctl, n3.DataDir),
	}
	if v8r3 {
		wantCtl = append(wantCtl, fmt.Sprintf("runuser -u %s -- %s -D %s promote -w", lab.DefaultOSUser, ctl, n2.DataDir))
	}
	var executed []string
	for _, out := range []string{first.stdout, second.stdout} {
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "execute: [") && strings.Contains(line, "_ctl") {
				executed = append(executed, line)
				if !strings.HasPrefix(line, "execute: [runuser -u "+lab.DefaultOSUser+" -- "+ctl+" -D ") {
					t.Errorf("a control-binary command that is not the fixture's %s: %s", kb.ControlBinary, line)
				}
			}
		}
	}
	for _, want := range wantCtl {
		if !slices.ContainsFunc(executed, func(l string) bool { return strings.Contains(l, want) }) {
			t.Errorf("no %q among the commands run:\n%s", want, strings.Join(executed, "\n"))
		}
	}
	calls, err := os.ReadFile(callsLog)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"sys_ctl -D " + n1.DataDir + " stop -m immediate", "sys_ctl -D " + n1.DataDir + " status",
		"sys_ctl -D " + n2.DataDir + " stop -m immediate", "sys_ctl -D " + n2.DataDir + " status",
		"sys_ctl -D " + n3.DataDir + " promote -w",
	} {
		if !strings.Contains(string(calls), want) {
			t.Errorf("the fixture's programs ran %q, not %q", calls, want)
		}
	}

	// No PostgreSQL name in what Vigil wrote: its failover log (both
	// failovers, appended), what it printed, and its step log.
	human, err := os.ReadFile(filepath.Join(dir, "failover.log"))
	if err != nil {
		t.Fatal(err)
	}
	steps, err := os.ReadFile(filepath.Join(dir, "failover-steps.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for what, text := range map[string]string{"failover log": string(human), "follow-command output": r.stdout, "step log": string(steps)} {
		if loc := pgName.FindStringIndex(text); loc != nil {
			t.Errorf("PostgreSQL name in the %s: %q", what, text[max(loc[0]-80, 0):min(loc[1]+40, len(text))])
		}
	}
	if n := strings.Count(string(human), "failover end"); n != 2 {
		t.Errorf("the failover log holds %d failovers, want 2", n)
	}

	// What the servers received from Vigil (its sessions log every
	// statement): sys_ names only, and the ones each step needs.
	var stmts []string
	for _, n := range []lab.Node{n2, n3} {
		stmts = append(stmts, loggedStatements(t, n.LogFile)...)
	}
	all := strings.Join(stmts, "\n")
	for _, s := range stmts {
		if regexp.MustCompile(`\bpg_`).MatchString(s) {
			t.Errorf("a statement with a PostgreSQL name reached the server: %s", s)
		}
	}
	wantNames := []string{"sys_is_in_recovery()", "sys_reload_conf()", "sys_stat_replication", "sys_stat_wal_receiver",
		"sys_control_checkpoint()", "sys_create_physical_replication_slot("}
	// Every session asks which names the server has: to_regproc('...')
	// holds the names it asks for, which need not exist.
	asked := regexp.MustCompile(`to_regproc\('[a-z_]+'\)`).ReplaceAllString(all, "to_regproc(...)")
	var absentNames []string
	if v8r3 {
		wantNames = append(wantNames, "sys_current_xlog_location()", "sys_last_xlog_replay_location()", "sys_last_xlog_receive_location()",
			"sys_xlogfile_name(", "sent_location")
		absentNames = []string{"wal_lsn", "walfile", "sys_promote(", "sent_lsn", "replay_lag"}
	} else {
		wantNames = append(wantNames, "sys_promote(true, $1)", "sys_current_wal_lsn()", "sys_last_wal_replay_lsn()", "sys_walfile_name(", "sent_lsn")
		absentNames = []string{"xlog", "_location"}
	}
	for _, want := range wantNames {
		if !strings.Contains(asked, want) {
			t.Errorf("no statement from Vigil used %s", want)
		}
	}
	for _, absent := range absentNames {
		if i := strings.Index(asked, absent); i >= 0 {
			t.Errorf("a statement from Vigil used %s, which this server lacks: %q", absent, asked[max(i-120, 0):min(i+40, len(asked))])
		}
	}
	if t.Failed() {
		t.Logf("%d statements logged; the first ones:\n%s", len(stmts), strings.Join(stmts[:min(len(stmts), 20)], "\n"))
	}
}
