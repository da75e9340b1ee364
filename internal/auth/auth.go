package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/stagegate/stagegate/registry"
)

// TokenPrefix marks stagegate API keys so secret scanners can recognise them.
const TokenPrefix = "sgk_"

// NewToken returns a fresh bearer token (32 random bytes) and its hash. The
// token is shown once; only the hash is stored.
func NewToken() (token, hash string, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("auth: reading random bytes: %w", err)
	}
	token = TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return token, HashToken(token), nil
}

// NewKeyID returns a short random public identifier for a key.
func NewKeyID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("auth: reading random bytes: %w", err)
	}
	return "key_" + hex.EncodeToString(b[:]), nil
}

// HashToken is the stored form of a token.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// ParseRole validates a role name.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleReader, RolePublisher, RolePromoter, RoleApprover, RoleAdmin:
		return r, nil
	}
	return "", registry.CodeInvalidRequest.Errorf("unknown role %q (want reader, publisher, promoter, approver or admin)", s)
}

// Permission is one thing a role may do within its environment.
type Permission string

// Permissions.
const (
	PermRead       Permission = "read"
	PermPublish    Permission = "publish"
	PermPromote    Permission = "promote"
	PermApprove    Permission = "approve"
	PermManageKeys Permission = "manage-keys"
	// PermRollback makes an earlier release current again. It is apart
	// from PermPromote so that a role could one day roll back without
	// promoting; today promoters and admins hold both.
	PermRollback Permission = "rollback"
)

// Roles are not a ladder: an approver must not be able to publish what it
// approves, so each role lists its permissions.
var rolePermissions = map[Role][]Permission{
	RoleReader:    {PermRead},
	RolePublisher: {PermRead, PermPublish},
	RolePromoter:  {PermRead, PermPromote, PermRollback},
	RoleApprover:  {PermRead, PermApprove},
	RoleAdmin:     {PermRead, PermPublish, PermPromote, PermApprove, PermManageKeys, PermRollback},
}

// Allows reports whether role r carries permission p.
func (r Role) Allows(p Permission) bool {
	for _, q := range rolePermissions[r] {
		if q == p {
			return true
		}
	}
	return false
}

// KeyStore finds a stored key by the hash of its token.
type KeyStore interface {
	KeyByHash(ctx context.Context, tokenHash string) (Key, error)
}

// Authenticator turns a bearer token into a Principal.
type Authenticator struct {
	keys KeyStore
	oidc *OIDC
}

// AuthenticatorOption adds a kind of credential to an Authenticator.
type AuthenticatorOption func(*Authenticator)

// WithOIDC accepts OIDC ID tokens from o's issuers besides API keys.
func WithOIDC(o *OIDC) AuthenticatorOption { return func(a *Authenticator) { a.oidc = o } }

// NewAuthenticator returns an Authenticator backed by keys.
func NewAuthenticator(keys KeyStore, opts ...AuthenticatorOption) *Authenticator {
	a := &Authenticator{keys: keys}
	for _, opt := range opts {
		opt(a)
	}
	return a
}

// Authenticate resolves an Authorization header value ("Bearer <token>").
// Every API key failure is Unauthenticated with the same message, so a
// caller cannot tell a revoked key from an unknown one. With OIDC
// configured, a token shaped like a JWT is an OIDC ID token instead (see
// OIDC.Authenticate).
func (a *Authenticator) Authenticate(ctx context.Context, authorization string) (Principal, error) {
	// Authentication schemes are case-insensitive (RFC 9110 §11.1).
	scheme, token, ok := strings.Cut(strings.TrimSpace(authorization), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return Principal{}, registry.CodeUnauthenticated.Errorf("missing bearer token: send Authorization: Bearer <api key>")
	}
	if a.oidc != nil && LooksLikeJWT(token) {
		return a.oidc.Authenticate(ctx, token)
	}
	key, err := a.keys.KeyByHash(ctx, HashToken(token))
	switch {
	case registry.KindOf(err) == registry.NotFound, err == nil && key.RevokedAt != nil:
		return Principal{}, registry.CodeUnauthenticated.Errorf("invalid or revoked API key")
	case err != nil:
		return Principal{}, err
	}
	return Principal{Environment: key.Environment, Role: key.Role, Actor: key.Name, CredentialID: key.ID,
		Owner: key.Owner, CreatedByOwner: key.CreatedByOwner}, nil
}

// Authorize checks that p may exercise perm in env. The environment check
// comes first: a credential of another environment is refused whatever its
// role, which is the environment-separation promise.
func (p Principal) Authorize(env string, perm Permission) error {
	if p.Environment != env {
		return registry.CodeWrongEnvironment.Errorf("this credential is bound to environment %q and cannot act on %q", p.Environment, env)
	}
	if !p.Role.Allows(perm) {
		return registry.CodeForbidden.Errorf("role %q may not %s in %q", p.Role, perm, env)
	}
	return nil
}
