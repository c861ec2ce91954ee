package patroni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-ha/vigil/internal/lab"
	"github.com/vigil-ha/vigil/internal/proc"
)

// Ports inside every node's namespace.
const (
	etcdClientPort = 2379
	etcdPeerPort   = 2380
	restAPIPort    = 8008
)

// vipHost is the VIP's host number in the lab subnet, as in the demo.
const vipHost = 100

// Scope is the Patroni cluster's name (its key prefix in etcd).
const Scope = "vigil-bench"

// Cluster is Patroni on a lab's nodes: per node an etcd member (vigil
// witness) and a Patroni, which bootstraps PostgreSQL from an empty data
// directory at the lab's path for the node (so that the lab's Down finds
// its servers).
type Cluster struct {
	lab      *lab.Lab
	binary   string
	settings Settings

	// http talks to Patroni's REST API and etcd on the lab network,
	// never through a proxy from the environment.
	http *http.Client
}

// NewCluster prepares Patroni on l, a 3-node netns lab, with the vigil
// executable binary (etcd members, VIP callback).
func NewCluster(l *lab.Lab, binary string, s Settings) *Cluster {
	return &Cluster{lab: l, binary: binary, settings: s, http: &http.Client{Transport: &http.Transport{Proxy: nil}}}
}

// Dir holds the cluster's configuration, logs and etcd data.
func (c *Cluster) Dir() string { return filepath.Join(c.lab.Dir(), "patroni") }

// LogPath is the log of process name ("patroni-node1", "etcd-node2").
func (c *Cluster) LogPath(name string) string { return filepath.Join(c.Dir(), name+".log") }

// VIP is the service address.
func (c *Cluster) VIP() string {
	a, err := c.lab.AddressIn(vipHost)
	if err != nil {
		return ""
	}
	return a.String()
}

// Start starts an etcd member on every node of the (empty) lab and, once
// etcd answers, a Patroni on every node.
func (c *Cluster) Start(ctx context.Context) error {
	if err := os.MkdirAll(c.Dir(), 0o755); err != nil {
		return fmt.Errorf("patroni cluster: %w", err)
	}
	nodes := c.lab.Nodes()
	var initial []string
	for _, n := range nodes {
		initial = append(initial, fmt.Sprintf("%s=http://%s:%d", n.Name, n.Host, etcdPeerPort))
	}
	for _, n := range nodes {
		// The same etcd member as Vigil's (vigil witness is the embedded
		// member on its own) with the lab agents' raft timing.
		args := []string{"--net=" + proc.NetnsPath(n.Netns), "--", c.binary, "witness", "--cluster", Scope, "--name", n.Name,
			"--data-dir", filepath.Join(c.Dir(), "etcd-"+n.Name),
			"--peer-url", fmt.Sprintf("http://%s:%d", n.Host, etcdPeerPort),
			"--client-url", fmt.Sprintf("http://%s:%d", n.Host, etcdClientPort),
			"--initial-cluster", strings.Join(initial, ","), "--insecure", "--tick-ms", "50", "--election-ms", "500"}
		if err := c.start("etcd-"+n.Name, exec.Command("nsenter", args...)); err != nil {
			return err
		}
	}
	if err := c.waitEtcd(ctx, 60*time.Second); err != nil {
		return err
	}
	for _, n := range nodes {
		if err := c.startPatroni(n); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) etcdHosts() []string {
	var hosts []string
	for _, n := range c.lab.Nodes() {
		hosts = append(hosts, fmt.Sprintf("%s:%d", n.Host, etcdClientPort))
	}
	return hosts
}

// waitEtcd waits until every member reports itself healthy.
func (c *Cluster) waitEtcd(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		healthy := 0
		for _, h := range c.etcdHosts() {
			var health struct {
				Health string `json:"health"`
			}
			if c.getJSON(ctx, "http://"+h+"/health", &health) == nil && health.Health == "true" {
				healthy++
			}
		}
		if healthy == len(c.lab.Nodes()) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd for Patroni: %d of %d members healthy after %s", healthy, len(c.lab.Nodes()), within)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

func (c *Cluster) startPatroni(n lab.Node) error {
	as := c.lab.Runner(n).As
	if as == nil {
		return errors.New("patroni: the lab runs its servers as root's caller; Patroni needs the database OS user (run as root)")
	}
	home := filepath.Join(c.Dir(), n.Name)
	if err := os.MkdirAll(home, 0o700); err != nil {
		return fmt.Errorf("patroni %s: %w", n.Name, err)
	}
	if err := os.Chown(home, int(as.UID), int(as.GID)); err != nil {
		return fmt.Errorf("patroni %s: %w", n.Name, err)
	}
	conf := filepath.Join(c.Dir(), n.Name+".yml")
	if err := os.WriteFile(conf, []byte(c.config(n, home)), 0o644); err != nil {
		return fmt.Errorf("patroni %s: %w", n.Name, err)
	}
	suUser, suPassword, err := c.lab.Superuser()
	if err != nil {
		return err
	}
	replUser, replPassword, err := c.lab.Replication()
	if err != nil {
		return err
	}
	// Patroni runs as the database's OS user, with the two capabilities
	// its VIP callback needs (add the address, send gratuitous ARP) as
	// ambient capabilities, in place of the usual sudo rule.
	cmd := exec.Command("nsenter", "--net="+proc.NetnsPath(n.Netns), "--",
		"setpriv", "--reuid="+fmt.Sprint(as.UID), "--regid="+fmt.Sprint(as.GID), "--init-groups",
		"--inh-caps=+net_admin,+net_raw", "--ambient-caps=+net_admin,+net_raw", "--",
		Executable, conf)
	cmd.Dir = home
	// Credentials from the environment, never in arguments or files.
	cmd.Env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + home, "LC_ALL=C.UTF-8", "LANG=C.UTF-8",
		"PATRONI_SUPERUSER_USERNAME=" + suUser, "PATRONI_SUPERUSER_PASSWORD=" + suPassword,
		"PATRONI_REPLICATION_USERNAME=" + replUser, "PATRONI_REPLICATION_PASSWORD=" + replPassword,
	}
	return c.start("patroni-"+n.Name, cmd)
}

// config is node n's Patroni configuration. Timing is Patroni's default
// unless the settings say otherwise; synchronous_mode matches the Vigil
// scenarios' synchronous replication (an acknowledged write is on a
// standby), and the lab has no watchdog device.
func (c *Cluster) config(n lab.Node, home string) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	q := func(s string) string { return fmt.Sprintf("%q", s) }
	subnet := c.lab.Subnet()
	w("# Written by vigil bench failover --compare patroni for %s.", n.Name)
	w("scope: %s", Scope)
	w("name: %s", n.Name)
	w("log:")
	w("  level: INFO")
	w("restapi:")
	w("  listen: %s", q(fmt.Sprintf("%s:%d", n.Host, restAPIPort)))
	w("  connect_address: %s", q(fmt.Sprintf("%s:%d", n.Host, restAPIPort)))
	w("etcd3:")
	w("  hosts: %s", q(strings.Join(c.etcdHosts(), ",")))
	w("bootstrap:")
	w("  dcs:")
	if s := c.settings; s.TTL != 0 {
		w("    ttl: %d", s.TTL)
	}
	if s := c.settings; s.LoopWait != 0 {
		w("    loop_wait: %d", s.LoopWait)
	}
	if s := c.settings; s.RetryTimeout != 0 {
		w("    retry_timeout: %d", s.RetryTimeout)
	}
	w("    synchronous_mode: true")
	w("  initdb:")
	w("    - encoding: UTF8")
	w("postgresql:")
	w("  listen: %s", q(fmt.Sprintf("0.0.0.0:%d", n.Port)))
	w("  connect_address: %s", q(fmt.Sprintf("%s:%d", n.Host, n.Port)))
	w("  data_dir: %s", q(n.DataDir))
	w("  bin_dir: %s", q(c.lab.BinDir()))
	w("  pgpass: %s", q(filepath.Join(home, "pgpass")))
	w("  use_unix_socket: true")
	w("  parameters:")
	w("    unix_socket_directories: %s", q(n.SocketDir))
	w("  pg_hba:")
	w("    - local all all peer")
	w("    - host replication all %s scram-sha-256", subnet)
	w("    - host all all %s scram-sha-256", subnet)
	w("    - host all all 127.0.0.1/32 scram-sha-256")
	// Patroni checks its own timeline over a replication connection to
	// localhost before it takes over.
	w("    - host replication all 127.0.0.1/32 scram-sha-256")
	// Patroni appends the action, the role and the scope.
	cb := q(fmt.Sprintf("%s patroni-callback --vip %s/24 --interface eth0", c.binary, c.VIP()))
	w("  callbacks:")
	w("    on_start: %s", cb)
	w("    on_stop: %s", cb)
	w("    on_restart: %s", cb)
	w("    on_role_change: %s", cb)
	w("watchdog:")
	w("  mode: off")
	return b.String()
}

// start starts a process of the cluster, logging to its log file, and has
// the lab track it so that the lab's Down stops it.
func (c *Cluster) start(name string, cmd *exec.Cmd) error {
	logFile, err := os.OpenFile(c.LogPath(name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	// Reaped when it ends; how it ended shows in its log.
	go func() { _ = cmd.Wait() }()
	if err := c.lab.TrackProcess(name, cmd.Process.Pid); err != nil {
		_ = cmd.Process.Kill()
		return err
	}
	return nil
}

// Member is one entry of Patroni's /cluster.
type Member struct {
	Name  string `json:"name"`
	Role  string `json:"role"`
	State string `json:"state"`
	Host  string `json:"host"`
}

// Members asks the Patroni of the first node in nodes that answers for
// the cluster's members.
func (c *Cluster) Members(ctx context.Context, nodes ...string) ([]Member, error) {
	var errs []error
	for _, name := range nodes {
		n, err := c.lab.Node(name)
		if err != nil {
			return nil, err
		}
		var cl struct {
			Members []Member `json:"members"`
		}
		if err := c.getJSON(ctx, fmt.Sprintf("http://%s:%d/cluster", n.Host, restAPIPort), &cl); err != nil {
			errs = append(errs, err)
			continue
		}
		sort.Slice(cl.Members, func(i, j int) bool { return cl.Members[i].Name < cl.Members[j].Name })
		return cl.Members, nil
	}
	return nil, fmt.Errorf("patroni /cluster: %w", errors.Join(errs...))
}

func (c *Cluster) nodeNames(except string) []string {
	var names []string
	for _, n := range c.lab.Nodes() {
		if n.Name != except {
			names = append(names, n.Name)
		}
	}
	return names
}

// WaitReady waits until Patroni has a leader whose server is a primary
// with two streaming standbys, one of them synchronous, and the VIP is on
// it; it returns the leader.
func (c *Cluster) WaitReady(ctx context.Context, within time.Duration) (string, error) {
	deadline := time.Now().Add(within)
	for {
		leader, why := c.ready(ctx)
		if why == "" {
			return leader, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("patroni cluster not ready after %s: %s", within, why)
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return "", err
		}
	}
}

func (c *Cluster) ready(ctx context.Context) (string, string) {
	members, err := c.Members(ctx, c.nodeNames("")...)
	if err != nil {
		return "", err.Error()
	}
	leader := ""
	for _, m := range members {
		if m.Role == "leader" && m.State == "running" {
			leader = m.Name
		}
	}
	if leader == "" || len(members) != len(c.lab.Nodes()) {
		return "", fmt.Sprintf("members %+v", members)
	}
	srv, err := server(c.lab, leader)
	if err != nil {
		return "", err.Error()
	}
	obs, err := srv.Observe(ctx)
	if err != nil || obs.InRecovery {
		return "", fmt.Sprintf("leader %s not a primary yet (%v)", leader, err)
	}
	streaming, sync := 0, 0
	for _, s := range obs.Standbys {
		if s.State == "streaming" {
			streaming++
		}
		if s.SyncState == "sync" || s.SyncState == "quorum" {
			sync++
		}
	}
	if streaming != len(c.lab.Nodes())-1 {
		return "", fmt.Sprintf("leader %s has %d streaming standbys", leader, streaming)
	}
	// As the demo waits for Vigil's synchronous standbys: until Patroni's
	// synchronous_mode has named one, an acknowledged write may exist
	// only on the leader.
	if sync == 0 {
		return "", fmt.Sprintf("leader %s has no synchronous standby yet", leader)
	}
	if h := c.VIPHolder(); h != leader {
		return "", fmt.Sprintf("the VIP is on %q, not on the leader %s", h, leader)
	}
	return leader, ""
}

// WaitNewLeader waits until a node other than old leads (Patroni says so)
// and its server is out of recovery.
func (c *Cluster) WaitNewLeader(ctx context.Context, old string, within time.Duration) (string, error) {
	deadline := time.Now().Add(within)
	for {
		if members, err := c.Members(ctx, c.nodeNames(old)...); err == nil {
			for _, m := range members {
				if m.Role != "leader" || m.Name == old {
					continue
				}
				if srv, err := server(c.lab, m.Name); err == nil {
					if obs, err := srv.Observe(ctx); err == nil && !obs.InRecovery {
						return m.Name, nil
					}
				}
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no new Patroni leader within %s after %s crashed", within, old)
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return "", err
		}
	}
}

// WaitVIP waits until node holds the VIP and no other live node does.
func (c *Cluster) WaitVIP(ctx context.Context, node string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for c.VIPHolder() != node {
		if time.Now().After(deadline) {
			return fmt.Errorf("the VIP is on %q after %s, want %s", c.VIPHolder(), within, node)
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// VIPHolder names the live nodes whose eth0 carries the VIP ("a,b" if
// several): lab.Lab.Holders.
func (c *Cluster) VIPHolder() string { return c.lab.Holders(c.VIP()) }

// CrashNode crashes node name as the Vigil scenarios do: its link goes
// down, then every process in its namespace (Patroni, its PostgreSQL, its
// etcd member, a callback) is killed at once.
func (c *Cluster) CrashNode(ctx context.Context, name string) error {
	n, err := c.lab.Node(name)
	if err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, "ip", "link", "set", n.Link, "down").CombinedOutput(); err != nil {
		return fmt.Errorf("crash %s: link down: %v: %s", name, err, out)
	}
	if left, err := killNamespace(n.Netns, 30*time.Second); err != nil || len(left) > 0 {
		return fmt.Errorf("crash %s: processes %v still run (%v)", name, left, err)
	}
	return nil
}

// NamespaceProcesses lists the processes in network namespace ns.
func NamespaceProcesses(ns string) ([]int, error) {
	var want syscall.Stat_t
	if err := syscall.Stat(proc.NetnsPath(ns), &want); err != nil {
		return nil, fmt.Errorf("namespace %s: %w", ns, err)
	}
	return proc.Processes(func(pid int) bool {
		var st syscall.Stat_t
		if syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st) != nil {
			return false
		}
		return st.Dev == want.Dev && st.Ino == want.Ino
	})
}

// killNamespace SIGKILLs every process in namespace ns until none is left.
func killNamespace(ns string, within time.Duration) ([]int, error) {
	return proc.KillUntilGone(func() ([]int, error) {
		pids, err := NamespaceProcesses(ns)
		if err != nil {
			return nil, err
		}
		// Zombies wait only for their parent; they run nothing.
		return alive(pids), nil
	}, within)
}

func alive(pids []int) []int {
	var out []int
	for _, pid := range pids {
		if st, err := proc.ReadStat(pid); err == nil && st.State != 'Z' {
			out = append(out, pid)
		}
	}
	return out
}

// Down kills every process in the nodes' namespaces (Patroni, PostgreSQL,
// etcd, callbacks) and removes the lab.
func (c *Cluster) Down(ctx context.Context) error {
	var errs []error
	for _, n := range c.lab.Nodes() {
		if _, err := os.Stat(proc.NetnsPath(n.Netns)); err != nil {
			continue
		}
		if left, err := killNamespace(n.Netns, 20*time.Second); err != nil || len(left) > 0 {
			errs = append(errs, fmt.Errorf("stop the processes of %s: %v left (%v)", n.Name, left, err))
		}
	}
	if err := c.lab.Down(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Callbacks returns the VIP callback's log lines in node's Patroni log
// from since on.
func (c *Cluster) Callbacks(node string, since time.Time) []string {
	data, err := os.ReadFile(c.LogPath("patroni-" + node))
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.Contains(line, "patroni callback") {
			continue
		}
		// slog's text handler: time=2026-12-02T16:40:01.123+00:00 ...
		ts, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil && t.Before(since) {
			continue
		}
		out = append(out, line)
	}
	return out
}

// lockMessage is what Patroni logs when it takes the leader key to
// promote its server.
const lockMessage = "promoted self to leader by acquiring session lock"

// TookLock returns when node's Patroni logged taking the leader key to
// promote, the first time at or after since.
func (c *Cluster) TookLock(node string, since time.Time) (time.Time, bool) {
	data, err := os.ReadFile(c.LogPath("patroni-" + node))
	if err != nil {
		return time.Time{}, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.Contains(line, lockMessage) || len(line) < 23 {
			continue
		}
		// Python's asctime, in the host's local time: 2026-12-02 16:34:53,183
		t, err := time.ParseInLocation("2006-01-02 15:04:05,000", line[:23], time.Local)
		if err == nil && !t.Before(since) {
			return t, true
		}
	}
	return time.Time{}, false
}

// Logs returns the last n lines of every Patroni and etcd log.
func (c *Cluster) Logs(n int) string {
	var b strings.Builder
	for _, node := range c.lab.Nodes() {
		for _, p := range []string{"patroni-", "etcd-"} {
			b.WriteString(tail(c.LogPath(p+node.Name), n))
		}
	}
	return b.String()
}

func (c *Cluster) getJSON(ctx context.Context, url string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
