package auth_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/internal/auth/oidctest"
	"github.com/stagegate/stagegate/registry"
)

// FuzzOIDCToken: whatever a caller sends as a bearer token, authentication
// answers with a 401, 403 or 503 domain error (never a panic, never an
// internal error), never echoes the token, and succeeds only for a token
// the issuer signed.
func FuzzOIDCToken(f *testing.F) {
	is := oidctest.NewIssuer(f, nil)
	o, err := auth.NewOIDC([]auth.OIDCIssuer{{Issuer: is.URL, Audience: "stagegate-dev", Leeway: time.Minute,
		Rules: []auth.OIDCRule{{Claims: map[string]string{"repository": "acme/*"}, Environment: "dev", Role: auth.RolePublisher}}}},
		auth.OIDCOptions{MinKeyRefresh: time.Hour})
	if err != nil {
		f.Fatal(err)
	}
	authn := auth.NewAuthenticator(noKeys{}, auth.WithOIDC(o))
	valid := is.Mint("stagegate-dev", map[string]any{"repository": "acme/model"})
	parts := strings.Split(valid, ".")
	f.Add(valid)
	f.Add(parts[0] + "." + parts[1] + ".")
	f.Add(segment(map[string]string{"alg": "none"}) + "." + parts[1] + ".")
	f.Add(segment(map[string]string{"alg": "HS256"}) + "." + parts[1] + "." + parts[2])
	f.Add(segment(map[string]any{"alg": "RS256", "kid": 7}) + "." + segment(map[string]any{"iss": is.URL, "aud": []any{1, "stagegate-dev"}}) + ".x")
	f.Add("..")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, token string) {
		if !auth.LooksLikeJWT(token) {
			return
		}
		p, err := authn.Authenticate(context.Background(), "Bearer "+token)
		if err == nil {
			if token != valid || p.Environment != "dev" || p.Role != auth.RolePublisher {
				t.Fatalf("accepted %q as %+v", token, p)
			}
			return
		}
		e := registry.AsError(err)
		switch e.Kind {
		case registry.Unauthenticated, registry.Forbidden, registry.Unavailable:
		default:
			t.Fatalf("token %q: error of kind %v: %v", token, e.Kind, err)
		}
		if len(token) >= 40 && strings.Contains(e.Message, token) {
			t.Fatalf("the message repeats the token: %s", e.Message)
		}
		if strings.ContainsAny(e.Message, "\n\r") {
			t.Fatalf("a multi-line message: %q", e.Message)
		}
	})
}
