package deploy_test

import (
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/gates"
	"github.com/stagegate/stagegate/internal/metrics"
)

// exportedSeries maps every series name a stagegate process exports (a
// histogram's _bucket, _sum and _count included) to its label names. It
// exercises each of internal/metrics' families once, so that vectors with
// no children yet show up, and insists that covers metrics.Names().
func exportedSeries(t *testing.T) map[string]map[string]bool {
	t.Helper()
	m := metrics.New()
	m.ObserveRequest("/healthz", "GET", 200, time.Millisecond)
	m.ObserveAction("dev", "artifact.publish", audit.Success, "")
	m.ObserveGates("staging", gates.Report{Results: []gates.Result{{Check: "promotion-order", Status: gates.Passed}}})
	m.ObserveTransfer("dev", 1, 1)
	m.BlobObserver("dev", "minio")("put", time.Millisecond, errors.New("x"))
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]bool{}
	for _, f := range fams {
		labels := map[string]bool{"job": true, "instance": true} // added by the scrape
		for _, mm := range f.GetMetric() {
			for _, l := range mm.GetLabel() {
				labels[l.GetName()] = true
			}
		}
		out[f.GetName()] = labels
		if f.GetType() == dto.MetricType_HISTOGRAM {
			bucket := map[string]bool{"le": true}
			for k := range labels {
				bucket[k] = true
			}
			out[f.GetName()+"_bucket"] = bucket
			out[f.GetName()+"_sum"] = labels
			out[f.GetName()+"_count"] = labels
		}
	}
	for _, name := range metrics.Names() {
		if _, ok := out[name]; !ok {
			t.Fatalf("metrics.Names lists %s, which the exercised registry does not export: exercise it here", name)
		}
	}
	return out
}

var (
	selectorRE = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}`)
	matcherRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"`)
	stringRE   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	groupingRE = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	bracesRE   = regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]`)
	numberRE   = regexp.MustCompile(`\b[0-9][0-9a-zA-Z.]*`) // numbers and durations (5m, 1h30m)
	identRE    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
	promqlWord = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true,
		"group_left": true, "group_right": true}
)

// metricNames returns the metric names a PromQL expression selects and,
// for each selector with matchers, the label names it matches on. It
// understands the subset dashboards use: selectors, functions,
// aggregations with by/without, binary operators, ranges and Grafana's
// $variables inside ranges and matchers.
func metricNames(expr string) (names []string, matched map[string][]string) {
	matched = map[string][]string{}
	for _, m := range selectorRE.FindAllStringSubmatch(expr, -1) {
		for _, lm := range matcherRE.FindAllStringSubmatch(m[2], -1) {
			matched[m[1]] = append(matched[m[1]], lm[1])
		}
	}
	rest := stringRE.ReplaceAllString(expr, `""`)
	rest = bracesRE.ReplaceAllString(rest, " ")
	rest = groupingRE.ReplaceAllString(rest, " ")
	rest = numberRE.ReplaceAllString(rest, " ")
	for _, m := range identRE.FindAllStringSubmatch(rest, -1) {
		word := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(m[0]), "("))
		if m[1] != "" || promqlWord[strings.ToLower(word)] {
			continue // a function or aggregation, or an operator
		}
		names = append(names, word)
	}
	return names, matched
}

func TestMetricNamesOfExpressions(t *testing.T) {
	tests := []struct {
		expr  string
		names []string
	}{
		{`sum by (environment) (rate(stagegate_actions_total{action="artifact.publish",environment=~"$environment"}[$__rate_interval]))`, []string{"stagegate_actions_total"}},
		{`histogram_quantile(0.95, sum by (le, route) (rate(x_bucket{route!="/metrics"}[5m])))`, []string{"x_bucket"}},
		{`a / on(job) group_left b + 2 * c offset 5m`, []string{"a", "b", "c"}},
		{`process_resident_memory_bytes{job=~"$job"}`, []string{"process_resident_memory_bytes"}},
	}
	for _, tt := range tests {
		if got, _ := metricNames(tt.expr); !slices.Equal(got, tt.names) {
			t.Errorf("%s: %v, want %v", tt.expr, got, tt.names)
		}
	}
}

// dashboardExprs walks a Grafana dashboard (panels, rows' panels,
// templating queries) for PromQL expressions.
func dashboardExprs(t *testing.T, dash map[string]any) []string {
	t.Helper()
	var out []string
	var walkPanels func(ps []any)
	walkPanels = func(ps []any) {
		for _, p := range ps {
			pm, _ := p.(map[string]any)
			targets, _ := pm["targets"].([]any)
			for _, tg := range targets {
				if e, _ := tg.(map[string]any)["expr"].(string); e != "" {
					out = append(out, e)
				}
			}
			if nested, ok := pm["panels"].([]any); ok {
				walkPanels(nested)
			}
		}
	}
	panels, _ := dash["panels"].([]any)
	walkPanels(panels)
	templating, _ := dash["templating"].(map[string]any)
	vars, _ := templating["list"].([]any)
	for _, v := range vars {
		vm, _ := v.(map[string]any)
		if vm["type"] != "query" {
			continue
		}
		def, _ := vm["definition"].(string)
		// label_values(metric, label): the metric must exist too.
		if m := regexp.MustCompile(`label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)`).FindStringSubmatch(def); m != nil {
			out = append(out, m[1])
		}
	}
	return out
}

// TestGrafanaDashboard: deploy/grafana/stagegate.json parses, every
// expression selects only series stagegate exports and matches only their
// labels, and the dashboard has the panels operators need: publish and
// promotion rates per environment, gate failures by check, p95 latency.
func TestGrafanaDashboard(t *testing.T) {
	data, err := os.ReadFile("grafana/stagegate.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("stagegate.json: %v", err)
	}
	if dash["title"] == "" || dash["uid"] == "" {
		t.Error("the dashboard needs a title and a uid")
	}
	exported := exportedSeries(t)
	exprs := dashboardExprs(t, dash)
	if len(exprs) < 8 {
		t.Fatalf("found %d expressions; the walk is not seeing the panels", len(exprs))
	}
	for _, e := range exprs {
		names, matched := metricNames(e)
		if len(names) == 0 {
			t.Errorf("%q selects no metric", e)
		}
		for _, n := range names {
			if _, ok := exported[n]; !ok {
				t.Errorf("%q uses %s, which stagegate does not export", e, n)
			}
		}
		for n, labels := range matched {
			for _, l := range labels {
				if known, ok := exported[n]; ok && !known[l] {
					t.Errorf("%q matches label %s, which %s does not have", e, l, n)
				}
			}
		}
	}
	all := strings.Join(exprs, "\n")
	for _, want := range []struct{ what, re string }{
		{"publish rate per environment", `by \(environment[^)]*\) \(rate\(stagegate_actions_total\{action="artifact\.publish"`},
		{"promotion rate per environment", `by \(environment[^)]*\) \(rate\(stagegate_actions_total\{action="artifact\.promote"`},
		{"gate failures by check", `by \(check\) \([a-z]+\(stagegate_gate_check_duration_seconds_count\{result=~"failed`},
		{"p95 request latency", `histogram_quantile\(0\.95, sum by \(le[^)]*\) \(rate\(stagegate_http_request_duration_seconds_bucket`},
	} {
		if !regexp.MustCompile(want.re).MatchString(all) {
			t.Errorf("no panel shows %s", want.what)
		}
	}
}
