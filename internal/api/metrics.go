package api

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-ha/vigil/internal/decision"
)

// statusCollector turns the agent's status into metrics at scrape time, so
// that a scrape always shows the last loop and no goroutine copies it into
// gauges in between. The node and cluster labels come from the registerer
// it is registered with.
type statusCollector struct {
	src StatusSource

	role, writable, leader, lag, timeline, paused *prometheus.Desc
	failovers, lastFailover, lastFailoverStep     *prometheus.Desc
	probeLatency, lastLoop                        *prometheus.Desc
}

func newStatusCollector(src StatusSource) *statusCollector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("vigil_"+name, help, labels, nil)
	}
	return &statusCollector{
		src:      src,
		role:     desc("role", "1 for this node's current database role, 0 for the others.", "role"),
		writable: desc("writable", "1 when this node holds the leader key and its last write probe committed."),
		// Named "leader", not "node": node is already this agent's label.
		leader:           desc("leader", "1 for the leader-key holder as this agent sees it; leader=\"\" 0 when there is none.", "leader"),
		lag:              desc("lag_bytes", "Bytes this node's WAL is behind the leader's last published position."),
		timeline:         desc("timeline", "This node's timeline."),
		paused:           desc("paused", "1 when the cluster is paused (no automatic failover)."),
		failovers:        desc("failovers_total", "Failovers this agent ran since it started."),
		lastFailover:     desc("last_failover_duration_seconds", "Duration of the last failover this agent ran."),
		lastFailoverStep: desc("last_failover_step_seconds", "Time spent in each step of the last failover this agent ran.", "step"),
		probeLatency:     desc("write_probe_latency_seconds", "Latency of the last write probe."),
		lastLoop:         desc("last_loop_timestamp_seconds", "When the agent's last loop finished (Unix time); alert on time() minus this."),
	}
}

// Describe lets the registry check names and labels at registration.
func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.role, c.writable, c.leader, c.lag, c.timeline, c.paused,
		c.failovers, c.lastFailover, c.lastFailoverStep, c.probeLatency, c.lastLoop} {
		ch <- d
	}
}

// Collect reads the status once so that all metrics of a scrape agree.
func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Status()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- constMetric(d, prometheus.GaugeValue, v, labels...)
	}

	role := roleOf(st)
	for _, r := range []decision.Role{decision.RolePrimary, decision.RoleStandby, decision.RoleStopped, decision.RoleUnknown} {
		gauge(c.role, boolValue(r == role), string(r))
	}
	gauge(c.writable, boolValue(st.Writable && st.HoldsLeader))
	// A series with value 0 rather than none when there is no leader, so
	// that "no leader" is visible instead of an absent metric.
	gauge(c.leader, boolValue(st.Leader != ""), st.Leader)
	gauge(c.lag, float64(st.LagBytes))
	gauge(c.timeline, float64(st.Timeline))
	gauge(c.paused, boolValue(st.Paused))
	ch <- constMetric(c.failovers, prometheus.CounterValue, float64(st.Failovers))
	if !st.UpdatedAt.IsZero() {
		gauge(c.lastLoop, float64(st.UpdatedAt.UnixNano())/1e9)
	}
	if st.LastProbe != nil {
		gauge(c.probeLatency, st.LastProbe.Latency.Seconds())
	}
	if rec := st.LastFailover; rec != nil {
		if !rec.End.IsZero() {
			gauge(c.lastFailover, rec.End.Sub(rec.Start).Seconds())
		}
		// A step that ran twice (a retry) is summed: two samples with the
		// same labels would fail the whole scrape.
		var order []string
		secs := map[string]float64{}
		for _, s := range rec.Steps {
			if _, seen := secs[s.Name]; !seen {
				order = append(order, s.Name)
			}
			secs[s.Name] += s.Duration().Seconds()
		}
		for _, name := range order {
			gauge(c.lastFailoverStep, secs[name], name)
		}
	}
}

// constMetric reports a bad label set as an invalid metric, which fails the
// scrape with an error, instead of panicking in the agent.
func constMetric(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) prometheus.Metric {
	m, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		return prometheus.NewInvalidMetric(d, err)
	}
	return m
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
