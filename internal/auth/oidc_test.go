package auth_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/internal/auth/oidctest"
	"github.com/stagegate/stagegate/registry"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type recorded struct {
	mu     sync.Mutex
	events []audit.Event
}

func (r *recorded) record(_ context.Context, env string, ev audit.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev.Environment = env
	r.events = append(r.events, ev)
	return nil
}

func (r *recorded) all() []audit.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]audit.Event(nil), r.events...)
}

type noKeys struct{}

func (noKeys) KeyByHash(context.Context, string) (auth.Key, error) {
	return auth.Key{}, registry.CodeNotFound.Errorf("no key")
}

type fixture struct {
	is    *oidctest.Issuer
	clk   *clock
	audit *recorded
	authn *auth.Authenticator
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	clk := &clock{now: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)}
	is := oidctest.NewIssuer(t, clk.Now)
	rec := &recorded{}
	o, err := auth.NewOIDC([]auth.OIDCIssuer{
		{Issuer: is.URL, Audience: "stagegate-dev", Leeway: time.Minute, Rules: []auth.OIDCRule{
			{Name: "main", Claims: map[string]string{"repository": "acme/model", "ref": "refs/heads/main"}, Environment: "dev", Role: auth.RolePublisher, Identity: "github:acme/model"},
			{Name: "any-branch", Claims: map[string]string{"repository": "acme/model", "ref": "refs/heads/*"}, Environment: "dev", Role: auth.RoleReader},
		}},
		{Issuer: is.URL, Audience: "stagegate-staging", Rules: []auth.OIDCRule{
			{Claims: map[string]string{"repository_owner": "acme", "environment": "staging"}, Environment: "staging", Role: auth.RolePromoter},
		}},
	}, auth.OIDCOptions{Now: clk.Now, Record: rec.record, MinKeyRefresh: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{is: is, clk: clk, audit: rec, authn: auth.NewAuthenticator(noKeys{}, auth.WithOIDC(o))}
}

func (f *fixture) auth(token string) (auth.Principal, error) {
	return f.authn.Authenticate(context.Background(), "Bearer "+token)
}

var mainClaims = map[string]any{"repository": "acme/model", "repository_owner": "acme", "ref": "refs/heads/main"}

func TestOIDCValidTokenMapsToRule(t *testing.T) {
	f := newFixture(t)
	tok := f.is.Mint("stagegate-dev", mainClaims)
	p, err := f.auth(tok)
	if err != nil {
		t.Fatal(err)
	}
	if p.Environment != "dev" || p.Role != auth.RolePublisher || p.Owner != "github:acme/model" || p.Actor != p.Owner ||
		!strings.HasPrefix(p.CredentialID, "oidc_") || p.CreatedByOwner != auth.OIDCIdentity {
		t.Fatalf("principal %+v", p)
	}
	// The same token again is the same credential, audited once.
	p2, err := f.auth(tok)
	if err != nil || p2.CredentialID != p.CredentialID {
		t.Fatalf("second use: %+v %v", p2, err)
	}
	evs := f.audit.all()
	if len(evs) != 1 {
		t.Fatalf("want one authenticate event, got %d", len(evs))
	}
	ev := evs[0]
	if ev.Action != audit.ActionAuthenticate || ev.Environment != "dev" || ev.CredentialID != p.CredentialID ||
		ev.Details["issuer"] != f.is.URL || ev.Details["subject"] != "repo:acme/model:ref:refs/heads/main" ||
		ev.Details["claim.repository"] != "acme/model" || ev.Details["claim.ref"] != "refs/heads/main" || ev.Details["rule"] != "main" {
		t.Fatalf("audit event %+v", ev)
	}
	if _, leaked := ev.Details["claim.repository_owner"]; leaked {
		t.Fatal("the event records claims the rule did not use")
	}

	// First matching rule wins; a glob matches one path segment.
	p, err = f.auth(f.is.Mint("stagegate-dev", map[string]any{"repository": "acme/model", "ref": "refs/heads/dev"}))
	if err != nil || p.Role != auth.RoleReader || p.Owner != "repo:acme/model:ref:refs/heads/main" {
		t.Fatalf("glob rule, subject as identity: %+v %v", p, err)
	}
	// The audience selects the entry: the same job's token for staging.
	p, err = f.auth(f.is.Mint("stagegate-staging", map[string]any{"repository_owner": "acme", "environment": "staging", "sub": "repo:acme/model:environment:staging"}))
	if err != nil || p.Environment != "staging" || p.Role != auth.RolePromoter || p.Owner != "repo:acme/model:environment:staging" {
		t.Fatalf("staging audience: %+v %v", p, err)
	}
}

func segment(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestOIDCRefusals(t *testing.T) {
	f := newFixture(t)
	now := f.clk.Now()
	attacker, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	valid := f.is.Mint("stagegate-dev", mainClaims)
	parts := strings.Split(valid, ".")
	tampered := map[string]any{}
	for k, v := range f.is.Claims("stagegate-dev", mainClaims) {
		tampered[k] = v
	}
	tampered["repository"] = "acme/other"

	tests := []struct {
		name, token, code, reason string
	}{
		{"wrong audience", f.is.Mint("stagegate-prod", mainClaims), "invalid_token", "audience"},
		{"expired past the leeway", f.is.Mint("stagegate-dev", with(mainClaims, "exp", now.Add(-2*time.Minute).Unix(), "iat", now.Add(-10*time.Minute).Unix(), "nbf", nil)), "token_expired", "expired"},
		{"not yet valid", f.is.Mint("stagegate-dev", with(mainClaims, "nbf", now.Add(5*time.Minute).Unix())), "token_expired", "not_yet_valid"},
		{"issued in the future", f.is.Mint("stagegate-dev", with(mainClaims, "iat", now.Add(10*time.Minute).Unix(), "nbf", nil)), "token_expired", "not_yet_valid"},
		{"no expiry", f.is.Mint("stagegate-dev", with(mainClaims, "exp", nil)), "invalid_token", "no_expiry"},
		{"unknown key", oidctest.SignWith(t, jose.SigningKey{Algorithm: jose.RS256, Key: attacker}, "k-attacker", f.is.Claims("stagegate-dev", mainClaims)), "invalid_token", "unknown_key"},
		{"attacker key under the issuer's key id", oidctest.SignWith(t, jose.SigningKey{Algorithm: jose.RS256, Key: attacker}, f.is.KeyID(), f.is.Claims("stagegate-dev", mainClaims)), "invalid_token", "signature"},
		{"tampered payload", parts[0] + "." + segment(tampered) + "." + parts[2], "invalid_token", "signature"},
		{"alg none", segment(map[string]string{"alg": "none", "typ": "JWT"}) + "." + parts[1] + ".", "invalid_token", "algorithm"},
		{"HS256 with the public key as secret", oidctest.SignWith(t, jose.SigningKey{Algorithm: jose.HS256, Key: f.is.PublicKeyPEM()}, f.is.KeyID(), f.is.Claims("stagegate-dev", mainClaims)), "invalid_token", "algorithm"},
		{"wrong issuer", oidctest.SignWith(t, jose.SigningKey{Algorithm: jose.RS256, Key: attacker}, "", with(f.is.Claims("stagegate-dev", mainClaims), "iss", "https://token.evil.example")), "invalid_token", "issuer"},
		{"garbage", "a.b.c", "invalid_token", "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.auth(tt.token)
			e := registry.AsError(err)
			if err == nil || e.Kind != registry.Unauthenticated || e.Code != tt.code {
				t.Fatalf("want 401 %s, got %v", tt.code, err)
			}
			d, _ := e.Details.(map[string]string)
			if d["reason"] != tt.reason {
				t.Fatalf("want reason %q, got %v (%s)", tt.reason, d, e.Message)
			}
			if strings.Contains(e.Message, tt.token) {
				t.Fatal("the message repeats the token")
			}
		})
	}
	// Bad signatures do not make the server refetch the issuer's keys: only
	// an unknown key id may, and not more often than the floor.
	if n := f.is.JWKSFetches(); n > 2 {
		t.Fatalf("%d JWKS fetches for a handful of refusals", n)
	}
	if len(f.audit.all()) != 0 {
		t.Fatal("a refused token was audited as a success")
	}
	// Within the leeway is fine.
	if _, err := f.auth(f.is.Mint("stagegate-dev", with(mainClaims, "exp", now.Add(-30*time.Second).Unix(), "iat", now.Add(-5*time.Minute).Unix()))); err != nil {
		t.Fatalf("expired 30s ago, leeway 1m: %v", err)
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func TestOIDCNoMatchingRule(t *testing.T) {
	f := newFixture(t)
	tok := f.is.Mint("stagegate-dev", map[string]any{"repository": "acme/fork", "ref": "refs/pull/7/merge"})
	_, err := f.auth(tok)
	e := registry.AsError(err)
	if e.Kind != registry.Forbidden || e.Code != "no_matching_rule" {
		t.Fatalf("want 403 no_matching_rule, got %v", err)
	}
	for _, want := range []string{f.is.URL, `repository="acme/fork"`, `ref="refs/pull/7/merge"`} {
		if !strings.Contains(e.Message, want) {
			t.Errorf("message %q does not name %s", e.Message, want)
		}
	}
	if strings.Contains(e.Message, tok) || strings.Contains(e.Message, strings.Split(tok, ".")[2]) {
		t.Fatal("the message carries the token")
	}
	// A claim the rules name but the token lacks is said to be absent.
	_, err = f.auth(f.is.Mint("stagegate-staging", map[string]any{"repository_owner": "acme"}))
	if e := registry.AsError(err); e.Code != "no_matching_rule" || !strings.Contains(e.Message, "environment absent") {
		t.Fatalf("absent claim: %v", err)
	}
}

func TestOIDCKeyRotation(t *testing.T) {
	f := newFixture(t)
	old := f.is.Mint("stagegate-dev", mainClaims)
	if _, err := f.auth(old); err != nil {
		t.Fatal(err)
	}
	f.is.Rotate(false)
	fresh := f.is.Mint("stagegate-dev", mainClaims)
	// Within the refetch floor the new key id is unknown...
	if _, err := f.auth(fresh); registry.AsError(err).Code != "invalid_token" {
		t.Fatalf("new key inside the refetch floor: %v", err)
	}
	// ...after it, the rotated set is fetched without a restart.
	f.clk.Advance(11 * time.Second)
	if _, err := f.auth(fresh); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
	// The retired key is gone from the set: its tokens no longer verify.
	f.clk.Advance(11 * time.Second)
	if _, err := f.auth(old); registry.AsError(err).Code != "invalid_token" {
		t.Fatalf("retired key still accepted: %v", err)
	}
}

func TestOIDCIssuerDown(t *testing.T) {
	o, err := auth.NewOIDC([]auth.OIDCIssuer{{Issuer: "http://127.0.0.1:1", Audience: "a",
		Rules: []auth.OIDCRule{{Claims: map[string]string{"repository": "x/y"}, Environment: "dev", Role: auth.RoleReader}}}},
		auth.OIDCOptions{HTTPClient: &http.Client{Timeout: time.Second}})
	if err != nil {
		t.Fatalf("an unreachable issuer must not stop start-up: %v", err)
	}
	claims := segment(map[string]any{"iss": "http://127.0.0.1:1", "aud": "a", "exp": time.Now().Add(time.Minute).Unix()})
	tok := segment(map[string]string{"alg": "RS256", "kid": "k"}) + "." + claims + ".c2ln"
	_, err = auth.NewAuthenticator(noKeys{}, auth.WithOIDC(o)).Authenticate(context.Background(), "Bearer "+tok)
	if registry.KindOf(err) != registry.Unavailable {
		t.Fatalf("want 503 unavailable while the issuer is down, got %v", err)
	}
}

func TestOIDCRuleValidation(t *testing.T) {
	for _, r := range []auth.OIDCRule{
		{Claims: map[string]string{"repository": "x/y"}, Environment: "dev", Role: "owner"},
		{Claims: map[string]string{"repository": "x/y"}, Environment: "dev", Role: auth.RoleReader, Identity: "cli:me"},
		{Claims: map[string]string{"repository": "x/[y"}, Environment: "dev", Role: auth.RoleReader},
		{Environment: "dev", Role: auth.RoleReader},
	} {
		if _, err := auth.NewOIDC([]auth.OIDCIssuer{{Issuer: "https://i.example", Audience: "a", Rules: []auth.OIDCRule{r}}}, auth.OIDCOptions{}); err == nil {
			t.Errorf("rule %+v accepted", r)
		}
	}
}

func TestAPIKeysStillWorkBesideOIDC(t *testing.T) {
	f := newFixture(t)
	_, err := f.authn.Authenticate(context.Background(), "Bearer sgk_unknown")
	if e := registry.AsError(err); e.Code != "unauthenticated" {
		t.Fatalf("an API key goes to the key store: %v", err)
	}
}

// GitLab CI by configuration only: its own issuer and claim names, and a
// boolean claim matched by its JSON text.
func TestOIDCGitLabClaims(t *testing.T) {
	gl := oidctest.NewIssuer(t, nil)
	o, err := auth.NewOIDC([]auth.OIDCIssuer{{Issuer: gl.URL, Audience: "stagegate", Rules: []auth.OIDCRule{
		{Claims: map[string]string{"project_path": "acme/fraud-model", "ref_protected": "true", "ref_type": "branch"}, Environment: "dev", Role: auth.RolePublisher},
	}}}, auth.OIDCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	authn := auth.NewAuthenticator(noKeys{}, auth.WithOIDC(o))
	sub := "project_path:acme/fraud-model:ref_type:branch:ref:main"
	p, err := authn.Authenticate(context.Background(), "Bearer "+gl.Mint("stagegate", map[string]any{
		"project_path": "acme/fraud-model", "ref_protected": true, "ref_type": "branch", "sub": sub}))
	if err != nil || p.Environment != "dev" || p.Owner != sub {
		t.Fatalf("%+v %v", p, err)
	}
	_, err = authn.Authenticate(context.Background(), "Bearer "+gl.Mint("stagegate", map[string]any{
		"project_path": "acme/fraud-model", "ref_protected": false, "ref_type": "branch", "sub": sub}))
	if e := registry.AsError(err); e.Code != "no_matching_rule" || !strings.Contains(e.Message, `ref_protected="false"`) {
		t.Fatalf("unprotected ref: %v", err)
	}
}
