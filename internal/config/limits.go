package config

import "fmt"

// Limits lists the faults this configuration does not survive, or survives
// at a cost, for want of an option: `vigil config check` prints them as
// notes. They are choices, not mistakes, so they neither fail the check nor
// count as warnings; the README's reliability section says the same.
func (c *Config) Limits() Problems {
	var ls Problems
	f := c.Failover
	if len(f.FenceCommand) == 0 && f.FenceSSH.User == "" {
		ls = append(ls, c.at("failover.fence_ssh",
			"no fence: if the primary's agent dies or freezes and its node is then cut off from the other members, its PostgreSQL keeps accepting writes from clients that still reach it while a standby is promoted; set failover.fence_ssh or failover.fence_command so that the old primary is stopped first"))
	}
	if !c.DCS.Failsafe {
		ls = append(ls, c.at("dcs.failsafe",
			"off: while etcd cannot be reached (an upgrade, quorum lost) the primary demotes itself after timing.lease_ttl/2 (%s) and no writes are possible until etcd returns; dcs.failsafe keeps the primary while every other member confirms it will not promote", c.Timing.LeaseTTL/2))
	}
	if f.SynchronousMode == SyncOff {
		ls = append(ls, c.at("failover.synchronous_mode",
			"off: a failover may lose the last acknowledged commits, up to failover.maximum_lag_on_failover (%s)", byteSize(f.MaximumLagOnFailover)))
	}
	return ls
}

func byteSize(n uint64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
