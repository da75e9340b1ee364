package auth

import (
	"context"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/registry"
)

// KeyAdmin manages the keys of one environment (an environment-scoped
// metadata handle).
type KeyAdmin interface {
	CreateKey(ctx context.Context, k Key, ev audit.Event) error
	ListKeys(ctx context.Context) ([]Key, error)
	RevokeKey(ctx context.Context, id string, at time.Time, ev audit.Event) error
}

var keyName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._@-]{0,99}$`)

// MaxIdentityLen bounds an owner or creator identity: the longest email
// address SMTP can carry (RFC 5321 §4.5.3.1.3).
const MaxIdentityLen = 254

// HostIdentity is the creator identity `stagegate keys create` records when
// the operator gives none. Whoever runs it has the database anyway, so it
// names the channel rather than pretending to know the person. Owners may
// not use the "cli:" prefix, so no key can pass for the host.
const HostIdentity = "cli:keys-create"

const hostPrefix = "cli:"

// RequiresOwner reports whether keys of role r must name an owner: the
// roles whose actions separation of duties is judged on (approving,
// promoting) or that mint such keys (admin). Readers and CI publishers may
// stay anonymous.
func (r Role) RequiresOwner() bool {
	return r == RoleApprover || r == RolePromoter || r == RoleAdmin
}

// ValidateIdentity checks an owner or creator identity: 1 to MaxIdentityLen
// bytes of printable UTF-8 without spaces, so that two identities that
// print alike are alike.
func ValidateIdentity(what, id string) error {
	if id == "" || len(id) > MaxIdentityLen || !utf8.ValidString(id) {
		return registry.CodeInvalidRequest.Errorf("%s must be 1 to %d bytes of UTF-8, e.g. an email address", what, MaxIdentityLen)
	}
	for _, r := range id {
		if !unicode.IsGraphic(r) || unicode.IsSpace(r) {
			return registry.CodeInvalidRequest.Errorf("%s %q contains a space, control or invisible character", what, id)
		}
	}
	return nil
}

// KeySpec is what a key is minted with.
type KeySpec struct {
	Name  string
	Role  Role
	Owner string // see Key.Owner; required when Role.RequiresOwner()
	// CreatedByOwner is the identity of whoever mints the key (see
	// Key.CreatedByOwner); required when Role.RequiresOwner(), so that the
	// approvals check can tell whose keys an approval came through.
	CreatedByOwner string
}

// CreateKey mints a key for env and stores its hash. The token is returned
// once and never again.
func CreateKey(ctx context.Context, store KeyAdmin, env string, spec KeySpec, by audit.Actor, now time.Time) (string, Key, error) {
	if !keyName.MatchString(spec.Name) {
		return "", Key{}, registry.CodeInvalidRequest.Errorf("invalid key name %q: letters, digits, '.', '_', '@', '-', at most 100", spec.Name)
	}
	if _, err := ParseRole(string(spec.Role)); err != nil {
		return "", Key{}, err
	}
	switch {
	case spec.Owner == "" && spec.Role.RequiresOwner():
		return "", Key{}, registry.CodeInvalidRequest.Errorf("a %s key needs an owner, the person accountable for it (an email): approvals are counted per owner", spec.Role)
	case spec.Owner != "":
		if err := ValidateIdentity("owner", spec.Owner); err != nil {
			return "", Key{}, err
		}
		if strings.HasPrefix(spec.Owner, hostPrefix) {
			return "", Key{}, registry.CodeInvalidRequest.Errorf("owner %q: the prefix %q is reserved for keys minted on the server host", spec.Owner, hostPrefix)
		}
	}
	switch {
	case spec.CreatedByOwner == "" && spec.Role.RequiresOwner():
		// A key without a known minter would let its minter approve their
		// own promotions under a name of their choosing.
		return "", Key{}, registry.CodeOwnerRequired.Errorf("the credential minting this %s key has no owner: re-issue it with an owner (stagegate keys create --owner) first", spec.Role)
	case spec.CreatedByOwner != "":
		if err := ValidateIdentity("creator identity", spec.CreatedByOwner); err != nil {
			return "", Key{}, err
		}
	}
	token, hash, err := NewToken()
	if err != nil {
		return "", Key{}, err
	}
	id, err := NewKeyID()
	if err != nil {
		return "", Key{}, err
	}
	k := Key{ID: id, Name: spec.Name, Environment: env, Role: spec.Role, Owner: spec.Owner, TokenHash: hash,
		CreatedAt: now.UTC(), CreatedBy: by.Name, CreatedByOwner: spec.CreatedByOwner}
	ev := by.Event(env, audit.ActionKeyCreate, id, audit.Success)
	ev.Time = k.CreatedAt
	ev.Details = map[string]string{"name": spec.Name, "role": string(spec.Role)}
	if k.Owner != "" {
		ev.Details["owner"] = k.Owner
	}
	if k.CreatedByOwner != "" {
		ev.Details["createdByOwner"] = k.CreatedByOwner
	}
	if err := store.CreateKey(ctx, k, ev); err != nil {
		return "", Key{}, err
	}
	return token, k, nil
}

// RevokeKey revokes key id of the store's environment.
func RevokeKey(ctx context.Context, store KeyAdmin, env, id string, by audit.Actor, now time.Time) error {
	ev := by.Event(env, audit.ActionKeyRevoke, id, audit.Success)
	ev.Time = now.UTC()
	return store.RevokeKey(ctx, id, now.UTC(), ev)
}
