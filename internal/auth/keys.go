package auth

import (
	"context"
	"regexp"
	"time"

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

// CreateKey mints a key for env and stores its hash. The token is returned
// once and never again.
func CreateKey(ctx context.Context, store KeyAdmin, env, name string, role Role, by audit.Actor, now time.Time) (string, Key, error) {
	if !keyName.MatchString(name) {
		return "", Key{}, registry.CodeInvalidRequest.Errorf("invalid key name %q: letters, digits, '.', '_', '@', '-', at most 100", name)
	}
	if _, err := ParseRole(string(role)); err != nil {
		return "", Key{}, err
	}
	token, hash, err := NewToken()
	if err != nil {
		return "", Key{}, err
	}
	id, err := NewKeyID()
	if err != nil {
		return "", Key{}, err
	}
	k := Key{ID: id, Name: name, Environment: env, Role: role, TokenHash: hash, CreatedAt: now.UTC(), CreatedBy: by.Name}
	ev := by.Event(env, audit.ActionKeyCreate, id, audit.Success)
	ev.Time = k.CreatedAt
	ev.Details = map[string]string{"name": name, "role": string(role)}
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
