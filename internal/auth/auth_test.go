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
		return Key{}, registry.CodeNotFound.Errorf("no key")
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
		hash:        {ID: "k1", Name: "ci", Environment: "dev", Role: RolePublisher, Owner: "ci@example.com", CreatedByOwner: "alice@example.com"},
		revokedHash: {ID: "k2", Name: "old", Environment: "dev", Role: RoleAdmin, RevokedAt: &now},
	}
	a := NewAuthenticator(keys)
	p, err := a.Authenticate(context.Background(), "Bearer "+token)
	if err != nil || p != (Principal{Environment: "dev", Role: RolePublisher, Actor: "ci", CredentialID: "k1", Owner: "ci@example.com", CreatedByOwner: "alice@example.com"}) {
		t.Fatalf("Authenticate = %+v, %v", p, err)
	}
	// Schemes are case-insensitive; the token is not.
	for _, header := range []string{"bearer " + token, "BEARER " + token, "  Bearer   " + token + " "} {
		if _, err := a.Authenticate(context.Background(), header); err != nil {
			t.Errorf("Authenticate(%q) = %v, want the key", header, err)
		}
	}
	for _, header := range []string{"", "Bearer ", "Basic abc", "Bearer " + strings.ToUpper(token), "Bearertoken", "Bearer sgk_unknown", "Bearer " + revokedToken, token} {
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
		{RoleReader, "dev", PermPublish, registry.CodeForbidden.Name},
		{RolePublisher, "dev", PermPublish, ""},
		{RolePublisher, "dev", PermPromote, registry.CodeForbidden.Name},
		{RoleApprover, "dev", PermPublish, registry.CodeForbidden.Name},
		{RoleApprover, "dev", PermApprove, ""},
		{RoleAdmin, "dev", PermManageKeys, ""},
		{RolePromoter, "dev", PermRollback, ""},
		{RoleAdmin, "dev", PermRollback, ""},
		{RoleApprover, "dev", PermRollback, registry.CodeForbidden.Name},
		{RolePublisher, "dev", PermRollback, registry.CodeForbidden.Name},
		{RoleReader, "dev", PermRollback, registry.CodeForbidden.Name},
		{RoleAdmin, "prod", PermRead, registry.CodeWrongEnvironment.Name},
		{RolePublisher, "staging", PermPublish, registry.CodeWrongEnvironment.Name},
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
