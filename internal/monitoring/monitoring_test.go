package monitoring

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const dir = "../../examples/monitoring"

// promtool is Debian's prometheus package's rule checker. Missing, the
// test fails rather than skips: a rules file nobody checked is the drift
// this test exists to catch.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install Debian's prometheus package (scripts/install-deps.sh does) to check examples/monitoring")
	}
	return p
}

func TestRulesPassPromtool(t *testing.T) {
	bin := promtool(t)
	files, err := RuleFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, append([]string{"check", "rules"}, files...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules %s: %v\n%s", strings.Join(files, " "), err, out)
	}
	// The rules' own unit tests: each alert fires on the series that mean
	// its condition, with the labels and text an operator receives, and
	// stays quiet on the near misses.
	tests, err := filepath.Glob(filepath.Join(dir, "*.rules.test.yml"))
	if err != nil || len(tests) == 0 {
		t.Fatalf("no *.rules.test.yml in %s (%v)", dir, err)
	}
	for _, f := range tests {
		cmd := exec.Command(bin, "test", "rules", filepath.Base(f))
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool test rules %s: %v\n%s", f, err, out)
		}
	}
}

// TestExamplesHaveWhatOperatorsNeed: the alerts and panels issue 17 asks
// for stay in the examples.
func TestExamplesHaveWhatOperatorsNeed(t *testing.T) {
	qs, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	var where []string
	for _, q := range qs {
		where = append(where, q.Where)
	}
	all := strings.Join(where, "\n")
	for _, want := range []string{
		"VigilNoWritablePrimary", "VigilTwoPrimaries", "VigilLeaderWithoutCommittedWrite",
		"VigilStandbyLagAboveFailoverLimit", "VigilSynchronousReplicationDegraded", "VigilEtcdUnreachable",
		"VigilFailover", "VigilRejoinNeeded", "VigilAgentDown",
		"/Role per member", "/Timeline", "/Lag per standby", "/Write-probe latency",
		"/Outage: no writable primary", "/Failovers", "/etcd round-trip time",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no query of %q in %s; found:\n%s", want, dir, all)
		}
	}
}

// TestCheckFindsMismatches: the consistency check itself catches each kind
// of drift, so that a clean result means something.
func TestCheckFindsMismatches(t *testing.T) {
	e := Exported{
		"vigil_role":     {"cluster", "node", "role"},
		"vigil_writable": {"cluster", "node"},
		"vigil_leader":   {"cluster", "node", "leader"},
		"vigil_etcd_read_duration_seconds_bucket": {"cluster", "node", "le"},
	}
	for _, tc := range []struct {
		q    Query
		want string // "" for none
	}{
		{Query{Expr: `sum by (cluster) (vigil_role{role="primary"}) > 1`}, ""},
		{Query{Expr: `vigil_writable == 1`, Printed: []string{"node", "instance"}}, ""},
		{Query{Expr: `label_replace(max by (cluster, leader) (vigil_leader), "node", "$1", "leader", "(.+)") unless on (cluster, node) vigil_writable`}, ""},
		{Query{Expr: `histogram_quantile(0.99, sum by (node, le) (rate(vigil_etcd_read_duration_seconds_bucket[5m])))`}, ""},
		{Query{Expr: `up{job="vigil"} == 0`, Printed: []string{"instance"}}, ""},
		{Query{Expr: `label_values(vigil_role, cluster)`}, ""},
		{Query{Expr: `vigil_writeable == 1`}, "metric vigil_writeable is not exported"},
		{Query{Expr: `vigil_writable{role="primary"}`}, `vigil_writable has no label "role"`},
		{Query{Expr: `sum by (member) (vigil_role)`}, `label "member"`},
		{Query{Expr: `vigil_role == 1`, Printed: []string{"member"}}, `label "member"`},
		{Query{Expr: `label_replace(vigil_leader, "x", "$1", "leeder", "(.+)")`}, `label "leeder"`},
		{Query{Expr: `label_values(vigil_role, member)`}, `label "member"`},
		{Query{Expr: `vector(1)`}, "no metric found"},
		{Query{Expr: `vigil_etcd_read_duration_seconds_count`}, "not exported"},
	} {
		got := Check(tc.q, e)
		switch {
		case tc.want == "" && len(got) > 0:
			t.Errorf("%s: %v, want no problem", tc.q.Expr, got)
		case tc.want != "" && !slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, tc.want) }):
			t.Errorf("%s: %v, want a problem with %q", tc.q.Expr, got, tc.want)
		}
	}
}
