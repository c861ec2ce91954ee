package config

import (
	"path/filepath"
	"time"
)

// Defaults returns the configuration a file starts from: every key the file
// leaves out keeps the value below. Keys without a safe value for every
// cluster (names, addresses, directories, how to reach etcd, trusted IPs)
// stay empty and are required by Validate. The defaults that depend on the
// flavor are in Database.applyFlavorDefaults.
func Defaults() Config {
	return Config{
		Node: Node{
			// Every node equally eligible: the candidate is then simply the
			// one with the most WAL, which is what loses the fewest commits.
			Priority: 100,
		},
		Database: NodeDatabase{Database: databaseDefaults()},
		DCS: DCS{
			// Keys live under /vigil/<cluster>/, so several clusters and
			// other etcd users can share one etcd without colliding.
			Prefix: "/vigil",
			// A member founds the cluster with its peers; one that joins a
			// running cluster says so, after `vigil ctl member add`.
			Embedded: Embedded{InitialClusterState: ClusterStateNew},
		},
		VIP: vipDefaults(),
		Timing: Timing{
			// A crashed primary is replaced about 3 s after its last lease
			// renewal (plus up to a second when the etcd leader died with
			// it): a 4 s median write outage in BENCHMARKS.md. A leader
			// that loses etcd keeps serving for at most lease_ttl/2 (1.5 s)
			// and then has lease_ttl/2 - loop_interval (1 s) to demote
			// before anyone else may promote, while an immediate shutdown
			// and removing the VIP take about 0.1 s. An etcd leader election
			// never causes a failover: it extends leases rather than
			// expiring them. Raise it (with loop_interval) where etcd's
			// disks or network are slow: a renewal that misses its window
			// costs a failover, never a second primary.
			LeaseTTL: 3 * time.Second,
			// Half a second between looks: failures are seen quickly, and
			// lease_ttl/2 - loop_interval leaves 1 s to demote.
			LoopInterval: 500 * time.Millisecond,
			// loop_interval + dcs_timeout stays under lease_ttl/2, so a hung
			// etcd request can never delay a demotion past the lease.
			DCSTimeout:   800 * time.Millisecond,
			StepTimeouts: nodeStepTimeouts(),
		},
		Failover: Failover{
			// Automatic failover is what Vigil is for, and it is guarded:
			// Validate requires trusted_ips whenever it is on.
			Automatic: true,
			// 1 MiB: a standby further behind than the last position the
			// leader published would lose a noticeable amount of committed
			// work, so it refuses to promote rather than lose it silently.
			MaximumLagOnFailover: 1 << 20,
			// Leaves commits exactly as the server's own settings make
			// them: turning synchronous replication on trades commit latency
			// for durability, which is the operator's decision.
			SynchronousMode: SyncOff,
			// Fail over at once rather than restart in place: a restarted
			// server spends an unknown time in crash recovery, while a
			// standby is ready now.
			PrimaryCrash: CrashFailover,
			// Used only with primary_crash: restart. Thirty seconds covers
			// crash recovery after an ordinary crash; after that the leader
			// gives up and a standby takes over.
			RestartTimeout: 30 * time.Second,
			FenceSSH:       sshDefaults(),
		},
		Rejoin: Rejoin{
			// pg_rewind when it can (it copies only what diverged), a base
			// backup when it cannot: the node always ends as a standby.
			Method: RejoinAuto,
		},
		Bootstrap: bootstrapDefaults(),
		Clone:     cloneDefaults(),
		API: API{
			// One WAL segment: a standby further behind than that serves
			// reads noticeably older than the primary's.
			ReplicaMaxLag: 16 << 20,
		},
		Callbacks: Callbacks{
			// Long enough for a script that updates DNS or a load balancer;
			// it runs in the background, so it never delays a failover.
			Timeout: 30 * time.Second,
		},
	}
}

// DefaultsFor is Defaults completed with the defaults of the named flavor,
// which must be one of flavor.Names().
func DefaultsFor(flavorName string) Config {
	c := Defaults()
	c.Database.Flavor = flavorName
	c.Database.applyFlavorDefaults(source{})
	return c
}

// applyDerivedDefaults fills the defaults that are other keys' values.
func (c *Config) applyDerivedDefaults() {
	if c.Database.ConnectHost == "" {
		// The server must listen on node.host for the other members anyway.
		c.Database.ConnectHost = c.Node.Host
	}
	if c.DCS.Embedded.DataDir == "" && c.Database.DataDir != "" && c.Node.Name != "" {
		// Beside the database's data directory, on storage already
		// provisioned for this node, and named after the node so that lab
		// nodes sharing one host do not share it.
		c.DCS.Embedded.DataDir = filepath.Join(filepath.Dir(c.Database.DataDir), "vigil-etcd-"+c.Node.Name)
	}
}

// nodeStepTimeouts are the agent's bounds on a promotion's steps.
func nodeStepTimeouts() StepTimeouts {
	return StepTimeouts{
		// A write probe or status query that has not answered in 2 s
		// means the server cannot serve; treating it as down is safe
		// because a standby is only promoted after the lease runs out.
		DBTimeout: 2 * time.Second,
		// pg_ctl promote waits 60 s by default too; a promotion that
		// takes longer is reported rather than waited for forever.
		PromoteTimeout: 60 * time.Second,
		// The new primary gets the VIP only after a write commits; five
		// minutes covers replaying a large backlog (the seed incident
		// needed 35 s under load) before the failover is declared failed.
		ReadinessTimeout: 300 * time.Second,
	}
}
