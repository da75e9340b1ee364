package auth

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/registry"
)

type memKeys struct {
	keys   []Key
	events []audit.Event
}

func (m *memKeys) CreateKey(_ context.Context, k Key, ev audit.Event) error {
	m.keys = append(m.keys, k)
	m.events = append(m.events, ev)
	return nil
}
func (m *memKeys) ListKeys(context.Context) ([]Key, error) { return m.keys, nil }
func (m *memKeys) RevokeKey(context.Context, string, time.Time, audit.Event) error {
	return nil
}

func TestCreateKeyOwners(t *testing.T) {
	const alice = "alice@example.com"
	tests := []struct {
		name string
		spec KeySpec
		code string // "" = minted
	}{
		{"approver with owner", KeySpec{Name: "bob", Role: RoleApprover, Owner: "bob@example.com", CreatedByOwner: alice}, ""},
		{"promoter with owner", KeySpec{Name: "deploy", Role: RolePromoter, Owner: "deploy@example.com", CreatedByOwner: alice}, ""},
		{"admin minted on the host", KeySpec{Name: "root", Role: RoleAdmin, Owner: alice, CreatedByOwner: HostIdentity}, ""},
		{"publisher without owner", KeySpec{Name: "ci", Role: RolePublisher}, ""},
		{"reader without owner or minter", KeySpec{Name: "dash", Role: RoleReader}, ""},
		{"OIDC-style subject", KeySpec{Name: "gh", Role: RolePromoter, Owner: "repo:acme/models:environment:prod", CreatedByOwner: alice}, ""},
		{"approver without owner", KeySpec{Name: "bob", Role: RoleApprover, CreatedByOwner: alice}, registry.CodeInvalidRequest.Name},
		{"promoter without owner", KeySpec{Name: "deploy", Role: RolePromoter, CreatedByOwner: alice}, registry.CodeInvalidRequest.Name},
		{"admin without owner", KeySpec{Name: "root", Role: RoleAdmin, CreatedByOwner: alice}, registry.CodeInvalidRequest.Name},
		{"approver minted by a key without owner", KeySpec{Name: "bob", Role: RoleApprover, Owner: "bob@example.com"}, registry.CodeOwnerRequired.Name},
		{"owner with a space", KeySpec{Name: "bob", Role: RoleApprover, Owner: "bob @example.com", CreatedByOwner: alice}, registry.CodeInvalidRequest.Name},
		{"owner with a control character", KeySpec{Name: "bob", Role: RoleApprover, Owner: "bob\n@example.com", CreatedByOwner: alice}, registry.CodeInvalidRequest.Name},
		{"owner with a zero-width space", KeySpec{Name: "bob", Role: RoleApprover, Owner: "bob\u200b@example.com", CreatedByOwner: alice}, registry.CodeInvalidRequest.Name},
		{"owner too long", KeySpec{Name: "bob", Role: RoleApprover, Owner: strings.Repeat("b", MaxIdentityLen-11) + "@example.com", CreatedByOwner: alice}, registry.CodeInvalidRequest.Name},
		{"owner not UTF-8", KeySpec{Name: "bob", Role: RoleApprover, Owner: "bob\xff", CreatedByOwner: alice}, registry.CodeInvalidRequest.Name},
		{"owner posing as the host", KeySpec{Name: "bob", Role: RoleApprover, Owner: HostIdentity, CreatedByOwner: alice}, registry.CodeInvalidRequest.Name},
		{"optional owner still validated", KeySpec{Name: "ci", Role: RolePublisher, Owner: "c i"}, registry.CodeInvalidRequest.Name},
		{"bad creator identity", KeySpec{Name: "bob", Role: RoleApprover, Owner: "bob@example.com", CreatedByOwner: "al ice"}, registry.CodeInvalidRequest.Name},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &memKeys{}
			_, k, err := CreateKey(context.Background(), store, "prod", tt.spec, audit.Actor{Name: "alice-admin"}, time.Now())
			got := ""
			if err != nil {
				got = registry.AsError(err).Code
			}
			if got != tt.code {
				t.Fatalf("code %q (%v), want %q", got, err, tt.code)
			}
			if tt.code != "" {
				if len(store.keys) != 0 {
					t.Fatalf("a refused key was stored: %+v", store.keys)
				}
				return
			}
			if k.Owner != tt.spec.Owner || k.CreatedByOwner != tt.spec.CreatedByOwner || k.CreatedBy != "alice-admin" {
				t.Errorf("key %+v does not record owner %q, minted by %q through alice-admin", k, tt.spec.Owner, tt.spec.CreatedByOwner)
			}
			// The audit trail says whose key it is and who minted it.
			if d := store.events[0].Details; d["owner"] != tt.spec.Owner || d["createdByOwner"] != tt.spec.CreatedByOwner {
				t.Errorf("audit details %v", d)
			}
		})
	}
}
