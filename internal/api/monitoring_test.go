package api

import (
	"errors"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/agent"
	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
	"github.com/vigil-ha/vigil/internal/monitoring"
	"github.com/vigil-ha/vigil/internal/timeline"
)

// TestMetricsTheAlertsNeed: the metrics examples/monitoring's alerts rest
// on, beyond the status ones of TestMetrics.
func TestMetricsTheAlertsNeed(t *testing.T) {
	reads := NewDCSReads()
	s := newServer(t, standby(2<<20), func(o *Options) {
		o.SyncMode = decision.SyncOn
		o.MaximumLagOnFailover = 1 << 20
		o.DCS = reads
	})
	fams := scrape(t, s)
	for _, w := range []sample{
		{"vigil_streaming", nil, 1},
		{"vigil_etcd_reachable", nil, 1},
		{"vigil_synchronous_mode", map[string]string{"mode": "on"}, 1},
		{"vigil_synchronous_mode", map[string]string{"mode": "off"}, 0},
		{"vigil_synchronous_mode", map[string]string{"mode": "strict"}, 0},
		{"vigil_maximum_lag_on_failover_bytes", nil, 1 << 20},
	} {
		if got, ok := find(t, fams, w.name, w.labels); !ok || got != w.value {
			t.Errorf("%s%v = %v (present %t), want %v", w.name, w.labels, got, ok, w.value)
		}
	}
	// Before any successful read the synchronous standbys are unknown:
	// absent, not 0, which the degraded alert would take for async.
	if _, ok := fams["vigil_synchronous_standbys"]; ok {
		t.Error("vigil_synchronous_standbys before any read of etcd")
	}
	if n := fams["vigil_etcd_read_duration_seconds"].GetMetric()[0].GetHistogram().GetSampleCount(); n != 0 {
		t.Errorf("%d reads counted before any", n)
	}

	reads.Observe(3*time.Millisecond, dcs.View{Sync: []string{"node2", "node3"}}, nil)
	// A failed read is a timeout, not a round trip, and says nothing of
	// the synchronous standbys.
	reads.Observe(800*time.Millisecond, dcs.View{}, errors.New("context deadline exceeded"))
	fams = scrape(t, s)
	if got, ok := find(t, fams, "vigil_synchronous_standbys", nil); !ok || got != 2 {
		t.Errorf("vigil_synchronous_standbys = %v (present %t), want 2", got, ok)
	}
	h := fams["vigil_etcd_read_duration_seconds"].GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != 1 || h.GetSampleSum() != 0.003 {
		t.Errorf("etcd reads: count %d sum %v, want the one successful read of 0.003 s", h.GetSampleCount(), h.GetSampleSum())
	}

	// An agent whose last read of etcd failed.
	s = newServer(t, with(standby(0), func(st *agent.Status) { st.DCSError = "read cluster state from DCS: context deadline exceeded" }), nil)
	fams = scrape(t, s)
	if got, ok := find(t, fams, "vigil_etcd_reachable", nil); !ok || got != 0 {
		t.Errorf("vigil_etcd_reachable = %v (present %t) with a DCS error, want 0", got, ok)
	}
	// No DCSReads given (a server without the agent's store): no such
	// metrics rather than empty ones.
	if _, ok := fams["vigil_etcd_read_duration_seconds"]; ok {
		t.Error("vigil_etcd_read_duration_seconds without Options.DCS")
	}
	if got, _ := find(t, fams, "vigil_synchronous_mode", map[string]string{"mode": "off"}); got != 1 {
		t.Error("an empty SyncMode is not reported as off")
	}

	// Before the first loop nothing was tried: no etcd verdict yet.
	fams = scrape(t, newServer(t, agent.Status{}, nil))
	if _, ok := fams["vigil_etcd_reachable"]; ok {
		t.Error("vigil_etcd_reachable before the agent's first loop")
	}
}

// TestExamplesMatchTheMetrics: every metric and label the example alert
// rules and dashboard use is in this registry, for an agent that has run a
// failover and read etcd (what makes every metric appear). The end-to-end
// TestMonitoringMatchesARunningAgent checks the same against real agents.
func TestExamplesMatchTheMetrics(t *testing.T) {
	reads := NewDCSReads()
	reads.Observe(time.Millisecond, dcs.View{Sync: []string{"node2"}}, nil)
	t0 := time.Now().Add(-time.Minute)
	st := with(writablePrimary(), func(st *agent.Status) {
		st.Failovers = 1
		st.LastFailover = &timeline.Record{Kind: "failover", Start: t0, End: t0.Add(2 * time.Second), OK: true,
			Steps: []timeline.Step{{Name: "promote", Start: t0, End: t0.Add(time.Second), OK: true}}}
	})
	s := newServer(t, st, func(o *Options) { o.DCS = reads; o.SyncMode = decision.SyncOn })
	exported := monitoring.FromFamilies(scrape(t, s))

	qs, err := monitoring.Load("../../examples/monitoring")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		for _, p := range monitoring.Check(q, exported) {
			t.Error(p)
		}
	}
}
