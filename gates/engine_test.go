package gates

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/stagegate/stagegate/registry"
)

// fakeCheck is a hand-written Check whose behaviour a test sets.
type fakeCheck struct {
	name  string
	RunFn func(context.Context, *Subject) Result
}

var _ Check = (*fakeCheck)(nil)

func (f *fakeCheck) Name() string                               { return f.name }
func (f *fakeCheck) Run(ctx context.Context, s *Subject) Result { return f.RunFn(ctx, s) }

func constant(name string, st Status) *fakeCheck {
	return &fakeCheck{name: name, RunFn: func(context.Context, *Subject) Result { return Result{Status: st, Reason: name} }}
}

func TestEvaluateVerdict(t *testing.T) {
	type entry struct {
		st       Status
		kinds    []registry.Kind
		required bool
	}
	tests := []struct {
		name       string
		entries    []entry
		wantPassed bool
		wantStatus []Status
	}{
		{"all pass", []entry{{Passed, nil, true}, {Passed, nil, true}}, true, []Status{Passed, Passed}},
		{"one fails", []entry{{Passed, nil, true}, {Failed, nil, true}}, false, []Status{Passed, Failed}},
		{"errored blocks", []entry{{Errored, nil, true}}, false, []Status{Errored}},
		{"skipped does not block", []entry{{Skipped, nil, true}, {Passed, nil, true}}, true, []Status{Skipped, Passed}},
		{"advisory failure does not block", []entry{{Failed, nil, false}, {Passed, nil, true}}, true, []Status{Failed, Passed}},
		{"other kind is skipped, not run", []entry{{Failed, []registry.Kind{registry.KindModel}, true}}, true, []Status{Skipped}},
		{"unknown status is errored", []entry{{Status("maybe"), nil, true}}, false, []Status{Errored}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &Policy{Environment: "prod", Digest: "sha256:x"}
			for i, e := range tt.entries {
				p.Checks = append(p.Checks, PolicyCheck{Check: constant(string(rune('a'+i)), e.st), Family: FamilyProcess, Kinds: e.kinds, Required: e.required})
			}
			tick := time.Unix(0, 0)
			eng := Engine{Clock: func() time.Time { tick = tick.Add(time.Millisecond); return tick }}
			rep := eng.Evaluate(context.Background(), p, subject(registry.KindAgentConfig))
			if rep.Passed != tt.wantPassed {
				t.Errorf("Passed = %v, want %v", rep.Passed, tt.wantPassed)
			}
			var got []Status
			for _, r := range rep.Results {
				got = append(got, r.Status)
				if r.Family != FamilyProcess || r.Duration <= 0 || r.Check == "" {
					t.Errorf("engine did not fill result metadata: %+v", r)
				}
			}
			if diff := cmp.Diff(tt.wantStatus, got); diff != "" {
				t.Errorf("statuses (-want +got):\n%s", diff)
			}
			if rep.PolicyDigest != "sha256:x" || rep.Duration <= 0 || rep.StartedAt.IsZero() {
				t.Errorf("report metadata: %+v", rep)
			}
		})
	}
}

func TestEvaluatePanicAndCancel(t *testing.T) {
	boom := &fakeCheck{name: "boom", RunFn: func(context.Context, *Subject) Result { panic("nil map") }}
	p := &Policy{Environment: "prod", Checks: []PolicyCheck{{Check: boom, Required: true}, {Check: constant("ok", Passed), Required: true}}}
	rep := Engine{}.Evaluate(context.Background(), p, subject(registry.KindModel))
	if rep.Results[0].Status != Errored || rep.Results[1].Status != Passed || rep.Passed {
		t.Fatalf("panic handling: %+v", rep.Results)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep = Engine{}.Evaluate(ctx, p, subject(registry.KindModel))
	for _, r := range rep.Results {
		if r.Status != Errored {
			t.Errorf("cancelled run: %s is %s", r.Check, r.Status)
		}
	}
}

func TestEvaluateWrongEnvironment(t *testing.T) {
	p := &Policy{Environment: "staging", Checks: []PolicyCheck{{Check: constant("ok", Passed), Required: true}}}
	rep := Engine{}.Evaluate(context.Background(), p, subject(registry.KindModel))
	if rep.Passed || rep.Results[0].Status != Errored {
		t.Fatalf("a staging policy must not judge a prod promotion: %+v", rep.Results)
	}
}
