// Package hygiene keeps an environment's bucket clean and sound, on the
// server host, outside the request path: gc removes what nothing refers
// to, scrub re-hashes every blob (and repairs from known-good copies),
// reindex rebuilds the versions index from the bucket alone.
//
// It works on one environment at a time, through explicit dependencies: the
// bucket's storage driver (which must list and delete, blob.Lister and
// blob.Deleter) and the environment-scoped metadata handle. It knows
// nothing of HTTP.
package hygiene

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/internal/blob"
	"github.com/stagegate/stagegate/registry"
)

// Index is the part of an environment's metadata gc and scrub read: every
// version, and the evidence attached to each.
type Index interface {
	ListArtifacts(ctx context.Context) ([]registry.ArtifactSummary, error)
	ListVersions(ctx context.Context, name string) ([]registry.VersionRecord, error)
	ListEvidence(ctx context.Context, name, version string) ([]registry.Evidence, error)

	// gc's side of the handshake with publishes (see GC).
	TakeGCLease(ctx context.Context, since time.Time) (bool, error)
	GCLease(ctx context.Context) (held bool, since time.Time, err error)
	ReleaseGCLease(ctx context.Context) error
	WriteTombstones(ctx context.Context, hexes []string) error
	DeleteTombstones(ctx context.Context) error
	LiveIntents(ctx context.Context, since time.Time) ([]string, error)
	DeleteIntentsBefore(ctx context.Context, t time.Time) (int64, error)
}

// Bucket is an environment's storage driver with the capabilities hygiene
// needs.
type Bucket interface {
	blob.Driver
	blob.Lister
	blob.Deleter
}

// AsBucket checks that d (possibly wrapped) can list and delete.
func AsBucket(d blob.Driver) (Bucket, error) {
	b, ok := blob.Checked(d).(Bucket)
	if !ok || !blob.Has[blob.Lister](d) || !blob.Has[blob.Deleter](d) {
		return nil, errors.New("hygiene: the storage driver cannot list and delete objects")
	}
	return b, nil
}

// family is what a bucket key is, by registry/layout.go.
type family int

const (
	famUnknown     family = iota
	famBlob               // blobs/sha256/<hex>
	famRef                // refs/<name>/-/<version>
	famSignature          // signatures/sha256/<manifest hex>/<key id>
	famAttestation        // attestations/sha256/<manifest hex>/...
	famScrubMark          // scrub/sha256/<hex>
	famIntent             // intents/<hex>: a publish attempt's intent
	famTombstone          // gc/sha256/<hex>: gc's own, left by a run that failed
	famLease              // gc/lease
	famStaged             // uploads/<upload id>/<part>: a chunked OCI upload's chunk or state
	famParts              // parts/sha256/<hex>: the chunks that hold a blob (registry.PartsKey)
)

func (f family) String() string {
	return [...]string{"unknown", "blob", "ref", "signature", "attestation", "scrub-mark", "intent", "tombstone", "lease", "staged-upload", "parts"}[f]
}

// classify returns the family of key and the digest hex it belongs to: the
// blob's own for blobs, parts objects and scrub marks, the manifest's for signatures and
// attestations.
func classify(key string) (family, string) {
	under := func(prefix string) (string, string, bool) {
		rest, ok := strings.CutPrefix(key, prefix)
		if !ok {
			return "", "", false
		}
		hex, tail, _ := strings.Cut(rest, "/")
		if !isHex(hex) {
			return "", "", false
		}
		return hex, tail, true
	}
	if hex, tail, ok := under("blobs/sha256/"); ok && tail == "" {
		return famBlob, hex
	}
	if hex, tail, ok := under("parts/sha256/"); ok && tail == "" {
		return famParts, hex
	}
	if hex, tail, ok := under("scrub/sha256/"); ok && tail == "" {
		return famScrubMark, hex
	}
	if hex, tail, ok := under("signatures/sha256/"); ok && tail != "" {
		return famSignature, hex
	}
	if hex, tail, ok := under("attestations/sha256/"); ok && tail != "" {
		return famAttestation, hex
	}
	if hex, tail, ok := under(registry.IntentsPrefix); ok && tail == "" {
		return famIntent, hex
	}
	if hex, tail, ok := under(registry.TombstonesPrefix); ok && tail == "" {
		return famTombstone, hex
	}
	if key == registry.GCLeaseKey {
		return famLease, ""
	}
	if rest, ok := strings.CutPrefix(key, registry.UploadsPrefix); ok {
		if id, part, ok := strings.Cut(rest, "/"); ok && isUploadID(id) && part != "" && !strings.Contains(part, "/") {
			return famStaged, ""
		}
	}
	if _, _, ok := parseRefKey(key); ok {
		return famRef, ""
	}
	return famUnknown, ""
}

// isUploadID reports whether s is an upload id as package oci makes them:
// 32 lower-case hex digits.
func isUploadID(s string) bool {
	return len(s) == 32 && strings.Trim(s, "0123456789abcdef") == ""
}

func isHex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// parseRefKey splits refs/<name>/-/<version> (registry.RefKey); the
// segment "-" is never part of a name.
func parseRefKey(key string) (name, version string, ok bool) {
	rest, ok := strings.CutPrefix(key, "refs/")
	if !ok {
		return "", "", false
	}
	name, version, ok = strings.Cut(rest, "/-/")
	if !ok || name == "" || version == "" || strings.Contains(version, "/") {
		return "", "", false
	}
	return name, version, registry.RefKey(name, version) == key
}

// maxRefSize bounds a ref object read back ("sha256:" and 64 hex digits).
const maxRefSize = 1024

// readRef reads the manifest digest a ref object points at.
func readRef(ctx context.Context, s *blob.Store, key string) (v1.Hash, error) {
	data, err := s.GetObject(ctx, key, maxRefSize)
	if err != nil {
		return v1.Hash{}, err
	}
	dgst, err := registry.ParseDigest(strings.TrimSpace(string(data)))
	if err != nil {
		return v1.Hash{}, fmt.Errorf("ref %s holds no digest: %w", key, err)
	}
	return dgst, nil
}

// marks is the set of digests (hex) something refers to, and why, for
// reports of missing blobs.
type marks struct {
	blobs     map[string]string // blob hex → who refers to it
	manifests map[string]bool   // manifest hex whose content was expanded
}

func newMarks() *marks {
	return &marks{blobs: map[string]string{}, manifests: map[string]bool{}}
}

func (m *marks) add(hex, by string) {
	if _, ok := m.blobs[hex]; !ok {
		m.blobs[hex] = by
	}
}

// marker walks the roots of one environment: every version in the index,
// every ref object in the bucket, and what their manifests name.
type marker struct {
	bucket Bucket
	store  *blob.Store
	index  Index
	// skipBad, when set, skips a manifest that cannot be read instead of
	// failing (scrub reports the manifest blob itself as corrupt or
	// missing).
	skipBad bool
}

// mark adds to m everything the environment's versions and refs refer
// to: manifest, config and file blobs, evidence. A manifest that cannot be
// read (missing or corrupt) is an error: without it, its config blob is
// unknown and would look unreferenced.
func (mk marker) mark(ctx context.Context, m *marks) error {
	arts, err := mk.index.ListArtifacts(ctx)
	if err != nil {
		return fmt.Errorf("listing artifacts: %w", err)
	}
	for _, a := range arts {
		versions, err := mk.index.ListVersions(ctx, a.Name)
		if err != nil {
			return fmt.Errorf("listing versions of %s: %w", a.Name, err)
		}
		for _, v := range versions {
			by := v.Name + "@" + v.Version
			for _, f := range v.Files {
				m.add(f.Digest.Hex, by)
			}
			if err := mk.expand(ctx, m, v.ManifestDigest, by); err != nil {
				return err
			}
			evidence, err := mk.index.ListEvidence(ctx, v.Name, v.Version)
			if err != nil {
				return fmt.Errorf("listing evidence of %s: %w", by, err)
			}
			for _, e := range evidence {
				m.add(e.Digest.Hex, by+" evidence "+e.Type)
			}
		}
	}
	// Refs are roots too: a bucket whose metadata was lost (before a
	// reindex) must not lose its content to gc.
	return mk.bucket.List(ctx, "refs/", func(info blob.Info) error {
		name, version, ok := parseRefKey(info.Key)
		if !ok {
			return nil
		}
		dgst, err := readRef(ctx, mk.store, info.Key)
		if err != nil {
			return fmt.Errorf("reading %s: %w", info.Key, err)
		}
		return mk.expand(ctx, m, dgst, "ref "+name+"@"+version)
	})
}

// expand marks a manifest and the config and layers it names, once.
func (mk marker) expand(ctx context.Context, m *marks, manifest v1.Hash, by string) error {
	m.add(manifest.Hex, by)
	if m.manifests[manifest.Hex] {
		return nil
	}
	data, err := registry.ReadManifest(ctx, mk.store, manifest)
	if err != nil && mk.skipBad {
		return nil
	}
	if err != nil {
		return fmt.Errorf("manifest %s of %s cannot be read (run stagegate scrub): %w", manifest, by, err)
	}
	mf, files, err := registry.ParseManifest(data)
	if err != nil && mk.skipBad {
		return nil
	}
	if err != nil {
		return fmt.Errorf("manifest %s of %s: %w", manifest, by, err)
	}
	m.manifests[manifest.Hex] = true
	m.add(mf.Config.Digest.Hex, by+" config")
	for _, f := range files {
		m.add(f.Digest.Hex, by)
	}
	return nil
}
