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

// approvals requires N approvals by distinct identities holding the
// approver role for the target environment, none older than max_age.
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

// ApprovalDetails lists which approvals counted and why others did not.
type ApprovalDetails struct {
	Required int      `json:"required"`
	Counted  []string `json:"counted"`
	Ignored  []string `json:"ignored,omitempty"` // "actor: reason"
}

func (c approvals) Run(_ context.Context, s *Subject) Result {
	d := ApprovalDetails{Required: c.count, Counted: []string{}}
	seen := map[string]bool{}
	for _, a := range s.Approvals {
		why := ""
		switch {
		case a.Actor == "":
			why = "no identity"
		case a.Environment != s.Target:
			why = fmt.Sprintf("given for %s, not %s", a.Environment, s.Target)
		case a.Role != c.role:
			why = fmt.Sprintf("role %q, %q required", a.Role, c.role)
		case !c.allowSelf && a.Actor == s.Actor:
			why = "the promoter cannot approve their own promotion"
		case c.maxAge > 0 && s.Now.Sub(a.At) > c.maxAge:
			why = fmt.Sprintf("expired (given %s, valid for %s)", a.At.UTC().Format(time.RFC3339), Duration(c.maxAge))
		case a.At.After(s.Now):
			why = "dated in the future"
		case seen[a.Actor]:
			continue // same identity twice counts once
		}
		if why != "" {
			d.Ignored = append(d.Ignored, a.Actor+": "+why)
			continue
		}
		seen[a.Actor] = true
		d.Counted = append(d.Counted, a.Actor)
	}
	sort.Strings(d.Counted)
	if len(d.Counted) < c.count {
		return fail(d, "%d of %d required approvals by distinct %s %ss", len(d.Counted), c.count, s.Target, c.role)
	}
	return pass(d, "approved by %s", strings.Join(d.Counted, ", "))
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
