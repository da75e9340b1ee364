// Package client is the Go client of stagegate's REST API, used by the CLI
// and by CI integrations.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/api"
	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/registry"
)

// The request and response bodies are the api package's; these names let
// callers of the client use it without importing api as well.
type (
	Whoami          = api.Whoami
	PublishRequest  = api.PublishRequest
	PublishResponse = api.PublishResponse
	Key             = api.Key
	PromoteRequest  = api.PromoteRequest
	PromoteResponse = api.PromoteResponse[api.GateReport]
	GateReport      = api.GateReport
	CheckResult     = api.CheckResult
	GateFailure     = api.GateFailure
)

// Client talks to one stagegate server with one credential.
type Client struct {
	baseURL string
	tokens  TokenSource
	http    *http.Client
	retry   RetryPolicy
}

// New returns a client for baseURL (e.g. http://127.0.0.1:8080) that sends
// token (an API key, or an OIDC ID token) and retries transient failures
// with DefaultRetry.
func New(baseURL, token string, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{baseURL: strings.TrimRight(baseURL, "/"), tokens: staticToken(token), http: hc, retry: DefaultRetry()}
}

// APIError is an error answered by the server.
type APIError struct {
	Status  int
	Code    string
	Message string
	Details json.RawMessage

	retryAfter time.Duration
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s: %s (HTTP %d)", e.Code, e.Message, e.Status)
}

// escapePath escapes each segment of a slash-separated path.
func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

func (c *Client) artifactURL(env, name string, rest ...string) string {
	u := c.baseURL + "/v1/environments/" + url.PathEscape(env) + "/artifacts/" + escapePath(name) + "/-"
	for _, r := range rest {
		u += "/" + r
	}
	return u
}

// do sends one request, retrying transient failures (see RetryPolicy) when
// the body can be sent again: none, or one that seeks (bytes, files).
func (c *Client) do(ctx context.Context, method, u string, body io.Reader, size int64, out any) (*http.Response, error) {
	policy := c.retry
	if policy.Attempts < 1 || ctx.Value(noRetryKey{}) != nil {
		policy.Attempts = 1
	}
	var seeker io.Seeker
	var start int64
	if body != nil {
		if s, ok := body.(io.Seeker); ok {
			if pos, err := s.Seek(0, io.SeekCurrent); err == nil {
				seeker, start = s, pos
			}
		}
		if seeker == nil {
			policy.Attempts = 1
		}
	}
	refreshed := false
	for attempt := 1; ; attempt++ {
		if attempt > 1 && seeker != nil {
			if _, err := seeker.Seek(start, io.SeekStart); err != nil {
				return nil, err
			}
		}
		token, err := c.tokens.Token(ctx)
		if err != nil {
			return nil, err
		}
		var ab *attemptBody
		if body != nil {
			ab = &attemptBody{r: body}
		}
		resp, err := c.send(ctx, method, u, ab, size, token, out)
		if ab != nil {
			// The transport may still be writing this attempt's body from
			// another goroutine after the answer came (a server that
			// refuses early does not read it all); cut it off before the
			// reader is rewound for the next attempt.
			ab.detach()
		}
		var ae *APIError
		if r, ok := c.tokens.(refresher); ok && !refreshed && errors.As(err, &ae) && ae.Status == http.StatusUnauthorized &&
			(seeker != nil || body == nil) {
			// An OIDC token expired between fetching and use: ask once
			// for a fresh one.
			r.Invalidate(token)
			refreshed = true
			attempt--
			continue
		}
		retry, after := transient(ctx, resp, err)
		if !retry || attempt >= policy.Attempts {
			return resp, err
		}
		wait := policy.backoff(attempt, after)
		if policy.OnRetry != nil {
			policy.OnRetry(RetryEvent{Method: method, URL: u, Attempt: attempt, Wait: wait, Err: err})
		}
		if err := policy.wait(ctx, wait); err != nil {
			return nil, err
		}
	}
}

func (c *Client) send(ctx context.Context, method, u string, body *attemptBody, size int64, token string, out any) (*http.Response, error) {
	var rc io.ReadCloser
	if body != nil {
		rc = body
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rc)
	if err != nil {
		return nil, err
	}
	if size >= 0 && body != nil {
		req.ContentLength = size
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil && out != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return resp, decodeError(resp)
	}
	if out != nil {
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp, fmt.Errorf("decoding %s %s response: %w", method, u, err)
		}
	}
	return resp, nil
}

// attemptBody is the request body of one attempt. The transport closes a
// body when it is done with it, but the caller's reader must stay open for
// a retry, so Close only detaches; and a detached body reads nothing more,
// so a late read of a finished attempt cannot consume bytes of the next.
type attemptBody struct {
	mu       sync.Mutex
	r        io.Reader
	detached bool
}

var errDetached = errors.New("client: request body of a finished attempt")

func (b *attemptBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.detached {
		return 0, errDetached
	}
	return b.r.Read(p)
}

func (b *attemptBody) Close() error {
	b.detach()
	return nil
}

// detach waits for a read in progress, then refuses every later one.
func (b *attemptBody) detach() {
	b.mu.Lock()
	b.detached = true
	b.mu.Unlock()
}

func decodeError(resp *http.Response) error {
	// Keep the details raw so that callers decode them into the type their
	// error code implies (see api.ErrorDetail).
	var details json.RawMessage
	body := api.ErrorBody{Error: api.ErrorDetail{Details: &details}}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	after := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	if err := json.Unmarshal(data, &body); err != nil || body.Error.Code == "" {
		return &APIError{Status: resp.StatusCode, Code: "http_" + fmt.Sprint(resp.StatusCode), Message: strings.TrimSpace(http.StatusText(resp.StatusCode)), retryAfter: after}
	}
	return &APIError{Status: resp.StatusCode, Code: body.Error.Code, Message: body.Error.Message, Details: details, retryAfter: after}
}

func (c *Client) doJSON(ctx context.Context, method, u string, in, out any) error {
	var body io.Reader
	size := int64(-1)
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body, size = bytes.NewReader(b), int64(len(b))
	}
	resp, err := c.do(ctx, method, u, body, size, out)
	if err == nil && out == nil {
		resp.Body.Close()
	}
	return err
}

// Whoami returns what the server knows of this client's key.
func (c *Client) Whoami(ctx context.Context) (Whoami, error) {
	var w Whoami
	err := c.doJSON(ctx, http.MethodGet, c.baseURL+"/v1/whoami", nil, &w)
	return w, err
}

// BlobExists reports whether env holds the blob.
func (c *Client) BlobExists(ctx context.Context, env string, dgst v1.Hash) (bool, error) {
	resp, err := c.do(ctx, http.MethodHead, c.baseURL+"/v1/environments/"+url.PathEscape(env)+"/blobs/"+dgst.String(), nil, -1, nil)
	if err != nil {
		if ae, ok := err.(*APIError); ok && ae.Status == http.StatusNotFound {
			return false, nil
		}
		return false, err
	}
	resp.Body.Close()
	return true, nil
}

// UploadBlob streams size bytes of r as blob dgst into env.
func (c *Client) UploadBlob(ctx context.Context, env string, dgst v1.Hash, r io.Reader, size int64) (bool, error) {
	var out api.BlobUploadResponse
	_, err := c.do(ctx, http.MethodPut, c.baseURL+"/v1/environments/"+url.PathEscape(env)+"/blobs/"+dgst.String(), r, size, &out)
	return out.Created, err
}

// Publish commits name@version from already uploaded blobs.
func (c *Client) Publish(ctx context.Context, env, name, version string, req PublishRequest) (PublishResponse, error) {
	var out PublishResponse
	err := c.doJSON(ctx, http.MethodPut, c.artifactURL(env, name, "versions", url.PathEscape(version)), req, &out)
	return out, err
}

// ListArtifacts lists env's artifact names.
func (c *Client) ListArtifacts(ctx context.Context, env string) ([]registry.ArtifactSummary, error) {
	var out api.ArtifactList
	err := c.doJSON(ctx, http.MethodGet, c.baseURL+"/v1/environments/"+url.PathEscape(env)+"/artifacts", nil, &out)
	return out.Artifacts, err
}

// ListVersions lists name's versions in env, highest first.
func (c *Client) ListVersions(ctx context.Context, env, name string) ([]registry.VersionRecord, error) {
	var out api.VersionList
	err := c.doJSON(ctx, http.MethodGet, c.artifactURL(env, name, "versions"), nil, &out)
	return out.Versions, err
}

// GetVersion returns name@version in env.
func (c *Client) GetVersion(ctx context.Context, env, name, version string) (registry.VersionRecord, error) {
	var out registry.VersionRecord
	err := c.doJSON(ctx, http.MethodGet, c.artifactURL(env, name, "versions", url.PathEscape(version)), nil, &out)
	return out, err
}

// Resolve returns the highest version of name in env matching constraint.
func (c *Client) Resolve(ctx context.Context, env, name, constraint string) (registry.VersionRecord, error) {
	var out registry.VersionRecord
	err := c.doJSON(ctx, http.MethodGet, c.artifactURL(env, name, "resolve")+"?constraint="+url.QueryEscape(constraint), nil, &out)
	return out, err
}

// Manifest returns the exact stored manifest bytes of name@version.
func (c *Client) Manifest(ctx context.Context, env, name, version string) ([]byte, error) {
	resp, err := c.do(ctx, http.MethodGet, c.artifactURL(env, name, "versions", url.PathEscape(version), "manifest"), nil, -1, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(io.LimitReader(resp.Body, registry.MaxManifestSize+1))
}

// OpenFile starts a download of one file. The caller must verify the digest
// (Pull does).
func (c *Client) OpenFile(ctx context.Context, env, name, version, path string) (io.ReadCloser, error) {
	resp, err := c.do(ctx, http.MethodGet, c.artifactURL(env, name, "versions", url.PathEscape(version), "files", escapePath(path)), nil, -1, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// PublicKey returns the PEM public key that signs env's manifests and its id.
func (c *Client) PublicKey(ctx context.Context, env string) ([]byte, string, error) {
	resp, err := c.do(ctx, http.MethodGet, c.baseURL+"/v1/environments/"+url.PathEscape(env)+"/public-key", nil, -1, nil)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	pem, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return pem, resp.Header.Get("X-Stagegate-Key-Id"), err
}

// AuditQuery filters audit events; see audit.Filter.
type AuditQuery = url.Values

// Audit queries env's audit trail.
func (c *Client) Audit(ctx context.Context, env string, q url.Values) ([]audit.Event, error) {
	var out api.AuditEventList
	u := c.baseURL + "/v1/environments/" + url.PathEscape(env) + "/audit"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	err := c.doJSON(ctx, http.MethodGet, u, nil, &out)
	return out.Events, err
}

// CreateKey mints a key in env; the token is returned once.
func (c *Client) CreateKey(ctx context.Context, env string, req api.CreateKeyRequest) (Key, string, error) {
	var out api.CreateKeyResponse
	// Not idempotent: a retry after a lost answer would mint a second key.
	err := c.doJSON(withoutRetry(ctx), http.MethodPost, c.baseURL+"/v1/environments/"+url.PathEscape(env)+"/keys", req, &out)
	return out.Key, out.Token, err
}

// ListKeys lists env's keys.
func (c *Client) ListKeys(ctx context.Context, env string) ([]Key, error) {
	var out api.KeyList
	err := c.doJSON(ctx, http.MethodGet, c.baseURL+"/v1/environments/"+url.PathEscape(env)+"/keys", nil, &out)
	return out.Keys, err
}

// RevokeKey revokes key id of env.
func (c *Client) RevokeKey(ctx context.Context, env, id string) error {
	return c.doJSON(ctx, http.MethodDelete, c.baseURL+"/v1/environments/"+url.PathEscape(env)+"/keys/"+url.PathEscape(id), nil, nil)
}
