package gates

import (
	"context"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/registry"
)

// Opener opens one stored blob for reading. Checks call it as often as they
// need (each call starts at the beginning) and always close what it returns.
// An error means the blob could not be read: the check reports Errored.
type Opener func(ctx context.Context) (io.ReadCloser, error)

// Subject is everything a gate run may look at, as plain data plus openers.
// The promotion service fills it from storage and metadata; the checks never
// reach storage, SQL or the network themselves, which keeps them pure and
// testable with in-memory fakes.
type Subject struct {
	Name    string        // artifact name, e.g. "fraud-detector"
	Version string        // canonical version being promoted
	Kind    registry.Kind // selects which policy checks apply

	Source       string   // environment the version is promoted from
	Target       string   // environment the version is promoted to
	Environments []string // configured order, e.g. [dev staging prod]

	Files    []File     // the version's files (manifest layers)
	Evidence []Evidence // evidence documents attached by CI

	// Current is the target environment's current release of Name, or nil
	// when Name has never been released there. Compatibility and
	// no-regression rules compare against it.
	Current *Release

	// PublishedAt is when the version became available in Source (its
	// publish or promotion time there); soak time is measured from it.
	PublishedAt time.Time

	// Actor names the key requesting the promotion; Identity is its owner
	// and KeyCreatedBy the identity that minted it. Separation of duties is
	// judged on identities, never on key names: one person may hold several
	// keys. Identity is "" for a key minted before owners existed.
	Actor        string
	Identity     string
	KeyCreatedBy string
	Approvals    []Approval // recorded approvals of this version

	Signature Signature // outcome of verifying the CI signature
	// EnvironmentSignature is the outcome of verifying the target
	// environment's own signature over the manifest with its current and
	// rotated keys; a rollback fills it (a promotion signs after its gates,
	// so it leaves it unset).
	EnvironmentSignature Signature

	// Now is the evaluation time. Time-dependent checks (soak, freeze
	// windows, approval expiry) read it instead of the clock so that a gate
	// run can be replayed and explained.
	Now time.Time
}

// File is one file of a version with a way to read its bytes.
type File struct {
	Path      string  // path inside the artifact, e.g. "model.safetensors"
	Digest    v1.Hash // recorded sha256 digest
	Size      int64   // recorded size in bytes
	MediaType string
	Open      Opener
	// Verified, when set, says whether these bytes were already hashed
	// against Digest and Size on their way to the target: a promotion's
	// verifying copy reads the source once, and a second read by
	// digest-integrity would only cost time. It blocks until that
	// verification ended; false (it did not run, failed or was not
	// possible) makes digest-integrity read and hash through Open itself.
	Verified func(ctx context.Context) bool
}

// Evidence is one evidence document (test report, metrics, provenance).
type Evidence struct {
	// Type names what the document is: "junit", "metrics", "provenance", ...
	// Policies refer to evidence by type.
	Type      string
	Digest    v1.Hash
	Size      int64
	MediaType string
	Open      Opener
}

// Release is the target environment's current release of the artifact, as
// far as the checks need it.
type Release struct {
	Version  string
	Files    []File
	Evidence []Evidence
}

// Approval is one recorded approval of a version for an environment.
type Approval struct {
	Actor        string    // name of the approving key, for explanations
	Identity     string    // the approving key's owner, e.g. "alice@example.com"; "" if it had none
	KeyCreatedBy string    // the identity that minted the approving key
	Role         string    // role the key held when approving, e.g. "approver"
	Environment  string    // environment the approval was given for
	At           time.Time // when it was given
}

// SignatureStatus is the outcome of verifying the version's CI signature
// against the configured trusted keys. Verification itself happens outside
// the gates (it needs keys and storage); the check only judges the outcome.
type SignatureStatus string

// Signature statuses. The zero value means no trusted keys are configured.
const (
	SignatureUnconfigured SignatureStatus = ""          // no trusted CI keys configured
	SignatureTrusted      SignatureStatus = "trusted"   // signed by a trusted key
	SignatureUntrusted    SignatureStatus = "untrusted" // signed, but by no trusted key, or invalid
	SignatureAbsent       SignatureStatus = "absent"    // no signature found
	SignatureError        SignatureStatus = "error"     // verification could not run
)

// Signature describes the CI signature verification outcome.
type Signature struct {
	Status SignatureStatus
	KeyID  string // which trusted key verified it, when Status is trusted
	Detail string // one line for humans: why untrusted, or what failed
}

// evidenceOfType returns the evidence documents of one type, in order.
func evidenceOfType(ev []Evidence, typ string) []Evidence {
	var out []Evidence
	for _, e := range ev {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}
