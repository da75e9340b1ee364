package api

import "time"

// CreateKeyRequest is the body of POST /v1/environments/{env}/keys.
type CreateKeyRequest struct {
	Name string `json:"name"`
	// Role is reader, publisher, approver, promoter or admin.
	Role string `json:"role"`
	// Owner is the person or system accountable for the key (an email, at
	// most 254 bytes, no spaces). Required for approver, promoter and admin
	// keys: approvals are counted per owner. The caller's own owner is
	// recorded as the key's createdByOwner.
	Owner string `json:"owner,omitempty"`
}

// CreateKeyResponse answers a key creation. Token is the bearer token; the
// server keeps only its hash, so this is the one time it is shown.
type CreateKeyResponse struct {
	Key   Key    `json:"key"`
	Token string `json:"token"`
}

// Key is an API key as the server lists it. The server's own key record is
// internal; this is its wire form, without the token hash.
type Key struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Environment string    `json:"environment"`
	Role        string    `json:"role"`
	Owner       string    `json:"owner,omitempty"` // absent for keys minted before owners existed
	CreatedAt   time.Time `json:"createdAt"`
	CreatedBy   string    `json:"createdBy"` // name of the minting key, or cli:keys-create
	// CreatedByOwner is the identity that minted the key: the minting key's
	// owner, or the operator's identity for keys minted on the server host;
	// absent for keys minted before owners existed.
	CreatedByOwner string     `json:"createdByOwner,omitempty"`
	RevokedAt      *time.Time `json:"revokedAt,omitempty"`
}

// KeyList answers GET /v1/environments/{env}/keys.
type KeyList struct {
	Environment string `json:"environment"`
	Keys        []Key  `json:"keys"`
}
