package rollback_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/registry"
	"github.com/stagegate/stagegate/rollback"
	"github.com/stagegate/stagegate/rollback/alertmanager"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("alertmanager/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func outcomes(rs []rollback.AlertResult) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, string(r.Outcome))
	}
	return strings.Join(parts, " ")
}

// TestHandleAlerts: the fixture's firing alert rolls model back once; its
// resolved and unlabelled alerts do nothing; a repeat does nothing.
func TestHandleAlerts(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	staging := f.env("staging")
	f.promote("1.0.0")
	r2 := f.promote("1.1.0") // 09:02; the alert started 09:10
	f.clock.Set(time.Date(2026, 6, 1, 9, 11, 0, 0, time.UTC))
	w, err := alertmanager.Parse(readFixture(t, "firing.json"))
	if err != nil {
		t.Fatal(err)
	}
	got := f.svc.HandleAlerts(ctx, staging, "req-1", w)
	if outcomes(got) != "rolled-back ignored ignored" {
		t.Fatalf("outcomes %q: %+v", outcomes(got), got)
	}
	rel := got[0].Release
	if rel == nil || rel.Version != "1.0.0" || rel.Number != 3 || rel.Actor != rollback.AlertActor || rel.PreviousID != r2.ID ||
		rel.Reason != "FraudDetectorErrorRate: 5xx rate above 5% for 10 minutes" || rel.TriggeredBy != "alertmanager:a1b2c3d4e5f60718" ||
		got[0].GateRunID != rel.GateRunID {
		t.Fatalf("rollback release %+v (result %+v)", rel, got[0])
	}

	// Alertmanager repeats a firing alert every repeat_interval.
	f.clock.Advance(4 * time.Hour)
	again := f.svc.HandleAlerts(ctx, staging, "req-2", w)
	if outcomes(again) != "already-rolled-back ignored ignored" || again[0].Release.ID != rel.ID {
		t.Fatalf("repeat: %+v", again)
	}
	if list, _ := staging.Metadata().ListReleases(ctx, "model"); len(list) != 3 {
		t.Fatalf("%d releases after a repeated alert, want 3", len(list))
	}
	events, err := staging.Metadata().QueryAudit(ctx, audit.Filter{Action: rollback.ActionRollback})
	if err != nil || len(events) != 2 {
		t.Fatalf("audit: %+v %v", events, err)
	}
	if e := events[0]; e.Actor != rollback.AlertActor || e.RequestID != "req-2" || e.Details["outcome"] != "already-rolled-back" || e.Details["alert"] != "a1b2c3d4e5f60718" {
		t.Errorf("repeat audit event %+v", e)
	}
	if e := events[1]; e.Actor != rollback.AlertActor || e.Details["triggeredBy"] != "alertmanager:a1b2c3d4e5f60718" || e.Outcome != audit.Success {
		t.Errorf("rollback audit event %+v", e)
	}
	resolved, _ := alertmanager.Parse(readFixture(t, "resolved.json"))
	if out := f.svc.HandleAlerts(ctx, staging, "req-3", resolved); outcomes(out) != "ignored" {
		t.Errorf("resolved: %+v", out)
	}
}

// alert is a firing alert on artifact, started at 09:10.
func alert(fp, artifact string, labels ...string) alertmanager.Alert {
	a := alertmanager.Alert{Status: alertmanager.Firing, Fingerprint: fp, StartsAt: time.Date(2026, 6, 1, 9, 10, 0, 0, time.UTC),
		Labels: map[string]string{"alertname": "ErrorRate", rollback.LabelArtifact: artifact}, Annotations: map[string]string{"summary": "too many errors"}}
	for i := 0; i+1 < len(labels); i += 2 {
		a.Labels[labels[i]] = labels[i+1]
	}
	return a
}

// TestHandleAlertsGuards: the guards an unattended trigger needs.
func TestHandleAlertsGuards(t *testing.T) {
	early := alert("f1", "model")
	early.StartsAt = time.Date(2026, 6, 1, 9, 1, 30, 0, time.UTC) // between release 1 and 2
	noFingerprint := alert("", "model")
	tests := []struct {
		name    string
		setup   func(f *fixture)
		alerts  []alertmanager.Alert
		want    string
		detail  string // in the first result's detail
		code    string // of the first result
		release int    // releases of model afterwards
	}{
		{"version label is current", nil, []alertmanager.Alert{alert("f1", "model", rollback.LabelVersion, "v1.1.0")}, "rolled-back", "", "", 3},
		{"version label is not current", nil, []alertmanager.Alert{alert("f1", "model", rollback.LabelVersion, "1.0.0")}, "skipped", "release 2 serves 1.1.0", "", 2},
		{"bad version label", nil, []alertmanager.Alert{alert("f1", "model", rollback.LabelVersion, "latest")}, "refused", "", registry.CodeInvalidVersion.Name, 2},
		{"started before the current release", nil, []alertmanager.Alert{early}, "skipped", "about an earlier release", "", 2},
		{"current release is a rollback", func(f *fixture) {
			if _, err := f.svc.Rollback(context.Background(), f.env("staging"), oncall, rollback.Request{Name: "model", Reason: "by hand"}); err != nil {
				f.t.Fatal(err)
			}
		}, []alertmanager.Alert{alert("f1", "model")}, "skipped", "is a rollback by oncall", "", 3},
		{"two alerts on one artifact", nil, []alertmanager.Alert{alert("f1", "model"), alert("f2", "model")}, "rolled-back skipped", "", "", 3},
		{"no fingerprint", nil, []alertmanager.Alert{noFingerprint, noFingerprint}, "rolled-back skipped", "", "", 3},
		{"never released", nil, []alertmanager.Alert{alert("f1", "other")}, "refused", "never been released", registry.CodeNotEligible.Name, 2},
		{"bad artifact name", nil, []alertmanager.Alert{alert("f1", "Not A Name")}, "refused", "", registry.CodeInvalidName.Name, 2},
		{"freeze window", func(f *fixture) { f.clock.Set(time.Date(2026, 12, 24, 0, 0, 0, 0, time.UTC)) },
			[]alertmanager.Alert{alert("f1", "model")}, "refused", "freeze-windows", registry.CodeGateFailed.Name, 2},
		{"unknown status", nil, []alertmanager.Alert{{Status: "pending", Labels: map[string]string{rollback.LabelArtifact: "model"}}}, "ignored", "unknown alert status", "", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.promote("1.0.0")
			f.promote("1.1.0")
			f.clock.Set(time.Date(2026, 6, 1, 9, 11, 0, 0, time.UTC))
			if tt.setup != nil {
				tt.setup(f)
			}
			got := f.svc.HandleAlerts(context.Background(), f.env("staging"), "req", alertmanager.Webhook{Version: "4", Alerts: tt.alerts})
			if outcomes(got) != tt.want || got[0].Code != tt.code {
				t.Fatalf("outcomes %q code %q, want %q %q: %+v", outcomes(got), got[0].Code, tt.want, tt.code, got)
			}
			if !strings.Contains(got[0].Detail, tt.detail) {
				t.Errorf("detail %q lacks %q", got[0].Detail, tt.detail)
			}
			if tt.code == registry.CodeGateFailed.Name && got[0].GateRunID == "" {
				t.Errorf("a gate refusal does not name its gate run: %+v", got[0])
			}
			if list, _ := f.env("staging").Metadata().ListReleases(context.Background(), "model"); len(list) != tt.release {
				t.Errorf("%d releases, want %d", len(list), tt.release)
			}
		})
	}
}
