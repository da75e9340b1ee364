package config

import (
	"strings"
	"testing"
)

const oidcYAML = `
auth:
  oidc:
    issuers:
      - issuer: https://token.actions.githubusercontent.com
        audience: stagegate-dev
        leeway: 30s
        rules:
          - name: main-publishes
            claims: {repository: acme/fraud-model, ref: refs/heads/main}
            environment: dev
            role: publisher
            identity: github:acme/fraud-model
      - issuer: https://token.actions.githubusercontent.com
        audience: stagegate-staging
        rules:
          - claims: {repository: "acme/*", environment: staging}
            environment: staging
            role: promoter
      - issuer: https://gitlab.example.com
        audience: stagegate
        jwks_url: https://gitlab.example.com/oauth/discovery/keys
        rules:
          - claims: {project_path: acme/fraud-model, ref_protected: "true"}
            environment: dev
            role: publisher
`

func TestOIDCConfigParses(t *testing.T) {
	cfg, err := Parse(strings.NewReader(oidcYAML))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	is := cfg.Auth.OIDC.Issuers
	if len(is) != 3 || is[0].Rules[0].Claims["ref"] != "refs/heads/main" || is[0].Leeway.Seconds() != 30 || is[2].JWKSURL == "" {
		t.Fatalf("parsed %+v", is)
	}
}

func TestOIDCConfigRefused(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"plain http elsewhere", `{issuer: "http://issuer.example.com", audience: a, rules: [{claims: {repository: x/y}, environment: dev, role: publisher}]}`, "want https"},
		{"http loopback is fine but audience missing", `{issuer: "http://127.0.0.1:9", rules: [{claims: {repository: x/y}, environment: dev, role: publisher}]}`, "audience is required"},
		{"no rules", `{issuer: "https://i.example", audience: a}`, "at least one rule"},
		{"rule without claims", `{issuer: "https://i.example", audience: a, rules: [{environment: dev, role: publisher}]}`, "at least one claim"},
		{"unknown environment", `{issuer: "https://i.example", audience: a, rules: [{claims: {repository: x/y}, environment: qa, role: publisher}]}`, `environment "qa" is not a configured environment`},
		{"unknown role", `{issuer: "https://i.example", audience: a, rules: [{claims: {repository: x/y}, environment: dev, role: owner}]}`, `role "owner"`},
		{"bad glob", `{issuer: "https://i.example", audience: a, rules: [{claims: {repository: "x/[y"}, environment: dev, role: publisher}]}`, "bad glob"},
		{"bad claim name", `{issuer: "https://i.example", audience: a, rules: [{claims: {Repo: x}, environment: dev, role: publisher}]}`, "is not a claim name"},
		{"reserved identity", `{issuer: "https://i.example", audience: a, rules: [{claims: {repository: x/y}, environment: dev, role: publisher, identity: "cli:ci"}]}`, "reserved"},
		{"identity with space", `{issuer: "https://i.example", audience: a, rules: [{claims: {repository: x/y}, environment: dev, role: publisher, identity: "a b"}]}`, "no spaces"},
		{"leeway too large", `{issuer: "https://i.example", audience: a, leeway: 1h, rules: [{claims: {repository: x/y}, environment: dev, role: publisher}]}`, "leeway"},
		{"issuer with query", `{issuer: "https://i.example/?x=1", audience: a, rules: [{claims: {repository: x/y}, environment: dev, role: publisher}]}`, "without query"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse(strings.NewReader("auth: {oidc: {issuers: [" + tt.yaml + "]}}\n"))
			if err != nil {
				t.Fatal(err)
			}
			err = cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("want an error containing %q, got %v", tt.want, err)
			}
		})
	}
	dup := `auth: {oidc: {issuers: [
  {issuer: "https://i.example", audience: a, rules: [{claims: {repository: x/y}, environment: dev, role: publisher}]},
  {issuer: "https://i.example", audience: a, rules: [{claims: {repository: x/z}, environment: dev, role: publisher}]}]}}`
	cfg, err := Parse(strings.NewReader(dup))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "merge their rules") {
		t.Fatalf("duplicate issuer/audience: %v", err)
	}
}
