package gates

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/registry"
)

func TestPromotionOrder(t *testing.T) {
	c := buildCheck(t, "promotion-order", "")
	tests := []struct {
		name           string
		source, target string
		want           Status
	}{
		{"next env", "staging", "prod", Passed},
		{"dev to staging", "dev", "staging", Passed},
		{"skip staging", "dev", "prod", Failed},
		{"backwards", "prod", "staging", Failed},
		{"into first", "x", "dev", Failed},
		{"unknown target", "staging", "qa", Errored},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := subject(registry.KindModel)
			s.Source, s.Target = tt.source, tt.target
			wantStatus(t, c.Run(context.Background(), s), tt.want)
		})
	}
}

func TestSoakTime(t *testing.T) {
	c := buildCheck(t, "soak-time", "min: 2d")
	tests := []struct {
		name      string
		published time.Time
		want      Status
	}{
		{"long enough", testNow.Add(-49 * time.Hour), Passed},
		{"exactly", testNow.Add(-48 * time.Hour), Passed},
		{"too short", testNow.Add(-47 * time.Hour), Failed},
		{"future", testNow.Add(time.Hour), Failed},
		{"unknown", time.Time{}, Errored},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := subject(registry.KindModel)
			s.PublishedAt = tt.published
			wantStatus(t, c.Run(context.Background(), s), tt.want)
		})
	}
}

func TestFreezeWindows(t *testing.T) {
	// Friday 18:00 Berlin for 62h (until Monday 08:00), and the year end.
	c := buildCheck(t, "freeze-windows", `windows:
  - name: weekend
    cron: "0 18 * * FRI"
    duration: 62h
    timezone: Europe/Berlin
  - name: year-end
    start: 2026-12-22
    end: 2027-01-04
    timezone: America/New_York`)
	berlin, _ := time.LoadLocation("Europe/Berlin")
	ny, _ := time.LoadLocation("America/New_York")
	tests := []struct {
		name   string
		now    time.Time
		want   Status
		window string
	}{
		{"wednesday", time.Date(2026, 11, 25, 12, 0, 0, 0, berlin), Passed, ""},
		{"friday before", time.Date(2026, 11, 27, 17, 59, 0, 0, berlin), Passed, ""},
		{"friday start", time.Date(2026, 11, 27, 18, 0, 0, 0, berlin), Failed, "weekend"},
		{"sunday", time.Date(2026, 11, 29, 10, 0, 0, 0, berlin), Failed, "weekend"},
		{"monday 07:59", time.Date(2026, 11, 30, 7, 59, 0, 0, berlin), Failed, "weekend"},
		{"monday 08:00", time.Date(2026, 11, 30, 8, 0, 0, 0, berlin), Passed, ""},
		{"friday start in UTC", time.Date(2026, 11, 27, 17, 0, 0, 0, time.UTC), Failed, "weekend"},
		{"year end", time.Date(2026, 12, 23, 12, 0, 0, 0, ny), Failed, "year-end"},
		{"year end over", time.Date(2027, 1, 5, 12, 0, 0, 0, ny), Passed, ""},
		{"year end not yet in NY", time.Date(2026, 12, 22, 4, 0, 0, 0, time.UTC), Passed, ""},
		{"year end started in NY", time.Date(2026, 12, 22, 6, 0, 0, 0, time.UTC), Failed, "year-end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := subject(registry.KindModel)
			s.Now = tt.now
			r := c.Run(context.Background(), s)
			wantStatus(t, r, tt.want)
			if tt.window != "" && !strings.Contains(r.Reason, tt.window) {
				t.Errorf("reason %q does not name window %q", r.Reason, tt.window)
			}
		})
	}
}

func TestApprovals(t *testing.T) {
	c := buildCheck(t, "approvals", "count: 2\nmax_age: 72h")
	ok := func(actor string) Approval {
		return Approval{Actor: actor, Role: "approver", Environment: "prod", At: testNow.Add(-time.Hour)}
	}
	tests := []struct {
		name      string
		approvals []Approval
		want      Status
	}{
		{"two distinct", []Approval{ok("alice"), ok("bob")}, Passed},
		{"same twice", []Approval{ok("alice"), ok("alice")}, Failed},
		{"one", []Approval{ok("alice")}, Failed},
		{"none", nil, Failed},
		{"wrong role", []Approval{ok("alice"), {Actor: "bob", Role: "publisher", Environment: "prod", At: testNow}}, Failed},
		{"wrong env", []Approval{ok("alice"), {Actor: "bob", Role: "approver", Environment: "staging", At: testNow}}, Failed},
		{"expired", []Approval{ok("alice"), {Actor: "bob", Role: "approver", Environment: "prod", At: testNow.Add(-73 * time.Hour)}}, Failed},
		{"self approval", []Approval{ok("alice"), ok("ci@example.com")}, Failed},
		{"three with one expired", []Approval{ok("alice"), ok("carol"), {Actor: "bob", Role: "approver", Environment: "prod", At: testNow.Add(-100 * time.Hour)}}, Passed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := subject(registry.KindModel)
			s.Approvals = tt.approvals
			wantStatus(t, c.Run(context.Background(), s), tt.want)
		})
	}
}
