package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// TokenSource supplies the bearer credential of each request.
type TokenSource interface {
	// Token returns the credential to send now.
	Token(ctx context.Context) (string, error)
}

// refresher is a TokenSource whose credential can go stale: after a 401 the
// client drops it and asks once more.
type refresher interface {
	Invalidate(token string)
}

type staticToken string

func (t staticToken) Token(context.Context) (string, error) { return string(t), nil }

// WithTokenSource makes the client ask ts for its credential on every
// request (an OIDC token that expires during a long push is replaced).
func (c *Client) WithTokenSource(ts TokenSource) *Client {
	c.tokens = ts
	return c
}

// ActionsTokenSource fetches GitHub Actions OIDC ID tokens for one audience
// from the job's token endpoint (ACTIONS_ID_TOKEN_REQUEST_URL, with
// ACTIONS_ID_TOKEN_REQUEST_TOKEN; the job needs `permissions: id-token:
// write`). Tokens live five minutes; one is reused until a minute before
// its expiry, then replaced.
type ActionsTokenSource struct {
	RequestURL   string
	RequestToken string
	Audience     string
	HTTP         *http.Client
	Now          func() time.Time

	mu    sync.Mutex
	token string
	exp   time.Time
}

// NewActionsTokenSource reads the endpoint from getenv. It fails when the
// job cannot request tokens, naming the permission that is missing.
func NewActionsTokenSource(getenv func(string) string, audience string) (*ActionsTokenSource, error) {
	u, tok := getenv("ACTIONS_ID_TOKEN_REQUEST_URL"), getenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
	if u == "" || tok == "" {
		return nil, fmt.Errorf("no OIDC token endpoint: ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN are unset; give the job `permissions: id-token: write`, or pass an API key instead of --oidc-audience")
	}
	if audience == "" {
		return nil, fmt.Errorf("an OIDC audience is required (the server's auth.oidc.issuers[].audience)")
	}
	return &ActionsTokenSource{RequestURL: u, RequestToken: tok, Audience: audience}, nil
}

// Token returns a cached token, or fetches a new one.
func (s *ActionsTokenSource) Token(ctx context.Context) (string, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token != "" && now().Add(time.Minute).Before(s.exp) {
		return s.token, nil
	}
	tok, err := s.fetch(ctx)
	if err != nil {
		return "", err
	}
	s.token, s.exp = tok, expiryOf(tok, now())
	return tok, nil
}

// Invalidate drops token if it is the cached one.
func (s *ActionsTokenSource) Invalidate(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token == token {
		s.token = ""
	}
}

func (s *ActionsTokenSource) fetch(ctx context.Context) (string, error) {
	u, err := url.Parse(s.RequestURL)
	if err != nil {
		return "", fmt.Errorf("ACTIONS_ID_TOKEN_REQUEST_URL: %w", err)
	}
	q := u.Query()
	q.Set("audience", s.Audience)
	u.RawQuery = q.Encode()
	hc := s.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	var lastErr error
	policy := DefaultRetry()
	for attempt := 1; attempt <= policy.Attempts; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return "", err
		}
		req.Header.Set("Authorization", "bearer "+s.RequestToken)
		req.Header.Set("Accept", "application/json")
		resp, err := hc.Do(req)
		var retry bool
		if err == nil {
			var tok string
			tok, retry, err = readActionsToken(resp)
			if err == nil {
				return tok, nil
			}
		} else {
			retry = connectionError(err)
		}
		lastErr = err
		if !retry || ctx.Err() != nil {
			break
		}
		if err := policy.wait(ctx, policy.backoff(attempt, -1)); err != nil {
			return "", err
		}
	}
	return "", fmt.Errorf("fetching the Actions OIDC token: %w", lastErr)
}

func readActionsToken(resp *http.Response) (token string, retry bool, err error) {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		retry = resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500
		return "", retry, fmt.Errorf("token endpoint answered %s", resp.Status)
	}
	var out struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.Value == "" {
		return "", false, fmt.Errorf("token endpoint answered no token")
	}
	return out.Value, false, nil
}

// expiryOf reads exp from a JWT without verifying it (the server does);
// it only decides when to fetch the next. Unknown: five minutes, GitHub's
// lifetime.
func expiryOf(jwt string, now time.Time) time.Time {
	parts := strings.Split(jwt, ".")
	if len(parts) == 3 {
		if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
			var c struct {
				Exp int64 `json:"exp"`
			}
			if json.Unmarshal(b, &c) == nil && c.Exp > 0 {
				return time.Unix(c.Exp, 0)
			}
		}
	}
	return now.Add(5 * time.Minute)
}
