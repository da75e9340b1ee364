package auth

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/registry"
)

type fakeKeys map[string]Key

func (f fakeKeys) KeyByHash(_ context.Context, h string) (Key, error) {
	k, ok := f[h]
	if !ok {
		return Key{}, registry.Errorf(registry.NotFound, registry.CodeNotFound, "no key")
	}
	return k, nil
}

var _ KeyStore = fakeKeys(nil)

func TestAuthenticate(t *testing.T) {
	token, hash, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(token, TokenPrefix) || len(token) < len(TokenPrefix)+43 || HashToken(token) != hash {
		t.Fatalf("token %q / hash %q", token, hash)
	}
	revokedToken, revokedHash, _ := NewToken()
	now := time.Now()
	keys := fakeKeys{
		hash:        {ID: "k1", Name: "ci", Environment: "dev", Role: RolePublisher},
		revokedHash: {ID: "k2", Name: "old", Environment: "dev", Role: RoleAdmin, RevokedAt: &now},
	}
	a := NewAuthenticator(keys)
	p, err := a.Authenticate(context.Background(), "Bearer "+token)
	if err != nil || p != (Principal{Environment: "dev", Role: RolePublisher, Actor: "ci", CredentialID: "k1"}) {
		t.Fatalf("Authenticate = %+v, %v", p, err)
	}
	for _, header := range []string{"", "Bearer ", "Basic abc", "Bearer sgk_unknown", "Bearer " + revokedToken, token} {
		if _, err := a.Authenticate(context.Background(), header); registry.KindOf(err) != registry.Unauthenticated {
			t.Errorf("Authenticate(%q) err = %v, want Unauthenticated", header, err)
		}
	}
}

func TestAuthorize(t *testing.T) {
	tests := []struct {
		role Role
		env  string
		perm Permission
		code string // "" = allowed
	}{
		{RoleReader, "dev", PermRead, ""},
		{RoleReader, "dev", PermPublish, registry.CodeForbidden},
		{RolePublisher, "dev", PermPublish, ""},
		{RolePublisher, "dev", PermPromote, registry.CodeForbidden},
		{RoleApprover, "dev", PermPublish, registry.CodeForbidden},
		{RoleApprover, "dev", PermApprove, ""},
		{RoleAdmin, "dev", PermManageKeys, ""},
		{RoleAdmin, "prod", PermRead, registry.CodeWrongEnvironment},
		{RolePublisher, "staging", PermPublish, registry.CodeWrongEnvironment},
	}
	for _, tt := range tests {
		err := Principal{Environment: "dev", Role: tt.role}.Authorize(tt.env, tt.perm)
		got := ""
		if err != nil {
			got = registry.AsError(err).Code
		}
		if got != tt.code {
			t.Errorf("%s on %s %s: code %q, want %q", tt.role, tt.env, tt.perm, got, tt.code)
		}
	}
}
