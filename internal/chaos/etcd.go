package chaos

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/vigil-ha/vigil/internal/certs"
	"github.com/vigil-ha/vigil/internal/lab"
	"github.com/vigil-ha/vigil/internal/proc"
)

// externalMembers is how many members the external etcd of --dcs external
// has, each on a host of its own.
const externalMembers = 3

// etcdMember is one member of the external etcd: a `vigil witness` (an
// etcd member without a database) in a namespace of its own on the lab's
// bridge, with mutual TLS.
type etcdMember struct {
	name string
	host lab.Client
	args []string
	log  string

	// proc and done are the running process; nil when it is not running.
	// Only the campaign's goroutine starts and kills members.
	proc *exec.Cmd
	done chan struct{}
}

// externalEtcd is the separate etcd of --dcs external and the files the
// agents reach it with.
type externalEtcd struct {
	members []*etcdMember
	// ca, cert and key are the agents' client side of the mutual TLS.
	ca, cert, key string
}

// endpoints are the members' client URLs.
func (e *externalEtcd) endpoints() []string {
	var out []string
	for _, m := range e.members {
		out = append(out, "https://"+m.host.Host+":2379")
	}
	return out
}

// hosts are the members' addresses.
func (e *externalEtcd) hosts() []string {
	var out []string
	for _, m := range e.members {
		out = append(out, m.host.Host)
	}
	return out
}

// member finds a member by name.
func (e *externalEtcd) member(name string) (*etcdMember, error) {
	for _, m := range e.members {
		if m.name == name {
			return m, nil
		}
	}
	return nil, fmt.Errorf("no etcd member %q", name)
}

// dcsSection is the agents' dcs configuration.
func (e *externalEtcd) dcsSection() map[string]any {
	return map[string]any{
		"endpoints": e.endpoints(),
		"tls":       map[string]any{"ca_file": e.ca, "cert_file": e.cert, "key_file": e.key},
	}
}

// buildExternalEtcd adds externalMembers hosts to the lab's bridge, makes
// a CA with a certificate per member and a client certificate for the
// agents, and starts the members; it returns once the etcd has a leader
// (or ctx ends). dir receives the certificates, the members' data and
// logs (the agents' log directory, so that the logs are kept and searched
// for panics with the agents').
func (r *campaign) buildExternalEtcd(ctx context.Context, dir string) (*externalEtcd, error) {
	pki := filepath.Join(dir, "etcd-pki")
	if _, err := certs.InitCA(pki, "chaos-etcd", certs.Options{Force: true}); err != nil {
		return nil, fmt.Errorf("external etcd: %w", err)
	}
	e := &externalEtcd{}
	e.ca, _ = certs.Paths(pki, "ca")
	if _, err := certs.IssueClient(pki, "agent", certs.Options{Force: true}); err != nil {
		return nil, fmt.Errorf("external etcd: %w", err)
	}
	e.cert, e.key = certs.Paths(pki, "agent")
	var initial []string
	for i := range externalMembers {
		name := fmt.Sprintf("etcd%d", i+1)
		h, err := r.l.AddClient(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("external etcd: %w", err)
		}
		if _, err := certs.IssueNode(pki, name, []string{h.Host}, certs.Options{Force: true}); err != nil {
			return nil, fmt.Errorf("external etcd: %w", err)
		}
		e.members = append(e.members, &etcdMember{name: name, host: h, log: filepath.Join(dir, name+".log")})
		initial = append(initial, fmt.Sprintf("%s=https://%s:2380", name, h.Host))
	}
	for _, m := range e.members {
		cert, key := certs.Paths(pki, m.name)
		m.args = []string{"witness", "--cluster", "chaos", "--name", m.name, "--data-dir", filepath.Join(dir, "etcd-"+m.name),
			"--peer-url", "https://" + m.host.Host + ":2380", "--client-url", "https://" + m.host.Host + ":2379",
			"--initial-cluster", strings.Join(initial, ","), "--cacert", e.ca, "--cert", cert, "--key", key,
			"--tick-ms", "50", "--election-ms", "500"}
		if err := r.startMember(m); err != nil {
			return e, err
		}
	}
	if err := r.waitEtcdHealthy(ctx, e, time.Minute); err != nil {
		return e, err
	}
	return e, nil
}

// waitEtcdHealthy waits until every member answers with the leader it
// follows.
func (r *campaign) waitEtcdHealthy(ctx context.Context, e *externalEtcd, within time.Duration) error {
	tlsCfg, err := certs.ClientTLS(e.ca, e.cert, e.key, "")
	if err != nil {
		return fmt.Errorf("external etcd: %w", err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: e.endpoints(), TLS: tlsCfg, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("external etcd: %w", err)
	}
	defer cli.Close()
	hctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for {
		var bad []string
		for _, ep := range e.endpoints() {
			sctx, scancel := context.WithTimeout(hctx, time.Second)
			st, err := cli.Status(sctx, ep)
			scancel()
			switch {
			case err != nil:
				bad = append(bad, fmt.Sprintf("%s: %v", ep, err))
			case st.Leader == 0:
				bad = append(bad, ep+": no leader")
			}
		}
		if len(bad) == 0 {
			return nil
		}
		select {
		case <-hctx.Done():
			return fmt.Errorf("external etcd not healthy within %s: %s", within, strings.Join(bad, "; "))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// startMember starts m's process in its namespace and records it in the
// lab, so that the lab's Down stops it whatever happens to the campaign.
func (r *campaign) startMember(m *etcdMember) error {
	if m.proc != nil {
		return nil
	}
	logFile, err := os.OpenFile(m.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start etcd member %s: %w", m.name, err)
	}
	// nsenter with only --net execs the binary: the pid is the member's.
	cmd := exec.Command("nsenter", append([]string{"--net=" + proc.NetnsPath(m.host.Netns), "--", r.o.Binary}, m.args...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start etcd member %s: %w", m.name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(done)
	}()
	m.proc, m.done = cmd, done
	if err := r.l.TrackProcess(m.name, cmd.Process.Pid); err != nil && !errors.Is(err, fs.ErrNotExist) {
		r.killMember(m)
		return fmt.Errorf("start etcd member %s: %w", m.name, err)
	}
	return nil
}

// killMember kills m with SIGKILL and waits for it to be gone.
func (r *campaign) killMember(m *etcdMember) {
	if m.proc == nil {
		return
	}
	_ = m.proc.Process.Kill()
	<-m.done
	m.proc, m.done = nil, nil
}

// stopEtcd kills every member of the external etcd.
func (r *campaign) stopEtcd() {
	if r.etcd == nil {
		return
	}
	for _, m := range r.etcd.members {
		r.killMember(m)
	}
}

// pids is m's live process (resumed or stopped), if any.
func (m *etcdMember) pids() []int {
	if m.proc == nil {
		return nil
	}
	select {
	case <-m.done:
		return nil
	default:
		return []int{m.proc.Process.Pid}
	}
}
