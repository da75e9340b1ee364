package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/stagegate/stagegate/client"
	"github.com/stagegate/stagegate/gates"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/internal/auth/oidctest"
	"github.com/stagegate/stagegate/internal/config"
	"github.com/stagegate/stagegate/internal/server"
)

const ciRepo = "acme/fraud-model"

// ciClaims are the claims of a GitHub Actions job on main of ciRepo.
func ciClaims(extra map[string]any) map[string]any {
	c := map[string]any{"repository": ciRepo, "repository_owner": "acme", "ref": "refs/heads/main",
		"event_name": "push", "sub": "repo:" + ciRepo + ":ref:refs/heads/main",
		"job_workflow_ref": ciRepo + "/.github/workflows/publish.yml@refs/heads/main"}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

// oidcAuth is the auth section trusting is: main of ciRepo publishes into
// dev and promotes into staging; in prod, the job behind the GitHub
// Environment prod-approval approves and the one behind prod promotes.
func oidcAuth(is *oidctest.Issuer) config.Auth {
	main := map[string]string{"repository": ciRepo, "ref": "refs/heads/main"}
	return config.Auth{OIDC: config.OIDC{Issuers: []config.OIDCIssuer{
		{Issuer: is.URL, Audience: "stagegate-dev", Rules: []config.OIDCRule{
			{Name: "main-publishes", Claims: main, Environment: "dev", Role: "publisher", Identity: "github:" + ciRepo}}},
		{Issuer: is.URL, Audience: "stagegate-staging", Rules: []config.OIDCRule{
			{Claims: main, Environment: "staging", Role: "promoter", Identity: "github:" + ciRepo}}},
		{Issuer: is.URL, Audience: "stagegate-prod", Rules: []config.OIDCRule{
			{Claims: map[string]string{"repository": ciRepo, "environment": "prod-approval"}, Environment: "prod", Role: "approver", Identity: "github-reviewers:" + ciRepo},
			{Claims: map[string]string{"repository": ciRepo, "environment": "prod", "ref": "refs/heads/*"}, Environment: "prod", Role: "promoter", Identity: "github:" + ciRepo + "/prod"},
			{Claims: map[string]string{"repository": ciRepo, "environment": "prod-self"}, Environment: "prod", Role: "approver", Identity: "github:" + ciRepo + "/prod"},
		}},
	}}}
}

func TestOIDCTrustedPublishing(t *testing.T) {
	for _, kind := range stackKinds(t) {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			clock := &fakeClock{now: time.Now().UTC().Truncate(time.Second)}
			is := oidctest.NewIssuer(t, clock.Now)
			s := newStack(t, kind, func(c *config.Config) { c.Auth = oidcAuth(is) }, server.WithClock(clock.Now))

			tok := is.Mint("stagegate-dev", ciClaims(nil))
			pub := s.client(tok)
			w, err := pub.Whoami(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if w.Environment != "dev" || w.Role != "publisher" || w.Actor != "github:"+ciRepo || !strings.HasPrefix(w.CredentialID, "oidc_") {
				t.Fatalf("whoami %+v", w)
			}
			res, err := push(t, pub, "dev", "churn-features@1.0.0", "generic", map[string][]byte{"features.csv": []byte("a,b\n1,2\n")})
			if err != nil {
				t.Fatal(err)
			}
			if res.Version.CreatedBy != "github:"+ciRepo {
				t.Fatalf("created by %q", res.Version.CreatedBy)
			}

			// The audit trail: one authenticate event per token, with the
			// issuer, subject and the claims the rule used; the publish
			// names the identity and the token's credential id.
			events, err := s.client(s.key("dev", auth.RoleReader)).Audit(ctx, "dev", url.Values{"actor": {"github:" + ciRepo}})
			if err != nil {
				t.Fatal(err)
			}
			var authn, publish int
			for _, ev := range events {
				if ev.CredentialID != w.CredentialID {
					t.Fatalf("event %s has credential %q, want the token's %q", ev.Action, ev.CredentialID, w.CredentialID)
				}
				switch ev.Action {
				case "authenticate":
					authn++
					if ev.Details["issuer"] != is.URL || ev.Details["subject"] != "repo:"+ciRepo+":ref:refs/heads/main" ||
						ev.Details["claim.repository"] != ciRepo || ev.Details["claim.ref"] != "refs/heads/main" || ev.Details["rule"] != "main-publishes" {
						t.Fatalf("authenticate event %+v", ev)
					}
				case "artifact.publish":
					publish++
				}
			}
			if authn != 1 || publish != 1 {
				t.Fatalf("%d authenticate and %d publish events, want 1 and 1: %+v", authn, publish, events)
			}

			// The staging audience maps the same job to a staging promoter.
			promoter := s.client(is.Mint("stagegate-staging", ciClaims(nil)))
			pr, err := promoter.Promote(ctx, "staging", client.PromoteRequest{Name: "churn-features", Version: "1.0.0"})
			if err != nil || !pr.Created || pr.Release.Actor != "github:"+ciRepo {
				t.Fatalf("promotion by OIDC: %+v %v", pr, err)
			}

			// prod: the approval given behind the GitHub Environment counts,
			// as an identity other than the promoter's.
			approver := s.client(is.Mint("stagegate-prod", ciClaims(map[string]any{"environment": "prod-approval", "sub": "repo:" + ciRepo + ":environment:prod-approval"})))
			if _, err := approver.Approve(ctx, "prod", "churn-features", "1.0.0", "reviewed"); err != nil {
				t.Fatal(err)
			}
			prodPromoter := s.client(is.Mint("stagegate-prod", ciClaims(map[string]any{"environment": "prod", "sub": "repo:" + ciRepo + ":environment:prod"})))
			pr, err = prodPromoter.Promote(ctx, "prod", client.PromoteRequest{Name: "churn-features", Version: "1.0.0"})
			if err != nil {
				t.Fatalf("prod promotion with an OIDC approval: %v", err)
			}
			var d gates.ApprovalDetails
			for _, r := range pr.Report.Results {
				if r.Check == "approvals" {
					_ = json.Unmarshal(r.Details, &d)
				}
			}
			if len(d.Counted) != 1 || d.Counted[0] != "github-reviewers:"+ciRepo || d.Promoter != "github:"+ciRepo+"/prod" {
				t.Fatalf("approvals details %+v", d)
			}
		})
	}
}

// Approvals are judged per identity: a rule that gives the promoter's own
// identity to an approving job does not satisfy the approvals check.
func TestOIDCSelfApprovalDoesNotCount(t *testing.T) {
	ctx := context.Background()
	is := oidctest.NewIssuer(t, nil)
	s := newStack(t, "embedded", func(c *config.Config) { c.Auth = oidcAuth(is) })
	if _, err := push(t, s.client(is.Mint("stagegate-dev", ciClaims(nil))), "dev", "m@1.0.0", "generic", map[string][]byte{"a.txt": []byte("a")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.client(is.Mint("stagegate-staging", ciClaims(nil))).Promote(ctx, "staging", client.PromoteRequest{Name: "m", Version: "1.0.0"}); err != nil {
		t.Fatal(err)
	}
	self := s.client(is.Mint("stagegate-prod", ciClaims(map[string]any{"environment": "prod-self"})))
	if _, err := self.Approve(ctx, "prod", "m", "1.0.0", ""); err != nil {
		t.Fatal(err)
	}
	_, err := s.client(is.Mint("stagegate-prod", ciClaims(map[string]any{"environment": "prod"}))).Promote(ctx, "prod", client.PromoteRequest{Name: "m", Version: "1.0.0"})
	gf := gateFailure(t, err)
	if reason := failedChecks(gf.Report)["approvals"]; !strings.Contains(reason, "self-approval") {
		t.Fatalf("approvals: %q", reason)
	}
}

func TestOIDCRefusalsOverHTTP(t *testing.T) {
	clock := &fakeClock{now: time.Now().UTC().Truncate(time.Second)}
	is := oidctest.NewIssuer(t, clock.Now)
	s := newStack(t, "embedded", func(c *config.Config) { c.Auth = oidcAuth(is) }, server.WithClock(clock.Now))
	ctx := context.Background()
	now := clock.Now()
	whoami := func(tok string) error {
		_, err := client.New(s.url, tok, nil).WithRetry(client.NoRetry()).Whoami(ctx)
		return err
	}
	claims := is.Claims("stagegate-dev", ciClaims(nil))
	claims["exp"] = now.Add(-10 * time.Minute).Unix()
	wantAPIError(t, whoami(is.Sign(claims)), http.StatusUnauthorized, "token_expired")
	wantAPIError(t, whoami(is.Mint("stagegate-qa", ciClaims(nil))), http.StatusUnauthorized, "invalid_token")
	hs := oidctest.SignWith(t, jose.SigningKey{Algorithm: jose.HS256, Key: is.PublicKeyPEM()}, is.KeyID(), is.Claims("stagegate-dev", ciClaims(nil)))
	wantAPIError(t, whoami(hs), http.StatusUnauthorized, "invalid_token")

	feature := is.Mint("stagegate-dev", ciClaims(map[string]any{"ref": "refs/heads/feature"}))
	err := whoami(feature)
	wantAPIError(t, err, http.StatusForbidden, "no_matching_rule")
	msg := err.(*client.APIError).Message
	if !strings.Contains(msg, is.URL) || !strings.Contains(msg, `ref="refs/heads/feature"`) || strings.Contains(msg, feature) {
		t.Fatalf("refusal message %q: want the issuer and the claim, never the token", msg)
	}

	// A rotated key set is fetched without a restart, no more often than
	// the refetch floor allows.
	if err := whoami(is.Mint("stagegate-dev", ciClaims(nil))); err != nil {
		t.Fatal(err)
	}
	is.Rotate(false)
	rotated := is.Mint("stagegate-dev", ciClaims(nil))
	wantAPIError(t, whoami(rotated), http.StatusUnauthorized, "invalid_token")
	clock.Advance(16 * time.Second)
	if err := whoami(rotated); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
}
