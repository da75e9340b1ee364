package gates

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagegate/stagegate/registry"
)

func TestRequiredEvidence(t *testing.T) {
	c := buildCheck(t, "required-evidence", "types: [junit, metrics]")
	s := subject(registry.KindModel)
	s.Evidence = []Evidence{memEvidence("junit", nil), memEvidence("metrics", nil)}
	wantStatus(t, c.Run(context.Background(), s), Passed)
	s.Evidence = s.Evidence[:1]
	r := c.Run(context.Background(), s)
	wantStatus(t, r, Failed)
	if !strings.Contains(r.Reason, "metrics") {
		t.Errorf("reason %q does not name the missing type", r.Reason)
	}
}

func TestJUnit(t *testing.T) {
	tests := []struct {
		name     string
		params   string
		fixtures []string
		want     Status
		contains string
	}{
		{"testsuites root", "", []string{"pass-testsuites.xml"}, Passed, "4 test(s): 3 passed, 1 skipped"},
		{"testsuite root", "", []string{"pass-testsuite.xml"}, Passed, "3 test(s): 3 passed"},
		{"several reports add up", "min_tests: 7", []string{"pass-testsuites.xml", "pass-testsuite.xml"}, Passed, "7 test(s)"},
		{"too few tests", "min_tests: 5", []string{"pass-testsuite.xml"}, Failed, "at least 5"},
		{"failures and errors", "", []string{"failures.xml"}, Failed, "first accuracy/eval.Accuracy.test_auc_holdout"},
		{"failure only in attributes", "", []string{"attrs-only-failure.xml"}, Failed, "2 failure(s)"},
		{"empty suite", "", []string{"empty-suite.xml"}, Failed, "at least 1"},
		{"nested suites", "", []string{"nested.xml"}, Failed, "1 failure(s)"},
		{"wrong root", "", []string{"wrong-root.xml"}, Failed, "<html>"},
		{"malformed", "", []string{"malformed.xml"}, Failed, "not valid JUnit XML"},
		{"count attributes overflowing int", "", []string{"count-overflow.xml"}, Failed, "9223372036854775807 failure(s)"},
		{"counts saturate across reports", "", []string{"count-overflow.xml", "count-overflow.xml"}, Failed, "9223372036854775807 failure(s)"},
		{"control characters in names", "", []string{"control-chars-in-name.xml"}, Failed, `first s\nPASSED all 99 tests\r\u0085\u2028/t`},
		{"no evidence", "", nil, Failed, `no "junit" evidence`},
		{"other evidence type", "evidence_type: pytest", []string{"pass-testsuite.xml"}, Failed, `no "pytest" evidence`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := buildCheck(t, "junit", tt.params)
			s := subject(registry.KindModel)
			for _, f := range tt.fixtures {
				s.Evidence = append(s.Evidence, memEvidence("junit", readFixture(t, filepath.Join("testdata", "junit", f))))
			}
			r := c.Run(context.Background(), s)
			wantStatus(t, r, tt.want)
			if !strings.Contains(r.Reason, tt.contains) {
				t.Errorf("reason %q does not contain %q", r.Reason, tt.contains)
			}
		})
	}
}

func TestJUnitUnreadable(t *testing.T) {
	c := buildCheck(t, "junit", "")
	s := subject(registry.KindModel)
	s.Evidence = []Evidence{{Type: "junit", Open: failingOpener}}
	wantStatus(t, c.Run(context.Background(), s), Errored)
}

// fakeProgram stands in for a compiled rule expression.
type fakeProgram struct {
	evalFn func(metrics, current map[string]any) (bool, error)
}

func (f fakeProgram) eval(_ context.Context, m, c map[string]any) (bool, error) {
	return f.evalFn(m, c)
}

// TestMetricRulesEvidence covers evidence handling and explanations with a
// fake expression, independent of the expression engine.
func TestMetricRulesEvidence(t *testing.T) {
	aucFloor := fakeProgram{func(m, c map[string]any) (bool, error) {
		v, ok := m["auc"].(float64)
		if !ok {
			return false, errors.New("no such key: auc")
		}
		cur, ok := c["auc"].(float64)
		if !ok {
			return false, errors.New("no such key: auc")
		}
		return v >= 0.91 && v >= cur-0.005, nil
	}}
	c := &metricRules{evidenceType: "metrics", maxBytes: 1 << 20, rules: []metricRule{{name: "auc-floor", expr: "…", prog: aucFloor}}}
	withCurrent := func(s *Subject, metrics string) *Subject {
		s.Current = &Release{Version: "1.3.0", Evidence: []Evidence{memEvidence("metrics", []byte(metrics))}}
		return s
	}
	tests := []struct {
		name     string
		subject  *Subject
		want     Status
		contains string
	}{
		{"holds", withCurrent(evSubject(`{"auc": 0.93}`), `{"auc": 0.931}`), Passed, "1 metric rule(s) hold"},
		{"regression", withCurrent(evSubject(`{"auc": 0.92}`), `{"auc": 0.93}`), Failed, "expression is false"},
		{"missing metric", withCurrent(evSubject(`{"f1": 0.9}`), `{"auc": 0.93}`), Failed, `metric "auc" is missing from this version's metrics`},
		{"no current release", evSubject(`{"auc": 0.95}`), Failed, "no current release in prod"},
		{"current lacks metric", withCurrent(evSubject(`{"auc": 0.95}`), `{"f1": 1}`), Failed, `missing from current release 1.3.0`},
		{"no evidence", subject(registry.KindModel), Failed, `no "metrics" evidence`},
		{"not an object", evSubject(`[1,2]`), Failed, "not a JSON object"},
		{"surrounding whitespace", withCurrent(evSubject("\n{\"auc\": 0.93}\n"), "{\"auc\": 0.931}\t\n"), Passed, "1 metric rule(s) hold"},
		// The gate reads stored evidence as strictly as it was validated
		// at attach time: a second value cannot change the verdict.
		{"trailing garbage", withCurrent(evSubject(`{"auc": 0.93} trailing garbage`), `{"auc": 0.931}`), Failed, "exactly one JSON value"},
		{"second object", withCurrent(evSubject(`{"auc": 0.5}{"auc": 0.99}`), `{"auc": 0.931}`), Failed, "exactly one JSON value"},
		{"number beyond float64", withCurrent(evSubject(`{"eval": {"auc": 1e999}}`), `{"auc": 0.931}`), Failed, `metric "eval.auc": 1e999 is out of range`},
		{"current trailing garbage", withCurrent(evSubject(`{"auc": 0.93}`), `{"auc": 0.931}]`), Failed, "current release 1.3.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.Run(context.Background(), tt.subject)
			wantStatus(t, r, tt.want)
			if !strings.Contains(r.Reason, tt.contains) {
				t.Errorf("reason %q does not contain %q", r.Reason, tt.contains)
			}
		})
	}
}

func evSubject(metrics string) *Subject {
	s := subject(registry.KindModel)
	s.Evidence = []Evidence{memEvidence("metrics", []byte(metrics))}
	return s
}
