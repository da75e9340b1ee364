package registry

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Kind is what an artifact is. It selects the OCI artifactType and which
// gates apply.
type Kind string

// The artifact kinds.
const (
	KindModel       Kind = "model"
	KindSchema      Kind = "schema"
	KindFeatures    Kind = "features"
	KindAgentConfig Kind = "agent-config"
	KindGeneric     Kind = "generic"
)

// Kinds lists every artifact kind in a stable order.
var Kinds = []Kind{KindModel, KindSchema, KindFeatures, KindAgentConfig, KindGeneric}

// ParseKind validates an artifact kind.
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds {
		if string(k) == s {
			return k, nil
		}
	}
	return "", CodeInvalidKind.Errorf("unknown artifact kind %q (want one of model, schema, features, agent-config, generic)", truncate(s))
}

// ArtifactType is the OCI artifactType of a manifest of this kind.
func (k Kind) ArtifactType() string { return "application/vnd.stagegate." + string(k) + ".v1" }

// ConfigMediaType is the media type of the config blob of every stagegate manifest.
const ConfigMediaType = "application/vnd.stagegate.config.v1+json"

// DefaultFileMediaType is used for a file layer when the publisher gives none.
const DefaultFileMediaType = "application/octet-stream"

// ParseDigest parses "sha256:<64 hex>". Only sha256 is accepted: blob keys
// are derived from it.
func ParseDigest(s string) (v1.Hash, error) {
	h, err := v1.NewHash(s)
	if err != nil || h.Algorithm != "sha256" || len(h.Hex) != 64 || strings.ToLower(h.Hex) != h.Hex {
		return v1.Hash{}, CodeInvalidDigest.Errorf("invalid digest %q: want sha256:<64 lowercase hex>", truncate(s))
	}
	return h, nil
}

// File is one file of an artifact version: one layer of its manifest.
type File struct {
	Path      string  `json:"path"`
	Digest    v1.Hash `json:"digest"`
	Size      int64   `json:"size"`
	MediaType string  `json:"mediaType"`
}

// UnmarshalJSON decodes a file strictly (unknown fields are refused) and
// reports a malformed digest as invalid_digest, the code every other route
// answers for one, rather than as a generic JSON error.
func (f *File) UnmarshalJSON(data []byte) error {
	var raw struct {
		Path      string `json:"path"`
		Digest    string `json:"digest"`
		Size      int64  `json:"size"`
		MediaType string `json:"mediaType"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	dgst, err := ParseDigest(raw.Digest)
	if err != nil {
		return err
	}
	*f = File{Path: raw.Path, Digest: dgst, Size: raw.Size, MediaType: raw.MediaType}
	return nil
}

// VersionRecord is the index entry of name@version in one environment. The
// manifest in the environment's bucket is the source of truth; this record
// is what queries read.
type VersionRecord struct {
	Environment     string            `json:"environment"`
	Name            string            `json:"name"`
	Version         string            `json:"version"`         // canonical semver
	OriginalVersion string            `json:"originalVersion"` // as published
	Kind            Kind              `json:"kind"`
	ManifestDigest  v1.Hash           `json:"manifestDigest"`
	ManifestSize    int64             `json:"manifestSize"`
	Files           []File            `json:"files"`
	Labels          map[string]string `json:"labels,omitempty"`
	SourceCommit    string            `json:"sourceCommit,omitempty"`
	CreatedAt       time.Time         `json:"createdAt"`
	CreatedBy       string            `json:"createdBy"`
	// CISignature says whether the publisher's CI signed this content with
	// a key the environment trusts; the gate engine reads it.
	CISignature CITrust `json:"ciSignature"`
	// Signatures over the manifest (environment) or its files (CI). Filled
	// by GetVersion; lists leave it empty.
	Signatures []Signature `json:"signatures,omitempty"`
}

// CITrust is the outcome of checking a publish's CI signatures.
type CITrust string

// CI signature outcomes.
const (
	CITrusted   CITrust = "trusted"   // every signed subject verified with a trusted CI key
	CIUntrusted CITrust = "untrusted" // signatures were given but do not verify with a trusted key
	CIAbsent    CITrust = "absent"    // no CI signature was given
)

// SignerRole says who made a signature.
type SignerRole string

// Signer roles.
const (
	SignedByEnvironment SignerRole = "environment" // the environment's own key, over the manifest
	SignedByCI          SignerRole = "ci"          // the publisher's CI key, over the manifest or a file
)

// SubjectManifest is the Subject of a signature over the manifest bytes.
const SubjectManifest = "manifest"

// Signature is a cosign `sign-blob` signature (base64) over a subject: the
// exact manifest bytes, or one file's bytes (Subject is then its path).
type Signature struct {
	Role      SignerRole `json:"role"`
	KeyID     string     `json:"keyId"`
	Subject   string     `json:"subject"`
	Signature string     `json:"signature"`
	Trusted   bool       `json:"trusted"`
	CreatedAt time.Time  `json:"createdAt"`
}

// EnvironmentSignature returns the signature the environment's key with
// keyID made over the manifest, if any.
func (r VersionRecord) EnvironmentSignature(keyID string) (Signature, bool) {
	for _, s := range r.Signatures {
		if s.Role == SignedByEnvironment && s.Subject == SubjectManifest && (keyID == "" || s.KeyID == keyID) {
			return s, true
		}
	}
	return Signature{}, false
}

// TotalSize is the sum of the file sizes.
func (r VersionRecord) TotalSize() int64 {
	var n int64
	for _, f := range r.Files {
		n += f.Size
	}
	return n
}

// ArtifactSummary describes one name in one environment.
type ArtifactSummary struct {
	Name          string    `json:"name"`
	Kind          Kind      `json:"kind"`
	VersionCount  int       `json:"versionCount"`
	LastPublished time.Time `json:"lastPublished"`
}
