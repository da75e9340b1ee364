package gates

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestMetricRulesCEL(t *testing.T) {
	c := buildCheck(t, "metric-rules", `rules:
  - name: auc-floor
    expr: "metrics.auc >= 0.91 && metrics.auc >= current.metrics.auc - 0.005"
  - name: latency
    expr: "metrics.p99_ms <= 120"`)
	s := evSubject(`{"auc": 0.93, "p99_ms": 100}`)
	s.Current = &Release{Version: "1.3.0", Evidence: []Evidence{memEvidence("metrics", []byte(`{"auc": 0.931}`))}}
	wantStatus(t, c.Run(context.Background(), s), Passed)

	s = evSubject(`{"auc": 0.93}`)
	s.Current = &Release{Version: "1.3.0", Evidence: []Evidence{memEvidence("metrics", []byte(`{"auc": 0.931}`))}}
	r := c.Run(context.Background(), s)
	wantStatus(t, r, Failed)
	if !strings.Contains(r.Reason, `"p99_ms"`) {
		t.Errorf("reason %q does not name the missing metric", r.Reason)
	}

	r = c.Run(context.Background(), evSubject(`{"auc": 0.95, "p99_ms": 1}`))
	wantStatus(t, r, Failed)
	if !strings.Contains(r.Reason, "no current release") {
		t.Errorf("reason %q", r.Reason)
	}
}

func TestMetricRulesCELRefusals(t *testing.T) {
	for _, expr := range []string{"metrics.auc >= ", "metrics.auc + 1", "unknown_var > 1", "'a' == 1 +"} {
		_, err := LoadPolicy([]byte("environment: prod\nchecks:\n  - name: metric-rules\n    params:\n      rules:\n        - name: r\n          expr: \"" + expr + "\"\n"))
		var pe *PolicyError
		if !errors.As(err, &pe) || pe.Line != 7 {
			t.Errorf("%q: err = %v, want a PolicyError at line 7", expr, err)
		}
	}
}
