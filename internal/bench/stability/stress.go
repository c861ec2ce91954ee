package stability

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/vigil-ha/vigil/internal/chaos"
	"github.com/vigil-ha/vigil/internal/lab"
)

// Stress is what loads the cluster for a run.
type Stress struct {
	// CPULoad is the load of each stress-ng CPU worker, one per core, in
	// percent (100: saturated).
	CPULoad int
	// LossPercent of the packets in and out of each node's link are
	// dropped at random.
	LossPercent int
	// DelayMin and DelayMax bound the delay of each chunk of every TCP
	// connection between the lab's hosts, drawn uniformly.
	DelayMin, DelayMax time.Duration
}

func (s Stress) String() string {
	return fmt.Sprintf("stress-ng --cpu 0 --cpu-load %d and an fsync-per-write --hdd worker beside etcd's data; %d%% packet loss on every node's link; %s-%s delay on every TCP connection between hosts",
		s.CPULoad, s.LossPercent, s.DelayMin, s.DelayMax)
}

// stressors are the loads in place; remove undoes them.
type stressors struct {
	stressNG   *exec.Cmd
	stressDone chan struct{}
	// ruled are the namespaces with rules in chaos.NFTTable; proxies
	// the delaying proxies, by namespace.
	ruled   []string
	proxies map[string]*chaos.DelayProxy
}

// hddBytes bounds the file of the fsync writer: the load is the fsyncs,
// not the space.
const hddBytes = "64m"

// apply starts every stressor. diskDir must be on the filesystem that
// holds etcd's data directories; stressNGFor bounds stress-ng's own life
// in case this process dies without removing it. Whatever was started is
// in the returned stressors, also with an error.
func apply(ctx context.Context, s Stress, l *lab.Lab, client lab.Client, vip, diskDir string, stressNGFor time.Duration, log *slog.Logger) (*stressors, error) {
	st := &stressors{proxies: map[string]*chaos.DelayProxy{}}
	// One CPU worker per online core saturates every node: they share the
	// machine's cores. --hdd-opts fsync calls fsync(2) after every write,
	// on the disk where etcd fsyncs its WAL.
	cmd := exec.Command("stress-ng", "--cpu", "0", "--cpu-load", strconv.Itoa(s.CPULoad),
		"--hdd", "1", "--hdd-opts", "wr-seq,fsync", "--hdd-bytes", hddBytes, "--temp-path", diskDir,
		"--timeout", strconv.Itoa(int(stressNGFor.Seconds())+1)+"s", "--quiet")
	cmd.Dir = diskDir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return st, fmt.Errorf("start stress-ng: %w", err)
	}
	st.stressNG, st.stressDone = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(st.stressDone) }()
	// Down of the lab stops it too, whatever happens to this process.
	if err := l.TrackProcess("stress-ng", cmd.Process.Pid); err != nil {
		return st, err
	}

	var nodeHosts []string
	for _, n := range l.Nodes() {
		nodeHosts = append(nodeHosts, n.Host)
	}
	for _, n := range l.Nodes() {
		st.ruled = append(st.ruled, n.Netns)
		if err := chaos.DropPackets(ctx, n.Netns, s.LossPercent); err != nil {
			return st, err
		}
	}
	// Each connection goes through the proxy of the host that opens it:
	// every node's to the other nodes and the client, the client's to the
	// nodes and the VIP.
	delay := func() time.Duration { return s.DelayMin + rand.N(s.DelayMax-s.DelayMin+1) }
	sides := map[string][]string{client.Netns: append(slices.Clone(nodeHosts), vip)}
	for _, n := range l.Nodes() {
		peers := slices.DeleteFunc(slices.Clone(nodeHosts), func(h string) bool { return h == n.Host })
		sides[n.Netns] = append(peers, client.Host)
	}
	for ns, dsts := range sides {
		if !slices.Contains(st.ruled, ns) {
			st.ruled = append(st.ruled, ns)
		}
		p, err := chaos.DelayConnections(ctx, ns, dsts, delay, log)
		if p != nil {
			st.proxies[ns] = p
		}
		if err != nil {
			return st, err
		}
	}
	return st, nil
}

// stressNGPID is stress-ng's main process, also the id of its process
// group (its workers); 0 when it did not start.
func (st *stressors) stressNGPID() int {
	if st == nil || st.stressNG == nil {
		return 0
	}
	return st.stressNG.Process.Pid
}

// remove stops stress-ng and its workers, removes the rules and closes the
// proxies. A second call does nothing.
func (st *stressors) remove(ctx context.Context) error {
	if st == nil {
		return nil
	}
	var errs []error
	if st.stressNG != nil {
		errs = append(errs, stopGroup(st.stressNG.Process.Pid, st.stressDone, 10*time.Second))
		st.stressNG = nil
	}
	for _, ns := range st.ruled {
		errs = append(errs, chaos.RemoveRules(ctx, ns))
	}
	st.ruled = nil
	for ns, p := range st.proxies {
		p.Close()
		delete(st.proxies, ns)
	}
	return errors.Join(errs...)
}

// stopGroup sends SIGTERM to process group pgid, and SIGKILL after grace,
// until its leader has exited (done closed).
func stopGroup(pgid int, done <-chan struct{}, grace time.Duration) error {
	if err := syscall.Kill(-pgid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop stress-ng: %w", err)
	}
	select {
	case <-done:
	case <-time.After(grace):
		if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("kill stress-ng: %w", err)
		}
		<-done
	}
	// Workers that outlived their parent are in the group still.
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill stress-ng's workers: %w", err)
	}
	return nil
}

// sameFilesystem reports whether a and b are on one filesystem.
func sameFilesystem(a, b string) (bool, error) {
	var sa, sb syscall.Stat_t
	if err := syscall.Stat(a, &sa); err != nil {
		return false, fmt.Errorf("stat %s: %w", a, err)
	}
	if err := syscall.Stat(b, &sb); err != nil {
		return false, fmt.Errorf("stat %s: %w", b, err)
	}
	return sa.Dev == sb.Dev, nil
}
