package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vigil-ha/vigil/internal/labcluster"
	"github.com/vigil-ha/vigil/internal/monitoring"
)

// TestMonitoringMatchesARunningAgent: every metric and label that
// examples/monitoring's alert rules and Grafana dashboard use is exported
// by real agents. A switchover first, so that the metrics of a failover
// (its duration and steps) exist; synchronous mode on, so that the
// synchronous standbys are recorded.
func TestMonitoringMatchesARunningAgent(t *testing.T) {
	c := newCluster(t, clusterOptions{nodes: 2, api: true, syncMode: "on"})
	ctx := testCtx(t, 3*time.Minute)
	s := c.startAgents(ctx)

	if code, body := apiPost(t, c.APIURL("node1")+"/switchover", labcluster.APIToken, `{"to":"node2"}`); code != 200 {
		t.Fatalf("POST /switchover = %d: %s", code, body)
	}
	if p := c.waitWritablePrimary(ctx, s, "node1"); p != "node2" {
		t.Fatalf("after the switchover to node2 the primary is %s", p)
	}

	qs, err := monitoring.Load("../../examples/monitoring")
	if err != nil {
		t.Fatal(err)
	}
	// What the scrapes must show besides the examples' metrics: node2 the
	// writable primary of a synchronous cluster, after its procedure,
	// reading etcd.
	wants := []struct {
		node, metric string
		labels       map[string]string
		ok           func(float64) bool
		want         string
	}{
		{"node2", "vigil_writable", nil, func(v float64) bool { return v == 1 }, "1"},
		{"node1", "vigil_writable", nil, func(v float64) bool { return v == 0 }, "0"},
		{"node2", "vigil_role", map[string]string{"role": "primary"}, func(v float64) bool { return v == 1 }, "1"},
		{"node2", "vigil_leader", map[string]string{"leader": "node2"}, func(v float64) bool { return v == 1 }, "1"},
		{"node2", "vigil_failovers_total", nil, func(v float64) bool { return v >= 1 }, ">= 1"},
		{"node2", "vigil_last_failover_duration_seconds", nil, func(v float64) bool { return v > 0 }, "> 0"},
		{"node1", "vigil_last_failover_duration_seconds", nil, func(v float64) bool { return v > 0 }, "> 0 (the switchover)"},
		{"node2", "vigil_synchronous_mode", map[string]string{"mode": "on"}, func(v float64) bool { return v == 1 }, "1"},
		{"node2", "vigil_etcd_reachable", nil, func(v float64) bool { return v == 1 }, "1"},
		{"node1", "vigil_etcd_read_duration_seconds", nil, func(v float64) bool { return v > 0 }, "> 0 reads"},
	}
	// Eventually: each side records its procedure when it has finished,
	// which may be a loop after node2 became writable.
	if err := eventually(ctx, 30*time.Second, func() error {
		scrapes := map[string]map[string]*dto.MetricFamily{}
		for _, n := range []string{"node1", "node2"} {
			fams, err := scrapeAgent(t, c.APIURL(n))
			if err != nil {
				return fmt.Errorf("%s: %w", n, err)
			}
			scrapes[n] = fams
		}
		var problems []string
		exported := monitoring.FromFamilies(scrapes["node1"], scrapes["node2"])
		for _, q := range qs {
			problems = append(problems, monitoring.Check(q, exported)...)
		}
		for _, w := range wants {
			if v, ok := sampleValue(scrapes[w.node], w.metric, w.labels); !ok || !w.ok(v) {
				problems = append(problems, fmt.Sprintf("%s: %s%v = %v (present %t), want %s", w.node, w.metric, w.labels, v, ok, w.want))
			}
		}
		if len(problems) > 0 {
			return fmt.Errorf("the scrapes do not match the examples or the cluster:\n%s", strings.Join(problems, "\n"))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// scrapeAgent fetches an agent's /metrics and parses it as Prometheus does.
func scrapeAgent(t *testing.T, apiURL string) (map[string]*dto.MetricFamily, error) {
	code, body := apiGet(t, apiURL+"/metrics")
	if code != 200 {
		return nil, fmt.Errorf("GET /metrics = %d: %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(strings.NewReader(body))
}

// sampleValue is the value of the sample of name carrying labels (among
// others); a histogram's is its count of observations.
func sampleValue(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
next:
	for _, m := range fams[name].GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}
