package dcsbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/vigil-ha/vigil/internal/proc"
)

// etcdCluster is a 3-member (or more) etcd, each member a `vigil witness`
// process on loopback: the agents share it as clusters share a real etcd,
// and its CPU is the members' own, apart from the agents'.
type etcdCluster struct {
	members []*etcdMember
}

type etcdMember struct {
	name      string
	clientURL string
	cmd       *exec.Cmd
	log       *os.File
	exited    chan struct{}
}

// startEtcd starts n members of one etcd cluster under dir and waits until
// every one serves. A member that exits at once most likely lost one of
// its ports to another program between the choice and the bind: the
// cluster is started again on other ports, twice at most.
func startEtcd(ctx context.Context, binary, dir string, n int) (*etcdCluster, error) {
	for attempt := 1; ; attempt++ {
		e, err := startEtcdOnce(ctx, binary, dir, n)
		if err == nil || attempt == 3 || !errors.Is(err, errMemberExited) {
			return e, err
		}
		for i := range n {
			os.RemoveAll(filepath.Join(dir, fmt.Sprintf("etcd-e%d", i+1)))
		}
	}
}

// errMemberExited: an etcd member ended while the cluster formed.
var errMemberExited = errors.New("etcd member exited while starting")

func startEtcdOnce(ctx context.Context, binary, dir string, n int) (*etcdCluster, error) {
	ports, err := freeLoopbackPorts(2 * n)
	if err != nil {
		return nil, fmt.Errorf("start etcd: %w", err)
	}
	var initial []string
	for i := range n {
		initial = append(initial, fmt.Sprintf("e%d=http://127.0.0.1:%d", i+1, ports[2*i+1]))
	}
	e := &etcdCluster{}
	for i := range n {
		name := fmt.Sprintf("e%d", i+1)
		m, err := startMember(binary, dir, name, ports[2*i], ports[2*i+1], strings.Join(initial, ","))
		if err != nil {
			e.stop()
			return nil, err
		}
		e.members = append(e.members, m)
	}
	if err := e.waitReady(ctx); err != nil {
		e.stop()
		return nil, err
	}
	return e, nil
}

func startMember(binary, dir, name string, clientPort, peerPort int, initial string) (*etcdMember, error) {
	logFile, err := os.OpenFile(filepath.Join(dir, "etcd-"+name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start etcd member %s: %w", name, err)
	}
	m := &etcdMember{name: name, clientURL: fmt.Sprintf("http://127.0.0.1:%d", clientPort), log: logFile, exited: make(chan struct{})}
	m.cmd = exec.Command(binary, "witness", "--cluster", "dcsbench", "--name", name,
		"--data-dir", filepath.Join(dir, "etcd-"+name),
		"--peer-url", fmt.Sprintf("http://127.0.0.1:%d", peerPort), "--client-url", m.clientURL,
		"--initial-cluster", initial)
	m.cmd.Stdout, m.cmd.Stderr = logFile, logFile
	// Its own process group, and gone with the benchmark if it dies.
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := m.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start etcd member %s: %w", name, err)
	}
	go func() {
		_ = m.cmd.Wait()
		close(m.exited)
	}()
	return m, nil
}

// freeLoopbackPorts asks the kernel for n free ports on 127.0.0.1. They
// are free only until someone else takes them; a member that cannot bind
// fails its start, and the benchmark says so.
func freeLoopbackPorts(n int) ([]int, error) {
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free loopback port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func (e *etcdCluster) endpoints() []string {
	var out []string
	for _, m := range e.members {
		out = append(out, m.clientURL)
	}
	return out
}

// waitReady waits until every member answers a status request.
func (e *etcdCluster) waitReady(ctx context.Context) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: e.endpoints(), DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("etcd client: %w", err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for _, m := range e.members {
		for {
			select {
			case <-m.exited:
				return fmt.Errorf("%w: %s (see etcd-%s.log)", errMemberExited, m.name, m.name)
			default:
			}
			sctx, scancel := context.WithTimeout(ctx, time.Second)
			_, err := cli.Status(sctx, m.clientURL)
			scancel()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("etcd member %s not ready: %w", m.name, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// stop ends every member: SIGTERM, then SIGKILL after a grace period.
func (e *etcdCluster) stop() {
	for _, m := range e.members {
		_ = m.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, m := range e.members {
		select {
		case <-m.exited:
		case <-time.After(10 * time.Second):
			_ = m.cmd.Process.Kill()
			<-m.exited
		}
		m.log.Close()
	}
}

// etcdSample is the members' counters at one moment, summed over members,
// and the agents' CPU time at the same moment.
type etcdSample struct {
	at time.Time
	// requests by gRPC method: unary calls handled plus lease
	// keep-alives answered.
	requests map[string]float64
	// clientRecv and clientSent are the bytes of client gRPC traffic,
	// peerSent the bytes the members sent each other (raft).
	clientRecv, clientSent, peerSent float64
	// dbSize and dbInUse are the largest member's backend file and the
	// part of it in use; revision is etcd's store revision (one per
	// write), quota the backend's space quota.
	dbSize, dbInUse, revision, quota float64
	// fsyncs and fsyncSeconds count the members' WAL fsyncs and their
	// time: the disk cost of the writes.
	fsyncs, fsyncSeconds float64
	// cpuSeconds is the members' processes' CPU time.
	cpuSeconds float64
	// agentsCPUSeconds is this process's: the agents, their etcd clients
	// and the database model.
	agentsCPUSeconds float64
}

// sample reads every member's /metrics and its process's CPU time.
func (e *etcdCluster) sample(ctx context.Context) (etcdSample, error) {
	s := etcdSample{at: time.Now(), requests: map[string]float64{}}
	for _, m := range e.members {
		families, err := scrape(ctx, m.clientURL+"/metrics")
		if err != nil {
			return s, fmt.Errorf("metrics of etcd member %s: %w", m.name, err)
		}
		for _, metric := range families["grpc_server_handled_total"].GetMetric() {
			if label(metric, "grpc_type") == "unary" {
				s.requests[label(metric, "grpc_method")] += metric.GetCounter().GetValue()
			}
		}
		// A lease keep-alive is a message on a stream, answered by one
		// (the received count also counts each stream's end). Watches are
		// left out: only this benchmark's observer watches.
		for _, metric := range families["grpc_server_msg_sent_total"].GetMetric() {
			if label(metric, "grpc_method") == "LeaseKeepAlive" {
				s.requests["LeaseKeepAlive"] += metric.GetCounter().GetValue()
			}
		}
		s.clientRecv += sum(families["etcd_network_client_grpc_received_bytes_total"])
		s.clientSent += sum(families["etcd_network_client_grpc_sent_bytes_total"])
		s.peerSent += sum(families["etcd_network_peer_sent_bytes_total"])
		for _, metric := range families["etcd_disk_wal_fsync_duration_seconds"].GetMetric() {
			s.fsyncs += float64(metric.GetHistogram().GetSampleCount())
			s.fsyncSeconds += metric.GetHistogram().GetSampleSum()
		}
		s.dbSize = max(s.dbSize, sum(families["etcd_mvcc_db_total_size_in_bytes"]))
		s.dbInUse = max(s.dbInUse, sum(families["etcd_mvcc_db_total_size_in_use_in_bytes"]))
		s.revision = max(s.revision, sum(families["etcd_debugging_mvcc_current_revision"]))
		s.quota = max(s.quota, sum(families["etcd_server_quota_backend_bytes"]))
		st, err := proc.ReadStat(m.cmd.Process.Pid)
		if err != nil {
			return s, fmt.Errorf("CPU time of etcd member %s: %w", m.name, err)
		}
		s.cpuSeconds += float64(st.UserTicks+st.SystemTicks) / proc.ClockTicksPerSecond
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return s, fmt.Errorf("CPU time of the agents' process: %w", err)
	}
	s.agentsCPUSeconds = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	return s, nil
}

func scrape(ctx context.Context, url string) (map[string]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", url, err)
	}
	return families, nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// sum adds every series of a counter or gauge family.
func sum(f *dto.MetricFamily) float64 {
	var total float64
	for _, m := range f.GetMetric() {
		total += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return total
}

// errNoMetrics: etcd's metrics lack the gRPC counters this benchmark
// reads (a build without them would report zero load).
var errNoMetrics = errors.New("etcd exposes no grpc_server_handled_total: cannot count requests")
