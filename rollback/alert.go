package rollback

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/environment"
	"github.com/stagegate/stagegate/gates"
	"github.com/stagegate/stagegate/registry"
	"github.com/stagegate/stagegate/rollback/alertmanager"
)

// Labels an alert carries to ask for a rollback.
const (
	// LabelArtifact names the artifact to roll back.
	LabelArtifact = "stagegate_artifact"
	// LabelVersion, optional, names the version the alert is about: the
	// rollback happens only while that version is current.
	LabelVersion = "stagegate_version"
)

// AlertActor is the actor name of rollbacks an alert triggers.
const AlertActor = "alertmanager"

// AlertOutcome says what one alert of a notification did.
type AlertOutcome string

// Alert outcomes.
const (
	AlertRolledBack AlertOutcome = "rolled-back"         // a rollback release was appended
	AlertAlready    AlertOutcome = "already-rolled-back" // this alert's rollback is current already
	AlertSkipped    AlertOutcome = "skipped"             // a guard held: see Detail
	AlertRefused    AlertOutcome = "refused"             // the rollback was refused: see Code
	AlertIgnored    AlertOutcome = "ignored"             // resolved, or names no artifact
)

// AlertResult is the outcome of one alert.
type AlertResult struct {
	Fingerprint string            `json:"fingerprint"`
	AlertName   string            `json:"alertname,omitempty"`
	Status      string            `json:"status"`
	Artifact    string            `json:"artifact,omitempty"`
	Outcome     AlertOutcome      `json:"outcome"`
	Detail      string            `json:"detail"`
	Code        string            `json:"code,omitempty"` // error code of a refusal
	Release     *registry.Release `json:"release,omitempty"`
	GateRunID   string            `json:"gateRunId,omitempty"`
	// Report is the rollback's gate report when its gates ran, for the
	// caller's metrics; the response carries GateRunID instead.
	Report *gates.Report `json:"-"`
}

// HandleAlerts acts on a notification (alertmanager.Parse) in e: each firing alert labelled
// LabelArtifact rolls that artifact back to the version of the release
// before the current one, with the alert's name and summary as reason and
// AlertActor as actor. An unattended trigger needs guards a person does
// not, so an alert does nothing (and says why) when:
//   - it is resolved, or names no artifact (ignored);
//   - the current release was made for this very alert (already rolled
//     back: Alertmanager repeats firing alerts, and a repeat must not roll
//     back twice);
//   - it names a version (LabelVersion) that is not the current one;
//   - the current release is itself a rollback: rolling back a rollback
//     would bring back the release just rolled away from, so going further
//     back is a person's decision (API or CLI, naming the version);
//   - it started firing before the current release was made, so it is
//     about an earlier release (a notification still firing after someone
//     promoted a fix does not roll the fix back);
//   - another alert of the same notification already acted on the artifact.
//
// Every alert that names an artifact is audited in e: a rollback with its
// release, every other outcome by an event of action artifact.rollback
// whose details carry the alert and the outcome. requestID ties them to the
// request.
func (s *Service) HandleAlerts(ctx context.Context, e *environment.Environment, requestID string, w alertmanager.Webhook) []AlertResult {
	by := audit.Actor{Name: AlertActor, CredentialID: "hook:alertmanager", RequestID: requestID}
	out := make([]AlertResult, 0, len(w.Alerts))
	handled := map[string]string{} // artifact -> fingerprint that acted on it
	for _, a := range w.Alerts {
		fp := fingerprint(a)
		r := AlertResult{Fingerprint: fp, AlertName: clip(a.Labels["alertname"], 200), Status: clip(a.Status, 20),
			Artifact: clip(a.Labels[LabelArtifact], 256)}
		switch {
		case a.Status == alertmanager.Resolved:
			r.Outcome, r.Detail = AlertIgnored, "resolved alerts do nothing"
		case a.Status != alertmanager.Firing:
			r.Outcome, r.Detail = AlertIgnored, fmt.Sprintf("unknown alert status %q", r.Status)
		case r.Artifact == "":
			r.Outcome, r.Detail = AlertIgnored, "the alert has no "+LabelArtifact+" label"
		case handled[r.Artifact] != "":
			r.Outcome, r.Detail = AlertSkipped, fmt.Sprintf("alert %s of this notification already acted on %s", handled[r.Artifact], r.Artifact)
		default:
			handled[r.Artifact] = fp
			s.handleAlert(ctx, e, by, a, &r)
		}
		if r.Artifact != "" && r.Outcome != AlertIgnored && r.Outcome != AlertRolledBack {
			s.auditAlert(ctx, e, by, r)
		}
		out = append(out, r)
	}
	return out
}

func (s *Service) handleAlert(ctx context.Context, e *environment.Environment, by audit.Actor, a alertmanager.Alert, r *AlertResult) {
	refuse := func(err error) {
		re := registry.AsError(err)
		r.Outcome, r.Code, r.Detail = AlertRefused, re.Code, re.Message
		if re.Kind == registry.Internal {
			r.Detail = "internal error; see the server log"
		}
		if d, ok := re.Details.(map[string]any); ok {
			if id, ok := d["gateRunId"].(string); ok {
				r.GateRunID = id
			}
			if rep, ok := d["report"].(gates.Report); ok {
				r.Report = &rep
				for _, f := range rep.Failures() {
					r.Detail += "; " + f.Check + ": " + f.Reason
				}
			}
		}
	}
	name, err := registry.ParseName(r.Artifact)
	if err != nil {
		refuse(err)
		return
	}
	cur, err := index(e).CurrentRelease(ctx, name)
	if registry.KindOf(err) == registry.NotFound {
		refuse(notEligible(name, "", nil, "%s has never been released in %s: there is nothing to roll back", name, e.Name()))
		return
	}
	if err != nil {
		refuse(err)
		return
	}
	trigger := "alertmanager:" + r.Fingerprint
	switch {
	case cur.TriggeredBy == trigger:
		r.Outcome, r.Release = AlertAlready, &cur
		r.Detail = fmt.Sprintf("release %d of %s (%s) was made for this alert", cur.Number, name, cur.Version)
		return
	case a.Labels[LabelVersion] != "":
		v, err := registry.ParseVersion(a.Labels[LabelVersion])
		if err != nil {
			refuse(err)
			return
		}
		if v.Canonical != cur.Version {
			r.Outcome = AlertSkipped
			r.Detail = fmt.Sprintf("the alert is about %s@%s, but release %d serves %s", name, v.Canonical, cur.Number, cur.Version)
			return
		}
	}
	switch {
	case cur.Action == registry.ReleaseRollback:
		r.Outcome = AlertSkipped
		r.Detail = fmt.Sprintf("release %d of %s (%s) is a rollback by %s: rolling it back would bring back the release it replaced; roll back further by hand, naming the version", cur.Number, name, cur.Version, cur.Actor)
		return
	case !a.StartsAt.IsZero() && a.StartsAt.Before(cur.CreatedAt):
		r.Outcome = AlertSkipped
		r.Detail = fmt.Sprintf("the alert started at %s, before release %d (%s) was made at %s: it is about an earlier release",
			a.StartsAt.UTC().Format(time.RFC3339), cur.Number, cur.Version, cur.CreatedAt.UTC().Format(time.RFC3339))
		return
	}
	res, err := s.Rollback(ctx, e, by, Request{Name: name, Reason: alertReason(a, r.Fingerprint), IfCurrent: cur.ID, TriggeredBy: trigger})
	if err != nil {
		refuse(err)
		return
	}
	r.Release, r.Report = res.Release, res.Report
	if res.GateRun != nil {
		r.GateRunID = res.GateRun.ID
	}
	switch res.Outcome {
	case RolledBack:
		r.Outcome = AlertRolledBack
		r.Detail = fmt.Sprintf("rolled back %s from %s to %s: release %d", name, cur.Version, res.Release.Version, res.Release.Number)
	default:
		// A concurrent delivery of the same notification committed first.
		r.Outcome = AlertAlready
		r.Detail = fmt.Sprintf("release %d of %s (%s) is current already", res.Release.Number, name, res.Release.Version)
	}
}

// auditAlert records what an alert did when no release recorded it.
func (s *Service) auditAlert(ctx context.Context, e *environment.Environment, by audit.Actor, r AlertResult) {
	outcome := audit.Success
	if r.Outcome == AlertRefused {
		outcome = audit.Denied
	}
	ev := by.Event(e.Name(), ActionRollback, r.Artifact, outcome)
	ev.Time = s.now().UTC()
	ev.ErrorCode = r.Code
	ev.Details = map[string]string{"alert": r.Fingerprint, "alertname": r.AlertName, "outcome": string(r.Outcome), "detail": clip(r.Detail, 500)}
	if r.GateRunID != "" {
		ev.Details["gateRunId"] = r.GateRunID
	}
	// The audit trail outlives the request: a client that hangs up must not
	// lose the record of what its alerts did.
	_, _ = e.Metadata().AppendAudit(context.WithoutCancel(ctx), ev)
}

// alertReason is the release reason of an alert's rollback: its name and
// summary.
func alertReason(a alertmanager.Alert, fp string) string {
	name := a.Labels["alertname"]
	if name == "" {
		name = "alert " + fp
	}
	reason := name
	if summary := strings.TrimSpace(a.Annotations["summary"]); summary != "" {
		reason += ": " + summary
	}
	return clip(reason, maxReason)
}

// fingerprint is the alert's fingerprint, or, when a sender left it out,
// one derived from its labels the way Alertmanager identifies an alert.
func fingerprint(a alertmanager.Alert) string {
	if validFingerprint(a.Fingerprint) {
		return a.Fingerprint
	}
	keys := make([]string, 0, len(a.Labels))
	for k := range a.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s\xff%s\xff", k, a.Labels[k])
	}
	return "sha256-" + hex.EncodeToString(h.Sum(nil))[:16]
}

// validFingerprint accepts what Alertmanager sends (16 hex digits) and
// similar tokens; anything else is not echoed into releases and the audit
// trail.
func validFingerprint(fp string) bool {
	if fp == "" || len(fp) > 64 {
		return false
	}
	for _, c := range fp {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// clip bounds untrusted text echoed back, cutting on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
