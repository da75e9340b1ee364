package gates

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// metricRules evaluates policy rules over the version's metrics evidence
// (`metrics`) and the target environment's current release's metrics
// (`current.metrics`), e.g. no-regression rules. The expression engine is
// behind metricProgram so the evidence handling is independent of it.
type metricRules struct {
	evidenceType string
	maxBytes     int64
	rules        []metricRule
}

type metricRule struct {
	name string
	expr string
	prog metricProgram
}

// metricProgram is one compiled rule expression.
type metricProgram interface {
	// eval returns the rule's verdict, or an error when it cannot be
	// decided (for example a missing key).
	eval(ctx context.Context, metrics, current map[string]any) (bool, error)
}

type metricRulesParams struct {
	EvidenceType string            `yaml:"evidence_type"`
	MaxFileBytes int64             `yaml:"max_file_bytes"`
	Rules        []metricRuleParam `yaml:"rules"`
}

type metricRuleParam struct {
	Name string `yaml:"name"`
	Expr string `yaml:"expr"`
}

func newMetricRulesCheck(n *yaml.Node) (Check, error) {
	p := metricRulesParams{EvidenceType: "metrics", MaxFileBytes: 4 << 20}
	if err := decodeStrict(n, &p); err != nil {
		return nil, err
	}
	if !validEvidenceType(p.EvidenceType) {
		return nil, errAt(n, "evidence_type: %q is not an evidence type name", truncate(p.EvidenceType, 40))
	}
	if p.MaxFileBytes <= 0 {
		return nil, errAt(n, "max_file_bytes must be positive")
	}
	if len(p.Rules) == 0 {
		return nil, errAt(n, "rules: at least one rule is required")
	}
	ruleNodes := fieldNode(n, "rules")
	c := &metricRules{evidenceType: p.EvidenceType, maxBytes: p.MaxFileBytes}
	seen := map[string]bool{}
	for i, r := range p.Rules {
		at := n
		if ruleNodes != nil && i < len(ruleNodes.Content) {
			at = ruleNodes.Content[i]
			if e := fieldNode(at, "expr"); e != nil {
				at = e
			}
		}
		if r.Name == "" || seen[r.Name] {
			return nil, errAt(at, "rule %d: a unique name is required", i+1)
		}
		seen[r.Name] = true
		if strings.TrimSpace(r.Expr) == "" || len(r.Expr) > 4096 {
			return nil, errAt(at, "rule %q: expr must be 1..4096 characters", r.Name)
		}
		prog, err := compileMetricExpr(r.Expr)
		if err != nil {
			return nil, errAt(at, "rule %q: %v", r.Name, err)
		}
		c.rules = append(c.rules, metricRule{name: r.Name, expr: r.Expr, prog: prog})
	}
	return c, nil
}

func (*metricRules) Name() string { return "metric-rules" }

// RuleOutcome is the verdict of one metric rule.
type RuleOutcome struct {
	Rule   string `json:"rule"`
	Expr   string `json:"expr"`
	Status Status `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// MetricDetails lists every rule's outcome.
type MetricDetails struct {
	CurrentVersion string        `json:"currentVersion,omitempty"`
	Rules          []RuleOutcome `json:"rules"`
}

func (c *metricRules) Run(ctx context.Context, s *Subject) Result {
	d := MetricDetails{}
	metrics, res := c.load(ctx, s.Evidence, "this version")
	if res != nil {
		return *res
	}
	current := map[string]any{}
	if s.Current != nil {
		d.CurrentVersion = s.Current.Version
		if len(evidenceOfType(s.Current.Evidence, c.evidenceType)) > 0 {
			m, res := c.load(ctx, s.Current.Evidence, "current release "+s.Current.Version)
			if res != nil {
				return *res
			}
			current = m
		}
	}
	failed := 0
	for _, r := range c.rules {
		o := RuleOutcome{Rule: r.name, Expr: r.expr, Status: Passed}
		ok, err := r.prog.eval(ctx, metrics, current)
		switch {
		case err != nil && ctx.Err() != nil:
			return errored(d, "rule %q: %v", r.name, ctx.Err())
		case err != nil:
			o.Status, o.Reason = Failed, explainMetricError(err, metrics, s)
		case !ok:
			o.Status, o.Reason = Failed, "expression is false"
		}
		if o.Status != Passed {
			failed++
		}
		d.Rules = append(d.Rules, o)
	}
	if failed > 0 {
		for _, o := range d.Rules {
			if o.Status != Passed {
				return fail(d, "%d of %d metric rule(s) failed, first %q: %s", failed, len(d.Rules), o.Rule, o.Reason)
			}
		}
	}
	return pass(d, "%d metric rule(s) hold", len(d.Rules))
}

// load merges the metrics evidence documents (JSON objects) of one version.
func (c *metricRules) load(ctx context.Context, ev []Evidence, whose string) (map[string]any, *Result) {
	docs := evidenceOfType(ev, c.evidenceType)
	if len(docs) == 0 {
		r := fail(nil, "no %q evidence attached to %s", c.evidenceType, whose)
		return nil, &r
	}
	out := map[string]any{}
	for i, e := range docs {
		b, err := readLimited(ctx, e.Open, c.maxBytes)
		var de *docError
		if errors.As(err, &de) {
			r := fail(nil, "%s evidence #%d of %s: %s", c.evidenceType, i+1, whose, de.msg)
			return nil, &r
		}
		if err != nil {
			r := errored(nil, "%s evidence #%d of %s: %v", c.evidenceType, i+1, whose, err)
			return nil, &r
		}
		m, err := parseMetrics(b)
		if errors.Is(err, errTrailingData) {
			r := fail(nil, "%s evidence #%d of %s is not exactly one JSON value: %v", c.evidenceType, i+1, whose, err)
			return nil, &r
		}
		if err != nil {
			r := fail(nil, "%s evidence #%d of %s is not a JSON object", c.evidenceType, i+1, whose)
			return nil, &r
		}
		if _, err := metricsToFloat("", m); err != nil {
			r := fail(nil, "%s evidence #%d of %s: %v", c.evidenceType, i+1, whose, err)
			return nil, &r
		}
		for k, v := range m {
			out[k] = v
		}
	}
	return out, nil
}

// metricsToFloat turns the json.Number values of parsed metrics into
// float64 in place: rules compare numbers, and CEL knows float64, not
// json.Number. A number beyond float64 is refused rather than becoming
// ±Inf, which would make any comparison with it meaningless.
func metricsToFloat(path string, v any) (any, error) {
	switch t := v.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(t), 64)
		if err != nil {
			return nil, fmt.Errorf("metric %q: %s is out of range", truncate(path, 80), truncate(string(t), 40))
		}
		return f, nil
	case map[string]any:
		for k, e := range t {
			p := k
			if path != "" {
				p = path + "." + k
			}
			f, err := metricsToFloat(p, e)
			if err != nil {
				return nil, err
			}
			t[k] = f
		}
	case []any:
		for i, e := range t {
			f, err := metricsToFloat(fmt.Sprintf("%s[%d]", path, i), e)
			if err != nil {
				return nil, err
			}
			t[i] = f
		}
	}
	return v, nil
}

var noSuchKey = regexp.MustCompile(`no such key: ?(\S+)`)

// explainMetricError turns an evaluation error into a one-line reason that
// names the missing metric and where it is missing from.
func explainMetricError(err error, metrics map[string]any, s *Subject) string {
	m := noSuchKey.FindStringSubmatch(err.Error())
	if m == nil {
		return truncate("evaluation error: "+err.Error(), 200)
	}
	key := strings.Trim(m[1], `"'`)
	if _, ok := metrics[key]; !ok {
		return fmt.Sprintf("metric %q is missing from this version's metrics", key)
	}
	if s.Current == nil {
		return fmt.Sprintf("no current release in %s to compare %q with", s.Target, key)
	}
	return fmt.Sprintf("metric %q is missing from current release %s's metrics", key, s.Current.Version)
}
