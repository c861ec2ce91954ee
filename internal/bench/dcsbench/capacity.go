package dcsbench

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// What one agent costs at the default timing (loop 500 ms, lease TTL 3 s)
// with modelled databases, and what clusters cost the etcd members: fitted
// to this benchmark's runs of 20 to 90 clusters on the 2-core CI machine
// (BENCHMARKS.md, "Many clusters on one etcd") and rounded up. They size a
// run before it starts; the report measures the real figures.
const (
	// agentCPUCores is one agent's share of a core: its loop, its etcd
	// client, the model.
	agentCPUCores = 0.0025
	// etcdBaseCPUCores is what three idle members on one machine cost
	// (raft heartbeats, housekeeping); etcdCPUCoresPerCluster what each
	// cluster's requests (about 24 a second, 8 of them writes) add, the
	// members together. Writes batch into fewer fsyncs as the load grows:
	// per cluster, etcd costs less in a large fleet than in a small one.
	etcdBaseCPUCores       = 0.4
	etcdCPUCoresPerCluster = 0.01
	// agentMemoryBytes is one agent's heap with its etcd client.
	agentMemoryBytes = 1 << 20
	// etcdMemoryBytesPerCluster is what a cluster's clients, leases and
	// keys cost each etcd member.
	etcdMemoryBytesPerCluster = 256 << 10
	// goroutinesPerAgent: the loop, the lease keeper, the etcd client's
	// connections and streams.
	goroutinesPerAgent = 20
	// cpuHeadroom is the share of the machine a run may plan to use:
	// past it the machine is saturated, the agents' loops are late, and
	// the failover times measure the scheduler.
	cpuHeadroom = 1.0
	// fdReserve is what the process needs besides its etcd connections.
	fdReserve = 64
)

// Estimate is what a run of the given size needs, and what the machine has.
type Estimate struct {
	Clusters      int     `json:"clusters"`
	Agents        int     `json:"agents"`
	Goroutines    int     `json:"goroutines"`
	CPUCores      float64 `json:"cpu_cores"`
	MemoryBytes   uint64  `json:"memory_bytes"`
	FDsAgents     int     `json:"fds_agents_process"`
	FDsEtcdMember int     `json:"fds_per_etcd_member"`

	Cores        int    `json:"machine_cores"`
	MemAvailable uint64 `json:"machine_mem_available_bytes"`
	FDLimit      uint64 `json:"machine_fd_limit"`
}

// EstimateFor sizes a run of clusters clusters of members agents against
// an etcd of etcdMembers members, on this machine.
func EstimateFor(clusters, members, etcdMembers int) Estimate {
	agents := clusters * members
	e := Estimate{
		Clusters:    clusters,
		Agents:      agents,
		Goroutines:  agents * goroutinesPerAgent,
		CPUCores:    etcdBaseCPUCores + float64(agents)*agentCPUCores + float64(clusters)*etcdCPUCoresPerCluster,
		MemoryBytes: uint64(agents)*agentMemoryBytes + uint64(clusters*etcdMembers)*etcdMemoryBytesPerCluster,
		// One connection per etcd endpoint per agent, one per agent on
		// each member.
		FDsAgents:     agents*etcdMembers + fdReserve,
		FDsEtcdMember: agents + fdReserve,
		Cores:         runtime.NumCPU(),
	}
	e.MemAvailable, _ = memAvailable()
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil {
		// Go raises the soft limit to the hard one at start.
		e.FDLimit = lim.Max
	}
	return e
}

// Check says why the machine cannot hold the run, nil when it can.
func (e Estimate) Check() error {
	var why []string
	if budget := cpuHeadroom * float64(e.Cores); e.CPUCores > budget {
		why = append(why, fmt.Sprintf("about %.1f cores of CPU (agents and etcd) where this machine has %d", e.CPUCores, e.Cores))
	}
	if e.MemAvailable > 0 && e.MemoryBytes > e.MemAvailable/2 {
		why = append(why, fmt.Sprintf("about %d MiB of memory, more than half of the %d MiB available", e.MemoryBytes>>20, e.MemAvailable>>20))
	}
	if e.FDLimit > 0 && uint64(e.FDsAgents) > e.FDLimit {
		why = append(why, fmt.Sprintf("%d open files in the agents' process, over the limit of %d (ulimit -n)", e.FDsAgents, e.FDLimit))
	}
	if len(why) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %d agents need %s (about %d clusters of %d fit)", ErrTooLarge, e.Agents, strings.Join(why, "; "), e.MaxClusters(), e.Agents/max(e.Clusters, 1))
}

// MaxClusters is the largest fleet of this shape the machine's CPU holds.
func (e Estimate) MaxClusters() int {
	members := e.Agents / max(e.Clusters, 1)
	perCluster := float64(members)*agentCPUCores + etcdCPUCoresPerCluster
	return int((cpuHeadroom*float64(e.Cores) - etcdBaseCPUCores) / perCluster)
}

// ErrTooLarge: the machine cannot hold the run asked for.
var ErrTooLarge = errors.New("too many clusters for this machine")

func memAvailable() (uint64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemAvailable:" {
			kb, err := strconv.ParseUint(fields[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no MemAvailable in /proc/meminfo")
}

// loadAverage is the 1-minute load average (0 when unknown).
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(fields[0], 64)
	return v
}
