package httpapi

import (
	"errors"
	"fmt"
	"testing"

	"golang.org/x/time/rate"

	"github.com/stagegate/stagegate/registry"
)

func TestRefusalBudget(t *testing.T) {
	b := newRefusalBudget()
	admitted := 0
	for range 3 * unauthenticatedAuditBurst {
		if b.admit(map[string]string{}) {
			admitted++
		}
	}
	// The burst, plus whatever the sustained rate refilled meanwhile.
	if admitted < unauthenticatedAuditBurst || admitted > unauthenticatedAuditBurst+5 {
		t.Fatalf("admitted %d of %d refusals, want about the burst of %d", admitted, 3*unauthenticatedAuditBurst, unauthenticatedAuditBurst)
	}
	b.limiter.SetLimit(rate.Inf)
	details := map[string]string{}
	if !b.admit(details) || details["suppressed"] == "" {
		t.Fatalf("the next admitted refusal does not carry the suppressed count: %v", details)
	}
	details = map[string]string{}
	if !b.admit(details) || details["suppressed"] != "" {
		t.Fatalf("the count is reported twice: %v", details)
	}
}

func TestWithGateRun(t *testing.T) {
	gateFailed := func(d any) error {
		return registry.CodeGateFailed.Errorf("refused").WithDetails(d)
	}
	tests := []struct {
		name string
		err  error
		want string // the gateRunId detail; "" for none
	}{
		{"promotion refused", gateFailed(map[string]any{"gateRunId": "gr_1", "report": map[string]any{"passed": false}}), "gr_1"},
		{"wrapped", fmt.Errorf("promote: %w", gateFailed(map[string]any{"gateRunId": "gr_2"})), "gr_2"},
		{"no run id", gateFailed(map[string]any{"report": nil}), ""},
		{"details of another shape", gateFailed("text"), ""},
		{"id not a string", gateFailed(map[string]any{"gateRunId": 7}), ""},
		{"another code", registry.CodeNotEligible.Errorf("no").WithDetails(map[string]any{"gateRunId": "gr_3"}), ""},
		{"not an API error", errors.New("boom"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := withGateRun(map[string]string{"method": "POST"}, tt.err)
			if d["gateRunId"] != tt.want || d["method"] != "POST" {
				t.Errorf("details = %v, want gateRunId %q beside the route", d, tt.want)
			}
			if _, ok := d["report"]; ok {
				t.Error("the report was copied into the audit details")
			}
		})
	}
	if d := withGateRun(nil, gateFailed(map[string]any{"gateRunId": "gr_4"})); d["gateRunId"] != "gr_4" {
		t.Errorf("nil details: %v", d)
	}
}
