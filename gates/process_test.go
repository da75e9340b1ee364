package gates

import (
	"context"
	"slices"
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
	two := buildCheck(t, "approvals", "count: 2\nmax_age: 72h")
	one := buildCheck(t, "approvals", "count: 1")
	self := buildCheck(t, "approvals", "count: 1\nallow_self_approval: true")
	// by is an approval by owner through a key minted on the server host.
	by := func(owner string) Approval {
		return Approval{Actor: owner + "-key", Identity: owner, KeyCreatedBy: "cli:keys-create", Role: "approver", Environment: "prod", At: testNow.Add(-time.Hour)}
	}
	mintedBy := func(owner, minter string) Approval { a := by(owner); a.KeyCreatedBy = minter; return a }
	with := func(a Approval, f func(*Approval)) Approval { f(&a); return a }
	const promoter = "ci@example.com" // subject()'s promoting identity
	tests := []struct {
		name      string
		check     Check
		approvals []Approval
		promoter  string // overrides subject()'s identity when set
		keyMinter string // who minted the promoting key
		want      Status
		counted   []string
		rules     []string // Discount* of the approvals that did not count, in order
	}{
		{"distinct people count", two, []Approval{by("alice"), by("bob")}, "", "", Passed, []string{"alice", "bob"}, nil},
		{"same person twice counts once", two, []Approval{by("alice"), by("alice")}, "", "", Failed, []string{"alice"}, nil},
		{"same person through two keys counts once", two, []Approval{by("alice"), with(by("alice"), func(a *Approval) { a.Actor = "alice-laptop" })}, "", "", Failed, []string{"alice"}, nil},
		{"case does not make another person", two, []Approval{by("alice@example.com"), by("Alice@Example.com")}, "", "", Failed, []string{"alice@example.com"}, nil},
		{"one of two", two, []Approval{by("alice")}, "", "", Failed, []string{"alice"}, nil},
		{"none", two, nil, "", "", Failed, nil, nil},
		{"promoter's own approval not counted", two, []Approval{by("alice"), by(promoter)}, "", "", Failed, []string{"alice"}, []string{DiscountSelf}},
		{"promoter's own approval through another key not counted", one, []Approval{with(by(promoter), func(a *Approval) { a.Actor = "rubber-stamp" })}, "", "", Failed, nil, []string{DiscountSelf}},
		{"promoter's own approval, in another case", one, []Approval{by("CI@example.com")}, "", "", Failed, nil, []string{DiscountSelf}},
		{"approval through a key minted by the promoter not counted", one, []Approval{mintedBy("bob", promoter)}, "", "", Failed, nil, []string{DiscountMintedByPromoter}},
		{"approval through a key minted by the promoter, self approval allowed", self, []Approval{mintedBy("bob", promoter)}, "", "", Failed, nil, []string{DiscountMintedByPromoter}},
		{"approval by whoever minted the promoting key not counted", one, []Approval{by("dave")}, "", "dave", Failed, nil, []string{DiscountMintedPromoter}},
		{"approval through a key minted by someone else counts", one, []Approval{mintedBy("bob", "dave")}, "", "", Passed, []string{"bob"}, nil},
		{"self approval allowed", self, []Approval{by(promoter)}, "", "", Passed, []string{promoter}, nil},
		{"promoter without identity", one, []Approval{by("alice")}, "-", "", Failed, nil, nil},
		{"approving key without owner", one, []Approval{with(by("alice"), func(a *Approval) { a.Identity = "" })}, "", "", Failed, nil, []string{DiscountNoIdentity}},
		{"wrong role", two, []Approval{by("alice"), with(by("bob"), func(a *Approval) { a.Role = "publisher" })}, "", "", Failed, []string{"alice"}, []string{DiscountRole}},
		{"wrong env", two, []Approval{by("alice"), with(by("bob"), func(a *Approval) { a.Environment = "staging" })}, "", "", Failed, []string{"alice"}, []string{DiscountEnvironment}},
		{"expired", two, []Approval{by("alice"), with(by("bob"), func(a *Approval) { a.At = testNow.Add(-73 * time.Hour) })}, "", "", Failed, []string{"alice"}, []string{DiscountExpired}},
		{"future", two, []Approval{by("alice"), with(by("bob"), func(a *Approval) { a.At = testNow.Add(time.Hour) })}, "", "", Failed, []string{"alice"}, []string{DiscountFuture}},
		{"three with one expired", two, []Approval{by("alice"), by("carol"), with(by("bob"), func(a *Approval) { a.At = testNow.Add(-100 * time.Hour) })}, "", "", Passed, []string{"alice", "carol"}, []string{DiscountExpired}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := subject(registry.KindModel)
			s.Approvals = tt.approvals
			switch tt.promoter {
			case "":
			case "-":
				s.Identity = ""
			default:
				s.Identity = tt.promoter
			}
			s.KeyCreatedBy = tt.keyMinter
			r := tt.check.Run(context.Background(), s)
			wantStatus(t, r, tt.want)
			d, ok := r.Details.(ApprovalDetails)
			if !ok {
				t.Fatalf("details %T, want ApprovalDetails", r.Details)
			}
			var rules []string
			for _, x := range d.Discounted {
				if x.Reason == "" || x.Key == "" {
					t.Errorf("discounted approval without key or reason: %+v", x)
				}
				rules = append(rules, x.Rule)
			}
			if !slices.Equal(d.Counted, tt.counted) && len(d.Counted)+len(tt.counted) > 0 {
				t.Errorf("counted %v, want %v", d.Counted, tt.counted)
			}
			if !slices.Equal(rules, tt.rules) {
				t.Errorf("discounted %v (%+v), want %v", rules, d.Discounted, tt.rules)
			}
		})
	}
}
