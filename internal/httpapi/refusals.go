package httpapi

import (
	"strconv"
	"sync"

	"golang.org/x/time/rate"

	"github.com/stagegate/stagegate/registry"
)

// Unauthenticated refusals are audited at a bounded rate: anyone can send
// bad tokens, and one audit row per attempt would let a flood grow the
// database without bound. Within the budget each refusal is a row; past it
// they are counted, and the next row written carries the count of those
// left out ("suppressed"), so the trail still shows that a flood happened
// and how large it was. Each replica keeps its own budget.
const (
	unauthenticatedAuditRate  = 5  // rows per second, sustained
	unauthenticatedAuditBurst = 50 // rows at once
)

type refusalBudget struct {
	limiter    *rate.Limiter
	mu         sync.Mutex
	suppressed int64
}

func newRefusalBudget() *refusalBudget {
	return &refusalBudget{limiter: rate.NewLimiter(unauthenticatedAuditRate, unauthenticatedAuditBurst)}
}

// admit reports whether this refusal gets an audit row. When it does,
// details gains the number of refusals left out since the last row.
func (b *refusalBudget) admit(details map[string]string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.limiter.Allow() {
		b.suppressed++
		return false
	}
	if b.suppressed > 0 {
		details["suppressed"] = strconv.FormatInt(b.suppressed, 10)
		b.suppressed = 0
	}
	return true
}

// withGateRun adds to the details of a refusal's audit event the id of the
// gate run that refused it (a promotion or rollback whose gates failed), so
// the trail leads to the stored report. Only the id: the report is in the
// gate run, and an audit row stays small.
func withGateRun(d map[string]string, err error) map[string]string {
	e := registry.AsError(err)
	if e == nil || e.Code != registry.CodeGateFailed.Name {
		return d
	}
	details, _ := e.Details.(map[string]any)
	id, _ := details["gateRunId"].(string)
	if id == "" {
		return d
	}
	if d == nil {
		d = map[string]string{}
	}
	d["gateRunId"] = truncate(id, 100)
	return d
}
