package dashboard

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/stagegate/stagegate/api"
	"github.com/stagegate/stagegate/client"
	"github.com/stagegate/stagegate/registry"
)

// Every action is two steps: a page that says exactly what will happen
// (for a promotion, the dry-run of its gates), then a POST with the
// session's CSRF token. What the person may do is the API's decision: the
// dashboard only hides buttons the key's role could not use.

type actionTarget struct {
	Env, Name, Version string
}

func (t actionTarget) ArtifactURL() string { return "/ui/artifacts/" + escapePath(t.Name) }

func targetOf(v url.Values) (actionTarget, error) {
	t := actionTarget{Env: v.Get("env"), Name: v.Get("name"), Version: strings.TrimSpace(v.Get("version"))}
	if t.Env == "" {
		return t, errors.New("no environment given")
	}
	if _, err := registry.ParseName(t.Name); err != nil {
		return t, errors.New("invalid artifact name")
	}
	return t, nil
}

func (d *Dashboard) approveForm(w http.ResponseWriter, r *http.Request, s *session) {
	t, err := targetOf(r.URL.Query())
	if err != nil || t.Version == "" {
		d.fail(w, r, s, http.StatusBadRequest, "An approval needs an environment, a name and a version.")
		return
	}
	d.render(w, r, s, http.StatusOK, "approve", "Approve "+t.Name+"@"+t.Version+" for "+t.Env, t)
}

type resultView struct {
	Target     actionTarget
	Message    string
	Refused    bool
	GateRunURL string
	Checks     []checkView
	Release    *registry.Release
}

func gateRunURL(env, id string) string {
	if id == "" {
		return ""
	}
	return "/ui/environments/" + url.PathEscape(env) + "/gate-runs/" + url.PathEscape(id)
}

func (d *Dashboard) approve(w http.ResponseWriter, r *http.Request, s *session) {
	t, err := targetOf(r.PostForm)
	if err != nil || t.Version == "" {
		d.fail(w, r, s, http.StatusBadRequest, "An approval needs an environment, a name and a version.")
		return
	}
	k, _ := s.key(t.Env)
	a, err := d.client(k.token).Approve(r.Context(), t.Env, t.Name, t.Version, r.PostForm.Get("comment"))
	if err != nil {
		d.apiFail(w, r, s, "Approving "+t.Name+"@"+t.Version, err)
		return
	}
	d.render(w, r, s, http.StatusOK, "result", "Approved", resultView{Target: t,
		Message: "Approved " + a.Name + "@" + a.Version + " for " + a.Environment + " as " + a.Actor + "."})
}

type promoteView struct {
	Target     actionTarget
	From       string
	Passed     bool
	GateRunURL string
	Checks     []checkView
}

// gateFailure reads the report of a gate_failed refusal.
func gateFailure(err error) (api.GateFailure, bool) {
	var ae *client.APIError
	var gf api.GateFailure
	if !errors.As(err, &ae) || ae.Code != registry.CodeGateFailed.Name || len(ae.Details) == 0 {
		return gf, false
	}
	return gf, json.Unmarshal(ae.Details, &gf) == nil
}

// promotePreview runs the promotion's gates as a dry run and shows them:
// the confirmation page of a promotion.
func (d *Dashboard) promotePreview(w http.ResponseWriter, r *http.Request, s *session) {
	t, err := targetOf(r.PostForm)
	if err != nil || t.Version == "" {
		d.fail(w, r, s, http.StatusBadRequest, "A promotion needs a target environment, a name and a version.")
		return
	}
	k, _ := s.key(t.Env)
	v := promoteView{Target: t, From: s.previous(t.Env)}
	res, err := d.client(k.token).Promote(r.Context(), t.Env, client.PromoteRequest{Name: t.Name, Version: t.Version, DryRun: true})
	if gf, ok := gateFailure(err); ok {
		v.GateRunURL, v.Checks = gateRunURL(t.Env, gf.GateRunID), checkViews(gf.Report.Results)
		d.render(w, r, s, http.StatusOK, "promote", "Promotion of "+t.Name+"@"+t.Version+" into "+t.Env+" would be refused", v)
		return
	}
	if err != nil {
		d.apiFail(w, r, s, "Previewing the promotion", err)
		return
	}
	v.Passed = true
	if res.GateRun != nil {
		v.GateRunURL = gateRunURL(t.Env, res.GateRun.ID)
	}
	if res.Report != nil {
		v.Checks = checkViews(res.Report.Results)
	}
	d.render(w, r, s, http.StatusOK, "promote", "Promote "+t.Name+"@"+t.Version+" into "+t.Env+"?", v)
}

func (d *Dashboard) promote(w http.ResponseWriter, r *http.Request, s *session) {
	t, err := targetOf(r.PostForm)
	if err != nil || t.Version == "" || r.PostForm.Get("confirmed") != "yes" {
		d.fail(w, r, s, http.StatusBadRequest, "Promote from the preview page, after its gates ran.")
		return
	}
	k, _ := s.key(t.Env)
	res, err := d.client(k.token).Promote(r.Context(), t.Env, client.PromoteRequest{Name: t.Name, Version: t.Version,
		Reason: r.PostForm.Get("reason")})
	if gf, ok := gateFailure(err); ok {
		d.render(w, r, s, http.StatusConflict, "result", "Promotion refused", resultView{Target: t, Refused: true,
			Message:    "The gates refused promoting " + t.Name + "@" + t.Version + " into " + t.Env + ".",
			GateRunURL: gateRunURL(t.Env, gf.GateRunID), Checks: checkViews(gf.Report.Results)})
		return
	}
	if err != nil {
		d.apiFail(w, r, s, "Promoting "+t.Name+"@"+t.Version, err)
		return
	}
	v := resultView{Target: t, Release: res.Release, Message: t.Name + "@" + t.Version + " is released in " + t.Env + "."}
	if !res.Created {
		v.Message = t.Name + "@" + t.Version + " was already released in " + t.Env + "."
	}
	if res.GateRun != nil {
		v.GateRunURL = gateRunURL(t.Env, res.GateRun.ID)
	}
	if res.Report != nil {
		v.Checks = checkViews(res.Report.Results)
	}
	d.render(w, r, s, http.StatusOK, "result", "Promoted", v)
}

type rollbackView struct {
	Target   actionTarget
	Current  string
	Eligible []string
}

// rollbackForm offers the versions released in the environment before.
func (d *Dashboard) rollbackForm(w http.ResponseWriter, r *http.Request, s *session) {
	t, err := targetOf(r.URL.Query())
	if err != nil {
		d.fail(w, r, s, http.StatusBadRequest, "A rollback needs an environment and a name.")
		return
	}
	k, _ := s.key(t.Env)
	hist, err := d.client(k.token).History(r.Context(), t.Env, t.Name, 50, 0)
	if err != nil {
		d.apiFail(w, r, s, "Reading the release history", err)
		return
	}
	v := rollbackView{Target: t}
	seen := map[string]bool{}
	for i, rel := range hist.Releases {
		if i == 0 {
			v.Current = rel.Version
			seen[rel.Version] = true
			continue
		}
		if !seen[rel.Version] {
			seen[rel.Version] = true
			v.Eligible = append(v.Eligible, rel.Version)
		}
	}
	d.render(w, r, s, http.StatusOK, "rollback", "Roll back "+t.Name+" in "+t.Env, v)
}

func (d *Dashboard) rollback(w http.ResponseWriter, r *http.Request, s *session) {
	t, err := targetOf(r.PostForm)
	if err != nil {
		d.fail(w, r, s, http.StatusBadRequest, "A rollback needs an environment and a name.")
		return
	}
	reason := strings.TrimSpace(r.PostForm.Get("reason"))
	if reason == "" || r.PostForm.Get("confirm") != "yes" {
		d.fail(w, r, s, http.StatusBadRequest, "A rollback needs a reason and the confirmation box ticked.")
		return
	}
	k, _ := s.key(t.Env)
	res, err := d.client(k.token).Rollback(r.Context(), t.Env, client.RollbackRequest{Name: t.Name, Version: t.Version, Reason: reason})
	if gf, ok := gateFailure(err); ok {
		d.render(w, r, s, http.StatusConflict, "result", "Rollback refused", resultView{Target: t, Refused: true,
			Message:    "The rollback gates refused " + t.Name + " in " + t.Env + ".",
			GateRunURL: gateRunURL(t.Env, gf.GateRunID), Checks: checkViews(gf.Report.Results)})
		return
	}
	if err != nil {
		d.apiFail(w, r, s, "Rolling back "+t.Name, err)
		return
	}
	t.Version = res.Version
	v := resultView{Target: t, Release: res.Release, Message: t.Name + " in " + t.Env + " is back on " + res.Version + "."}
	if res.Outcome == api.RollbackUnchanged {
		v.Message = res.Version + " was already current for " + t.Name + " in " + t.Env + "."
	}
	if res.GateRun != nil {
		v.GateRunURL = gateRunURL(t.Env, res.GateRun.ID)
	}
	if res.Report != nil {
		v.Checks = checkViews(res.Report.Results)
	}
	d.render(w, r, s, http.StatusOK, "result", "Rolled back", v)
}
