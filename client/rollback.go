package client

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/stagegate/stagegate/api"
)

// The rollback and release bodies, as for the other verbs.
type (
	RollbackRequest  = api.RollbackRequest
	RollbackResponse = api.RollbackResponse[api.GateReport]
	NotEligible      = api.NotEligible
	ReleaseStatus    = api.ReleaseStatus
	ReleaseList      = api.ReleaseList
	HookResponse     = api.HookResponse
)

// Rollback makes an earlier release of req.Name current again in env. A
// refusal by the rollback gates is an *APIError with code gate_failed and a
// GateFailure in Details; a version never released in env is not_eligible
// with a NotEligible in Details.
//
// A rollback to a named version is safe to repeat (the version is then
// current: outcome unchanged) and is retried like every request. One to the
// default target is not: repeated after an answer that was lost, it would
// roll back the rollback itself, so it is sent once.
func (c *Client) Rollback(ctx context.Context, env string, req RollbackRequest) (RollbackResponse, error) {
	if req.Version == "" {
		ctx = withoutRetry(ctx)
	}
	var out RollbackResponse
	err := c.doJSON(ctx, http.MethodPost, c.baseURL+"/v1/environments/"+url.PathEscape(env)+"/rollbacks", req, &out)
	return out, err
}

// ReleasesAt returns, per name (or for name alone when not ""), the release
// of env current at at; a zero at means now.
func (c *Client) ReleasesAt(ctx context.Context, env string, at time.Time, name string) (ReleaseStatus, error) {
	q := url.Values{}
	if !at.IsZero() {
		q.Set("at", at.UTC().Format(time.RFC3339Nano))
	}
	if name != "" {
		q.Set("name", name)
	}
	u := c.baseURL + "/v1/environments/" + url.PathEscape(env) + "/releases"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var out ReleaseStatus
	err := c.doJSON(ctx, http.MethodGet, u, nil, &out)
	return out, err
}

// History returns a page of name's releases in env, newest first: at most
// limit (0: the server's default), numbered below before when it is
// positive. The page's NextBefore is the before of the next one.
func (c *Client) History(ctx context.Context, env, name string, limit int, before int64) (ReleaseList, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if before > 0 {
		q.Set("before", strconv.FormatInt(before, 10))
	}
	u := c.artifactURL(env, name, "releases")
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var out ReleaseList
	err := c.doJSON(ctx, http.MethodGet, u, nil, &out)
	return out, err
}

// RollbackAttestation returns the DSSE envelope signed by env's key for the
// rollback to name@version whose gate run is gateRunID.
func (c *Client) RollbackAttestation(ctx context.Context, env, name, version, gateRunID string) ([]byte, error) {
	u := c.artifactURL(env, name, "versions", url.PathEscape(version), "attestation") + "?gateRun=" + url.QueryEscape(gateRunID)
	resp, err := c.do(ctx, http.MethodGet, u, nil, -1, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, err = buf.ReadFrom(resp.Body)
	return buf.Bytes(), err
}
