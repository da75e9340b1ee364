package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/stagegate/stagegate/api"
	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/environment"
	"github.com/stagegate/stagegate/gates"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/registry"
	"github.com/stagegate/stagegate/rollback"
	"github.com/stagegate/stagegate/rollback/alertmanager"
)

// ActionAlertmanagerHook is the audit action of an Alertmanager notification
// as a whole; the rollbacks it causes are audited as artifact.rollback.
const ActionAlertmanagerHook = "hook.alertmanager"

// rollback serves POST /v1/environments/{env}/rollbacks.
func (a *API) rollback(c *gin.Context, req *request) error {
	var body api.RollbackRequest
	if err := decodeJSON(c, &body); err != nil {
		return err
	}
	req.target = body.Name
	if body.Version != "" {
		req.target += "@" + body.Version
	}
	if body.DryRun {
		req.action = rollback.ActionDryRun
	}
	res, err := a.Rollbacks.Rollback(c.Request.Context(), req.env, req.actor, rollback.Request{
		Name: body.Name, Version: body.Version, Reason: body.Reason, DryRun: body.DryRun,
		Force: body.Force, MayForce: req.principal.Role == auth.RoleAdmin,
	})
	// As for promotions: a refused rollback's report is what an operator
	// watches.
	a.observeReport(req.env, res.Report)
	if err != nil {
		return err
	}
	if res.Release != nil {
		req.target = res.Release.Name + "@" + res.Release.Version
	}
	// A committed rollback wrote its audit event in the release's transaction.
	req.audited = res.Audited
	out := api.RollbackResponse[gates.Report]{Outcome: string(res.Outcome), Version: res.Version, Release: res.Release, Previous: res.Previous, Report: res.Report}
	if res.GateRun != nil {
		out.GateRun = &api.GateRunSummary{ID: res.GateRun.ID, PolicyDigest: res.GateRun.PolicyDigest, Passed: res.GateRun.Passed}
	}
	status := http.StatusOK
	if res.Outcome == rollback.RolledBack {
		status = http.StatusCreated
	}
	c.JSON(status, out)
	return nil
}

// releasesAt serves GET /v1/environments/{env}/releases?at=&name=.
func (a *API) releasesAt(c *gin.Context, req *request) error {
	at, err := queryTime(c, "at")
	if err != nil {
		return err
	}
	name := c.Query("name")
	releases, answered, err := a.Rollbacks.Status(c.Request.Context(), req.env, at, name)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, api.ReleaseStatus{Environment: req.env.Name(), At: answered, Name: name, Releases: releases})
	return nil
}

// releaseHistory serves GET …/artifacts/{name}/-/releases?limit=&before=.
func (a *API) releaseHistory(c *gin.Context, req *request, name string) error {
	before, err := queryInt(c, "before")
	if err != nil {
		return err
	}
	limit, err := queryInt(c, "limit")
	if err != nil {
		return err
	}
	if limit > registry.MaxReleasePage {
		return registry.CodeInvalidRequest.Errorf("limit: at most %d", registry.MaxReleasePage)
	}
	releases, next, err := a.Rollbacks.History(c.Request.Context(), req.env, name, registry.ReleasePage{Before: before, Limit: int(limit)})
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, api.ReleaseList{Environment: req.env.Name(), Name: name, Releases: releases, NextBefore: next})
	return nil
}

// alertmanagerHook serves POST /v1/environments/{env}/hooks/alertmanager.
// It takes no API key: Alertmanager sends the environment's hook secret as
// a bearer token (http_config.authorization in its webhook_config), and
// the secret authorises exactly this route of exactly this environment.
func (a *API) alertmanagerHook(c *gin.Context) {
	req := &request{action: ActionAlertmanagerHook,
		actor: audit.Actor{Name: "anonymous", RequestID: c.GetString(ctxRequestID)}}
	c.Set(ctxRequest, req)
	env, ok := a.Environments.Bind(c.Param("env"))
	if !ok {
		a.fail(c, req, audit.ActionAuthenticate, registry.CodeNotFound.Errorf("no environment %q", truncate(c.Param("env"), 64)))
		return
	}
	req.auditIn = env
	if !a.hookSecretMatches(env, c.GetHeader("Authorization")) {
		a.fail(c, req, audit.ActionAuthenticate, registry.CodeUnauthenticated.Errorf(
			"missing or wrong hook secret: send Authorization: Bearer <the environment's alertmanager secret>"))
		return
	}
	req.env = env
	req.actor.Name, req.actor.CredentialID = rollback.AlertActor, "hook:alertmanager"
	data, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, alertmanager.MaxBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		a.fail(c, req, req.action, registry.CodeTooLarge.Errorf("the notification is over %d bytes", alertmanager.MaxBytes))
		return
	case err != nil:
		a.fail(c, req, req.action, registry.CodeIncompleteBody.Errorf("reading the notification: %s", truncate(err.Error(), 200)))
		return
	}
	w, err := alertmanager.Parse(data)
	if err != nil {
		a.fail(c, req, req.action, err)
		return
	}
	req.target = truncate(w.Receiver, 200)
	results := a.Rollbacks.HandleAlerts(c.Request.Context(), env, req.actor.RequestID, w)
	out := api.HookResponse{Environment: env.Name(), Receiver: w.Receiver, Alerts: make([]api.AlertOutcome, len(results))}
	counts := map[string]int{}
	for i, r := range results {
		out.Alerts[i] = api.AlertOutcome{Fingerprint: r.Fingerprint, AlertName: r.AlertName, Status: r.Status, Artifact: r.Artifact,
			Outcome: string(r.Outcome), Detail: r.Detail, Code: r.Code, Release: r.Release, GateRunID: r.GateRunID}
		counts[string(r.Outcome)]++
		a.observeAlert(env, r)
	}
	ev := req.actor.Event(env.Name(), req.action, req.target, audit.Success)
	ev.Details = map[string]string{"groupKey": truncate(w.GroupKey, 300), "status": truncate(w.Status, 20)}
	for outcome, n := range counts {
		ev.Details[outcome] = strconv.Itoa(n)
	}
	a.record(c, env, ev)
	c.JSON(http.StatusOK, out)
}

// observeAlert counts one alert as the artifact.rollback action it is
// audited as (rollback.Service.HandleAlerts), so that the actions metric
// and the gate metrics see alert-triggered rollbacks like manual ones:
// success (rolled back, already rolled back, or skipped by a guard), denied
// when refused, failed when the refusal was an internal error, as a manual
// rollback's 5xx is. Alerts that are resolved or name no artifact are no
// rollback and are not counted.
func (a *API) observeAlert(env *environment.Environment, r rollback.AlertResult) {
	if r.Artifact == "" || r.Outcome == rollback.AlertIgnored {
		return
	}
	a.observeReport(env, r.Report)
	outcome := audit.Success
	switch {
	case r.Outcome != rollback.AlertRefused:
	case r.Code == registry.CodeInternal.Name:
		outcome = audit.Failed
	default:
		outcome = audit.Denied
	}
	a.Observer.ObserveAction(env.Name(), rollback.ActionRollback, outcome, r.Code)
}

// hookSecretMatches compares the bearer token with env's configured hook
// secret in constant time. The hashes are compared, not the strings, so
// that not even the secret's length leaks through timing. Without a
// configured secret nothing matches: the hook is off.
func (a *API) hookSecretMatches(env *environment.Environment, authorization string) bool {
	secret := ""
	if a.AlertmanagerSecret != nil {
		secret = a.AlertmanagerSecret(env)
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(authorization), " ")
	token = strings.TrimSpace(token)
	if secret == "" || !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return false
	}
	got, want := sha256.Sum256([]byte(token)), sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}
