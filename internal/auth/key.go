// Package auth authenticates requests and binds each one to exactly one
// environment and role: the Principal every other layer is handed.
package auth

import (
	"time"
)

// Role is what a credential may do within its environment.
type Role string

// Roles, from least to most privileged; see Allows.
const (
	RoleReader    Role = "reader"
	RolePublisher Role = "publisher"
	RolePromoter  Role = "promoter"
	RoleApprover  Role = "approver"
	RoleAdmin     Role = "admin"
)

// Key is a stored API key. Only the SHA-256 of the token is kept.
type Key struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Environment string `json:"environment"`
	Role        Role   `json:"role"`
	// Owner is the person or system accountable for the key: an email, or
	// (once CI logs in with OIDC) a token subject. Approvals are counted per
	// owner, never per key, so that one person cannot approve twice or
	// approve their own promotion by holding several keys. Required for the
	// roles in RequiresOwner; "" for keys minted before owners existed.
	Owner     string    `json:"owner,omitempty"`
	TokenHash string    `json:"-"` // hex sha256 of the bearer token
	CreatedAt time.Time `json:"createdAt"`
	// CreatedBy names the credential that minted the key (a key name, or
	// "cli:keys-create"), as the audit trail does.
	CreatedBy string `json:"createdBy"`
	// CreatedByOwner is the identity that minted the key: the owner of the
	// minting key over the API, the operator's --created-by (default
	// "cli:keys-create") on the server host. The minter chose Owner, so the
	// approvals check treats approvals through this key as possibly the
	// minter's. "" for keys minted before owners existed.
	CreatedByOwner string     `json:"createdByOwner,omitempty"`
	RevokedAt      *time.Time `json:"revokedAt,omitempty"`
}

// Principal is the authenticated caller. Its Environment is fixed at
// authentication; no later layer may substitute another.
type Principal struct {
	Environment  string
	Role         Role
	Actor        string // key name
	CredentialID string // key id
	// Owner and CreatedByOwner are the key's (see Key): the identity that
	// separation of duties is judged on, and the identity that minted it.
	Owner          string
	CreatedByOwner string
}
