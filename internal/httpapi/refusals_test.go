package httpapi

import (
	"testing"

	"golang.org/x/time/rate"
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
