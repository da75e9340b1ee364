package config

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Auth configures credentials other than API keys.
type Auth struct {
	OIDC OIDC `yaml:"oidc"`
}

// OIDC is trusted publishing: CI jobs present an OIDC ID token from their
// platform (GitHub Actions, GitLab CI) instead of a stored API key.
type OIDC struct {
	// Issuers lists the token issuers accepted. Several entries may name
	// the same issuer with different audiences: the audience a job asks
	// for then selects the entry, and so the environment (a job that
	// publishes into dev and promotes into staging asks for two tokens).
	Issuers []OIDCIssuer `yaml:"issuers"`
}

// OIDCIssuer is one accepted (issuer, audience) pair and its rules.
type OIDCIssuer struct {
	// Issuer is the token's exact `iss`, e.g.
	// https://token.actions.githubusercontent.com or https://gitlab.com.
	Issuer string `yaml:"issuer"`
	// Audience is the `aud` a token must carry for this entry.
	Audience string `yaml:"audience"`
	// JWKSURL overrides discovery (<issuer>/.well-known/openid-configuration).
	JWKSURL string `yaml:"jwks_url"`
	// Leeway is the clock skew tolerated on exp, nbf and iat (default 60s,
	// at most 5m).
	Leeway time.Duration `yaml:"leeway"`
	// Rules map a token's claims to one environment, role and identity;
	// the first rule that matches wins.
	Rules []OIDCRule `yaml:"rules"`
}

// OIDCRule maps tokens whose claims all match to a credential.
type OIDCRule struct {
	// Name labels the rule in audit events (default "rule-<n>", 1-based).
	Name string `yaml:"name"`
	// Claims maps claim names (repository, repository_owner, ref,
	// environment, job_workflow_ref, event_name, or for GitLab
	// project_path, namespace_path, ref_protected, ...) to a pattern: exact
	// text, or a glob where '*' matches within one '/'-separated segment,
	// '?' one character and [...] a class. Every listed claim must be
	// present and match.
	Claims map[string]string `yaml:"claims"`
	// Environment and Role are what a matching token may do.
	Environment string `yaml:"environment"`
	Role        string `yaml:"role"`
	// Identity is recorded as the actor and judged by the approvals check
	// (default: the token's subject).
	Identity string `yaml:"identity"`
}

// DefaultOIDCLeeway is the clock skew tolerated when an issuer names none.
const DefaultOIDCLeeway = 60 * time.Second

var (
	claimName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	oidcRoles = []string{"reader", "publisher", "promoter", "approver", "admin"}
)

// validateAuth checks the auth section against the configured environments.
func (c *Config) validateAuth() []error {
	var errs []error
	for i, is := range c.Auth.OIDC.Issuers {
		at := fmt.Sprintf("auth.oidc.issuers[%d]", i)
		if err := checkIssuerURL(is.Issuer); err != nil {
			errs = append(errs, fmt.Errorf("%s.issuer: %w", at, err))
		}
		if is.JWKSURL != "" {
			if err := checkIssuerURL(is.JWKSURL); err != nil {
				errs = append(errs, fmt.Errorf("%s.jwks_url: %w", at, err))
			}
		}
		if strings.TrimSpace(is.Audience) == "" {
			errs = append(errs, fmt.Errorf("%s.audience is required: the token's aud, e.g. stagegate-dev (a token for another service must not be accepted here)", at))
		}
		for j, prev := range c.Auth.OIDC.Issuers[:i] {
			if prev.Issuer == is.Issuer && prev.Audience == is.Audience {
				errs = append(errs, fmt.Errorf("%s repeats issuer %q with audience %q of auth.oidc.issuers[%d]; merge their rules", at, is.Issuer, is.Audience, j))
			}
		}
		if is.Leeway < 0 || is.Leeway > 5*time.Minute {
			errs = append(errs, fmt.Errorf("%s.leeway %s: want between 0 and 5m", at, is.Leeway))
		}
		if len(is.Rules) == 0 {
			errs = append(errs, fmt.Errorf("%s.rules: at least one rule is required", at))
		}
		for j, r := range is.Rules {
			errs = append(errs, c.validateRule(fmt.Sprintf("%s.rules[%d]", at, j), r)...)
		}
	}
	return errs
}

func (c *Config) validateRule(at string, r OIDCRule) []error {
	var errs []error
	if len(r.Claims) == 0 {
		// A rule without conditions would admit every token the issuer
		// signs for this audience: on GitHub, any repository's workflow.
		errs = append(errs, fmt.Errorf("%s.claims: list at least one claim to match, e.g. repository", at))
	}
	names := make([]string, 0, len(r.Claims))
	for name := range r.Claims {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		pattern := r.Claims[name]
		if !claimName.MatchString(name) {
			errs = append(errs, fmt.Errorf("%s.claims: %q is not a claim name (lowercase letters, digits and '_')", at, name))
		}
		if pattern == "" {
			errs = append(errs, fmt.Errorf("%s.claims.%s: the pattern is empty", at, name))
		} else if _, err := path.Match(pattern, ""); err != nil {
			errs = append(errs, fmt.Errorf("%s.claims.%s: bad glob %q: %w", at, name, pattern, err))
		}
	}
	if !slices.Contains(c.EnvironmentNames(), r.Environment) {
		errs = append(errs, fmt.Errorf("%s.environment %q is not a configured environment (want one of %s)", at, r.Environment, strings.Join(c.EnvironmentNames(), ", ")))
	}
	if !slices.Contains(oidcRoles, r.Role) {
		errs = append(errs, fmt.Errorf("%s.role %q: want one of %s", at, r.Role, strings.Join(oidcRoles, ", ")))
	}
	if r.Identity != "" && (strings.ContainsFunc(r.Identity, func(r rune) bool { return r <= ' ' || r == 0x7f }) || len(r.Identity) > 254) {
		errs = append(errs, fmt.Errorf("%s.identity %q: at most 254 bytes, no spaces or control characters", at, r.Identity))
	}
	if strings.HasPrefix(r.Identity, "cli:") {
		errs = append(errs, fmt.Errorf("%s.identity %q: the prefix \"cli:\" is reserved for the server host", at, r.Identity))
	}
	return errs
}

// checkIssuerURL accepts https URLs, and http only on a loopback host (a
// local test issuer): keys fetched over plain HTTP from elsewhere could be
// replaced on the way.
func checkIssuerURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q is not an absolute URL without query or fragment", s)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
	}
	return fmt.Errorf("%q: want https (http only on a loopback address, for tests)", s)
}
