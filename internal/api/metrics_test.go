package api

import (
	"bytes"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vigil-ha/vigil/internal/agent"
	"github.com/vigil-ha/vigil/internal/timeline"
)

// scrape fetches /metrics and parses it the way Prometheus would.
func scrape(t *testing.T, s *Server) map[string]*dto.MetricFamily {
	t.Helper()
	r := do(t, s, http.MethodGet, "/metrics", "", nil)
	if r.code != http.StatusOK {
		t.Fatalf("/metrics = %d: %s", r.code, r.body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(r.body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, r.body)
	}
	return fams
}

type sample struct {
	name   string
	labels map[string]string // besides node and cluster
	value  float64
}

// find returns the value of the sample with exactly these labels plus
// node="node1", cluster="main".
func find(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	fam, ok := fams[name]
	if !ok {
		return 0, false
	}
	want := map[string]string{"node": "node1", "cluster": "main"}
	for k, v := range labels {
		want[k] = v
	}
next:
	for _, m := range fam.GetMetric() {
		if len(m.GetLabel()) != len(want) {
			continue
		}
		for _, l := range m.GetLabel() {
			if want[l.GetName()] != l.GetValue() {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		}
	}
	return 0, false
}

func TestMetrics(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	step := func(name string, from, to time.Duration) timeline.Step {
		return timeline.Step{Name: name, Start: t0.Add(from), End: t0.Add(to), OK: true}
	}
	failedOver := with(writablePrimary(), func(s *agent.Status) {
		s.Failovers = 2
		s.LastFailover = &timeline.Record{
			Kind: "failover", Start: t0, End: t0.Add(1500 * time.Millisecond), OK: true,
			Steps: []timeline.Step{
				step("acquire_leader", 0, 10*time.Millisecond),
				step("fence", 10*time.Millisecond, 110*time.Millisecond),
				step("fence", 110*time.Millisecond, 160*time.Millisecond), // retried: summed
				step("promote", 160*time.Millisecond, 560*time.Millisecond),
				step("readiness_gate", 560*time.Millisecond, 760*time.Millisecond),
			},
		}
		s.Paused = true
	})
	role := func(r string) map[string]string { return map[string]string{"role": r} }
	tests := []struct {
		name   string
		st     agent.Status
		want   []sample
		absent []string
	}{
		{
			name: "writable primary after a failover",
			st:   failedOver,
			want: []sample{
				{"vigil_writable", nil, 1},
				{"vigil_role", role("primary"), 1},
				{"vigil_role", role("standby"), 0},
				{"vigil_role", role("stopped"), 0},
				{"vigil_role", role("unknown"), 0},
				{"vigil_leader", map[string]string{"leader": "node1"}, 1},
				{"vigil_timeline", nil, 3},
				{"vigil_lag_bytes", nil, 0},
				{"vigil_paused", nil, 1},
				{"vigil_failovers_total", nil, 2},
				{"vigil_last_failover_duration_seconds", nil, 1.5},
				{"vigil_last_failover_step_seconds", map[string]string{"step": "acquire_leader"}, 0.01},
				{"vigil_last_failover_step_seconds", map[string]string{"step": "fence"}, 0.15},
				{"vigil_last_failover_step_seconds", map[string]string{"step": "promote"}, 0.4},
				{"vigil_last_failover_step_seconds", map[string]string{"step": "readiness_gate"}, 0.2},
				{"vigil_write_probe_latency_seconds", nil, 0.004},
			},
		},
		{
			name: "leader not yet writable",
			st:   promotingLeader(),
			want: []sample{
				{"vigil_writable", nil, 0},
				{"vigil_role", role("standby"), 1},
				{"vigil_failovers_total", nil, 0},
			},
			absent: []string{"vigil_last_failover_duration_seconds", "vigil_last_failover_step_seconds"},
		},
		{
			name: "lagging standby",
			st:   standby(2 << 20),
			want: []sample{
				{"vigil_writable", nil, 0},
				{"vigil_role", role("standby"), 1},
				{"vigil_role", role("primary"), 0},
				{"vigil_leader", map[string]string{"leader": "node1"}, 1},
				{"vigil_lag_bytes", nil, 2 << 20},
				{"vigil_paused", nil, 0},
			},
			absent: []string{"vigil_write_probe_latency_seconds"},
		},
		{
			name: "before the first loop",
			st:   agent.Status{},
			want: []sample{
				{"vigil_role", role("unknown"), 1},
				{"vigil_leader", map[string]string{"leader": ""}, 0},
				{"vigil_writable", nil, 0},
			},
			absent: []string{"vigil_last_loop_timestamp_seconds"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fams := scrape(t, newServer(t, tc.st, nil))
			for _, w := range tc.want {
				got, ok := find(t, fams, w.name, w.labels)
				if !ok {
					t.Errorf("no %s%v in the scrape", w.name, w.labels)
					continue
				}
				if math.Abs(got-w.value) > 1e-9 {
					t.Errorf("%s%v = %v, want %v", w.name, w.labels, got, w.value)
				}
			}
			for _, name := range tc.absent {
				if _, ok := fams[name]; ok {
					t.Errorf("%s present, want absent", name)
				}
			}
			if fams["vigil_failovers_total"].GetType() != dto.MetricType_COUNTER {
				t.Errorf("vigil_failovers_total is a %v, want a counter", fams["vigil_failovers_total"].GetType())
			}
			// Our registry carries the Go collector itself.
			if _, ok := fams["go_goroutines"]; !ok {
				t.Error("go_goroutines missing: Go collector not registered")
			}
		})
	}
}

func TestMetricsFollowStatus(t *testing.T) {
	src := &fakeAgent{st: promotingLeader()}
	s := newServer(t, agent.Status{}, func(o *Options) { o.Agent = src })
	for _, tc := range []struct {
		st   agent.Status
		want float64
	}{{promotingLeader(), 0}, {writablePrimary(), 1}, {standby(0), 0}} {
		src.mu.Lock()
		src.st = tc.st
		src.mu.Unlock()
		if got, _ := find(t, scrape(t, s), "vigil_writable", nil); got != tc.want {
			t.Errorf("vigil_writable = %v, want %v for role %s", got, tc.want, tc.st.Role)
		}
	}
}

func TestRegistryIsOwn(t *testing.T) {
	s := newServer(t, writablePrimary(), nil)
	// A second server in the same process must not collide with the first.
	other := newServer(t, standby(0), nil)

	fams, err := s.Registry().Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var found bool
	for _, f := range fams {
		found = found || f.GetName() == "vigil_writable"
	}
	if !found {
		t.Error("Registry() does not hold vigil_writable")
	}
	if s.Registry() == other.Registry() {
		t.Error("two servers share a registry")
	}

	// etcd registers on the default registry: a metric of ours there would
	// collide with whatever else the process registers.
	defFams, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatalf("gather default registry: %v", err)
	}
	for _, f := range defFams {
		if f.GetName() == "vigil_writable" || f.GetName() == "vigil_role" {
			t.Errorf("%s is on the default registry", f.GetName())
		}
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_writable", Help: "same name on the default registry"})
	if err := prometheus.DefaultRegisterer.Register(g); err != nil {
		t.Fatalf("registering vigil_writable on the default registry collided: %v", err)
	}
	prometheus.DefaultRegisterer.Unregister(g)
}
