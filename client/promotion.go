package client

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/stagegate/stagegate/registry"
)

// CheckResult is one gate check's outcome as the server reports it.
type CheckResult struct {
	Check    string          `json:"check"`
	Family   string          `json:"family"`
	Status   string          `json:"status"`
	Required bool            `json:"required"`
	Reason   string          `json:"reason"`
	Details  json.RawMessage `json:"details,omitempty"`
}

// GateReport is a gate run's report.
type GateReport struct {
	PolicyDigest string        `json:"policyDigest"`
	Environment  string        `json:"environment"`
	Passed       bool          `json:"passed"`
	Results      []CheckResult `json:"results"`
}

// PromoteRequest asks for a promotion.
type PromoteRequest struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	From    string `json:"from,omitempty"`
	Reason  string `json:"reason,omitempty"`
	DryRun  bool   `json:"dryRun,omitempty"`
}

// PromoteResponse is the server's answer to a promotion that was not refused.
type PromoteResponse struct {
	Passed  bool              `json:"passed"`
	DryRun  bool              `json:"dryRun"`
	Created bool              `json:"created"`
	Release *registry.Release `json:"release,omitempty"`
	GateRun *struct {
		ID           string `json:"id"`
		PolicyDigest string `json:"policyDigest"`
	} `json:"gateRun,omitempty"`
	Report *GateReport `json:"report,omitempty"`
}

// GateFailure decodes the details of a gate_failed error.
type GateFailure struct {
	GateRunID string     `json:"gateRunId"`
	Report    GateReport `json:"report"`
}

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
		map[string]string{"comment": comment}, &out)
	return out, err
}

// AddEvidence attaches an evidence document to name@version in env.
func (c *Client) AddEvidence(ctx context.Context, env, name, version, typ string, data []byte) (registry.Evidence, bool, error) {
	var out struct {
		Created  bool              `json:"created"`
		Evidence registry.Evidence `json:"evidence"`
	}
	_, err := c.do(ctx, http.MethodPut, c.artifactURL(env, name, "versions", url.PathEscape(version), "evidence", url.PathEscape(typ)),
		bytes.NewReader(data), int64(len(data)), &out)
	return out.Evidence, out.Created, err
}

// Releases lists name's releases in env, newest first.
func (c *Client) Releases(ctx context.Context, env, name string) ([]registry.Release, error) {
	var out struct {
		Releases []registry.Release `json:"releases"`
	}
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
