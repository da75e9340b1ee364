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
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	Environment string     `json:"environment"`
	Role        Role       `json:"role"`
	TokenHash   string     `json:"-"` // hex sha256 of the bearer token
	CreatedAt   time.Time  `json:"createdAt"`
	CreatedBy   string     `json:"createdBy"`
	RevokedAt   *time.Time `json:"revokedAt,omitempty"`
}

// Principal is the authenticated caller. Its Environment is fixed at
// authentication; no later layer may substitute another.
type Principal struct {
	Environment  string
	Role         Role
	Actor        string // key name
	CredentialID string // key id
}
