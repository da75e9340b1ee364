package registry

import (
	"encoding/json"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/audit"
)

// Evidence types that CI attaches to a version.
const (
	EvidenceJUnit      = "junit"
	EvidenceMetrics    = "metrics"
	EvidenceProvenance = "provenance"
)

// Evidence is a document attached to a version (test report, metrics,
// provenance). It is immutable per (version, type, digest), stored as a blob
// in the environment's bucket, and travels with the version on promotion.
type Evidence struct {
	Environment    string    `json:"environment"`
	Name           string    `json:"name"`
	Version        string    `json:"version"`
	ManifestDigest v1.Hash   `json:"manifestDigest"`
	Type           string    `json:"type"`
	Digest         v1.Hash   `json:"digest"`
	Size           int64     `json:"size"`
	MediaType      string    `json:"mediaType"`
	CreatedAt      time.Time `json:"createdAt"`
	CreatedBy      string    `json:"createdBy"`
}

// Approval is one approver's consent to promote a version into an
// environment. Approvals are appended, never changed; gates count the
// distinct, unexpired identities behind them, not the keys.
type Approval struct {
	Environment    string  `json:"environment"`
	Name           string  `json:"name"`
	Version        string  `json:"version"`
	ManifestDigest v1.Hash `json:"manifestDigest"`
	Actor          string  `json:"actor"` // name of the approving key
	CredentialID   string  `json:"credentialId"`
	// Identity is the approving key's owner. Separation of duties is about
	// people: one person holding two keys is still one approver.
	Identity string `json:"identity"`
	// KeyCreatedBy is the identity that minted the approving key. A key's
	// owner is whatever its minter wrote, so an approval through a key the
	// promoter minted is the promoter's own.
	KeyCreatedBy string    `json:"keyCreatedBy"`
	Role         string    `json:"role"`
	Comment      string    `json:"comment,omitempty"`
	CreatedAt    time.Time `json:"createdAt"`
}

// Release actions.
const (
	ReleasePromotion = "promotion"
	ReleaseRollback  = "rollback"
)

// Release is the fact that an environment serves name@version from
// CreatedAt on. Releases are append-only; the current release of a name is
// its newest.
type Release struct {
	ID             int64     `json:"id"`
	Environment    string    `json:"environment"`
	Name           string    `json:"name"`
	Version        string    `json:"version"`
	ManifestDigest v1.Hash   `json:"manifestDigest"`
	Action         string    `json:"action"`
	Source         string    `json:"source,omitempty"` // environment promoted from
	PreviousID     int64     `json:"previousId,omitempty"`
	Actor          string    `json:"actor"`
	Reason         string    `json:"reason,omitempty"`
	GateRunID      string    `json:"gateRunId,omitempty"`
	CreatedAt      time.Time `json:"createdAt"`

	// Number counts the releases of Name in Environment from 1 ("release 3
	// of fraud-detector in prod"); the store assigns it, as it does ID.
	Number int64 `json:"number"`
	// TriggeredBy names what asked for a rollback when it was not a person,
	// e.g. "alertmanager:<fingerprint>"; "" otherwise.
	TriggeredBy string `json:"triggeredBy,omitempty"`
	// Forced is true for a rollback an admin forced past the environment's
	// freeze windows (rollback --force).
	Forced bool `json:"forced,omitempty"`
}

// GateRun is one stored evaluation of a policy for a promotion (or a dry
// run): what was asked, which policy decided, and the full report.
type GateRun struct {
	ID             string          `json:"id"`
	Environment    string          `json:"environment"` // target
	Source         string          `json:"source"`
	Name           string          `json:"name"`
	Version        string          `json:"version"`
	ManifestDigest v1.Hash         `json:"manifestDigest"`
	PolicyDigest   string          `json:"policyDigest"`
	Passed         bool            `json:"passed"`
	DryRun         bool            `json:"dryRun"`
	Actor          string          `json:"actor"`
	StartedAt      time.Time       `json:"startedAt"`
	DurationMS     int64           `json:"durationMs"`
	Report         json.RawMessage `json:"report"`
}

// PromotionCommit is what one promotion writes into its target environment
// in one metadata transaction: the promoted version never appears without
// its release and audit event. Promotion builds it; the metadata store
// commits it as is.
type PromotionCommit struct {
	// Version is the version as the target now holds it: Environment is
	// the target, Signatures are the ones to store with it.
	Version VersionRecord
	// Evidence travels with the version (Environment is the target).
	Evidence []Evidence
	// Release records the promotion: Action must be ReleasePromotion; ID,
	// PreviousID and Number are assigned by the store.
	Release Release
	// Event is appended to the target's audit trail.
	Event audit.Event
}
