package metadata_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/internal/metadata"
	"github.com/stagegate/stagegate/registry"
)

func auditEvent(env string) audit.Event {
	return audit.Event{Environment: env, Actor: "ci", Action: "artifact.pull", Target: "a@1.0.0", Outcome: audit.Success}
}

// checkUnboundAudit reads the audit table through raw, a second connection
// to s's database, because no handle can see an unbound event: it must be
// stored with no environment whatever the caller claimed.
func checkUnboundAudit(t *testing.T, s *metadata.Store, raw *sql.DB) {
	ctx := context.Background()
	for _, claimed := range []string{"", "dev", "nope"} {
		t.Run(claimed, func(t *testing.T) {
			ev := auditEvent(claimed)
			ev.Action, ev.Outcome, ev.ErrorCode = "auth.refused", audit.Denied, registry.CodeUnauthenticated.Name
			id, err := s.AppendUnboundAudit(ctx, ev)
			if err != nil {
				t.Fatalf("AppendUnboundAudit: %v", err)
			}
			var stored string
			if err := raw.QueryRowContext(ctx, `SELECT environment FROM audit_events WHERE id = $1`, id).Scan(&stored); err != nil {
				t.Fatalf("read event %d: %v", id, err)
			}
			if stored != "" {
				t.Errorf("event claiming %q stored with environment %q, want \"\"", claimed, stored)
			}
		})
	}
}
