package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// signingAlgs are the algorithms an OIDC token may be signed with: the
// asymmetric ones. "none" and the HMAC family are never accepted: with
// HS256 a token "signed" with the issuer's public key as the secret would
// verify against that public key.
var signingAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// maxJWKSBytes bounds an issuer's key set document.
const maxJWKSBytes = 1 << 20

// keySet is an issuer's JWKS, cached. It satisfies go-oidc's KeySet, but,
// unlike go-oidc's RemoteKeySet, refetches only for a key id it does not
// know, and at most once per minRefresh: every token with a bad signature
// would otherwise make the server fetch the issuer's keys again, so anyone
// could turn stagegate into a load generator against the issuer.
type keySet struct {
	url        string
	client     *http.Client
	now        func() time.Time
	minRefresh time.Duration // between refetches for unknown key ids
	maxAge     time.Duration // a set older than this is refetched when next needed

	fetchMu sync.Mutex // one fetch at a time

	mu        sync.Mutex
	keys      []jose.JSONWebKey
	fetched   time.Time // of keys
	attempted time.Time // last fetch, successful or not
}

// verifyOutcome carries a typed verification failure past go-oidc, which
// formats key set errors into strings: the caller puts a *verifyOutcome in
// the context and reads it back.
type verifyOutcome struct {
	err         *tokenError
	unavailable error // the key set could not be fetched
}

type joseAlg = jose.SignatureAlgorithm

type verifyOutcomeKey struct{}

func (k *keySet) fail(ctx context.Context, err *tokenError) error {
	if o, ok := ctx.Value(verifyOutcomeKey{}).(*verifyOutcome); ok {
		o.err = err
	}
	return err
}

// VerifySignature implements oidc.KeySet.
func (k *keySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	jws, err := jose.ParseSigned(jwt, signingAlgs)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, k.fail(ctx, tokenErr(reasonMalformed, "the token is not one signed JWS"))
	}
	kid := jws.Signatures[0].Header.KeyID
	keys, fetched, _ := k.snapshot()
	stale := fetched.IsZero() || k.now().Sub(fetched) > k.maxAge
	if !stale {
		if payload, known := verifyWith(jws, keys, kid); payload != nil {
			return payload, nil
		} else if known {
			// The key is current; refetching would not change the answer.
			return nil, k.fail(ctx, tokenErr(reasonSignature, "the signature does not verify with the issuer's key %q", kid))
		}
	}
	keys, err = k.refresh(ctx)
	if err != nil {
		if o, ok := ctx.Value(verifyOutcomeKey{}).(*verifyOutcome); ok {
			o.unavailable = err
		}
		return nil, err
	}
	payload, known := verifyWith(jws, keys, kid)
	switch {
	case payload != nil:
		return payload, nil
	case known:
		return nil, k.fail(ctx, tokenErr(reasonSignature, "the signature does not verify with the issuer's key %q", kid))
	case kid == "":
		return nil, k.fail(ctx, tokenErr(reasonSignature, "the token names no key id and no key of the issuer verifies it"))
	}
	return nil, k.fail(ctx, tokenErr(reasonUnknownKey, "the issuer's key set has no key %q", kid))
}

// verifyWith tries the keys with id kid (every key when kid is ""). known
// reports whether a key with that id exists.
func verifyWith(jws *jose.JSONWebSignature, keys []jose.JSONWebKey, kid string) (payload []byte, known bool) {
	for i := range keys {
		if kid != "" && keys[i].KeyID != kid {
			continue
		}
		known = true
		if p, err := jws.Verify(&keys[i]); err == nil {
			return p, true
		}
	}
	return nil, known
}

func (k *keySet) snapshot() ([]jose.JSONWebKey, time.Time, time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.keys, k.fetched, k.attempted
}

// refresh fetches the key set, unless a fetch was tried less than
// minRefresh ago: then the cached keys answer. On failure the cached keys
// are kept (an issuer's outage does not lock CI out while its keys are
// known); with none cached the issuer is unavailable.
func (k *keySet) refresh(ctx context.Context) ([]jose.JSONWebKey, error) {
	k.fetchMu.Lock()
	defer k.fetchMu.Unlock()
	keys, _, attempted := k.snapshot()
	now := k.now()
	if !attempted.IsZero() && now.Sub(attempted) < k.minRefresh {
		if len(keys) == 0 {
			return nil, unavailableIssuer(k.url, nil)
		}
		return keys, nil
	}
	fresh, err := k.fetch(ctx)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.attempted = now
	if err != nil {
		if len(k.keys) == 0 {
			return nil, unavailableIssuer(k.url, err)
		}
		return k.keys, nil
	}
	k.keys, k.fetched = fresh, now
	return fresh, nil
}

func (k *keySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", k.url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("GET %s: key set larger than %d bytes", k.url, maxJWKSBytes)
	}
	// Keys are decoded one by one so that one key of a type go-jose does
	// not know (issuers add new kinds) does not hide the others.
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("GET %s: not a JWK set: %w", k.url, err)
	}
	var keys []jose.JSONWebKey
	for _, r := range raw.Keys {
		var key jose.JSONWebKey
		if err := key.UnmarshalJSON(r); err != nil || !key.IsPublic() || !key.Valid() {
			continue
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("GET %s: no usable public keys", k.url)
	}
	return keys, nil
}
