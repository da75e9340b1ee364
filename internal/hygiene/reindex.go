package hygiene

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/internal/blob"
	"github.com/stagegate/stagegate/registry"
)

// Rebuilder is the part of an environment's metadata reindex writes.
type Rebuilder interface {
	GetVersion(ctx context.Context, name, version string) (registry.VersionRecord, error)
	CommitVersion(ctx context.Context, rec registry.VersionRecord, ev audit.Event) (registry.VersionRecord, bool, error)
}

// ActionReindex is the audit action of a version restored by reindex.
const ActionReindex = "version.reindex"

// Reindex rebuilds an environment's versions index and their environment
// signatures from its bucket alone (DESIGN §2: buckets are self-describing),
// for disaster recovery after the metadata was lost.
//
// From each ref object refs/<name>/-/<version> it reads the manifest digest,
// the manifest (verified), its config blob (verified) and the signature
// objects under the manifest's digest, and commits the version as publish
// would have, with an audit event naming the reindex. Recovered: name,
// canonical version, kind, manifest digest and size, files (path, digest,
// size, media type), labels, source commit, the environment's signatures
// (key id, signature, when stored; checked with Verifier). Approximated: the creation time is when
// the ref object was written, moments after the original commit. Not in the
// bucket, so not recovered: the version string as originally spelled (the
// canonical one is used), who published, the CI signatures and their
// trust verdict (recorded as absent), evidence links, approvals, releases,
// gate runs and the audit trail.
//
// Versions already in the index with the same manifest digest are left as
// they are (missing signatures are added); one with another digest is
// reported as a conflict and left alone. Running it twice changes nothing.
type Reindex struct {
	Bucket      Bucket
	Index       Rebuilder
	Environment string
	// Verifier checks each stored signature against the manifest with the
	// environment's keys; one that does not verify (or was made by another
	// key than its object names) is left out and counted in Detail. Nil
	// restores signatures unchecked, recorded as not trusted.
	Verifier registry.Verifier
	Now      func() time.Time
	Report   func(Reindexed)
}

// Reindexed is the outcome for one ref.
type Reindexed struct {
	Name, Version string
	Digest        v1.Hash
	Outcome       string // added, present, signatures-added, conflict, unreadable
	Detail        string
}

// ReindexResult counts outcomes.
type ReindexResult struct {
	Added      int `json:"added"`
	Present    int `json:"present"`
	Conflicts  int `json:"conflicts"`
	Unreadable int `json:"unreadable"`
}

// OK is true when every ref was restored or already present.
func (r ReindexResult) OK() bool { return r.Conflicts == 0 && r.Unreadable == 0 }

// maxConfigSize bounds a config blob read back whole.
const maxConfigSize = 1 << 20

// Run rebuilds the index once.
func (r *Reindex) Run(ctx context.Context) (ReindexResult, error) {
	var res ReindexResult
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	store := blob.NewStore(r.Bucket)
	var refs []blob.Info
	if err := r.Bucket.List(ctx, "refs/", func(info blob.Info) error {
		if _, _, ok := parseRefKey(info.Key); ok {
			refs = append(refs, info)
		}
		return nil
	}); err != nil {
		return res, fmt.Errorf("reindex: listing refs: %w", err)
	}
	// Oldest first, so the index's publish order follows the bucket's.
	sort.Slice(refs, func(i, j int) bool {
		if !refs[i].ModTime.Equal(refs[j].ModTime) {
			return refs[i].ModTime.Before(refs[j].ModTime)
		}
		return refs[i].Key < refs[j].Key
	})
	for _, info := range refs {
		name, version, _ := parseRefKey(info.Key)
		out := Reindexed{Name: name, Version: version}
		rec, err := r.recover(ctx, store, info)
		if err != nil {
			out.Outcome, out.Detail = "unreadable", err.Error()
			res.Unreadable++
			r.report(out)
			continue
		}
		out.Digest = rec.ManifestDigest
		existing, err := r.Index.GetVersion(ctx, name, version)
		switch {
		case err == nil && existing.ManifestDigest != rec.ManifestDigest:
			out.Outcome = "conflict"
			out.Detail = "the index has " + existing.ManifestDigest.String()
			res.Conflicts++
			r.report(out)
			continue
		case err == nil && len(existing.Signatures) >= len(rec.Signatures):
			out.Outcome = "present"
			res.Present++
			r.report(out)
			continue
		case err == nil:
			out.Outcome = "signatures-added"
		case registry.KindOf(err) == registry.NotFound:
			out.Outcome = "added"
		default:
			return res, fmt.Errorf("reindex: reading %s@%s: %w", name, version, err)
		}
		ev := audit.Actor{Name: "cli:reindex"}.Event(r.Environment, ActionReindex, name+"@"+version, audit.Success)
		ev.Time = now().UTC()
		ev.Details = map[string]string{"manifestDigest": rec.ManifestDigest.String(), "ref": info.Key}
		if _, _, err := r.Index.CommitVersion(ctx, rec, ev); err != nil {
			if registry.KindOf(err) == registry.Exists {
				out.Outcome, out.Detail = "conflict", err.Error()
				res.Conflicts++
				r.report(out)
				continue
			}
			return res, fmt.Errorf("reindex: committing %s@%s: %w", name, version, err)
		}
		if out.Outcome == "added" {
			res.Added++
		} else {
			res.Present++
		}
		r.report(out)
	}
	return res, nil
}

func (r *Reindex) report(x Reindexed) {
	if r.Report != nil {
		r.Report(x)
	}
}

// recover rebuilds the version record a ref points at.
func (r *Reindex) recover(ctx context.Context, store *blob.Store, ref blob.Info) (registry.VersionRecord, error) {
	name, version, _ := parseRefKey(ref.Key)
	if _, err := registry.ParseName(name); err != nil {
		return registry.VersionRecord{}, fmt.Errorf("invalid name in %s", ref.Key)
	}
	ver, err := registry.ParseVersion(version)
	if err != nil || ver.Canonical != version {
		return registry.VersionRecord{}, fmt.Errorf("invalid version in %s", ref.Key)
	}
	dgst, err := readRef(ctx, store, ref.Key)
	if err != nil {
		return registry.VersionRecord{}, err
	}
	data, err := registry.ReadManifest(ctx, store, dgst)
	if err != nil {
		return registry.VersionRecord{}, fmt.Errorf("manifest %s: %w", dgst, err)
	}
	m, files, err := registry.ParseManifest(data)
	if err != nil {
		return registry.VersionRecord{}, fmt.Errorf("manifest %s: %w", dgst, err)
	}
	cfg, err := readConfig(ctx, store, m.Config.Digest)
	if err != nil {
		return registry.VersionRecord{}, fmt.Errorf("config of manifest %s: %w", dgst, err)
	}
	if cfg.Name != name || cfg.Version != version || cfg.Kind.ArtifactType() != m.ArtifactType ||
		m.Annotations[registry.AnnotationName] != name || m.Annotations[registry.AnnotationVersion] != version {
		return registry.VersionRecord{}, fmt.Errorf("manifest %s describes %s@%s (%s), not what %s names", dgst, cfg.Name, cfg.Version, cfg.Kind, ref.Key)
	}
	if _, err := registry.ParseKind(string(cfg.Kind)); err != nil {
		return registry.VersionRecord{}, fmt.Errorf("config of manifest %s: %w", dgst, err)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	sigs, err := readSignatures(ctx, r.Bucket, store, dgst)
	if err != nil {
		return registry.VersionRecord{}, err
	}
	sigs, err = r.verify(data, sigs)
	if err != nil {
		return registry.VersionRecord{}, err
	}
	return registry.VersionRecord{
		Environment:     r.Environment,
		Name:            name,
		Version:         version,
		OriginalVersion: version,
		Kind:            cfg.Kind,
		ManifestDigest:  dgst,
		ManifestSize:    int64(len(data)),
		Files:           files,
		Labels:          cfg.Labels,
		SourceCommit:    cfg.SourceCommit,
		CreatedAt:       ref.ModTime.UTC(),
		CreatedBy:       "reindex",
		CISignature:     registry.CIAbsent,
		Signatures:      sigs,
	}, nil
}

// verify keeps the signatures the Verifier accepts, marked trusted. With
// none accepted out of some, the version is not restored: a bucket whose
// signatures are all foreign is not one to rebuild an index from silently.
func (r *Reindex) verify(manifest []byte, sigs []registry.Signature) ([]registry.Signature, error) {
	if r.Verifier == nil {
		for i := range sigs {
			sigs[i].Trusted = false
		}
		return sigs, nil
	}
	var ok []registry.Signature
	for _, sig := range sigs {
		if id, err := r.Verifier.Identify(manifest, sig.Signature); err == nil && id == sig.KeyID {
			sig.Trusted = true
			ok = append(ok, sig)
		}
	}
	if len(sigs) > 0 && len(ok) == 0 {
		return nil, fmt.Errorf("none of its %d signatures verifies with the environment's keys", len(sigs))
	}
	return ok, nil
}

func readConfig(ctx context.Context, store *blob.Store, dgst v1.Hash) (registry.Config, error) {
	rc, size, err := store.OpenBlob(ctx, dgst)
	if err != nil {
		return registry.Config{}, err
	}
	defer rc.Close()
	if size > maxConfigSize {
		return registry.Config{}, fmt.Errorf("%d bytes, over %d", size, maxConfigSize)
	}
	data, err := io.ReadAll(io.LimitReader(rc, maxConfigSize+1))
	if err != nil {
		return registry.Config{}, err
	}
	var cfg registry.Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return registry.Config{}, fmt.Errorf("not a stagegate config: %w", err)
	}
	return cfg, nil
}

// readSignatures reads the environment signatures stored under manifest,
// signatures/sha256/<hex>/<key id with ':' spelled '-'>.
func readSignatures(ctx context.Context, b Bucket, store *blob.Store, manifest v1.Hash) ([]registry.Signature, error) {
	prefix := "signatures/sha256/" + manifest.Hex + "/"
	var infos []blob.Info
	if err := b.List(ctx, prefix, func(info blob.Info) error {
		infos = append(infos, info)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("listing signatures of %s: %w", manifest, err)
	}
	var sigs []registry.Signature
	for _, info := range infos {
		seg := strings.TrimPrefix(info.Key, prefix)
		alg, hex, ok := strings.Cut(seg, "-")
		if !ok || strings.Contains(seg, "/") {
			continue
		}
		keyID := alg + ":" + hex
		if registry.SignatureKey(manifest, keyID) != info.Key {
			continue
		}
		data, err := store.GetObject(ctx, info.Key, registry.MaxSignatureSize)
		if errors.Is(err, blob.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", info.Key, err)
		}
		sigs = append(sigs, registry.Signature{Role: registry.SignedByEnvironment, KeyID: keyID, Subject: registry.SubjectManifest,
			Signature: string(data), CreatedAt: info.ModTime.UTC()})
	}
	sort.Slice(sigs, func(i, j int) bool { return sigs[i].CreatedAt.Before(sigs[j].CreatedAt) })
	return sigs, nil
}
