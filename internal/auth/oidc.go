package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/registry"
)

// OIDCIssuer is one accepted (issuer, audience) pair and the rules that map
// its tokens to credentials (see config.OIDCIssuer).
type OIDCIssuer struct {
	Issuer   string
	Audience string
	JWKSURL  string        // "" to discover it
	Leeway   time.Duration // clock skew tolerated on exp, nbf and iat
	Rules    []OIDCRule
}

// OIDCRule maps tokens whose listed claims all match to one environment,
// role and identity.
type OIDCRule struct {
	Name string
	// Claims maps a claim name to exact text or a path.Match glob.
	Claims      map[string]string
	Environment string
	Role        Role
	// Identity is the principal's Owner and Actor; "" means the subject.
	Identity string
}

// OIDCIdentity is the identity that "minted" every OIDC credential: the
// operator who wrote the rules into the server's configuration. It uses the
// server host's reserved prefix, so no key owner or rule identity can pass
// for it in the approvals check.
const OIDCIdentity = "cli:oidc-config"

// OIDCOptions are the dependencies of an OIDC verifier.
type OIDCOptions struct {
	// HTTPClient fetches discovery documents and key sets (default: a
	// client with a 10 s timeout).
	HTTPClient *http.Client
	// Now is the clock for exp, nbf and iat (default time.Now).
	Now func() time.Time
	// Record appends an audit event to env's trail. The first use of each
	// token is recorded there with its issuer, subject and the claims its
	// rule matched; the events of its requests carry its credential id.
	Record func(ctx context.Context, env string, ev audit.Event) error
	Logger *slog.Logger
	// MinKeyRefresh is the least time between two fetches of one issuer's
	// key set (default 15 s); see keySet.
	MinKeyRefresh time.Duration
}

// OIDC verifies OIDC ID tokens and maps them to Principals.
type OIDC struct {
	entries []*oidcEntry
	issuers map[string]*issuerKeys
	now     func() time.Time
	record  func(ctx context.Context, env string, ev audit.Event) error
	logger  *slog.Logger
	seen    seenTokens
}

type oidcEntry struct {
	issuer, audience string
	leeway           time.Duration
	rules            []oidcRule
	keys             *issuerKeys
}

type oidcRule struct {
	name     string
	claims   []claimMatch // sorted by claim name
	env      string
	role     Role
	identity string
}

type claimMatch struct {
	claim, pattern string
	glob           bool
}

func (m claimMatch) matches(v string) bool {
	if !m.glob {
		return v == m.pattern
	}
	ok, _ := path.Match(m.pattern, v)
	return ok
}

// NewOIDC builds a verifier for issuers. Nothing is fetched until the first
// token of an issuer arrives, so an issuer that is down does not stop the
// service from starting.
func NewOIDC(issuers []OIDCIssuer, opts OIDCOptions) (*OIDC, error) {
	o := &OIDC{issuers: map[string]*issuerKeys{}, now: opts.Now, record: opts.Record, logger: opts.Logger}
	if o.now == nil {
		o.now = time.Now
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	client := opts.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	minRefresh := opts.MinKeyRefresh
	if minRefresh <= 0 {
		minRefresh = 15 * time.Second
	}
	for i, is := range issuers {
		if is.Issuer == "" || is.Audience == "" || len(is.Rules) == 0 {
			return nil, fmt.Errorf("oidc issuer %d: issuer, audience and at least one rule are required", i)
		}
		keys := o.issuers[is.Issuer]
		if keys == nil {
			keys = &issuerKeys{issuer: is.Issuer, jwksURL: is.JWKSURL, client: client, now: o.now, minRefresh: minRefresh}
			o.issuers[is.Issuer] = keys
		} else if is.JWKSURL != "" && keys.jwksURL != "" && keys.jwksURL != is.JWKSURL {
			return nil, fmt.Errorf("oidc issuer %q is configured with two JWKS URLs", is.Issuer)
		} else if keys.jwksURL == "" {
			keys.jwksURL = is.JWKSURL
		}
		e := &oidcEntry{issuer: is.Issuer, audience: is.Audience, leeway: is.Leeway, keys: keys}
		for j, r := range is.Rules {
			rule, err := compileRule(j, r)
			if err != nil {
				return nil, fmt.Errorf("oidc issuer %q audience %q: %w", is.Issuer, is.Audience, err)
			}
			e.rules = append(e.rules, rule)
		}
		o.entries = append(o.entries, e)
	}
	return o, nil
}

func compileRule(i int, r OIDCRule) (oidcRule, error) {
	rule := oidcRule{name: r.Name, env: r.Environment, role: r.Role, identity: r.Identity}
	if rule.name == "" {
		rule.name = "rule-" + strconv.Itoa(i+1)
	}
	at := "rule " + rule.name
	if _, err := ParseRole(string(r.Role)); err != nil {
		return oidcRule{}, fmt.Errorf("%s: %w", at, err)
	}
	if r.Environment == "" {
		return oidcRule{}, fmt.Errorf("%s: no environment", at)
	}
	if r.Identity != "" {
		if err := ValidateIdentity("identity", r.Identity); err != nil {
			return oidcRule{}, fmt.Errorf("%s: %w", at, err)
		}
		if strings.HasPrefix(r.Identity, hostPrefix) {
			return oidcRule{}, fmt.Errorf("%s: identity prefix %q is reserved for the server host", at, hostPrefix)
		}
	}
	if len(r.Claims) == 0 {
		return oidcRule{}, fmt.Errorf("%s: no claims to match", at)
	}
	for claim, pattern := range r.Claims {
		if _, err := path.Match(pattern, ""); err != nil || pattern == "" {
			return oidcRule{}, fmt.Errorf("%s: claim %s: bad pattern %q", at, claim, pattern)
		}
		rule.claims = append(rule.claims, claimMatch{claim: claim, pattern: pattern, glob: strings.ContainsAny(pattern, `*?[\`)})
	}
	slices.SortFunc(rule.claims, func(a, b claimMatch) int { return strings.Compare(a.claim, b.claim) })
	return rule, nil
}

// maxTokenBytes bounds a bearer token taken for a JWT. GitHub's are about
// 1.5 KiB.
const maxTokenBytes = 16 << 10

// LooksLikeJWT reports whether a bearer token has the shape of a compact
// JWS (three base64url parts). API keys never do: they start with sgk_.
func LooksLikeJWT(token string) bool {
	return !strings.HasPrefix(token, TokenPrefix) && strings.Count(token, ".") == 2 && len(token) <= maxTokenBytes
}

// Why a token was refused, as details.reason of the error.
const (
	reasonMalformed   = "malformed"
	reasonAlgorithm   = "algorithm"
	reasonIssuer      = "issuer"
	reasonAudience    = "audience"
	reasonUnknownKey  = "unknown_key"
	reasonSignature   = "signature"
	reasonNoExpiry    = "no_expiry"
	reasonExpired     = "expired"
	reasonNotYetValid = "not_yet_valid"
)

// tokenError is a refused token. Its text is safe to show the caller: it
// names what failed, never the token.
type tokenError struct{ reason, msg string }

func tokenErr(reason, format string, args ...any) *tokenError {
	return &tokenError{reason: reason, msg: fmt.Sprintf(format, args...)}
}

func (e *tokenError) Error() string { return e.reason + ": " + e.msg }

func (e *tokenError) apiError(issuer string) *registry.Error {
	code := registry.CodeInvalidToken
	if e.reason == reasonExpired || e.reason == reasonNotYetValid {
		code = registry.CodeTokenExpired
	}
	d := map[string]string{"reason": e.reason}
	if issuer != "" {
		d["issuer"] = issuer
	}
	return code.Errorf("OIDC token refused: %s", e.msg).WithDetails(d)
}

func unavailableIssuer(what string, cause error) error {
	return registry.CodeUnavailable.Errorf("the OIDC issuer's keys could not be fetched (%s); retrying may help", what).WithCause(cause)
}

// unverified is what is read from a token before its signature is checked,
// only to choose the issuer entry and refuse early what no entry accepts.
type unverified struct {
	alg      string
	issuer   string
	audience []string
}

func peek(token string) (unverified, *tokenError) {
	parts := strings.Split(token, ".")
	var header struct {
		Alg string `json:"alg"`
	}
	var claims struct {
		Iss string          `json:"iss"`
		Aud json.RawMessage `json:"aud"`
	}
	if len(parts) != 3 || decodeSegment(parts[0], &header) != nil || decodeSegment(parts[1], &claims) != nil {
		return unverified{}, tokenErr(reasonMalformed, "not a compact JWT with a JSON header and claims")
	}
	u := unverified{alg: header.Alg, issuer: claims.Iss}
	var one string
	if json.Unmarshal(claims.Aud, &one) == nil {
		u.audience = []string{one}
	} else {
		_ = json.Unmarshal(claims.Aud, &u.audience)
	}
	switch {
	case strings.EqualFold(u.alg, "none") || u.alg == "":
		return u, tokenErr(reasonAlgorithm, "unsigned tokens (alg %q) are refused", u.alg)
	case strings.HasPrefix(strings.ToUpper(u.alg), "HS"):
		return u, tokenErr(reasonAlgorithm, "HMAC algorithm %s is refused: only the issuer's asymmetric keys (RS*, PS*, ES*, EdDSA) sign tokens", printableField(u.alg))
	case !slices.ContainsFunc(signingAlgs, func(a joseAlg) bool { return string(a) == u.alg }):
		return u, tokenErr(reasonAlgorithm, "algorithm %s is not accepted", printableField(u.alg))
	case u.issuer == "":
		return u, tokenErr(reasonIssuer, "the token names no issuer")
	}
	return u, nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// printableField quotes a value taken from a token for an error message,
// bounded, so that no token content can forge lines or terminal escapes.
func printableField(s string) string {
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	return strconv.Quote(s)
}

// Authenticate verifies token and maps it to a Principal by the first
// matching rule of its (issuer, audience) entry.
func (o *OIDC) Authenticate(ctx context.Context, token string) (Principal, error) {
	u, terr := peek(token)
	if terr != nil {
		return Principal{}, terr.apiError(u.issuer)
	}
	var entry *oidcEntry
	trusted := false
	for _, e := range o.entries {
		if e.issuer != u.issuer {
			continue
		}
		trusted = true
		if slices.Contains(u.audience, e.audience) {
			entry = e
			break
		}
	}
	if !trusted {
		return Principal{}, tokenErr(reasonIssuer, "issuer %s is not trusted by this server", printableField(u.issuer)).apiError("")
	}
	if entry == nil {
		return Principal{}, tokenErr(reasonAudience, "audience %s is not accepted for issuer %s", printableField(strings.Join(u.audience, ",")), u.issuer).apiError(u.issuer)
	}
	verifier, err := entry.keys.verifier(ctx)
	if err != nil {
		return Principal{}, err
	}
	outcome := &verifyOutcome{}
	idt, err := verifier.Verify(context.WithValue(ctx, verifyOutcomeKey{}, outcome), token)
	switch {
	case outcome.err != nil:
		return Principal{}, outcome.err.apiError(entry.issuer)
	case outcome.unavailable != nil:
		return Principal{}, outcome.unavailable
	case err != nil:
		return Principal{}, tokenErr(reasonMalformed, "%s", strings.TrimPrefix(err.Error(), "oidc: ")).apiError(entry.issuer)
	}
	claims, times, err := readClaims(idt)
	if err != nil {
		return Principal{}, tokenErr(reasonMalformed, "%v", err).apiError(entry.issuer)
	}
	if terr := checkTimes(times, o.now(), entry.leeway); terr != nil {
		return Principal{}, terr.apiError(entry.issuer)
	}
	rule, ok := entry.match(claims)
	if !ok {
		return Principal{}, registry.CodeNoMatchingRule.Errorf("no rule for issuer %s, audience %s matches this token's claims: %s",
			entry.issuer, entry.audience, entry.describeClaims(claims)).
			WithDetails(map[string]any{"issuer": entry.issuer, "audience": entry.audience, "claims": entry.claimValues(claims)})
	}
	identity := rule.identity
	if identity == "" {
		identity = idt.Subject
	}
	if err := ValidateIdentity("token subject", identity); err != nil || strings.HasPrefix(identity, hostPrefix) {
		// A subject with spaces, or posing as the host, cannot be judged
		// fairly by the approvals check: give the rule an identity.
		return Principal{}, registry.CodeNoMatchingRule.Errorf("rule %s of issuer %s matches, but the token's subject %s cannot serve as an identity; set the rule's identity",
			rule.name, entry.issuer, printableField(identity))
	}
	p := Principal{Environment: rule.env, Role: rule.role, Actor: identity, Owner: identity,
		CredentialID: oidcCredentialID(entry.issuer, claims["jti"], token), CreatedByOwner: OIDCIdentity}
	o.audit(ctx, entry, rule, idt, claims, times.exp, p)
	return p, nil
}

// oidcCredentialID names one token in audit events: stable across the
// requests that present it, different for the next token.
func oidcCredentialID(issuer, jti, token string) string {
	seed := token
	if jti != "" {
		seed = issuer + "\x00" + jti
	}
	sum := sha256.Sum256([]byte(seed))
	return "oidc_" + hex.EncodeToString(sum[:8])
}

type tokenTimes struct{ exp, nbf, iat time.Time }

// readClaims returns the token's scalar claims as text (strings as they
// are, numbers and booleans as JSON writes them) and its times.
func readClaims(idt *oidc.IDToken) (map[string]string, tokenTimes, error) {
	var raw map[string]json.RawMessage
	if err := idt.Claims(&raw); err != nil {
		return nil, tokenTimes{}, fmt.Errorf("claims: %v", err)
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		v = bytes.TrimSpace(v)
		var s string
		switch {
		case json.Unmarshal(v, &s) == nil:
			out[k] = s
		case string(v) == "true" || string(v) == "false":
			out[k] = string(v)
		case len(v) > 0 && (v[0] == '-' || (v[0] >= '0' && v[0] <= '9')):
			out[k] = string(v)
		}
	}
	t := tokenTimes{exp: idt.Expiry}
	for name, dst := range map[string]*time.Time{"nbf": &t.nbf, "iat": &t.iat} {
		if v, ok := raw[name]; ok {
			var n json.Number
			if err := json.Unmarshal(v, &n); err != nil {
				return nil, tokenTimes{}, fmt.Errorf("claim %s is not a number", name)
			}
			f, err := n.Float64()
			if err != nil {
				return nil, tokenTimes{}, fmt.Errorf("claim %s is not a number", name)
			}
			*dst = time.Unix(int64(f), 0)
		}
	}
	return out, t, nil
}

func checkTimes(t tokenTimes, now time.Time, leeway time.Duration) *tokenError {
	switch {
	case t.exp.IsZero() || t.exp.Unix() <= 0:
		return tokenErr(reasonNoExpiry, "the token has no expiry (exp)")
	case now.After(t.exp.Add(leeway)):
		return tokenErr(reasonExpired, "expired at %s (now %s)", t.exp.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case !t.nbf.IsZero() && now.Add(leeway).Before(t.nbf):
		return tokenErr(reasonNotYetValid, "not valid before %s (now %s)", t.nbf.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case !t.iat.IsZero() && now.Add(leeway).Before(t.iat):
		return tokenErr(reasonNotYetValid, "issued in the future, at %s (now %s)", t.iat.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

// match returns the first rule whose every claim is present and matches.
func (e *oidcEntry) match(claims map[string]string) (oidcRule, bool) {
	for _, r := range e.rules {
		ok := true
		for _, m := range r.claims {
			v, present := claims[m.claim]
			if !present || !m.matches(v) {
				ok = false
				break
			}
		}
		if ok {
			return r, true
		}
	}
	return oidcRule{}, false
}

// claimValues lists, for every claim any rule of e looks at, the token's
// value ("" when absent): what a refusal shows so the operator can see why.
func (e *oidcEntry) claimValues(claims map[string]string) map[string]string {
	out := map[string]string{}
	for _, r := range e.rules {
		for _, m := range r.claims {
			v := claims[m.claim]
			if len(v) > 200 {
				v = v[:200] + "…"
			}
			out[m.claim] = v
		}
	}
	return out
}

func (e *oidcEntry) describeClaims(claims map[string]string) string {
	vals := e.claimValues(claims)
	names := make([]string, 0, len(vals))
	for n := range vals {
		names = append(names, n)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, n := range names {
		if _, present := claims[n]; !present {
			parts[i] = n + " absent"
			continue
		}
		parts[i] = n + "=" + printableField(vals[n])
	}
	return strings.Join(parts, ", ")
}

// audit records the first use of a token in its environment's trail.
func (o *OIDC) audit(ctx context.Context, e *oidcEntry, r oidcRule, idt *oidc.IDToken, claims map[string]string, exp time.Time, p Principal) {
	if o.record == nil || !o.seen.first(p.CredentialID, exp, o.now()) {
		return
	}
	ev := audit.Event{Time: o.now().UTC(), Environment: r.env, Actor: p.Actor, CredentialID: p.CredentialID,
		Action: audit.ActionAuthenticate, Outcome: audit.Success,
		Details: map[string]string{"method": "oidc", "issuer": e.issuer, "audience": e.audience, "subject": idt.Subject,
			"rule": r.name, "role": string(r.role), "expiresAt": exp.UTC().Format(time.RFC3339)}}
	for _, m := range r.claims {
		ev.Details["claim."+m.claim] = claims[m.claim]
	}
	if jti := claims["jti"]; jti != "" {
		ev.Details["jti"] = jti
	}
	if err := o.record(context.WithoutCancel(ctx), r.env, ev); err != nil {
		o.seen.forget(p.CredentialID)
		o.logger.Error("audit append failed", "action", ev.Action, "credential", p.CredentialID, "err", err)
	}
}

// seenTokens remembers which tokens were already audited, until they
// expire. It is bounded: past maxSeen entries the expired ones go, and if
// that is not enough, all of them (a token is then audited once more).
type seenTokens struct {
	mu sync.Mutex
	m  map[string]time.Time
}

const maxSeen = 4096

func (s *seenTokens) first(id string, exp, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[id]; ok {
		return false
	}
	if s.m == nil || len(s.m) >= maxSeen {
		for k, until := range s.m {
			if now.After(until) {
				delete(s.m, k)
			}
		}
		if s.m == nil || len(s.m) >= maxSeen {
			s.m = map[string]time.Time{}
		}
	}
	s.m[id] = exp
	return true
}

func (s *seenTokens) forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

// issuerKeys discovers an issuer's key set on first use and keeps the
// go-oidc verifier over it.
type issuerKeys struct {
	issuer, jwksURL string
	client          *http.Client
	now             func() time.Time
	minRefresh      time.Duration

	mu        sync.Mutex
	v         *oidc.IDTokenVerifier
	attempted time.Time // last failed discovery
}

// discoveryRetry is the least time between two discovery attempts after a
// failure.
const discoveryRetry = 10 * time.Second

func (k *issuerKeys) verifier(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.v != nil {
		return k.v, nil
	}
	if !k.attempted.IsZero() && k.now().Sub(k.attempted) < discoveryRetry {
		return nil, unavailableIssuer("discovery for "+k.issuer+" failed moments ago", nil)
	}
	jwksURL := k.jwksURL
	if jwksURL == "" {
		u, err := k.discover(ctx)
		if err != nil {
			k.attempted = k.now()
			return nil, unavailableIssuer("discovery for "+k.issuer, err)
		}
		jwksURL = u
	}
	ks := &keySet{url: jwksURL, client: k.client, now: k.now, minRefresh: k.minRefresh, maxAge: time.Hour}
	algs := make([]string, len(signingAlgs))
	for i, a := range signingAlgs {
		algs[i] = string(a)
	}
	// go-oidc checks the algorithm allow-list, the single signature (through
	// ks), the issuer and decodes the claims. Audience, expiry and
	// not-before are checked by the caller: the audience selects the rules,
	// and go-oidc has no leeway on expiry.
	k.v = oidc.NewVerifier(k.issuer, ks, &oidc.Config{SupportedSigningAlgs: algs, SkipClientIDCheck: true,
		SkipExpiryCheck: true, Now: k.now})
	return k.v, nil
}

func (k *issuerKeys) discover(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	// NewProvider refuses a discovery document for another issuer.
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, k.client), k.issuer)
	if err != nil {
		return "", err
	}
	var meta struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := p.Claims(&meta); err != nil || meta.JWKSURI == "" {
		return "", fmt.Errorf("discovery document of %s names no jwks_uri", k.issuer)
	}
	if !strings.HasPrefix(meta.JWKSURI, "https://") && !isLoopbackHTTP(meta.JWKSURI) {
		return "", fmt.Errorf("jwks_uri %q of %s is not https", meta.JWKSURI, k.issuer)
	}
	return meta.JWKSURI, nil
}

func isLoopbackHTTP(u string) bool {
	for _, p := range []string{"http://127.0.0.1:", "http://127.0.0.1/", "http://localhost:", "http://localhost/", "http://[::1]:", "http://[::1]/"} {
		if strings.HasPrefix(u, p) {
			return true
		}
	}
	return false
}
