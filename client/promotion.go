package client

import (
	"bytes"
	"context"
	"net/http"
	"net/url"

	"github.com/stagegate/stagegate/api"
	"github.com/stagegate/stagegate/registry"
)

// Promote asks target's gates to promote a version into it.
func (c *Client) Promote(ctx context.Context, target string, req PromoteRequest) (PromoteResponse, error) {
	var out PromoteResponse
	err := c.doJSON(ctx, http.MethodPost, c.baseURL+"/v1/environments/"+url.PathEscape(target)+"/promotions", req, &out)
	return out, err
}

// Approve records the caller's approval to promote name@version into env.
func (c *Client) Approve(ctx context.Context, env, name, version, comment string) (registry.Approval, error) {
	var out registry.Approval
	err := c.doJSON(ctx, http.MethodPost, c.artifactURL(env, name, "versions", url.PathEscape(version), "approvals"),
		api.ApprovalRequest{Comment: comment}, &out)
	return out, err
}

// AddEvidence attaches an evidence document to name@version in env.
func (c *Client) AddEvidence(ctx context.Context, env, name, version, typ string, data []byte) (registry.Evidence, bool, error) {
	var out api.EvidenceResponse
	_, err := c.do(ctx, http.MethodPut, c.artifactURL(env, name, "versions", url.PathEscape(version), "evidence", url.PathEscape(typ)),
		bytes.NewReader(data), int64(len(data)), &out)
	return out.Evidence, out.Created, err
}

// Releases lists name's releases in env, newest first.
func (c *Client) Releases(ctx context.Context, env, name string) ([]registry.Release, error) {
	var out api.ReleaseList
	err := c.doJSON(ctx, http.MethodGet, c.artifactURL(env, name, "releases"), nil, &out)
	return out.Releases, err
}

// GateRun returns a stored gate run.
func (c *Client) GateRun(ctx context.Context, env, id string) (registry.GateRun, error) {
	var out registry.GateRun
	err := c.doJSON(ctx, http.MethodGet, c.baseURL+"/v1/environments/"+url.PathEscape(env)+"/gate-runs/"+url.PathEscape(id), nil, &out)
	return out, err
}

// Attestation returns the DSSE envelope of name@version's gate attestation in env.
func (c *Client) Attestation(ctx context.Context, env, name, version string) ([]byte, error) {
	resp, err := c.do(ctx, http.MethodGet, c.artifactURL(env, name, "versions", url.PathEscape(version), "attestation"), nil, -1, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, err = buf.ReadFrom(resp.Body)
	return buf.Bytes(), err
}
