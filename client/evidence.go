package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/api"
	"github.com/stagegate/stagegate/registry"
)

// ListEvidence returns the evidence attached to name@version in env.
func (c *Client) ListEvidence(ctx context.Context, env, name, version string) ([]registry.Evidence, error) {
	var out api.EvidenceList
	err := c.doJSON(ctx, http.MethodGet, c.artifactURL(env, name, "versions", url.PathEscape(version), "evidence"), nil, &out)
	return out.Evidence, err
}

// maxEvidenceDocument is the server's bound on one evidence document
// (gates.MaxEvidenceSize), so a longer answer is refused unread.
const maxEvidenceDocument = 16 << 20

// GetEvidence returns one evidence document of name@version in env, as it
// was attached: the newest of type typ, or the one with digest when given.
// The bytes are checked against the digest the server names for them.
func (c *Client) GetEvidence(ctx context.Context, env, name, version, typ, digest string) ([]byte, v1.Hash, error) {
	u := c.artifactURL(env, name, "versions", url.PathEscape(version), "evidence", url.PathEscape(typ))
	if digest != "" {
		u += "?digest=" + url.QueryEscape(digest)
	}
	resp, err := c.do(ctx, http.MethodGet, u, nil, -1, nil)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	defer resp.Body.Close()
	want, err := registry.ParseDigest(resp.Header.Get("X-Stagegate-Digest"))
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("evidence answer names no valid digest: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxEvidenceDocument+1))
	if err != nil {
		return nil, v1.Hash{}, err
	}
	if len(data) > maxEvidenceDocument {
		return nil, v1.Hash{}, fmt.Errorf("evidence document is larger than %d bytes", maxEvidenceDocument)
	}
	if got := registry.DigestOf(data); got != want {
		return nil, v1.Hash{}, fmt.Errorf("evidence document hashes to %s, not %s: %w", got, want, registry.ErrDigestMismatch)
	}
	return data, want, nil
}
