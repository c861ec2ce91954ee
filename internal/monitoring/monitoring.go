// Package monitoring reads the example alert rules and Grafana dashboards of
// examples/monitoring and checks them against the metrics an agent exports:
// every vigil_ metric they name must exist, with every label they select,
// group by or print. The tests of package api (the real registry) and the
// end-to-end test (a live agent) share it, so the examples cannot drift
// from the code.
//
// It reads PromQL with regular expressions, not a parser: the examples'
// expressions are ours, and the Prometheus module (the only PromQL parser)
// would pull a large dependency tree into the build for one test. What it
// recognises is what the examples use: selectors with matchers, by /
// without / on / ignoring / group_left / group_right lists, label_replace,
// label_values, {{name}} in legends and $labels.name in annotations.
package monitoring

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"gopkg.in/yaml.v3"
)

// Query is one PromQL expression of a rule or a dashboard, with the labels
// its text around it prints (annotations, legends).
type Query struct {
	// Where names the file and the rule or panel, for messages.
	Where   string
	Expr    string
	Printed []string
}

// RuleFiles and DashboardFiles are the examples' files in dir.
func RuleFiles(dir string) ([]string, error) { return glob(dir, "*.rules.yml") }

// DashboardFiles are the Grafana dashboards (JSON) in dir.
func DashboardFiles(dir string) ([]string, error) { return glob(dir, "*.json") }

func glob(dir, pattern string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, pattern))
	if err == nil && len(files) == 0 {
		err = fmt.Errorf("no %s in %s", pattern, dir)
	}
	return files, err
}

// Load reads every query of the rule files and dashboards in dir.
func Load(dir string) ([]Query, error) {
	rules, err := RuleFiles(dir)
	if err != nil {
		return nil, err
	}
	dashboards, err := DashboardFiles(dir)
	if err != nil {
		return nil, err
	}
	var qs []Query
	for _, f := range rules {
		q, err := ruleQueries(f)
		if err != nil {
			return nil, err
		}
		qs = append(qs, q...)
	}
	for _, f := range dashboards {
		q, err := dashboardQueries(f)
		if err != nil {
			return nil, err
		}
		qs = append(qs, q...)
	}
	return qs, nil
}

func ruleQueries(file string) ([]Query, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Record      string            `yaml:"record"`
				Expr        string            `yaml:"expr"`
				Annotations map[string]string `yaml:"annotations"`
				Labels      map[string]string `yaml:"labels"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var qs []Query
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			q := Query{Where: fmt.Sprintf("%s: %s", filepath.Base(file), r.Alert+r.Record), Expr: r.Expr}
			for _, text := range r.Annotations {
				q.Printed = append(q.Printed, submatches(annotationLabel, text, 1)...)
			}
			for _, text := range r.Labels {
				q.Printed = append(q.Printed, submatches(annotationLabel, text, 1)...)
			}
			qs = append(qs, q)
		}
	}
	if len(qs) == 0 {
		return nil, fmt.Errorf("%s: no rules", file)
	}
	return qs, nil
}

// dashboardQueries walks the dashboard's JSON: every "expr" (panel targets,
// annotations) is a query, every "query" that names a metric (template
// variables) too, and a target's legendFormat prints labels of its expr.
func dashboardQueries(file string) ([]Query, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var qs []Query
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			where := path
			if t, ok := v["title"].(string); ok {
				where = path + "/" + t
			} else if n, ok := v["name"].(string); ok {
				where = path + "/" + n
			}
			expr, _ := v["expr"].(string)
			if q, ok := v["query"].(string); ok && expr == "" && strings.Contains(q, "vigil_") {
				expr = q
			}
			if qm, ok := v["query"].(map[string]any); ok && expr == "" {
				if q, ok := qm["query"].(string); ok && strings.Contains(q, "vigil_") {
					expr = q
				}
			}
			if expr != "" {
				q := Query{Where: fmt.Sprintf("%s: %s", filepath.Base(file), where), Expr: expr}
				if l, ok := v["legendFormat"].(string); ok {
					q.Printed = submatches(legendLabel, l, 1)
				}
				for _, k := range []string{"titleFormat", "textFormat"} { // annotations
					if l, ok := v[k].(string); ok {
						q.Printed = append(q.Printed, submatches(legendLabel, l, 1)...)
					}
				}
				qs = append(qs, q)
			}
			keys := make([]string, 0, len(v))
			for k := range v {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				if k != "query" {
					walk(where, v[k])
				}
			}
		case []any:
			for _, e := range v {
				walk(path, e)
			}
		}
	}
	walk("", doc)
	if len(qs) == 0 {
		return nil, fmt.Errorf("%s: no queries", file)
	}
	return qs, nil
}

var (
	annotationLabel = regexp.MustCompile(`\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)`)
	legendLabel     = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)
	// A metric name followed by an optional selector. vigil_ names are
	// ours; "up" is Prometheus's own, per target.
	selector = regexp.MustCompile(`\b(vigil_[a-zA-Z0-9_]+|up)\b\s*(\{([^}]*)\})?`)
	matcher  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)
	grouping = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
	// label_replace(v, "dst", "replacement", "src", "regex")
	labelReplace = regexp.MustCompile(`label_replace\s*\(.*?,\s*"([^"]*)"\s*,\s*"[^"]*"\s*,\s*"([^"]*)"\s*,\s*"[^"]*"\s*\)`)
	// label_values(metric{...}, label): a Grafana template variable.
	labelValues = regexp.MustCompile(`label_values\s*\(([^,]*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)`)
)

func submatches(re *regexp.Regexp, s string, i int) []string {
	var out []string
	for _, m := range re.FindAllStringSubmatch(s, -1) {
		out = append(out, m[i])
	}
	return out
}

// TargetLabels are what Prometheus adds to every series it scrapes, and
// what "up" carries.
var TargetLabels = []string{"job", "instance"}

// Exported is what a scrape holds: each metric name a query may use (a
// histogram's _bucket, _sum and _count series included) and its labels.
type Exported map[string][]string

// FromFamilies builds Exported from a parsed scrape, or the union of
// several scrapes (several agents: some metrics exist only on a leader).
func FromFamilies(scrapes ...map[string]*dto.MetricFamily) Exported {
	e := Exported{}
	add := func(name string, labels ...string) {
		for _, l := range labels {
			if !slices.Contains(e[name], l) {
				e[name] = append(e[name], l)
			}
		}
		if _, ok := e[name]; !ok {
			e[name] = []string{}
		}
	}
	for _, fams := range scrapes {
		for name, f := range fams {
			for _, m := range f.GetMetric() {
				var labels []string
				for _, l := range m.GetLabel() {
					labels = append(labels, l.GetName())
				}
				if f.GetType() == dto.MetricType_HISTOGRAM {
					add(name+"_bucket", append(slices.Clone(labels), "le")...)
					add(name+"_sum", labels...)
					add(name+"_count", labels...)
					continue
				}
				add(name, labels...)
			}
		}
	}
	return e
}

// Check returns what q uses that e does not export: a metric, a label in
// its selector, or a label it groups by, matches on or prints that none of
// its metrics carries.
func Check(q Query, e Exported) []string {
	var problems []string
	expr := q.Expr
	// Labels some series of the expression may carry: its metrics' own,
	// the target labels, and those label_replace makes.
	known := slices.Clone(TargetLabels)
	for _, m := range labelReplace.FindAllStringSubmatch(expr, -1) {
		known = append(known, m[1])
	}
	var used []string
	metrics := 0
	for _, m := range selector.FindAllStringSubmatch(expr, -1) {
		name := m[1]
		metrics++
		labels, ok := e[name]
		if name == "up" {
			labels, ok = TargetLabels, true
		}
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: metric %s is not exported", q.Where, name))
			continue
		}
		known = append(known, labels...)
		for _, mm := range matcher.FindAllStringSubmatch(m[3], -1) {
			if l := mm[1]; !slices.Contains(labels, l) && !slices.Contains(TargetLabels, l) {
				problems = append(problems, fmt.Sprintf("%s: %s has no label %q (it has %s)", q.Where, name, l, strings.Join(labels, ", ")))
			}
		}
	}
	if metrics == 0 {
		problems = append(problems, fmt.Sprintf("%s: no metric found in %q", q.Where, expr))
	}
	for _, m := range grouping.FindAllStringSubmatch(expr, -1) {
		for l := range strings.SplitSeq(m[2], ",") {
			if l = strings.TrimSpace(l); l != "" {
				used = append(used, l)
			}
		}
	}
	for _, m := range labelReplace.FindAllStringSubmatch(expr, -1) {
		used = append(used, m[2]) // the source label
	}
	for _, m := range labelValues.FindAllStringSubmatch(expr, -1) {
		used = append(used, m[2])
	}
	used = append(used, q.Printed...)
	for _, l := range used {
		if !slices.Contains(known, l) {
			problems = append(problems, fmt.Sprintf("%s: label %q is on none of the expression's metrics", q.Where, l))
		}
	}
	return problems
}
