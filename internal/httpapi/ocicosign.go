package httpapi

import (
	"context"
	"encoding/base64"
	"net/http"
	"sync"

	"github.com/gin-gonic/gin"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/environment"
	"github.com/stagegate/stagegate/oci"
	"github.com/stagegate/stagegate/registry"
)

// cosign in its native OCI mode. A version's environment signature over
// the simple-signing payload (stored by SignManifest on publish and
// promotion) and its gate attestation (the DSSE envelope a promotion
// stores) are served as the OCI artifacts cosign looks for: an image
// manifest under the tag sha256-<hex>.sig (and .att) that older clients
// resolve, which also carries the OCI 1.1 subject, so that the same bytes
// are what the referrers API lists. Nothing of them is stored as OCI
// content: each manifest, its config and the payload blob are built from
// the stored signature or envelope when asked for, deterministically, so
// their digests never change, and a tampered signature or envelope is
// what cosign is given to verify (and refuses).

// ociManifestMediaType is the media type of the manifests built here.
const ociManifestMediaType = "application/vnd.oci.image.manifest.v1+json"

// cosignArtifact is one built cosign manifest with the blobs it names.
type cosignArtifact struct {
	kind     oci.CosignKind
	manifest oci.CosignManifest
	blobs    map[v1.Hash][]byte // config and layers
}

// cosignArtifacts builds the cosign signature and gate attestation of
// rec in env, those that are stored; a version without either has none.
func (a *API) cosignArtifacts(ctx context.Context, env *environment.Environment, rec registry.VersionRecord) ([]cosignArtifact, error) {
	subject := &oci.Subject{MediaType: ociManifestMediaType, Digest: rec.ManifestDigest, Size: int(rec.ManifestSize)}
	var out []cosignArtifact
	sig, err := env.CosignSignature(ctx, rec.ManifestDigest)
	switch {
	case err == nil:
		raw, derr := base64.StdEncoding.DecodeString(sig)
		if derr != nil {
			// The stored bytes are not even base64: serve them as they
			// are, so that cosign reports the signature as invalid.
			raw = []byte(sig)
		}
		payload, perr := oci.SimpleSigningPayload(environment.CosignReference(env.Name(), rec.Name), rec.ManifestDigest)
		if perr != nil {
			return nil, registry.CodeInternal.Errorf("building the cosign payload").WithCause(perr)
		}
		art, berr := buildCosignArtifact(oci.CosignSignature, subject, oci.CosignLayer{MediaType: oci.SimpleSigningMediaType, Blob: payload, Signature: raw})
		if berr != nil {
			return nil, berr
		}
		out = append(out, art)
	case registry.KindOf(err) != registry.NotFound:
		return nil, err
	}
	envelope, err := a.Promotions.Attestation(ctx, env, rec.Name, rec.Version)
	switch {
	case err == nil:
		art, berr := buildCosignArtifact(oci.CosignAttestation, subject, oci.CosignLayer{MediaType: oci.DSSEMediaType, Blob: envelope})
		if berr != nil {
			return nil, berr
		}
		out = append(out, art)
	case registry.KindOf(err) != registry.NotFound:
		return nil, err
	}
	return out, nil
}

func buildCosignArtifact(kind oci.CosignKind, subject *oci.Subject, layer oci.CosignLayer) (cosignArtifact, error) {
	m, err := oci.BuildCosignManifest(kind, subject, []oci.CosignLayer{layer})
	if err != nil {
		return cosignArtifact{}, registry.CodeInternal.Errorf("building a cosign manifest").WithCause(err)
	}
	return cosignArtifact{kind: kind, manifest: m, blobs: map[v1.Hash][]byte{
		registry.DigestOf(m.Config):   m.Config,
		registry.DigestOf(layer.Blob): layer.Blob,
	}}, nil
}

// ociCosignManifestByTag serves the manifest cosign looks up under
// sha256-<hex>.sig or .att: the version of the repository whose manifest
// has that digest must exist in the environment.
func (a *API) ociCosignManifestByTag(c *gin.Context, req *request, p oci.Path, subject v1.Hash, kind oci.CosignKind) error {
	ctx := c.Request.Context()
	if _, err := a.ociVersions(c, req, p); err != nil {
		return err
	}
	rec, err := a.Registry.VersionByManifest(ctx, req.env, p.Name, subject)
	if err != nil {
		if registry.KindOf(err) == registry.NotFound {
			return oci.CodeManifestUnknown.Errorf("%s:%s: no version of %s in %s has manifest %s", p.Repository(), p.Reference, p.Name, req.env.Name(), subject)
		}
		return err
	}
	arts, err := a.cosignArtifacts(ctx, req.env, rec)
	if err != nil {
		return err
	}
	for _, art := range arts {
		if art.kind == kind {
			a.rememberCosign(req.env, p.Name, art)
			writeCosignManifest(c, art.manifest)
			return nil
		}
	}
	what := "signature"
	if kind == oci.CosignAttestation {
		what = "gate attestation (versions get one when a promotion admits them)"
	}
	return oci.CodeManifestUnknown.Errorf("%s@%s has no cosign %s in %s", rec.Name, rec.Version, what, req.env.Name())
}

// findCosign looks for a cosign manifest or blob with digest dgst among
// the versions of p's name: first in what recent reads built, then by
// building every version's. It reports false when there is none.
func (a *API) findCosign(ctx context.Context, c *gin.Context, req *request, p oci.Path, dgst v1.Hash) (data []byte, isManifest bool, found bool, err error) {
	if data, isManifest, ok := a.recalledCosign(req.env, p.Name, dgst); ok {
		return data, isManifest, true, nil
	}
	versions, err := a.ociVersions(c, req, p)
	if err != nil {
		return nil, false, false, err
	}
	for _, rec := range versions {
		arts, err := a.cosignArtifacts(ctx, req.env, rec)
		if err != nil {
			return nil, false, false, err
		}
		for _, art := range arts {
			a.rememberCosign(req.env, p.Name, art)
			if art.manifest.Digest == dgst {
				return art.manifest.Manifest, true, true, nil
			}
			if b, ok := art.blobs[dgst]; ok {
				return b, false, true, nil
			}
		}
	}
	return nil, false, false, nil
}

func writeCosignManifest(c *gin.Context, m oci.CosignManifest) {
	writeContent(c, m.Digest, ociManifestMediaType, m.Manifest)
}

// writeCosignBlob serves a small built blob whole; Range requests get the
// whole blob (RFC 9110 allows it), which is a few hundred bytes.
func writeCosignBlob(c *gin.Context, dgst v1.Hash, data []byte) {
	writeContent(c, dgst, "application/octet-stream", data)
}

// ociReferrers answers the referrers API: the cosign signature and gate
// attestation of the version whose manifest is the subject, as OCI 1.1
// artifacts, optionally filtered by ?artifactType=. A subject that is no
// version's manifest has no referrers (an empty index, as the spec says).
func (a *API) ociReferrers(c *gin.Context, req *request, p oci.Path) error {
	dgst, err := oci.ParseDigest(p.Reference)
	if err != nil {
		return err
	}
	type descriptor struct {
		MediaType    string `json:"mediaType"`
		Digest       string `json:"digest"`
		Size         int    `json:"size"`
		ArtifactType string `json:"artifactType"`
	}
	manifests := []descriptor{}
	if oci.Stored(dgst) {
		ctx := c.Request.Context()
		if _, err := a.ociVersions(c, req, p); err != nil {
			return err
		}
		rec, err := a.Registry.VersionByManifest(ctx, req.env, p.Name, dgst)
		if err != nil && registry.KindOf(err) != registry.NotFound {
			return err
		}
		if err == nil {
			arts, err := a.cosignArtifacts(ctx, req.env, rec)
			if err != nil {
				return err
			}
			filter := c.Query("artifactType")
			for _, art := range arts {
				at := oci.SignatureArtifactType
				if art.kind == oci.CosignAttestation {
					at = oci.AttestationArtifactType
				}
				if filter != "" && filter != at {
					continue
				}
				a.rememberCosign(req.env, p.Name, art)
				manifests = append(manifests, descriptor{MediaType: ociManifestMediaType, Digest: art.manifest.Digest.String(),
					Size: len(art.manifest.Manifest), ArtifactType: at})
			}
		}
	}
	if c.Query("artifactType") != "" {
		c.Header("OCI-Filters-Applied", "artifactType")
	}
	ociJSON(c, http.StatusOK, "application/vnd.oci.image.index.v1+json", struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		Manifests     []descriptor `json:"manifests"`
	}{2, "application/vnd.oci.image.index.v1+json", manifests})
	return nil
}

// cosignMemory keeps what recent reads built, by environment, name and
// digest, so that the blob reads cosign makes after reading a manifest
// (its config and layers) need no search through every version. Entries
// are content addressed, so one is never stale: at worst it outlives the
// stored signature it was built from, and it still is those bytes. It is
// bounded, and emptied whole when full.
type cosignMemory struct {
	mu      sync.Mutex
	entries map[cosignEntryKey]cosignEntry
}

type cosignEntryKey struct {
	env, name string
	digest    v1.Hash
}

type cosignEntry struct {
	data       []byte
	isManifest bool
}

// maxCosignEntries bounds the memory: three entries of under 8 KiB each
// per artifact.
const maxCosignEntries = 4096

func (a *API) rememberCosign(env *environment.Environment, name string, art cosignArtifact) {
	m := a.cosign
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.entries)+len(art.blobs)+1 > maxCosignEntries || m.entries == nil {
		m.entries = map[cosignEntryKey]cosignEntry{}
	}
	m.entries[cosignEntryKey{env.Name(), name, art.manifest.Digest}] = cosignEntry{art.manifest.Manifest, true}
	for d, b := range art.blobs {
		m.entries[cosignEntryKey{env.Name(), name, d}] = cosignEntry{data: b}
	}
}

func (a *API) recalledCosign(env *environment.Environment, name string, dgst v1.Hash) ([]byte, bool, bool) {
	m := a.cosign
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[cosignEntryKey{env.Name(), name, dgst}]
	return e.data, e.isManifest, ok
}
