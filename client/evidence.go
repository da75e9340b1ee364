package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/stagegate/stagegate/api"
	"github.com/stagegate/stagegate/registry"
)

// ListEvidence returns the evidence attached to name@version in env.
func (c *Client) ListEvidence(ctx context.Context, env, name, version string) ([]registry.Evidence, error) {
	var out api.EvidenceList
	err := c.doJSON(ctx, http.MethodGet, c.artifactURL(env, name, "versions", url.PathEscape(version), "evidence"), nil, &out)
	return out.Evidence, err
}
