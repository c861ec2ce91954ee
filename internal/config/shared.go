package config

// isSharedField reports whether field is one of the settings every member
// must share, which may live in the DCS (`vigil ctl edit-config`) instead
// of each node's file.
func isSharedField(field string) bool {
	switch field {
	case "timing.lease_ttl", "timing.loop_interval", "timing.dcs_timeout",
		"failover.maximum_lag_on_failover", "failover.synchronous_mode", "failover.primary_crash",
		"failover.restart_timeout":
		return true
	}
	return false
}

// SharedProblems checks the settings every member must share (the timing
// and its lease arithmetic, the failover policy) with the same rules as a
// node's file, and nothing node-local: the cluster-wide copy in the DCS is
// checked with it before it is written.
func (c *Config) SharedProblems() Problems {
	var ps Problems
	for _, p := range append(c.timingProblems(), c.failoverProblems()...) {
		if isSharedField(p.Field) {
			ps = append(ps, p)
		}
	}
	return ps
}
