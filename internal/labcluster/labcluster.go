// Package labcluster runs vigil agents on a lab: it writes each node's
// configuration, starts the agents as their own processes (inside the
// node's network namespace in netns mode), and kills them the way a crash
// would. The e2e tests, `vigil demo` and `vigil bench` are built on it.
// The embedded etcd members of a netns lab, which other hosts on the lab's
// bridge can reach, run with mutual TLS from a CA made for the lab.
package labcluster

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"gopkg.in/yaml.v3"

	"github.com/vigil-ha/vigil/internal/certs"
	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/lab"
)

// Options shape the agents' configuration.
type Options struct {
	// Binary is the vigil executable the agents run.
	Binary string
	// Cluster names the cluster in the DCS; "lab" when empty.
	Cluster  string
	SyncMode string // off | on | strict
	// Priorities by node name; 100 when absent.
	Priorities map[string]int
	// Endpoints, when set, replaces the embedded etcd members.
	Endpoints []string
	// Witness adds an etcd member without a database (loopback labs).
	Witness bool
	// VIP is the service address's host number in the lab subnet (netns
	// labs), e.g. 100; 0 for none.
	VIP int
	// LeaseTTL and LoopInterval; the configuration defaults when zero.
	LeaseTTL     time.Duration
	LoopInterval time.Duration
	// MaxLag is maximum_lag_on_failover in bytes; 64 MiB when zero.
	MaxLag int
	// Legacy runs the agents in the seed's order (benchmark baseline).
	Legacy bool
	// API serves each agent's HTTP API (with a bearer token, see APIToken):
	// on the node's address, port 8008, in netns labs; on a free loopback
	// port otherwise.
	API bool
	// APITLS serves each agent's API over TLS with its node certificate
	// and accepts a client certificate of the lab's CA (the operator's) as
	// it accepts the token. Netns labs only: their etcd has the CA.
	APITLS bool
	// AgentRole, when set, makes the agents connect to their servers as
	// this non-superuser role, holding only what database.RoleSQL grants
	// (PostgreSQL 15 or later). CreateAgentRole makes it, before the first
	// StartAgent. pg_basebackup keeps the replication role; a rewind would
	// run as the agent's role (no rejoin.rewind account is configured),
	// which may not read the new primary's files, so rejoins take a base
	// backup.
	AgentRole string
	// Edit changes a node's configuration before it is written.
	Edit func(node string, cfg map[string]any)
}

// Cluster is a lab with agents.
type Cluster struct {
	Lab *lab.Lab
	// Dir holds the configurations, agent logs and step logs.
	Dir     string
	opts    Options
	configs map[string]string
	peers   map[string]string
	clients map[string]string
	apis    map[string]string
	trusted string
	// certDir holds the lab's CA, a certificate per node and the
	// operator's client certificate; "" when etcd runs without TLS
	// (loopback labs, which nobody else can reach).
	certDir string

	mu      sync.Mutex
	procs   map[string]*Proc
	witness *Proc
	// roleReady: CreateAgentRole ran (always, without Options.AgentRole).
	roleReady bool
}

// Proc is a running agent or witness.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	done chan struct{}
}

// New writes the configuration of every node of l.
func New(l *lab.Lab, o Options) (*Cluster, error) {
	if o.Cluster == "" {
		o.Cluster = "lab"
	}
	if o.MaxLag == 0 {
		o.MaxLag = 64 << 20
	}
	c := &Cluster{
		Lab: l, Dir: filepath.Join(l.Dir(), "agents"), opts: o,
		configs: map[string]string{}, peers: map[string]string{}, clients: map[string]string{},
		apis: map[string]string{}, procs: map[string]*Proc{}, roleReady: o.AgentRole == "",
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, err
	}
	if l.Netns() && len(o.Endpoints) == 0 {
		// Every other host on the lab's bridge (the client host, an
		// attacker in the security test) could otherwise write the
		// leader key, so the lab is closed as a deployment should be.
		if err := c.issueCertificates(); err != nil {
			return nil, err
		}
	}
	if o.APITLS && c.certDir == "" {
		return nil, errors.New("labcluster: an API over TLS needs the lab's CA: a netns lab with embedded etcd")
	}
	if o.AgentRole != "" {
		if err := writeSecret(c.agentRolePasswordFile()); err != nil {
			return nil, err
		}
	}
	scheme := "http"
	if c.certDir != "" {
		scheme = "https"
	}
	for _, n := range l.Nodes() {
		if o.API {
			c.apis[n.Name] = fmt.Sprintf("%s:8008", n.Host)
			if !l.Netns() {
				u, err := freeURL()
				if err != nil {
					return nil, err
				}
				c.apis[n.Name] = strings.TrimPrefix(u, "http://")
			}
		}
		if l.Netns() {
			c.peers[n.Name] = fmt.Sprintf("%s://%s:2380", scheme, n.Host)
			c.clients[n.Name] = fmt.Sprintf("%s://%s:2379", scheme, n.Host)
			continue
		}
		var err error
		if c.peers[n.Name], err = freeURL(); err != nil {
			return nil, err
		}
		if c.clients[n.Name], err = freeURL(); err != nil {
			return nil, err
		}
	}
	if o.Witness {
		if l.Netns() {
			return nil, errors.New("labcluster: a witness runs on loopback labs only")
		}
		var err error
		if c.peers["witness"], err = freeURL(); err != nil {
			return nil, err
		}
		if c.clients["witness"], err = freeURL(); err != nil {
			return nil, err
		}
	}
	// A trusted address that answers with a TCP reset: loopback for
	// loopback labs; the bridge's host address for netns labs, so that a
	// node whose link is down cannot reach it.
	c.trusted = "127.0.0.1:1"
	if l.Netns() {
		bridge, err := l.BridgeAddress()
		if err != nil {
			return nil, err
		}
		c.trusted = bridge.String() + ":1"
	}
	for _, n := range l.Nodes() {
		path, err := c.writeConfig(n)
		if err != nil {
			return nil, err
		}
		c.configs[n.Name] = path
	}
	return c, nil
}

// operatorName is the common name of the lab's operator certificate, the
// one Store and the tests' tools present.
const operatorName = "lab-operator"

// issueCertificates makes the lab's CA, each node's certificate (valid for
// its address) and the operator's client certificate, replacing those of
// an earlier run on the same lab directory.
func (c *Cluster) issueCertificates() error {
	dir := filepath.Join(c.Dir, "certs")
	force := certs.Options{Force: true}
	if _, err := certs.InitCA(dir, c.opts.Cluster, force); err != nil {
		return fmt.Errorf("lab certificates: %w", err)
	}
	for _, n := range c.Lab.Nodes() {
		if _, err := certs.IssueNode(dir, n.Name, []string{n.Host}, force); err != nil {
			return fmt.Errorf("lab certificates: %w", err)
		}
	}
	if _, err := certs.IssueClient(dir, operatorName, force); err != nil {
		return fmt.Errorf("lab certificates: %w", err)
	}
	c.certDir = dir
	return nil
}

// AgentRolePasswordFile holds the password of Options.AgentRole ("" without one).
func (c *Cluster) AgentRolePasswordFile() string {
	if c.opts.AgentRole == "" {
		return ""
	}
	return c.agentRolePasswordFile()
}

func (c *Cluster) agentRolePasswordFile() string {
	return filepath.Join(c.Dir, c.opts.AgentRole+".password")
}

// writeSecret writes a new random password to path, readable by its owner
// only; an existing one is kept, so that a configuration rewritten on the
// same lab still matches the role.
func writeSecret(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return fmt.Errorf("generate a password: %w", err)
	}
	if err := os.WriteFile(path, []byte(base64.RawURLEncoding.EncodeToString(b)+"\n"), 0o600); err != nil {
		return fmt.Errorf("write password file: %w", err)
	}
	return nil
}

// CreateAgentRole makes Options.AgentRole on the lab's primary, as the
// lab's superuser, with the statements `vigil setup-role --print` prints
// for the server's version and its password as a SCRAM verifier; then it
// waits until every running server lets the role log in (a standby has it
// once it has replayed it). Without Options.AgentRole it does nothing.
func (c *Cluster) CreateAgentRole(ctx context.Context) error {
	role := c.opts.AgentRole
	if role == "" {
		return nil
	}
	password, err := os.ReadFile(c.agentRolePasswordFile())
	if err != nil {
		return fmt.Errorf("create agent role %s: %w", role, err)
	}
	pw := strings.TrimSpace(string(password))
	status, err := c.Lab.Status(ctx)
	if err != nil {
		return fmt.Errorf("create agent role %s: %w", role, err)
	}
	var primary string
	var running []lab.Node
	for _, st := range status {
		if st.Role == lab.RolePrimary && primary == "" {
			primary = st.Name
		}
		if st.Running {
			n, err := c.Lab.Node(st.Name)
			if err != nil {
				return err
			}
			running = append(running, n)
		}
	}
	if primary == "" {
		return fmt.Errorf("create agent role %s: no primary in the lab", role)
	}
	superUser, superPW, err := c.Lab.Superuser()
	if err != nil {
		return err
	}
	n, err := c.Lab.Node(primary)
	if err != nil {
		return err
	}
	conn, err := c.connect(ctx, n, superUser, superPW)
	if err != nil {
		return fmt.Errorf("create agent role %s: %w", role, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var version int
	if err := conn.QueryRow(ctx, "select current_setting('server_version_num')::int").Scan(&version); err != nil {
		return fmt.Errorf("create agent role %s: server version of %s: %w", role, primary, err)
	}
	grants, err := database.RoleSQL(version, role)
	if err != nil {
		return fmt.Errorf("create agent role on %s: %w", primary, err)
	}
	for _, g := range grants {
		if _, err := conn.Exec(ctx, g.SQL); err != nil {
			return fmt.Errorf("create agent role on %s: %s: %w", primary, g.SQL, err)
		}
	}
	setPassword, err := database.RolePasswordSQL(role, pw)
	if err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, setPassword); err != nil {
		return fmt.Errorf("create agent role on %s: set the password of %s: %w", primary, role, err)
	}
	for _, n := range running {
		if err := c.waitLogin(ctx, n, role, pw); err != nil {
			return fmt.Errorf("create agent role %s: %w", role, err)
		}
	}
	c.mu.Lock()
	c.roleReady = true
	c.mu.Unlock()
	return nil
}

// waitLogin waits until role can open a session on n over TCP, as its agent will.
func (c *Cluster) waitLogin(ctx context.Context, n lab.Node, role, password string) error {
	for {
		conn, err := c.connect(ctx, n, role, password)
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("log in to %s as %s: %w (last error: %v)", n.Name, role, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Cluster) connect(ctx context.Context, n lab.Node, user, password string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=%s dbname=%s connect_timeout=5", n.Host, n.Port, user, c.Lab.Flavor().DefaultDatabase))
	if err != nil {
		return nil, err
	}
	cfg.Password = password
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s as %s: %w", n.Name, user, err)
	}
	return conn, nil
}

// CertDir is the directory of the lab's CA and certificates (package
// certs' layout), "" when the lab's etcd runs without TLS.
func (c *Cluster) CertDir() string { return c.certDir }

// OperatorTLS returns the lab's CA certificate and the operator's client
// certificate and key, as `vigil ctl --cacert --cert --key` takes them;
// three empty strings when the lab's etcd runs without TLS.
func (c *Cluster) OperatorTLS() (ca, cert, key string) {
	if c.certDir == "" {
		return "", "", ""
	}
	ca, _ = certs.Paths(c.certDir, "ca")
	cert, key = certs.Paths(c.certDir, operatorName)
	return ca, cert, key
}

// ClientURLs are the etcd members' client URLs, sorted.
func (c *Cluster) ClientURLs() []string {
	eps := append([]string(nil), c.opts.Endpoints...)
	for _, u := range c.clients {
		eps = append(eps, u)
	}
	sort.Strings(eps)
	return eps
}

func freeURL() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return "http://" + ln.Addr().String(), nil
}

// APIToken is the bearer token of the agents' mutating API endpoints.
const APIToken = "lab-api-token-0123456789"

// APIURL is node's API base URL ("" without Options.API).
func (c *Cluster) APIURL(node string) string {
	if c.apis[node] == "" {
		return ""
	}
	if c.opts.APITLS {
		return "https://" + c.apis[node]
	}
	return "http://" + c.apis[node]
}

// APIClientTLS is what a client of the agents' APIs over TLS needs: the
// lab's CA, and with operator the operator's client certificate, which
// authorises the mutating endpoints as the token does. Nil without
// Options.APITLS.
func (c *Cluster) APIClientTLS(operator bool) (*tls.Config, error) {
	if !c.opts.APITLS {
		return nil, nil
	}
	ca, cert, key := c.OperatorTLS()
	if !operator {
		cert, key = "", ""
	}
	cfg, err := certs.ClientTLS(ca, cert, key, "")
	if err != nil {
		return nil, fmt.Errorf("lab API client: %w", err)
	}
	return cfg, nil
}

// APIAddress is node's API host:port ("" without Options.API).
func (c *Cluster) APIAddress(node string) string { return c.apis[node] }

// ConfigPath is node's configuration file.
func (c *Cluster) ConfigPath(node string) string { return c.configs[node] }

// VIP returns the service address ("" without one).
func (c *Cluster) VIP() string {
	if c.opts.VIP == 0 {
		return ""
	}
	a, err := c.Lab.AddressIn(c.opts.VIP)
	if err != nil {
		return ""
	}
	return a.String()
}

// VIPHolder names the live nodes whose eth0 carries the VIP, "a,b" if
// several, "" for none (or without a VIP): lab.Lab.Holders.
func (c *Cluster) VIPHolder() string {
	vip := c.VIP()
	if vip == "" {
		return ""
	}
	return c.Lab.Holders(vip)
}

func (c *Cluster) writeConfig(n lab.Node) (string, error) {
	l := c.Lab
	superUser, _, err := l.Superuser()
	if err != nil {
		return "", err
	}
	priority := 100
	if p, ok := c.opts.Priorities[n.Name]; ok {
		priority = p
	}
	syncMode := c.opts.SyncMode
	if syncMode == "" {
		syncMode = "off"
	}
	db := map[string]any{
		"flavor": string(l.Flavor().Name), "bin_dir": l.BinDir(), "data_dir": n.DataDir, "port": n.Port,
		"connect_host": n.Host,
		"superuser":    map[string]any{"user": superUser, "database": l.Flavor().DefaultDatabase, "password_file": l.SuperuserPasswordFile()},
		"replication":  map[string]any{"user": lab.ReplicationUser, "password_file": l.ReplicationPasswordFile()},
	}
	if role := c.opts.AgentRole; role != "" {
		// database.superuser is the role the agent runs its own SQL as,
		// superuser or not.
		db["superuser"] = map[string]any{"user": role, "database": l.Flavor().DefaultDatabase, "password_file": c.agentRolePasswordFile()}
	}
	if os.Geteuid() == 0 {
		db["os_user"] = lab.DefaultOSUser
	}
	dcsCfg := map[string]any{}
	if len(c.opts.Endpoints) > 0 {
		dcsCfg["endpoints"] = c.opts.Endpoints
	} else {
		embedded := map[string]any{
			"enabled": true, "peer_url": c.peers[n.Name], "client_url": c.clients[n.Name],
			"data_dir": filepath.Join(c.Dir, "etcd-"+n.Name), "initial_cluster": c.peers,
			"tick_ms": 50, "election_ms": 500,
		}
		if c.certDir != "" {
			ca, _ := certs.Paths(c.certDir, "ca")
			cert, key := certs.Paths(c.certDir, n.Name)
			embedded["tls"] = map[string]any{"ca_file": ca, "cert_file": cert, "key_file": key}
		}
		dcsCfg["embedded"] = embedded
	}
	timing := map[string]any{"promote_timeout": "60s", "readiness_timeout": "120s"}
	if c.opts.LeaseTTL > 0 {
		timing["lease_ttl"] = c.opts.LeaseTTL.String()
		timing["loop_interval"] = c.opts.LoopInterval.String()
		timing["dcs_timeout"] = min(time.Second, c.opts.LeaseTTL/2-c.opts.LoopInterval-time.Millisecond).String()
		timing["db_timeout"] = "2s"
	}
	cfg := map[string]any{
		"cluster":     c.opts.Cluster,
		"node":        map[string]any{"name": n.Name, "host": n.Host, "priority": priority},
		"database":    db,
		"dcs":         dcsCfg,
		"trusted_ips": []string{c.trusted},
		"timing":      timing,
		"failover":    map[string]any{"synchronous_mode": syncMode, "maximum_lag_on_failover": c.opts.MaxLag},
	}
	if c.opts.AgentRole != "" {
		cfg["rejoin"] = map[string]any{"method": "basebackup"}
	}
	if l.Empty() {
		cfg["bootstrap"] = c.bootstrapSection(n)
	}
	if v := c.VIP(); v != "" {
		cfg["vip"] = map[string]any{"address": v + "/24", "interface": "eth0", "gratuitous_arp_count": 3}
	}
	if addr := c.apis[n.Name]; addr != "" {
		tokenFile := filepath.Join(c.Dir, "api.token")
		if err := os.WriteFile(tokenFile, []byte(APIToken+"\n"), 0o600); err != nil {
			return "", err
		}
		apiCfg := map[string]any{"listen": addr, "token_file": tokenFile}
		if c.opts.APITLS {
			ca, _ := certs.Paths(c.certDir, "ca")
			cert, key := certs.Paths(c.certDir, n.Name)
			apiCfg["cert_file"], apiCfg["key_file"], apiCfg["client_ca_file"] = cert, key, ca
		}
		cfg["api"] = apiCfg
	}
	if c.opts.Edit != nil {
		c.opts.Edit(n.Name, cfg)
	}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return "", err
	}
	path := filepath.Join(c.Dir, n.Name+".yaml")
	return path, os.WriteFile(path, data, 0o600)
}

// bootstrapSection is how the agents of an empty lab build its nodes: the
// lab's own server settings and access rules, and initdb as the lab runs
// it (no locale, no fsync: a lab does not outlive a crash of the machine).
func (c *Cluster) bootstrapSection(n lab.Node) map[string]any {
	params := map[string]string{}
	for _, s := range c.Lab.NodeSettings(n) {
		params[s.Name] = s.Value
	}
	network := "127.0.0.1/32"
	if sub := c.Lab.Subnet(); sub != "" {
		network = sub
	}
	return map[string]any{
		"method":          "initdb",
		"initdb":          map[string]any{"args": []string{"--no-locale", "--no-sync"}},
		"parameters":      params,
		"member_networks": []string{network},
	}
}

// StartAgent starts node's agent as its own process.
func (c *Cluster) StartAgent(name string) error {
	n, err := c.Lab.Node(name)
	if err != nil {
		return err
	}
	c.mu.Lock()
	ready := c.roleReady
	c.mu.Unlock()
	if !ready {
		return fmt.Errorf("start agent %s: its role %s does not exist yet: call CreateAgentRole first", name, c.opts.AgentRole)
	}
	args := []string{"agent", "--config", c.configs[name], "--log-format", "json", "--log-level", "debug",
		"--step-log", filepath.Join(c.Dir, name+".steps.jsonl")}
	if c.opts.Legacy {
		args = append(args, "--legacy-order")
	}
	p, err := c.start(name, n.Netns, args, filepath.Join(c.Dir, name+".agent.log"))
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.procs[name] = p
	c.mu.Unlock()
	return nil
}

// StartWitness starts the witness etcd member.
func (c *Cluster) StartWitness() error {
	var initial []string
	for name, u := range c.peers {
		initial = append(initial, name+"="+u)
	}
	sort.Strings(initial)
	args := []string{"witness", "--cluster", c.opts.Cluster, "--name", "witness", "--data-dir", filepath.Join(c.Dir, "etcd-witness"),
		"--peer-url", c.peers["witness"], "--client-url", c.clients["witness"], "--initial-cluster", strings.Join(initial, ","),
		"--tick-ms", "50", "--election-ms", "500"}
	p, err := c.start("witness", "", args, filepath.Join(c.Dir, "witness.log"))
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.witness = p
	c.mu.Unlock()
	return nil
}

func (c *Cluster) start(name, netns string, args []string, logPath string) (*Proc, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	var cmd *exec.Cmd
	if netns != "" {
		cmd = exec.Command("nsenter", append([]string{"--net=/run/netns/" + netns, "--", c.opts.Binary}, args...)...)
	} else {
		cmd = exec.Command(c.opts.Binary, args...)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	// Recorded in the lab, so that `vigil lab down` stops it also after
	// this process has exited (vigil demo --keep). One that already
	// exited and was reaped needs no stopping.
	if err := c.Lab.TrackProcess(name, cmd.Process.Pid); err != nil && !errors.Is(err, fs.ErrNotExist) {
		p.kill()
		return nil, err
	}
	return p, nil
}

// kill sends SIGKILL to the process and every program it runs (its
// process group: initdb, pg_basebackup), as a crash of the host would end
// them. Servers started by pg_ctl run in a session of their own and are
// left alone.
func (p *Proc) kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// KillAgent sends SIGKILL to node's agent (and its embedded etcd member)
// and to the programs it runs.
func (c *Cluster) KillAgent(name string) {
	c.mu.Lock()
	p := c.procs[name]
	delete(c.procs, name)
	c.mu.Unlock()
	if p != nil {
		p.kill()
	}
}

// StopAgent sends SIGTERM and waits for the agent to exit.
func (c *Cluster) StopAgent(name string, wait time.Duration) error {
	c.mu.Lock()
	p := c.procs[name]
	delete(c.procs, name)
	c.mu.Unlock()
	if p == nil {
		return nil
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(wait):
		p.kill()
		return fmt.Errorf("agent %s did not exit within %s of SIGTERM", name, wait)
	}
}

// WaitAgentExit waits until node's agent exits by itself (or ctx ends) and
// returns its exit status.
func (c *Cluster) WaitAgentExit(ctx context.Context, name string) (int, error) {
	c.mu.Lock()
	p := c.procs[name]
	c.mu.Unlock()
	if p == nil {
		return 0, fmt.Errorf("agent %s was not started by this cluster", name)
	}
	select {
	case <-p.done:
		c.mu.Lock()
		delete(c.procs, name)
		c.mu.Unlock()
		return p.cmd.ProcessState.ExitCode(), nil
	case <-ctx.Done():
		return 0, fmt.Errorf("agent %s still runs: %w", name, ctx.Err())
	}
}

// KillWitness sends SIGKILL to the witness.
func (c *Cluster) KillWitness() {
	c.mu.Lock()
	p := c.witness
	c.witness = nil
	c.mu.Unlock()
	if p != nil {
		p.kill()
	}
}

// SignalAgent sends sig to node's agent.
func (c *Cluster) SignalAgent(name string, sig syscall.Signal) {
	c.mu.Lock()
	p := c.procs[name]
	c.mu.Unlock()
	if p != nil {
		p.cmd.Process.Signal(sig)
	}
}

// CrashNode kills node's agent and postmaster together, as a node crash.
// In a netns lab the node's link goes down first: a crashed host no longer
// answers on the network (its kernel would otherwise keep answering ARP
// for a VIP that nobody removed).
func (c *Cluster) CrashNode(ctx context.Context, name string) error {
	n, err := c.Lab.Node(name)
	if err != nil {
		return err
	}
	if n.Link != "" {
		if out, err := exec.CommandContext(ctx, "ip", "link", "set", n.Link, "down").CombinedOutput(); err != nil {
			return fmt.Errorf("crash %s: link down: %v: %s", name, err, out)
		}
	}
	c.mu.Lock()
	p := c.procs[name]
	c.mu.Unlock()
	if p != nil {
		p.cmd.Process.Kill()
	}
	kerr := c.Lab.Kill(ctx, n)
	c.KillAgent(name)
	return kerr
}

// StopAll kills every agent and the witness started by this process; Down
// of the lab kills those started by any process.
func (c *Cluster) StopAll() {
	c.mu.Lock()
	var procs []*Proc
	for _, p := range c.procs {
		procs = append(procs, p)
	}
	if c.witness != nil {
		procs = append(procs, c.witness)
	}
	c.procs = map[string]*Proc{}
	c.witness = nil
	c.mu.Unlock()
	for _, p := range procs {
		p.kill()
	}
}

// Store opens a DCS client on every member, as an operator's tool would:
// with the operator's certificate when the lab's etcd requires one.
func (c *Cluster) Store() (*dcs.Store, error) {
	var tlsCfg *tls.Config
	if ca, cert, key := c.OperatorTLS(); ca != "" {
		var err error
		if tlsCfg, err = certs.ClientTLS(ca, cert, key, ""); err != nil {
			return nil, fmt.Errorf("lab DCS client: %w", err)
		}
	}
	return dcs.Open(dcs.Options{Endpoints: c.ClientURLs(), TLS: tlsCfg, Cluster: c.opts.Cluster, LeaseTTL: max(c.opts.LeaseTTL, time.Second), DialTimeout: time.Second})
}

// Logs returns the last n lines of every agent and witness log.
func (c *Cluster) Logs(n int) string {
	entries, _ := os.ReadDir(c.Dir)
	var b strings.Builder
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".log") {
			continue
		}
		data, _ := os.ReadFile(filepath.Join(c.Dir, e.Name()))
		lines := strings.Split(string(data), "\n")
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		fmt.Fprintf(&b, "==== %s (last %d lines)\n%s\n", e.Name(), len(lines), strings.Join(lines, "\n"))
	}
	return b.String()
}

// WaitWritablePrimary waits until the DCS names a writable primary that is
// the leader and not one of exclude, and returns its name.
func WaitWritablePrimary(ctx context.Context, s *dcs.Store, writable func(node string) bool, exclude ...string) (string, error) {
	var last dcs.View
	var lastErr error
	for {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		v, err := s.Snapshot(sctx)
		cancel()
		last, lastErr = v, err
		if err == nil && v.Primary != nil && v.Leader == v.Primary.Node && !contains(exclude, v.Primary.Node) && writable(v.Primary.Node) {
			return v.Primary.Node, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no writable primary (excluding %v): last view leader=%q primary=%+v err=%v: %w", exclude, last.Leader, last.Primary, lastErr, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
