package pgpool

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"gopkg.in/yaml.v3"

	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/lab"
	"github.com/vigil-ha/vigil/internal/lab/labtest"
	"github.com/vigil-ha/vigil/internal/proc"
	"github.com/vigil-ha/vigil/internal/remote/sshdtest"
	"github.com/vigil-ha/vigil/internal/testbin"
	"github.com/vigil-ha/vigil/internal/timeline"
	"github.com/vigil-ha/vigil/internal/vip"
	"github.com/vigil-ha/vigil/internal/workload"
	"github.com/vigil-ha/vigil/internal/workload/workloadtest"
)

// Programs from Debian's packages that scripts/install-deps.sh installs.
const (
	pgpoolBin     = "/usr/sbin/pgpool"        // pgpool2
	pcpNodeInfo   = "/usr/sbin/pcp_node_info" // pgpool2
	realArping    = "/usr/bin/arping"         // iputils-arping
	realIP        = "/usr/sbin/ip"            // iproute2
	pgpoolPort    = 9999                      // Pgpool-II's own port, on 127.0.0.1 in its namespace
	pcpPort       = 9898                      // its PCP port, likewise
	pcpUser       = "vigil-test"              // the PCP account of the test's Pgpool-II
	resumedWrites = 25                        // writes on the new primary that prove the client writes again
	// failoverPlaceholders are failover_command's, in Pgpool-II's order.
	failoverPlaceholders = "%d %h %p %D %m %H %M %P %r %R %N %S"
)

// The vigil binary the e2e tests run as Pgpool-II would, built on first use
// and removed by TestMain.
var vigilBuild struct {
	once   sync.Once
	path   string
	remove func()
	err    error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if vigilBuild.remove != nil {
		vigilBuild.remove()
	}
	os.Exit(code)
}

// vigilBinary builds cmd/vigil once per test binary.
func vigilBinary(t *testing.T) string {
	t.Helper()
	vigilBuild.once.Do(func() { vigilBuild.path, vigilBuild.remove, vigilBuild.err = testbin.Build() })
	if vigilBuild.err != nil {
		t.Fatal(vigilBuild.err)
	}
	return vigilBuild.path
}

func requireFile(t *testing.T, path, pkg string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("this test runs %s: %v (install Debian's %s: scripts/install-deps.sh)", path, err, pkg)
	}
}

// labNodes returns the named nodes of l.
func labNodes(t *testing.T, l *lab.Lab, names ...string) []lab.Node {
	t.Helper()
	out := make([]lab.Node, len(names))
	for i, name := range names {
		n, err := l.Node(name)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = n
	}
	return out
}

// labAddresses returns the lab's VIP (host .100 of its subnet, as a /24)
// and the bridge's address: the trusted IP that answers.
func labAddresses(t *testing.T, l *lab.Lab) (vip netip.Prefix, bridge netip.Addr) {
	t.Helper()
	addr, err := l.AddressIn(100)
	if err != nil {
		t.Fatal(err)
	}
	if bridge, err = l.BridgeAddress(); err != nil {
		t.Fatal(err)
	}
	return netip.PrefixFrom(addr, 24), bridge
}

// sshAccess is one login for every node, as a Pgpool-II host has: a real
// sshd in each node's namespace (sshdtest), the first server's user key
// authorized on all of them, and one known_hosts file with every host key.
type sshAccess struct {
	keyFile, knownHosts string
	servers             map[string]*sshdtest.Server // by node name
}

func startSSH(t *testing.T, nodes ...lab.Node) sshAccess {
	t.Helper()
	a := sshAccess{servers: map[string]*sshdtest.Server{}, knownHosts: filepath.Join(t.TempDir(), "known_hosts")}
	var known bytes.Buffer
	var authorized []byte
	for i, n := range nodes {
		s := sshdtest.Start(t, n.Netns, n.Host)
		a.servers[n.Name] = s
		if i == 0 {
			a.keyFile = s.UserKeyFile
			var err error
			if authorized, err = os.ReadFile(filepath.Join(s.Dir, "authorized_keys")); err != nil {
				t.Fatal(err)
			}
		} else {
			f, err := os.OpenFile(filepath.Join(s.Dir, "authorized_keys"), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			_, werr := f.Write(authorized)
			if cerr := f.Close(); werr != nil || cerr != nil {
				t.Fatal(errors.Join(werr, cerr))
			}
		}
		known.WriteString(s.KnownHostsLine(s.HostKeyED25519) + "\n")
	}
	if err := os.WriteFile(a.knownHosts, known.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return a
}

// logins counts the sessions node's sshd accepted so far.
func (a sshAccess) logins(node string) int {
	return strings.Count(a.servers[node].Log(), "Accepted publickey")
}

// vigilResult is one run of the vigil binary.
type vigilResult struct {
	exit           int
	stdout, stderr string
}

// runVigil runs the vigil binary with args, in network namespace netns
// ("" for the test's own), as Pgpool-II runs its failover_command.
func runVigil(t *testing.T, ctx context.Context, netns string, args ...string) vigilResult {
	t.Helper()
	bin := vigilBinary(t)
	var cmd *exec.Cmd
	if netns != "" {
		cmd = exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + proc.NetnsPath(netns), "--", bin}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, bin, args...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := vigilResult{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee) && ee.Exited():
		r.exit = ee.ExitCode()
	case err != nil:
		t.Fatalf("vigil %v: %v\n%s", args, err, stderr.String())
	}
	return r
}

// writeYAML writes v as a configuration file (mode 0600).
func writeYAML(t *testing.T, path string, v any) string {
	t.Helper()
	data, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// readStepLog reads Vigil's JSON step log.
func readStepLog(t *testing.T, path string) []timeline.StepLine {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the step log: %v", err)
	}
	var out []timeline.StepLine
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l timeline.StepLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("step log line %q: %v", sc.Text(), err)
		}
		if l.Msg == timeline.StepLineMsg {
			out = append(out, l)
		}
	}
	return out
}

// stepLine returns the named step of the step log's last failover (that
// named id when id is not empty).
func stepLine(t *testing.T, steps []timeline.StepLine, id, name string) timeline.StepLine {
	t.Helper()
	for i := len(steps) - 1; i >= 0; i-- {
		if steps[i].Step == name && (id == "" || steps[i].ID == id) {
			return steps[i]
		}
	}
	t.Fatalf("no step %s (failover %q) in the step log", name, id)
	return timeline.StepLine{}
}

// addresses lists the IPv4 addresses of eth0 in namespace netns.
func addresses(t *testing.T, ctx context.Context, netns string) string {
	t.Helper()
	out, err := proc.Runner{Netns: netns}.Run(ctx, realIP, "-o", "-4", "addr", "show", "dev", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func hasVIP(t *testing.T, ctx context.Context, n lab.Node, addr netip.Prefix) bool {
	t.Helper()
	return vip.HasAddress(addresses(t, ctx, n.Netns), addr.Addr())
}

// sqlConn connects to a lab node over TCP.
func sqlConn(ctx context.Context, n lab.Node, user, password, dbname string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return nil, err
	}
	cfg.Host, cfg.Port, cfg.User, cfg.Password, cfg.Database = n.Host, uint16(n.Port), user, password, dbname
	cfg.ConnectTimeout = 5 * time.Second
	return pgx.ConnectConfig(ctx, cfg)
}

// newPassword is a random password for a role or account the test creates.
func newPassword(t *testing.T) string {
	t.Helper()
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// observe looks at s while the test waits for something: a server that
// cannot be reached yet is worth waiting for (false), any other error is
// not (a statement the server refuses would fail the same way until the
// test times out).
func observe(t *testing.T, ctx context.Context, s *database.Server) (database.Observation, bool) {
	t.Helper()
	o, err := s.Observe(ctx)
	var ce *database.ConnectError
	switch {
	case err == nil:
		return o, true
	case errors.As(err, &ce):
		return o, false
	}
	t.Fatalf("%v", err)
	return o, false
}

// waitReceived waits until every standby has received (flushed) the
// primary's WAL up to its current position.
func waitReceived(t *testing.T, ctx context.Context, primary *database.Server, standbys ...*database.Server) database.Observation {
	t.Helper()
	p, err := primary.Observe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range standbys {
		labtest.WaitFor(t, ctx, s.Name+" to receive the primary's WAL up to "+p.CurrentLSN.String(), func() bool {
			o, ok := observe(t, ctx, s)
			return ok && o.ReceivedLSN >= p.CurrentLSN
		})
	}
	return p
}

// crashNode is a node crash as labcluster does it: the node's link goes
// down (the host no longer answers on the network, not even ARP for the
// VIP it still holds), then its postmaster is killed with SIGKILL.
func crashNode(t *testing.T, ctx context.Context, l *lab.Lab, n lab.Node) {
	t.Helper()
	if out, err := exec.CommandContext(ctx, realIP, "link", "set", n.Link, "down").CombinedOutput(); err != nil {
		t.Fatalf("crash %s: link down: %v: %s", n.Name, err, out)
	}
	if err := l.Kill(ctx, n); err != nil {
		t.Fatalf("crash %s: %v", n.Name, err)
	}
}

// pgpoolServer is Pgpool-II (/usr/sbin/pgpool -n) running as the test's
// child process in a client namespace, with its configuration, pid file,
// sockets, status file and log in the test's temporary directory.
type pgpoolServer struct {
	netns   string
	dir     string
	conf    string
	logPath string
	pcpPass string
	cmd     *exec.Cmd
	done    chan struct{}
}

// pgpoolConf renders a streaming-replication pgpool.conf: health checks
// every second, a failure detaches the node at once (no retries), errors
// of client sessions do not, and failover_command is failoverCommand.
func pgpoolConf(dir string, backends []lab.Node, user, password, failoverCommand string) string {
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	var b strings.Builder
	set := func(k, v string) { fmt.Fprintf(&b, "%s = %s\n", k, v) }
	set("backend_clustering_mode", q("streaming_replication"))
	set("listen_addresses", q("127.0.0.1"))
	set("port", strconv.Itoa(pgpoolPort))
	set("socket_dir", q(dir))
	set("pcp_listen_addresses", q("127.0.0.1"))
	set("pcp_port", strconv.Itoa(pcpPort))
	set("pcp_socket_dir", q(dir))
	set("wd_ipc_socket_dir", q(dir))
	set("pid_file_name", q(filepath.Join(dir, "pgpool.pid")))
	set("logdir", q(dir))
	set("log_destination", q("stderr"))
	set("num_init_children", "2")
	set("max_pool", "1")
	set("reserved_connections", "0")
	set("enable_pool_hba", "off")
	set("pool_passwd", q(""))
	set("load_balance_mode", "off")
	set("use_watchdog", "off")
	set("memory_cache_enabled", "off")
	for i, n := range backends {
		set(fmt.Sprintf("backend_hostname%d", i), q(n.Host))
		set(fmt.Sprintf("backend_port%d", i), strconv.Itoa(n.Port))
		set(fmt.Sprintf("backend_weight%d", i), "1")
		set(fmt.Sprintf("backend_data_directory%d", i), q(n.DataDir))
		set(fmt.Sprintf("backend_flag%d", i), q("ALLOW_TO_FAILOVER"))
		set(fmt.Sprintf("backend_application_name%d", i), q(n.Name))
	}
	// How Pgpool-II finds the primary (at start and after a failover).
	set("sr_check_period", "0")
	set("sr_check_user", q(user))
	set("sr_check_password", q(password))
	set("sr_check_database", q("postgres"))
	set("health_check_period", "1")
	set("health_check_timeout", "10")
	set("health_check_user", q(user))
	set("health_check_password", q(password))
	set("health_check_database", q("postgres"))
	set("health_check_max_retries", "0")
	set("health_check_retry_delay", "1")
	set("connect_timeout", "10000")
	set("failover_command", q(failoverCommand))
	set("failover_on_backend_error", "off")
	set("search_primary_node_timeout", "60")
	set("auto_failback", "off")
	return b.String()
}

// startPgpool runs Pgpool-II in netns with the configuration conf returns
// for its directory; cleanup stops it and anything it started that is
// still running.
func startPgpool(t *testing.T, ctx context.Context, netns string, conf func(dir string) string) *pgpoolServer {
	t.Helper()
	requireFile(t, pgpoolBin, "pgpool2")
	dir := t.TempDir()
	p := &pgpoolServer{netns: netns, dir: dir, conf: filepath.Join(dir, "pgpool.conf"), logPath: filepath.Join(dir, "pgpool.log"),
		pcpPass: newPassword(t), done: make(chan struct{})}
	if err := os.WriteFile(p.conf, []byte(conf(dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum([]byte(p.pcpPass))
	pcpConf := filepath.Join(dir, "pcp.conf")
	if err := os.WriteFile(pcpConf, []byte(pcpUser+":"+hex.EncodeToString(sum[:])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pcppass"), []byte(fmt.Sprintf("127.0.0.1:%d:%s:%s\n", pcpPort, pcpUser, p.pcpPass)), 0o600); err != nil {
		t.Fatal(err)
	}
	hba := filepath.Join(dir, "pool_hba.conf")
	if err := os.WriteFile(hba, []byte("local all all trust\nhost all all 127.0.0.1/32 trust\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	// -n: no daemon. nsenter execs Pgpool-II in place: the process started
	// here is Pgpool-II's main process, leader of its own process group,
	// which its children (and the failover commands they run) share.
	p.cmd = exec.Command("nsenter", "--net="+proc.NetnsPath(netns), "--", pgpoolBin, "-n", "-f", p.conf, "-F", pcpConf, "-a", hba)
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start pgpool: %v", err)
	}
	pgid := p.cmd.Process.Pid
	go func() {
		_ = p.cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(t, pgid) })
	labtest.WaitFor(t, ctx, "Pgpool-II to answer on its PCP port", func() bool {
		select {
		case <-p.done:
			t.Fatalf("pgpool exited:\n%s", p.log())
		default:
		}
		_, err := p.nodeInfo(ctx, 0)
		return err == nil
	})
	return p
}

// stop ends Pgpool-II (a fast shutdown: SIGINT) and then whatever is left
// of its process group.
func (p *pgpoolServer) stop(t *testing.T, pgid int) {
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// SIGKILL for the whole group as well: children may have ignored SIGINT.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	if left, err := proc.KillUntilGone(func() ([]int, error) { return processGroup(pgid) }, 10*time.Second); len(left) > 0 || err != nil {
		t.Errorf("processes of the test's Pgpool-II still run: %v %v", left, err)
	}
	if t.Failed() {
		t.Logf("pgpool log:\n%s", p.log())
	}
}

// processGroup lists the processes of process group pgid.
func processGroup(pgid int) ([]int, error) {
	return proc.Processes(func(pid int) bool {
		g, err := syscall.Getpgid(pid)
		return err == nil && g == pgid
	})
}

func (p *pgpoolServer) log() string {
	data, _ := os.ReadFile(p.logPath)
	return string(data)
}

// pcpNode is Pgpool-II's view of one backend (pcp_node_info).
type pcpNode struct {
	Host, Port, Status, Role string
}

// nodeInfo asks Pgpool-II over PCP how it sees backend id.
func (p *pgpoolServer) nodeInfo(ctx context.Context, id int) (pcpNode, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, "nsenter", "--net="+proc.NetnsPath(p.netns), "--", pcpNodeInfo,
		"-h", "127.0.0.1", "-p", strconv.Itoa(pcpPort), "-U", pcpUser, "-w", "-n", strconv.Itoa(id))
	cmd.Env = append(os.Environ(), "PCPPASSFILE="+filepath.Join(p.dir, "pcppass"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return pcpNode{}, fmt.Errorf("pcp_node_info -n %d: %v: %s", id, err, out)
	}
	// host port status weight status_name backend_status role backend_role ...
	f := strings.Fields(string(out))
	if len(f) < 7 {
		return pcpNode{}, fmt.Errorf("pcp_node_info -n %d: %q", id, out)
	}
	n := pcpNode{Host: f[0], Port: f[1], Status: f[4], Role: f[6]}
	if n.Status == "waiting" { // up, no client session through it yet
		n.Status = "up"
	}
	return n, nil
}

// waitNode waits until Pgpool-II sees backend id with status and role.
func (p *pgpoolServer) waitNode(t *testing.T, ctx context.Context, id int, status, role string) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	for {
		n, err := p.nodeInfo(wctx, id)
		if err == nil && n.Status == status && n.Role == role {
			return
		}
		select {
		case <-wctx.Done():
			t.Fatalf("Pgpool-II does not see backend %d %s as %s: %+v, %v", id, status, role, n, err)
		case <-time.After(500 * time.Millisecond): // each look is a PCP session in Pgpool-II's log
		}
	}
}

// pgpoolCommand is failover_command as Pgpool-II runs it: vigil with the
// configuration and the placeholders, positionally, in Pgpool-II's order.
func pgpoolCommand(vigil, config string) string {
	return vigil + " failover-command --config " + config + " -- " + failoverPlaceholders
}

// expand substitutes the placeholders as Pgpool-II does for values (by
// the character after %), and splits the command line as sh would (the
// values hold no spaces or quotes).
func expand(command string, values map[byte]string) []string {
	var b strings.Builder
	for i := 0; i < len(command); i++ {
		if command[i] == '%' && i+1 < len(command) {
			if v, ok := values[command[i+1]]; ok {
				b.WriteString(v)
				i++
				continue
			}
		}
		b.WriteByte(command[i])
	}
	return strings.Fields(b.String())
}

// workloadRows counts the client's rows with an id above after on n, and
// returns the highest id there.
func workloadRows(ctx context.Context, n lab.Node, user, password string, after int64) (count, maxID int64, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := sqlConn(ctx, n, user, password, "postgres")
	if err != nil {
		return 0, 0, err
	}
	defer c.Close(context.Background())
	err = c.QueryRow(ctx, "SELECT count(*), coalesce(max(id), 0) FROM "+workload.Table+" WHERE id > $1", after).Scan(&count, &maxID)
	return count, maxID, err
}

// TestPgpool2CallsVigilWhenThePrimaryCrashes is the test with a
// real Pgpool-II: Debian's pgpool in streaming-replication mode in front of
// a two-node lab, checking both backends every second, with failover_command
// = vigil failover-command. A client writes through the VIP (on node1 at
// first) while node2 is 64 MiB behind on replay and its commits would wait
// for node1 (synchronous). node1 crashes (link down, SIGKILL). Pgpool-II
// must call Vigil with its placeholders; node2 must become the writable
// primary and Pgpool-II's primary; the VIP must move only after the
// readiness gate committed a write; the client must see no read-only error,
// lose no acknowledged write, and write again through the VIP.
//
// Before the crash, the same call with a trusted IP that does not answer
// (Pgpool-II cut off from the network thinks the primary failed) must do
// nothing at all and exit 3.
func TestPgpool2CallsVigilWhenThePrimaryCrashes(t *testing.T) {
	requireFile(t, pgpoolBin, "pgpool2")
	requireFile(t, pcpNodeInfo, "pgpool2")
	requireFile(t, realArping, "iputils-arping")
	vigil := vigilBinary(t)
	l := labtest.New(t, lab.Options{Nodes: 2, Netns: true})
	ctx := testCtx(t, 12*time.Minute)
	nodes := labNodes(t, l, "node1", "node2")
	n1, n2 := nodes[0], nodes[1]
	client, err := l.AddClient(ctx, "client")
	if err != nil {
		t.Fatal(err)
	}
	ssh := startSSH(t, n1, n2)
	vip, bridge := labAddresses(t, l)
	// Nobody holds .250: a trusted IP there never answers.
	silent, err := l.AddressIn(250)
	if err != nil {
		t.Fatal(err)
	}
	user, password, err := l.Superuser()
	if err != nil {
		t.Fatal(err)
	}
	s1, s2 := labtest.Server(t, l, "node1"), labtest.Server(t, l, "node2")

	// The seed's starting point: the VIP on the primary, with its label.
	if _, err := (proc.Runner{Netns: n1.Netns}).Run(ctx, realIP, "addr", "add", vip.String(), "dev", "eth0", "label", "eth0:2"); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	config := func(name string, trusted netip.Addr) string {
		return writeYAML(t, filepath.Join(dir, name+".yaml"), map[string]any{
			"cluster": "pgpool-e2e",
			"database": map[string]any{
				"flavor": "postgres", "bin_dir": l.BinDir(), "os_user": lab.DefaultOSUser,
				"superuser": map[string]any{"user": user, "database": "postgres", "password_file": l.SuperuserPasswordFile()},
			},
			"nodes":       []map[string]string{{"name": "node1"}, {"name": "node2"}},
			"trusted_ips": []string{trusted.String() + ":1"},
			"ssh":         map[string]any{"user": "root", "key_file": ssh.keyFile, "known_hosts_file": ssh.knownHosts, "timeout": "3s"},
			"vip":         map[string]any{"address": vip.String(), "interface": "eth0"},
			"commands":    map[string]any{"ip": realIP, "arping": realArping},
			// A crashed host does not answer SSH: carry on, as
			// failover_stream.sh did, on the trusted-IP guard and the
			// VIP's duplicate-address check.
			"fence":  map[string]any{"if_unreachable": "continue"},
			"timing": map[string]any{"total_timeout": "5m", "readiness_timeout": "3m"},
			"log": map[string]any{
				"failover_log": filepath.Join(dir, name+".failover.log"),
				"step_log":     filepath.Join(dir, name+".steps.jsonl"),
			},
		})
	}
	goodConfig := config("pgpool", bridge)
	isolatedConfig := config("isolated", silent)

	// Writes are acknowledged only once node2 has them: none may be lost.
	execSQL(t, ctx, s1, "ALTER SYSTEM SET synchronous_standby_names = 'node2'")
	execSQL(t, ctx, s1, "SELECT pg_reload_conf()")
	// node2's own setting names node1: once promoted, its commits would
	// wait for the old primary (the seed's "sync to async" step).
	execSQL(t, ctx, s2, "ALTER SYSTEM SET synchronous_standby_names = 'node1'")
	execSQL(t, ctx, s2, "SELECT pg_reload_conf()")
	if err := workload.Prepare(ctx, workload.Options{Host: n1.Host, Port: n1.Port, User: user, Password: password, Database: "postgres", Timeout: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}

	command := pgpoolCommand(vigil, goodConfig)
	pp := startPgpool(t, ctx, client.Netns, func(dir string) string { return pgpoolConf(dir, nodes, user, password, command) })
	pp.waitNode(t, ctx, 0, "up", "primary")
	pp.waitNode(t, ctx, 1, "up", "standby")

	// What Pgpool-II substitutes when node 0, the primary, fails and node
	// 1 is the new main node (backend_*0 and backend_*1 above).
	values := map[byte]string{
		'd': "0", 'h': n1.Host, 'p': strconv.Itoa(n1.Port), 'D': n1.DataDir,
		'm': "1", 'H': n2.Host, 'M': "0", 'P': "0", 'r': strconv.Itoa(n2.Port), 'R': n2.DataDir,
		'N': n1.Host, 'S': strconv.Itoa(n1.Port),
	}

	t.Run("trusted IP unreachable: nothing is done, exit 3", func(t *testing.T) {
		before := map[string]int{"node1": ssh.logins("node1"), "node2": ssh.logins("node2")}
		// Pgpool-II's call for a primary it believes failed, from
		// Pgpool-II's namespace; the primary is in fact alive.
		argv := expand(pgpoolCommand(vigil, isolatedConfig), values)
		r := runVigil(t, ctx, client.Netns, argv[1:]...)
		t.Logf("exit %d\n%s", r.exit, r.stdout)
		if r.exit != ExitIsolated {
			t.Fatalf("exit %d, want %d (no trusted IP answered)\nstdout:\n%s\nstderr:\n%s", r.exit, ExitIsolated, r.stdout, r.stderr)
		}
		for _, want := range []string{"failover beging", "ping trust ip " + silent.String() + ":1 failed", "failover failed (exit 3): ", "no trusted IP answered", "failover end"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("the failover log lacks %q:\n%s", want, r.stdout)
			}
		}
		steps := readStepLog(t, filepath.Join(dir, "isolated.steps.jsonl"))
		var names []string
		for _, s := range steps {
			names = append(names, s.Step)
		}
		if g := stepLine(t, steps, "", StepIsolationGuard); g.OK || len(names) != 2 || names[1] != StepDecide {
			t.Errorf("steps %v, isolation guard ok=%v: want the guard failed and nothing after the decision", names, g.OK)
		}
		// Nothing was touched: no SSH session on any node, node1 still
		// the writable primary holding the VIP, node2 still a standby.
		for _, n := range []string{"node1", "node2"} {
			if got := ssh.logins(n); got != before[n] {
				t.Errorf("%s's sshd accepted %d sessions during the call", n, got-before[n])
			}
		}
		if r := s1.ProbeWrite(ctx); !r.Writable() {
			t.Errorf("node1 is no longer writable: %v", r)
		}
		if !hasVIP(t, ctx, n1, vip) || hasVIP(t, ctx, n2, vip) {
			t.Errorf("the VIP moved: node1 %s, node2 %s", addresses(t, ctx, n1.Netns), addresses(t, ctx, n2.Netns))
		}
		if o, err := s2.Observe(ctx); err != nil || !o.InRecovery {
			t.Errorf("node2: in recovery %v, %v: it must not have been promoted", o.InRecovery, err)
		}
	})

	wl := workloadtest.Start(t, vigil, workloadtest.Target{Netns: client.Netns, Host: vip.Addr().String(), Port: n1.Port,
		User: user, PasswordFile: l.SuperuserPasswordFile(), Database: "postgres"})
	labtest.WaitFor(t, ctx, "the client's writes through the VIP to reach node1", func() bool {
		n, _, err := workloadRows(ctx, n1, user, password, 0)
		return err == nil && n > 0
	})

	// The seed's heavy load: node2 receives 64 MiB of WAL and replays none
	// of it; once promoted it must replay it all before it can write.
	if err := l.PauseReplay(ctx, n2); err != nil {
		t.Fatal(err)
	}
	if err := l.GenerateWAL(ctx, n1, 64); err != nil {
		t.Fatal(err)
	}
	waitReceived(t, ctx, s1, s2)
	pp.waitNode(t, ctx, 0, "up", "primary")

	crashAt := time.Now()
	crashNode(t, ctx, l, n1)

	failoverLog := filepath.Join(dir, "pgpool.failover.log")
	labtest.WaitFor(t, ctx, "Vigil's failover log to end", func() bool {
		data, _ := os.ReadFile(failoverLog)
		return strings.Contains(string(data), "failover end")
	})
	human, err := os.ReadFile(failoverLog)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Vigil's failover log:\n%s", human)
	pp.waitNode(t, ctx, 1, "up", "primary")
	pp.waitNode(t, ctx, 0, "down", "standby")

	// Pgpool-II called Vigil, with its placeholders, and logged what Vigil
	// printed: the failover_stream.sh-shaped log.
	plog := pp.log()
	if want := "execute command: " + strings.Join(expand(command, values), " "); !strings.Contains(plog, want) {
		t.Errorf("Pgpool-II's log lacks %q", want)
	}
	for _, want := range []string{"failover beging", "----failover-stats is %H = hostname of the new master node [" + n2.Host + "]", "master down, let " + n2.Host + " become new primary",
		"ssh connect host:" + n1.Host + " failed", "after execute promote, readiness gate passed", "sync to async", "CHECKPOINT", "ADD VIP NOW AT", "failover end"} {
		if !strings.Contains(string(human), want) {
			t.Errorf("Vigil's failover log lacks %q", want)
		}
		if !strings.Contains(plog, want) {
			t.Errorf("Pgpool-II's log lacks Vigil's line %q", want)
		}
	}
	if strings.Contains(string(human), "failover failed") {
		t.Errorf("the failover failed:\n%s", human)
	}

	// node2 is the writable primary.
	if r := s2.ProbeWrite(ctx); !r.Writable() {
		t.Fatalf("node2 is not writable: %v", r)
	}
	// The VIP moved to node2 only after the readiness gate had committed
	// a write there, and the promotion faced the injected backlog.
	steps := readStepLog(t, filepath.Join(dir, "pgpool.steps.jsonl"))
	gate, routes, promote := stepLine(t, steps, "", string(ActGate)), stepLine(t, steps, "", string(ActVIP)), stepLine(t, steps, "", string(ActPromote))
	if !gate.OK || !routes.OK || !promote.OK {
		t.Errorf("promote ok %v, readiness_gate ok %v, routes_up ok %v", promote.OK, gate.OK, routes.OK)
	}
	if gate.End.After(routes.Start) {
		t.Errorf("the VIP step began at %s, before the readiness gate passed at %s", routes.Start.Format(time.RFC3339Nano), gate.End.Format(time.RFC3339Nano))
	}
	if !strings.Contains(gate.Evidence, "write committed on node2") {
		t.Errorf("readiness gate evidence %q", gate.Evidence)
	}
	if gi, vi := strings.Index(string(human), "readiness gate passed"), strings.Index(string(human), "ADD VIP NOW AT"); gi < 0 || vi < gi {
		t.Errorf("the failover log adds the VIP before the readiness gate passed")
	}
	var backlog uint64
	if i := strings.Index(promote.Evidence, "replay backlog before: "); i >= 0 {
		fmt.Sscanf(promote.Evidence[i:], "replay backlog before: %d bytes", &backlog)
	}
	if backlog < 32<<20 {
		t.Errorf("the promotion saw a replay backlog of %d bytes, want the injected lag (>= 32 MiB): %s", backlog, promote.Evidence)
	}
	if !hasVIP(t, ctx, n2, vip) || !strings.Contains(addresses(t, ctx, n2.Netns), "eth0:2") {
		t.Errorf("the VIP is not on node2 with label eth0:2: %s", addresses(t, ctx, n2.Netns))
	}

	// The client writes again, through the VIP, on node2.
	_, before, err := workloadRows(ctx, n2, user, password, 0)
	if err != nil {
		t.Fatal(err)
	}
	labtest.WaitFor(t, ctx, fmt.Sprintf("%d writes through the VIP on node2", resumedWrites), func() bool {
		n, _, err := workloadRows(ctx, n2, user, password, before)
		return err == nil && n >= resumedWrites
	})
	res := wl.Stop(t)
	sum := res.Summarize(crashAt)
	t.Logf("through the VIP: %+v", sum)
	if sum.ReadOnlyErrors != 0 {
		var ro []string
		for _, w := range res.Writes {
			if w.Outcome == workload.ReadOnly && len(ro) < 5 {
				ro = append(ro, fmt.Sprintf("write %d, %.3fs after the crash: %s", w.ID, w.At.Sub(crashAt).Seconds(), w.Error))
			}
		}
		t.Errorf("%d read-only errors through the VIP, want 0; the first:\n%s", sum.ReadOnlyErrors, strings.Join(ro, "\n"))
	}
	// inet_server_addr() is the VIP on either node: which node committed
	// a write is proven by its row, below (every acknowledged write must
	// be on node2).
	var beforeCrash, afterCrash int
	for _, w := range res.Writes {
		switch {
		case w.Outcome != workload.OK:
		case w.Server != vip.Addr().String():
			t.Errorf("write %d committed through %s, not the VIP", w.ID, w.Server)
		case w.At.Before(crashAt):
			beforeCrash++
		default:
			afterCrash++
		}
	}
	if beforeCrash == 0 || afterCrash == 0 {
		t.Errorf("writes committed through the VIP: %d before the crash, %d after it", beforeCrash, afterCrash)
	}
	lost, err := workload.Lost(ctx, workload.Options{Host: n2.Host, Port: n2.Port, User: user, Password: password, Database: "postgres", Timeout: 5 * time.Second}, res.Acked())
	if err != nil {
		t.Fatal(err)
	}
	if len(lost) > 0 {
		t.Errorf("%d of %d acknowledged writes are missing on node2: %v", len(lost), len(res.Acked()), lost)
	}
}
