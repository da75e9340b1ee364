package gates

import (
	"context"
	"fmt"
	"time"
)

// Engine evaluates policies. The zero value is ready to use.
type Engine struct {
	// Clock times the run (StartedAt and durations); nil means time.Now.
	// Checks never read it: they use Subject.Now.
	Clock func() time.Time
}

// Report is the outcome of one gate run: every policy entry's result, in
// policy order, and the verdict.
type Report struct {
	PolicyDigest string        `json:"policyDigest"`
	Environment  string        `json:"environment"`
	Passed       bool          `json:"passed"`
	Results      []Result      `json:"results"`
	StartedAt    time.Time     `json:"startedAt"`
	Duration     time.Duration `json:"duration"`
}

// Failures returns the results that block the promotion.
func (r Report) Failures() []Result {
	var out []Result
	for _, res := range r.Results {
		if res.Blocking() {
			out = append(out, res)
		}
	}
	return out
}

// Evaluate runs every check of p against s, one after another in policy
// order, and returns the report. A zero s.Now is taken as the run's start
// time. Entries that do not apply to s.Kind are
// reported as Skipped. The verdict passes only when no required check
// failed or errored. A check that panics is reported as Errored; a
// cancelled context makes the remaining checks Errored.
func (e Engine) Evaluate(ctx context.Context, p *Policy, s *Subject) Report {
	now := e.Clock
	if now == nil {
		now = time.Now
	}
	start := now()
	rep := Report{PolicyDigest: p.Digest, Environment: p.Environment, StartedAt: start, Passed: true}
	if s.Now.IsZero() { // judge "now" consistently across checks
		cp := *s
		cp.Now = start
		s = &cp
	}
	for _, pc := range p.Checks {
		t0 := now()
		var res Result
		switch {
		case !pc.AppliesTo(s.Kind):
			res = skip("applies to kinds %v, not %s", pc.Kinds, s.Kind)
		case ctx.Err() != nil:
			res = errored(nil, "not run: %v", ctx.Err())
		case p.Environment != s.Target:
			res = errored(nil, "policy is for environment %q, promotion targets %q", p.Environment, s.Target)
		default:
			res = runCheck(ctx, pc.Check, s)
		}
		res.Check = pc.Check.Name()
		res.Family = pc.Family
		res.Required = pc.Required
		res.Duration = now().Sub(t0)
		if res.Blocking() {
			rep.Passed = false
		}
		rep.Results = append(rep.Results, res)
	}
	rep.Duration = now().Sub(start)
	return rep
}

func runCheck(ctx context.Context, c Check, s *Subject) (res Result) {
	defer func() {
		if r := recover(); r != nil {
			res = errored(nil, "check panicked: %s", truncate(fmt.Sprint(r), 200))
		}
	}()
	res = c.Run(ctx, s)
	switch res.Status {
	case Passed, Failed, Errored, Skipped:
	default:
		res = errored(res.Details, "check returned unknown status %q", res.Status)
	}
	if res.Reason == "" {
		res.Reason = string(res.Status)
	}
	return res
}
