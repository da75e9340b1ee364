package gates

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"
)

// promotionOrder refuses skipping environments: the source must be the
// environment directly before the target in the configured order.
type promotionOrder struct{}

func newPromotionOrderCheck(n *yaml.Node) (Check, error) {
	var p noParams
	return promotionOrder{}, decodeStrict(n, &p)
}

func (promotionOrder) Name() string { return "promotion-order" }

// OrderDetails explains a promotion-order result.
type OrderDetails struct {
	Environments []string `json:"environments"`
	Source       string   `json:"source"`
	Target       string   `json:"target"`
	Expected     string   `json:"expectedSource,omitempty"`
}

func (promotionOrder) Run(_ context.Context, s *Subject) Result {
	d := OrderDetails{Environments: s.Environments, Source: s.Source, Target: s.Target}
	ti := slices.Index(s.Environments, s.Target)
	if ti < 0 {
		return errored(d, "target environment %q is not in the configured order %v", s.Target, s.Environments)
	}
	if ti == 0 {
		return fail(d, "%q is the first environment; nothing is promoted into it", s.Target)
	}
	d.Expected = s.Environments[ti-1]
	if s.Source != d.Expected {
		return fail(d, "promotion to %s must come from %s, not %q", s.Target, d.Expected, s.Source)
	}
	return pass(d, "%s -> %s follows the environment order", s.Source, s.Target)
}

// soakTime requires the version to have spent a minimum time in the source
// environment before it moves on.
type soakTime struct{ min time.Duration }

type soakParams struct {
	Min Duration `yaml:"min"`
}

func newSoakTimeCheck(n *yaml.Node) (Check, error) {
	var p soakParams
	if err := decodeStrict(n, &p); err != nil {
		return nil, err
	}
	if p.Min <= 0 {
		return nil, errAt(n, "min: a positive duration is required, e.g. min: 24h")
	}
	return soakTime{min: time.Duration(p.Min)}, nil
}

func (soakTime) Name() string { return "soak-time" }

// SoakDetails explains a soak-time result.
type SoakDetails struct {
	PublishedAt time.Time `json:"publishedAt"`
	Required    string    `json:"required"`
	Soaked      string    `json:"soaked"`
	ReadyAt     time.Time `json:"readyAt"`
}

func (c soakTime) Run(_ context.Context, s *Subject) Result {
	if s.PublishedAt.IsZero() {
		return errored(nil, "the time %s@%s arrived in %s is unknown", s.Name, s.Version, s.Source)
	}
	soaked := max(s.Now.Sub(s.PublishedAt), 0)
	d := SoakDetails{PublishedAt: s.PublishedAt, Required: Duration(c.min).String(),
		Soaked: soaked.Truncate(time.Second).String(), ReadyAt: s.PublishedAt.Add(c.min)}
	if soaked < c.min {
		return fail(d, "soaked %s in %s, %s required (ready at %s)", d.Soaked, s.Source, d.Required, d.ReadyAt.UTC().Format(time.RFC3339))
	}
	return pass(d, "soaked %s in %s (>= %s)", d.Soaked, s.Source, d.Required)
}

// freezeWindows blocks promotions during configured windows: recurring
// (cron start + duration) or one-off date ranges, each in a time zone.
type freezeWindows struct{ windows []freezeWindow }

type freezeWindow struct {
	name     string
	loc      *time.Location
	sched    cron.Schedule // recurring
	dur      time.Duration
	from, to time.Time // one-off range [from, to)
}

type freezeParams struct {
	Windows []freezeWindowParams `yaml:"windows"`
}

type freezeWindowParams struct {
	Name     string   `yaml:"name"`
	Cron     string   `yaml:"cron"`     // 5-field cron or @daily/@weekly...: window starts
	Duration Duration `yaml:"duration"` // length of a recurring window
	Start    string   `yaml:"start"`    // one-off: 2026-12-20 or 2026-12-20T18:00
	End      string   `yaml:"end"`      // one-off, exclusive
	Timezone string   `yaml:"timezone"` // IANA name; default UTC
}

func newFreezeWindowsCheck(n *yaml.Node) (Check, error) {
	var p freezeParams
	if err := decodeStrict(n, &p); err != nil {
		return nil, err
	}
	if len(p.Windows) == 0 {
		return nil, errAt(n, "windows: at least one window is required")
	}
	wnodes := fieldNode(n, "windows")
	parser := cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	var c freezeWindows
	for i, wp := range p.Windows {
		at := n
		if wnodes != nil && i < len(wnodes.Content) {
			at = wnodes.Content[i]
		}
		w, err := buildWindow(parser, wp)
		if err != nil {
			return nil, errAt(at, "window %d: %v", i+1, err)
		}
		c.windows = append(c.windows, w)
	}
	return c, nil
}

func buildWindow(parser cron.Parser, wp freezeWindowParams) (w freezeWindow, err error) {
	w.name = wp.Name
	if w.name == "" {
		return w, fmt.Errorf("name is required")
	}
	w.loc = time.UTC
	if wp.Timezone != "" {
		if w.loc, err = time.LoadLocation(wp.Timezone); err != nil {
			return w, fmt.Errorf("unknown timezone %q", truncate(wp.Timezone, 60))
		}
	}
	switch {
	case wp.Cron != "" && (wp.Start != "" || wp.End != ""):
		return w, fmt.Errorf("give either cron+duration or start+end, not both")
	case wp.Cron != "":
		if wp.Duration <= 0 {
			return w, fmt.Errorf("duration: a positive duration is required with cron")
		}
		if strings.Contains(wp.Cron, "TZ=") || strings.HasPrefix(wp.Cron, "@every") {
			return w, fmt.Errorf("cron %q: use the timezone field; @every is not a calendar schedule", truncate(wp.Cron, 60))
		}
		if w.sched, err = parseCron(parser, wp.Cron); err != nil {
			return w, fmt.Errorf("cron %q: %v", truncate(wp.Cron, 60), err)
		}
		w.dur = time.Duration(wp.Duration)
	case wp.Start != "" && wp.End != "":
		if wp.Duration != 0 {
			return w, fmt.Errorf("duration applies only to cron windows")
		}
		if w.from, err = parseWhen(wp.Start, w.loc); err != nil {
			return w, fmt.Errorf("start: %v", err)
		}
		if w.to, err = parseWhen(wp.End, w.loc); err != nil {
			return w, fmt.Errorf("end: %v", err)
		}
		if !w.to.After(w.from) {
			return w, fmt.Errorf("end must be after start")
		}
	default:
		return w, fmt.Errorf("give cron+duration or start+end")
	}
	return w, nil
}

// parseCron guards the parser: robfig/cron panics on a few malformed specs.
func parseCron(p cron.Parser, spec string) (s cron.Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed schedule")
		}
	}()
	return p.Parse(spec)
}

func parseWhen(s string, loc *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("invalid time %q: want 2006-01-02, 2006-01-02T15:04 or RFC 3339", truncate(s, 60))
}

// active returns the start and end of the occurrence of w containing now.
func (w freezeWindow) active(now time.Time) (from, to time.Time, ok bool) {
	if w.sched == nil {
		return w.from, w.to, !now.Before(w.from) && now.Before(w.to)
	}
	// An occurrence starting at a covers now iff now-dur < a <= now; Next
	// returns the first start strictly after its argument.
	a := w.sched.Next(now.In(w.loc).Add(-w.dur))
	if a.IsZero() || a.After(now) {
		return time.Time{}, time.Time{}, false
	}
	return a, a.Add(w.dur), true
}

func (freezeWindows) Name() string { return "freeze-windows" }

// FreezeDetails names the window that blocks a promotion.
type FreezeDetails struct {
	Window string    `json:"window"`
	From   time.Time `json:"from"`
	Until  time.Time `json:"until"`
}

func (c freezeWindows) Run(_ context.Context, s *Subject) Result {
	if s.Now.IsZero() {
		return errored(nil, "evaluation time is not set")
	}
	for _, w := range c.windows {
		if from, to, ok := w.active(s.Now); ok {
			d := FreezeDetails{Window: w.name, From: from.In(w.loc), Until: to.In(w.loc)}
			return fail(d, "freeze window %q is active until %s", w.name, d.Until.Format(time.RFC3339))
		}
	}
	return pass(nil, "no freeze window is active")
}

// approvals requires N approvals by distinct people holding the approver
// role for the target environment, none older than max_age, and none that
// the promoter could have given alone.
//
// People are key owners (Subject.Identity, Approval.Identity), never key
// names, so holding several keys does not multiply a person. An owner is
// whatever the key's minter wrote, so an approval through a key the
// promoter minted is treated as the promoter's, and so is one by whoever
// minted the promoting key. allow_self_approval relaxes only the promoter's
// own approval: minted identities never count as someone else.
type approvals struct {
	count     int
	role      string
	maxAge    time.Duration
	allowSelf bool
}

type approvalParams struct {
	Count             int      `yaml:"count"`
	Role              string   `yaml:"role"`
	MaxAge            Duration `yaml:"max_age"`
	AllowSelfApproval bool     `yaml:"allow_self_approval"`
}

func newApprovalsCheck(n *yaml.Node) (Check, error) {
	p := approvalParams{Count: 1, Role: "approver"}
	if err := decodeStrict(n, &p); err != nil {
		return nil, err
	}
	if p.Count < 1 || p.Count > 100 {
		return nil, errAt(n, "count: want 1..100, got %d", p.Count)
	}
	if p.Role == "" {
		return nil, errAt(n, "role must not be empty")
	}
	return approvals{count: p.Count, role: p.Role, maxAge: time.Duration(p.MaxAge), allowSelf: p.AllowSelfApproval}, nil
}

func (approvals) Name() string { return "approvals" }

// ApprovalDetails says whose approvals counted and why the others did not.
type ApprovalDetails struct {
	Required   int                  `json:"required"`
	Promoter   string               `json:"promoter"` // the promoting key's owner
	Counted    []string             `json:"counted"`  // distinct identities, sorted
	Discounted []DiscountedApproval `json:"discounted,omitempty"`
}

// DiscountedApproval is a recorded approval that did not count.
type DiscountedApproval struct {
	Key      string `json:"key"`                // the approving key's name
	Identity string `json:"identity,omitempty"` // its owner
	Rule     string `json:"rule"`               // one of the Discount* constants
	Reason   string `json:"reason"`
}

// Why an approval did not count. Stable: clients may switch on them.
const (
	DiscountNoIdentity       = "no-identity"         // the approving key has no owner
	DiscountEnvironment      = "other-environment"   // given for another environment
	DiscountRole             = "role"                // the key lacked the required role
	DiscountSelf             = "self-approval"       // the promoter's own identity
	DiscountMintedByPromoter = "minted-by-promoter"  // through a key the promoter minted
	DiscountMintedPromoter   = "minted-promoter-key" // by whoever minted the promoting key
	DiscountExpired          = "expired"
	DiscountFuture           = "future"
)

func (c approvals) Run(_ context.Context, s *Subject) Result {
	d := ApprovalDetails{Required: c.count, Promoter: s.Identity, Counted: []string{}}
	promoter, promoterMinter := identityKey(s.Identity), identityKey(s.KeyCreatedBy)
	if promoter == "" {
		// Neither the promoter's own approvals nor those through keys they
		// minted could be told from anyone else's.
		return fail(d, "the promoting key %q has no owner, so approvals cannot be checked against the promoter: promote with a key that names its owner", s.Actor)
	}
	seen := map[string]bool{}
	for _, a := range s.Approvals {
		id := identityKey(a.Identity)
		var rule, why string
		switch {
		case id == "":
			rule, why = DiscountNoIdentity, "the approving key has no owner"
		case a.Environment != s.Target:
			rule, why = DiscountEnvironment, fmt.Sprintf("given for %s, not %s", a.Environment, s.Target)
		case a.Role != c.role:
			rule, why = DiscountRole, fmt.Sprintf("role %q, %q required", a.Role, c.role)
		case !c.allowSelf && id == promoter:
			rule, why = DiscountSelf, "the promoter cannot approve their own promotion"
		case identityKey(a.KeyCreatedBy) == promoter:
			rule, why = DiscountMintedByPromoter, fmt.Sprintf("approved through a key the promoter (%s) minted, whose owner is the promoter's say-so", s.Identity)
		case promoterMinter != "" && id == promoterMinter:
			rule, why = DiscountMintedPromoter, fmt.Sprintf("%s minted the promoting key %q", a.Identity, s.Actor)
		case c.maxAge > 0 && s.Now.Sub(a.At) > c.maxAge:
			rule, why = DiscountExpired, fmt.Sprintf("expired (given %s, valid for %s)", a.At.UTC().Format(time.RFC3339), Duration(c.maxAge))
		case a.At.After(s.Now):
			rule, why = DiscountFuture, "dated in the future"
		case seen[id]:
			continue // same person twice counts once
		}
		if rule != "" {
			d.Discounted = append(d.Discounted, DiscountedApproval{Key: a.Actor, Identity: a.Identity, Rule: rule, Reason: why})
			continue
		}
		seen[id] = true
		d.Counted = append(d.Counted, a.Identity)
	}
	sort.Strings(d.Counted)
	if len(d.Counted) < c.count {
		return fail(d, "%d of %d required approvals by distinct %s %ss other than the promoter %s%s",
			len(d.Counted), c.count, s.Target, c.role, s.Identity, discountedSummary(d.Discounted))
	}
	return pass(d, "approved by %s", strings.Join(d.Counted, ", "))
}

// identityKey is the form identities are compared in. Case is folded so
// that "Alice@example.com" cannot pass for someone other than
// "alice@example.com"; folding only ever merges people, which errs on the
// side of refusing.
func identityKey(id string) string { return strings.ToLower(id) }

// discountedSummary tells, in the one-line reason, how many approvals did
// not count and the first rule, so a refusal is explained without details.
func discountedSummary(ds []DiscountedApproval) string {
	if len(ds) == 0 {
		return ""
	}
	who := ds[0].Identity
	if who == "" {
		who = "key " + ds[0].Key
	}
	return fmt.Sprintf("; %d approval(s) discounted (%s: %s)", len(ds), who, ds[0].Rule)
}

// fieldNode returns the value node of key in mapping n, or nil.
func fieldNode(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}
