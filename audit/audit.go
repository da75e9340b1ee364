// Package audit defines the audit trail: an append-only record of every
// mutation and every refusal, queryable per environment. Each
// environment's events form a hash chain (chain.go) whose head the
// environment's key signs as a checkpoint (checkpoint.go), so that edits,
// deletions and reorderings made behind the service's back are found.
package audit

import "time"

// Outcome says how an audited request ended.
type Outcome string

// Outcomes.
const (
	Success Outcome = "success" // the action took effect (or was an idempotent repeat)
	Denied  Outcome = "denied"  // refused: authentication, authorisation, validation, conflict, gate
	Failed  Outcome = "failed"  // an internal or dependency failure
)

// Event is one audit record. Events are never updated or deleted.
type Event struct {
	ID           int64     `json:"id"`
	Time         time.Time `json:"time"`
	Environment  string    `json:"environment"`            // "" only for refusals before any environment was known
	Actor        string    `json:"actor"`                  // key name, or "anonymous"
	CredentialID string    `json:"credentialId,omitempty"` // key id
	Action       string    `json:"action"`                 // e.g. "artifact.publish", "key.create"
	Target       string    `json:"target,omitempty"`       // e.g. "fraud-detector@1.2.0"
	// Name and Version are the artifact a "name@version" target names
	// (Version canonical), set by the store; "" for other targets.
	Name      string            `json:"name,omitempty"`
	Version   string            `json:"version,omitempty"`
	Outcome   Outcome           `json:"outcome"`
	ErrorCode string            `json:"errorCode,omitempty"`
	RequestID string            `json:"requestId,omitempty"`
	Details   map[string]string `json:"details,omitempty"`
	// Seq, PrevHash and Hash place the event in its environment's hash
	// chain (chain.go). The store assigns them; values passed in are
	// ignored.
	Seq      int64  `json:"seq,omitempty"`
	PrevHash string `json:"prevHash,omitempty"`
	Hash     string `json:"hash,omitempty"`
}

// Filter selects audit events of one environment. Zero fields do not filter.
// Events come newest first; BeforeID pages backwards.
type Filter struct {
	Action    string
	Target    string // exact target, or a prefix when it ends in '*'
	Name      string // exact artifact name (Event.Name)
	Version   string // exact canonical version (Event.Version)
	Actor     string
	Outcome   Outcome
	RequestID string
	Since     time.Time
	Until     time.Time
	BeforeID  int64
	Limit     int // default 100, at most 1000
}

// Limit bounds.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// EffectiveLimit applies the default and maximum to f.Limit.
func (f Filter) EffectiveLimit() int {
	switch {
	case f.Limit <= 0:
		return DefaultLimit
	case f.Limit > MaxLimit:
		return MaxLimit
	}
	return f.Limit
}

// Actor identifies who asked for an action, as fixed at authentication.
type Actor struct {
	Name         string // key name
	CredentialID string // key id
	RequestID    string
	// Owner is the person (or system identity) behind the credential, ""
	// for keys minted before owners existed; KeyCreatedBy is the identity
	// that minted the key. Separation of duties judges these, never key
	// names.
	Owner        string
	KeyCreatedBy string
}

// Event starts an audit event for this actor. Time is set by the caller or
// the store.
func (a Actor) Event(env, action, target string, outcome Outcome) Event {
	return Event{
		Environment:  env,
		Actor:        a.Name,
		CredentialID: a.CredentialID,
		Action:       action,
		Target:       target,
		Outcome:      outcome,
		RequestID:    a.RequestID,
	}
}

// Action names. They are stable: audit queries filter on them.
const (
	ActionBlobUpload   = "blob.upload"
	ActionPublish      = "artifact.publish"
	ActionRead         = "artifact.read"
	ActionKeyCreate    = "key.create"
	ActionKeyRevoke    = "key.revoke"
	ActionAuthenticate = "authenticate"
	ActionAuthorize    = "authorize"
)
