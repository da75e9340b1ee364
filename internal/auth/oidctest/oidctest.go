// Package oidctest runs a local OIDC issuer for tests: a discovery document
// and a JWKS served over HTTP, signing keys generated in the test, tokens
// minted on demand, key rotation, and a stand-in for the GitHub Actions ID
// token endpoint (ACTIONS_ID_TOKEN_REQUEST_URL).
package oidctest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Issuer is a running test issuer.
type Issuer struct {
	URL string // the issuer (iss), also its HTTP base URL

	t   testing.TB
	srv *httptest.Server

	mu          sync.Mutex
	key         *rsa.PrivateKey
	kid         string
	published   []jose.JSONWebKey // what the JWKS serves
	now         func() time.Time
	jwksFetches int
}

// NewIssuer starts an issuer with one RSA signing key. now is its clock for
// iat, nbf and exp (nil: time.Now).
func NewIssuer(t testing.TB, now func() time.Time) *Issuer {
	t.Helper()
	if now == nil {
		now = time.Now
	}
	is := &Issuer{t: t, now: now}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": is.URL, "jwks_uri": is.URL + "/keys",
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public"},
		})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, _ *http.Request) {
		is.mu.Lock()
		is.jwksFetches++
		set := jose.JSONWebKeySet{Keys: append([]jose.JSONWebKey(nil), is.published...)}
		is.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	})
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	is.URL = is.srv.URL
	is.Rotate(false)
	return is
}

// Rotate makes a new signing key current. keepOld keeps the previous public
// key in the JWKS (a graceful rotation); otherwise only the new one is
// published.
func (is *Issuer) Rotate(keepOld bool) {
	is.t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		is.t.Fatal(err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	kid := "k-" + hex.EncodeToString(b[:])
	is.mu.Lock()
	defer is.mu.Unlock()
	pub := jose.JSONWebKey{Key: &key.PublicKey, KeyID: kid, Algorithm: string(jose.RS256), Use: "sig"}
	if keepOld {
		is.published = append(is.published, pub)
	} else {
		is.published = []jose.JSONWebKey{pub}
	}
	is.key, is.kid = key, kid
}

// KeyID is the id of the current signing key.
func (is *Issuer) KeyID() string {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.kid
}

// JWKSFetches counts requests for the key set.
func (is *Issuer) JWKSFetches() int {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.jwksFetches
}

// PublicKeyPEM is the current key's public half in PEM (PKIX), the text an
// attacker would use as an HMAC secret.
func (is *Issuer) PublicKeyPEM() []byte {
	is.mu.Lock()
	defer is.mu.Unlock()
	der, err := x509.MarshalPKIXPublicKey(&is.key.PublicKey)
	if err != nil {
		is.t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// Claims builds the standard claims of a token for audience aud, valid
// from now for five minutes (as GitHub's are), plus extra. A value of nil
// in extra removes the claim.
func (is *Issuer) Claims(aud string, extra map[string]any) map[string]any {
	now := is.now()
	var b [8]byte
	_, _ = rand.Read(b[:])
	c := map[string]any{"iss": is.URL, "aud": aud, "iat": now.Unix(), "nbf": now.Add(-5 * time.Second).Unix(),
		"exp": now.Add(5 * time.Minute).Unix(), "jti": hex.EncodeToString(b[:]), "sub": "repo:acme/model:ref:refs/heads/main"}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// Sign signs claims with the current key as a compact RS256 JWT.
func (is *Issuer) Sign(claims map[string]any) string {
	is.t.Helper()
	is.mu.Lock()
	key, kid := is.key, is.kid
	is.mu.Unlock()
	return SignWith(is.t, jose.SigningKey{Algorithm: jose.RS256, Key: key}, kid, claims)
}

// Mint is Sign(Claims(aud, extra)).
func (is *Issuer) Mint(aud string, extra map[string]any) string {
	return is.Sign(is.Claims(aud, extra))
}

// SignWith signs claims with any key (an attacker's, an HMAC secret).
func SignWith(t testing.TB, key jose.SigningKey, kid string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader(jose.HeaderKey("kid"), kid)
	}
	signer, err := jose.NewSigner(key, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ActionsEndpoint stands in for GitHub's ID token endpoint: a GET with
// `Authorization: bearer <RequestToken>` and `audience=` answers
// {"value": <token for that audience>}.
type ActionsEndpoint struct {
	// URL is ACTIONS_ID_TOKEN_REQUEST_URL (it carries a query already, as
	// GitHub's does, so the audience is appended with '&').
	URL string
	// RequestToken is ACTIONS_ID_TOKEN_REQUEST_TOKEN.
	RequestToken string

	mu        sync.Mutex
	claims    map[string]any
	audiences []string
}

// ActionsEndpoint starts a token endpoint that mints tokens with claims
// (repository, ref, sub, ...) for whatever audience a job asks.
func (is *Issuer) ActionsEndpoint(claims map[string]any) *ActionsEndpoint {
	var b [16]byte
	_, _ = rand.Read(b[:])
	ep := &ActionsEndpoint{RequestToken: "req-" + hex.EncodeToString(b[:]), claims: claims}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "bearer "+ep.RequestToken && r.Header.Get("Authorization") != "Bearer "+ep.RequestToken {
			http.Error(w, `{"message":"bad request token"}`, http.StatusUnauthorized)
			return
		}
		aud := r.URL.Query().Get("audience")
		if aud == "" {
			aud = "https://github.com/acme"
		}
		ep.mu.Lock()
		ep.audiences = append(ep.audiences, aud)
		claims := ep.claims
		ep.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"value": is.Mint(aud, claims)})
	}))
	is.t.Cleanup(srv.Close)
	ep.URL = srv.URL + "/token?api-version=2.0"
	return ep
}

// SetClaims changes the claims of tokens minted from now on.
func (ep *ActionsEndpoint) SetClaims(claims map[string]any) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	ep.claims = claims
}

// Audiences lists the audiences tokens were requested for, in order.
func (ep *ActionsEndpoint) Audiences() []string {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return append([]string(nil), ep.audiences...)
}
