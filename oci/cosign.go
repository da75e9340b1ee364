package oci

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Media types and annotations cosign looks for. They are cosign's wire
// format, so they are spelled out here instead of importing cosign's
// packages into the spec layer.
const (
	SimpleSigningMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	DSSEMediaType          = "application/vnd.dsse.envelope.v1+json"
	SignatureAnnotation    = "dev.cosignproject.cosign/signature"
	// ArtifactType of the OCI 1.1 referrer manifests, so a referrers
	// client can filter signatures apart from attestations.
	SignatureArtifactType   = "application/vnd.dev.cosign.artifact.sig.v1+json"
	AttestationArtifactType = "application/vnd.dev.cosign.artifact.att.v1+json"

	simpleSigningType = "cosign container image signature"
)

// CosignKind tells a legacy .sig tag from a .att tag.
type CosignKind int

// The two legacy tag schemes cosign resolves by default.
const (
	CosignSignature   CosignKind = iota // sha256-<hex>.sig
	CosignAttestation                   // sha256-<hex>.att
)

func (k CosignKind) suffix() string {
	if k == CosignAttestation {
		return ".att"
	}
	return ".sig"
}

// CosignTag is the tag under which cosign looks up the signatures (or
// attestations) of the manifest with the given digest.
func CosignTag(manifest v1.Hash, kind CosignKind) string {
	return manifest.Algorithm + "-" + manifest.Hex + kind.suffix()
}

// ParseCosignTag recognises a legacy cosign tag. Only sha256 is accepted
// because it is the only digest stagegate stores, and the hex must be
// lower case so one manifest has exactly one tag of each kind.
func ParseCosignTag(tag string) (v1.Hash, CosignKind, bool) {
	var kind CosignKind
	switch {
	case strings.HasSuffix(tag, ".sig"):
		kind = CosignSignature
	case strings.HasSuffix(tag, ".att"):
		kind = CosignAttestation
	default:
		return v1.Hash{}, 0, false
	}
	hexPart, ok := strings.CutPrefix(tag[:len(tag)-4], "sha256-")
	if !ok || len(hexPart) != 64 || strings.ToLower(hexPart) != hexPart {
		return v1.Hash{}, 0, false
	}
	if _, err := hex.DecodeString(hexPart); err != nil {
		return v1.Hash{}, 0, false
	}
	return v1.Hash{Algorithm: "sha256", Hex: hexPart}, kind, true
}

// SimpleSigningPayload is the payload cosign signs for a container image:
// it binds the reference the client asked for to the manifest digest.
// cosign verify checks the digest (and, with --check-claims, the type), so
// the bytes must match its schema exactly; field order follows cosign's
// own struct so the payload reads the same as one cosign would write.
// cosign never compares docker-reference with the reference it was given
// (SimpleClaimVerifier reads only docker-manifest-digest; checked with
// cosign v2.6.5, TestCosignGolden), so "<env>/<name>" without a host keeps
// the payload independent of the address clients use: deterministic, and
// only the signature over it needs storing.
func SimpleSigningPayload(dockerReference string, manifest v1.Hash) ([]byte, error) {
	type identity struct {
		DockerReference string `json:"docker-reference"`
	}
	type image struct {
		DockerManifestDigest string `json:"docker-manifest-digest"`
	}
	type critical struct {
		Identity identity `json:"identity"`
		Image    image    `json:"image"`
		Type     string   `json:"type"`
	}
	return json.Marshal(struct {
		Critical critical       `json:"critical"`
		Optional map[string]any `json:"optional"`
	}{
		Critical: critical{
			Identity: identity{DockerReference: dockerReference},
			Image:    image{DockerManifestDigest: manifest.String()},
			Type:     simpleSigningType,
		},
	})
}

// CosignLayer is one signed blob to put in a cosign manifest: the
// simple-signing payload with its raw signature, or a DSSE envelope
// (which carries its signature inside, so Signature stays nil).
type CosignLayer struct {
	MediaType string
	Blob      []byte
	Signature []byte
}

// CosignManifest is a built cosign manifest plus the config blob it
// references; both must be servable by digest.
type CosignManifest struct {
	Manifest []byte
	Digest   v1.Hash
	Config   []byte
}

type descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int               `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// BuildCosignManifest builds the OCI image manifest cosign reads under a
// legacy tag. With subject set it also carries the OCI 1.1 subject field,
// so the same bytes serve as a referrer of that manifest: one object per
// signature keeps the tag view and the referrers view from disagreeing.
// The output is deterministic, so a retried write produces the same digest.
func BuildCosignManifest(kind CosignKind, subject *Subject, layers []CosignLayer) (CosignManifest, error) {
	// cosign builds its signature images from an empty image; a config
	// with an empty rootfs is enough for it and for go-containerregistry.
	diffIDs := make([]string, len(layers))
	descs := make([]descriptor, len(layers))
	for i, l := range layers {
		d := hashOf(l.Blob)
		diffIDs[i] = d
		descs[i] = descriptor{MediaType: l.MediaType, Digest: d, Size: len(l.Blob)}
		if l.Signature != nil {
			descs[i].Annotations = map[string]string{SignatureAnnotation: base64.StdEncoding.EncodeToString(l.Signature)}
		} else {
			// cosign's attestation layers carry an empty signature annotation.
			descs[i].Annotations = map[string]string{SignatureAnnotation: ""}
		}
	}
	config, err := json.Marshal(map[string]any{
		"architecture": "",
		"os":           "",
		"config":       map[string]any{},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	if err != nil {
		return CosignManifest{}, err
	}
	artifactType := SignatureArtifactType
	if kind == CosignAttestation {
		artifactType = AttestationArtifactType
	}
	m := struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		ArtifactType  string       `json:"artifactType,omitempty"`
		Config        descriptor   `json:"config"`
		Layers        []descriptor `json:"layers"`
		Subject       *descriptor  `json:"subject,omitempty"`
	}{
		SchemaVersion: 2,
		MediaType:     "application/vnd.oci.image.manifest.v1+json",
		Config:        descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: hashOf(config), Size: len(config)},
		Layers:        descs,
	}
	if subject != nil {
		m.ArtifactType = artifactType
		m.Subject = &descriptor{MediaType: subject.MediaType, Digest: subject.Digest.String(), Size: subject.Size}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return CosignManifest{}, err
	}
	sum := sha256.Sum256(b)
	return CosignManifest{Manifest: b, Digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}, Config: config}, nil
}

// Subject is the manifest a referrer points at.
type Subject struct {
	MediaType string
	Digest    v1.Hash
	Size      int
}

func hashOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
