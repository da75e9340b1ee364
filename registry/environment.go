package registry

import (
	"context"
	"encoding/json"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/audit"
)

// Env is the one environment a request is bound to, as the registry
// service uses it. Package environment implements it: the value is built
// once at start-up and handed to every service call by the HTTP layer,
// which took it from the caller's credential. Nothing here takes an
// environment name.
type Env interface {
	Name() string
	// AcceptsPublish is true for the first environment only.
	AcceptsPublish() bool
	Blobs() Blobs
	Metadata() Metadata
	// FindVersion validates name and version and reads the canonical
	// version; a missing one is version_not_found naming the environment.
	FindVersion(ctx context.Context, name, version string) (VersionRecord, error)
	// SignManifest returns the environment's signature over manifest (the
	// manifest of a version of name), stored create-once in the bucket
	// before any record names it, beside the signature cosign verifies over
	// the OCI API.
	SignManifest(ctx context.Context, name string, digest v1.Hash, manifest []byte, now time.Time) (Signature, error)
	// JudgeCISignatures checks CI signatures against the keys this
	// environment trusts.
	JudgeCISignatures(manifest []byte, files []File, sigs []Signature) ([]Signature, CITrust)
}

// Metadata is one environment's handle on the metadata store: every query
// made through it reads and writes only that environment's rows, so no
// caller can forget the environment filter. Package internal/metadata
// implements it; consumers declare the subset they use.
type Metadata interface {
	CommitVersion(ctx context.Context, rec VersionRecord, ev audit.Event) (VersionRecord, bool, error)
	GetVersion(ctx context.Context, name, version string) (VersionRecord, error)
	ListVersions(ctx context.Context, name string) ([]VersionRecord, error)
	ListArtifacts(ctx context.Context) ([]ArtifactSummary, error)

	AddEvidence(ctx context.Context, ev Evidence, event audit.Event) (Evidence, bool, error)
	ListEvidence(ctx context.Context, name, version string) ([]Evidence, error)
	AddApproval(ctx context.Context, a Approval, event audit.Event) (Approval, error)
	ListApprovals(ctx context.Context, name, version string) ([]Approval, error)
	RecordGateRun(ctx context.Context, run GateRun) error
	GetGateRun(ctx context.Context, id string) (GateRun, error)
	CurrentRelease(ctx context.Context, name string) (Release, error)
	ListReleases(ctx context.Context, name string) ([]Release, error)
	CommitPromotion(ctx context.Context, c PromotionCommit) (Release, bool, error)
	CommitRollback(ctx context.Context, c RollbackCommit) (Release, bool, error)
	PageReleases(ctx context.Context, name string, p ReleasePage) ([]Release, error)
	ReleasesAt(ctx context.Context, at time.Time, name string) ([]Release, error)

	// The publish side of the handshake with gc (AnnounceBlobs).
	WriteIntent(ctx context.Context, id string, digests []v1.Hash, at time.Time) error
	DeleteIntent(ctx context.Context, id string) error
	GCLease(ctx context.Context) (held bool, since time.Time, err error)
	Tombstoned(ctx context.Context, hexes []string) ([]string, error)

	AppendAudit(ctx context.Context, ev audit.Event) (int64, error)
	QueryAudit(ctx context.Context, f audit.Filter) ([]audit.Event, error)
	ExportAudit(ctx context.Context, f audit.Filter, fn func(audit.Event) error) error
	AuditHead(ctx context.Context) (audit.Head, error)
}

// Signer is an environment's cosign key: it signs manifests (what
// `cosign sign-blob` would produce) and gate attestations (DSSE envelopes
// of in-toto statements).
type Signer interface {
	SignBlob(payload []byte) (string, error)
	KeyID() string
	PublicKeyPEM() []byte
	AttestBlob(subjectName, subjectDigest, predicateType string, predicate json.RawMessage) ([]byte, error)
}

// Verifier checks signatures with an environment's current key and the
// keys it rotated away from.
type Verifier interface {
	// Identify returns the id of the key that signed payload.
	Identify(payload []byte, sig string) (string, error)
	// VerifyAttestation checks a DSSE envelope and returns its predicate
	// and the id of the key that signed it.
	VerifyAttestation(envelope []byte, subjectDigest, predicateType string) (json.RawMessage, string, error)
}

// CIKeys are the CI public keys an environment trusts.
type CIKeys interface {
	// Identify returns the id of the key that signed payload.
	Identify(payload []byte, sig string) (string, error)
	// IdentifyDigest is Identify for a payload known by its sha256 digest.
	IdentifyDigest(sha256Digest string, sig string) (string, error)
}
