package api

import (
	"cmp"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
)

// statusCollector turns the agent's status into metrics at scrape time, so
// that a scrape always shows the last loop and no goroutine copies it into
// gauges in between. The node and cluster labels come from the registerer
// it is registered with.
type statusCollector struct {
	src StatusSource
	// syncMode and maxLag are this node's failover settings: exported so
	// that alerts compare with the values the agent acts on, not with a
	// copy in the alert rules that drifts from the configuration.
	syncMode decision.SyncMode
	maxLag   uint64

	role, writable, leader, lag, timeline, paused *prometheus.Desc
	failovers, lastFailover, lastFailoverStep     *prometheus.Desc
	probeLatency, lastLoop                        *prometheus.Desc
	streaming, etcdReachable, syncModeDesc        *prometheus.Desc
	maxLagDesc                                    *prometheus.Desc
}

func newStatusCollector(src StatusSource, syncMode decision.SyncMode, maxLag uint64) *statusCollector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("vigil_"+name, help, labels, nil)
	}
	return &statusCollector{
		src:      src,
		syncMode: cmp.Or(syncMode, decision.SyncOff),
		maxLag:   maxLag,
		role:     desc("role", "1 for this node's current database role, 0 for the others.", "role"),
		writable: desc("writable", "1 when this node holds the leader key and its last write probe committed."),
		// Named "leader", not "node": node is already this agent's label.
		leader:           desc("leader", "1 for the leader-key holder as this agent sees it; leader=\"\" 0 when there is none.", "leader"),
		lag:              desc("lag_bytes", "Bytes this node's WAL is behind the leader's last published position."),
		timeline:         desc("timeline", "This node's timeline."),
		paused:           desc("paused", "1 when the cluster is paused (no automatic failover)."),
		failovers:        desc("failovers_total", "Failover, promotion and switchover procedures this agent ran since it started (a switchover counts on the old and the new primary)."),
		lastFailover:     desc("last_failover_duration_seconds", "Duration of the last failover, promotion or switchover procedure this agent ran."),
		lastFailoverStep: desc("last_failover_step_seconds", "Time spent in each step of the last failover, promotion or switchover procedure this agent ran.", "step"),
		probeLatency:     desc("write_probe_latency_seconds", "Latency of the last write probe."),
		lastLoop:         desc("last_loop_timestamp_seconds", "When the agent's last loop finished (Unix time); alert on time() minus this."),
		streaming:        desc("streaming", "1 when this node is a standby whose WAL receiver hears from its upstream."),
		etcdReachable:    desc("etcd_reachable", "1 when the agent's last read of the cluster from etcd succeeded."),
		syncModeDesc:     desc("synchronous_mode", "1 for this node's configured failover.synchronous_mode, 0 for the others.", "mode"),
		maxLagDesc:       desc("maximum_lag_on_failover_bytes", "failover.maximum_lag_on_failover: a standby further behind the leader's last published position is not promoted."),
	}
}

// Describe lets the registry check names and labels at registration.
func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.role, c.writable, c.leader, c.lag, c.timeline, c.paused,
		c.failovers, c.lastFailover, c.lastFailoverStep, c.probeLatency, c.lastLoop,
		c.streaming, c.etcdReachable, c.syncModeDesc, c.maxLagDesc} {
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
	gauge(c.streaming, boolValue(st.Streaming))
	for _, m := range []decision.SyncMode{decision.SyncOff, decision.SyncOn, decision.SyncStrict} {
		gauge(c.syncModeDesc, boolValue(m == c.syncMode), string(m))
	}
	gauge(c.maxLagDesc, float64(c.maxLag))
	ch <- constMetric(c.failovers, prometheus.CounterValue, float64(st.Failovers))
	if !st.UpdatedAt.IsZero() {
		gauge(c.lastLoop, float64(st.UpdatedAt.UnixNano())/1e9)
		// Only after a loop: before it, no read has been tried, and a 0
		// would raise the etcd alert for every agent that starts.
		gauge(c.etcdReachable, boolValue(st.DCSError == ""))
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

// DCSReads records the agent's reads of the cluster from etcd, one per loop
// (dcs.Store.Snapshot, a single range request): how long each took, and
// the synchronous standbys the last one found. The agent's status carries
// neither, so the store the agent is given is wrapped (node.Run) to call
// Observe around every read.
type DCSReads struct {
	duration prometheus.Histogram
	syncDesc *prometheus.Desc

	mu sync.Mutex
	// syncKnown: a read has succeeded; until then the number of
	// synchronous standbys is unknown, not 0 (which would look degraded).
	syncKnown bool
	sync      int
}

// NewDCSReads makes the collector; give it to Options.DCS.
func NewDCSReads() *DCSReads {
	return &DCSReads{
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "vigil_etcd_read_duration_seconds",
			Help: "Duration of the agent's successful reads of the cluster from etcd (one range request per loop): the etcd round trip as the agent lives it.",
			// From a loopback member's fraction of a millisecond to
			// the seconds of a DCS timeout.
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		syncDesc: prometheus.NewDesc("vigil_synchronous_standbys",
			"Synchronous standbys recorded in etcd at the agent's last successful read; 0 in synchronous_mode on means replication went asynchronous.", nil, nil),
	}
}

// Observe records one read that took d. A failed read only counts towards
// vigil_etcd_reachable (from the agent's status): its duration is the
// timeout, not a round trip.
func (r *DCSReads) Observe(d time.Duration, v dcs.View, err error) {
	if err != nil {
		return
	}
	r.duration.Observe(d.Seconds())
	r.mu.Lock()
	r.syncKnown, r.sync = true, len(v.Sync)
	r.mu.Unlock()
}

// Describe lets the registry check names and labels at registration.
func (r *DCSReads) Describe(ch chan<- *prometheus.Desc) {
	r.duration.Describe(ch)
	ch <- r.syncDesc
}

// Collect exports the histogram and, once known, the synchronous standbys.
func (r *DCSReads) Collect(ch chan<- prometheus.Metric) {
	r.duration.Collect(ch)
	r.mu.Lock()
	known, n := r.syncKnown, r.sync
	r.mu.Unlock()
	if known {
		ch <- constMetric(r.syncDesc, prometheus.GaugeValue, float64(n))
	}
}
