package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/internal/blob"
)

// Blobs is the content store of one environment's bucket.
type Blobs interface {
	PutBlob(ctx context.Context, dgst v1.Hash, r io.Reader, size int64) (created bool, err error)
	OpenBlob(ctx context.Context, dgst v1.Hash) (io.ReadCloser, int64, error)
	StatBlob(ctx context.Context, dgst v1.Hash) (int64, error)
	PutObject(ctx context.Context, key string, data []byte) error
	GetObject(ctx context.Context, key string, maxSize int64) ([]byte, error)
}

// Index is the metadata of one environment: an environment-scoped handle, so
// no query can forget the environment filter.
type Index interface {
	CommitVersion(ctx context.Context, rec VersionRecord, ev audit.Event) (VersionRecord, bool, error)
	GetVersion(ctx context.Context, name, version string) (VersionRecord, error)
	ListVersions(ctx context.Context, name string) ([]VersionRecord, error)
	ListArtifacts(ctx context.Context) ([]ArtifactSummary, error)
}

// ManifestSigner signs manifest bytes with an environment's key, producing
// what `cosign sign-blob` would.
type ManifestSigner interface {
	SignBlob(payload []byte) (string, error)
	KeyID() string
}

// CIKeys are the CI public keys an environment trusts.
type CIKeys interface {
	// Identify returns the id of the key that signed payload.
	Identify(payload []byte, sig string) (string, error)
	// IdentifyDigest is Identify for a payload known by its sha256 digest.
	IdentifyDigest(sha256Digest string, sig string) (string, error)
}

// Environment is one configured environment with its storage and keys.
type Environment struct {
	Name  string
	Blobs Blobs
	Index Index
	// Signer signs every manifest the environment holds.
	Signer ManifestSigner
	// TrustedCI decides whether a publish's CI signatures count; nil
	// trusts none.
	TrustedCI CIKeys
}

// Limits bound what a publisher may store.
type Limits struct {
	MaxFileSize int64 // bytes per file (blob)
	MaxFiles    int   // files per version
}

// DefaultLimits are used for zero fields of Limits.
var DefaultLimits = Limits{MaxFileSize: 50 << 30, MaxFiles: 10000}

// Service publishes and reads artifact versions. It knows nothing of HTTP:
// callers pass the environment that authentication bound and the actor.
type Service struct {
	envs   []Environment // in promotion order; the first accepts publishes
	byName map[string]*Environment
	limits Limits
	now    func() time.Time
}

// NewService builds a Service over environments in promotion order.
func NewService(envs []Environment, limits Limits, now func() time.Time) (*Service, error) {
	if len(envs) == 0 {
		return nil, errors.New("registry: at least one environment is required")
	}
	if limits.MaxFileSize <= 0 {
		limits.MaxFileSize = DefaultLimits.MaxFileSize
	}
	if limits.MaxFiles <= 0 {
		limits.MaxFiles = DefaultLimits.MaxFiles
	}
	if now == nil {
		now = time.Now
	}
	s := &Service{envs: envs, byName: make(map[string]*Environment, len(envs)), limits: limits, now: now}
	for i := range s.envs {
		e := &s.envs[i]
		if e.Blobs == nil || e.Index == nil || e.Signer == nil {
			return nil, fmt.Errorf("registry: environment %q lacks storage or a signing key", e.Name)
		}
		if _, dup := s.byName[e.Name]; dup {
			return nil, fmt.Errorf("registry: environment %q configured twice", e.Name)
		}
		s.byName[e.Name] = e
	}
	return s, nil
}

// Limits returns the effective limits.
func (s *Service) Limits() Limits { return s.limits }

// EnvironmentNames lists the environments in promotion order.
func (s *Service) EnvironmentNames() []string {
	names := make([]string, len(s.envs))
	for i, e := range s.envs {
		names[i] = e.Name
	}
	return names
}

func (s *Service) env(name string) (*Environment, error) {
	e, ok := s.byName[name]
	if !ok {
		return nil, Errorf(NotFound, CodeNotFound, "unknown environment %q", truncate(name))
	}
	return e, nil
}

// publishable returns the environment if publishes may enter it.
func (s *Service) publishable(name string) (*Environment, error) {
	e, err := s.env(name)
	if err != nil {
		return nil, err
	}
	if e.Name != s.envs[0].Name {
		return nil, Errorf(Forbidden, CodePublishNotFirst,
			"environment %q accepts no publishes: publish into %q and promote", e.Name, s.envs[0].Name)
	}
	return e, nil
}

// UploadBlob stores one file's bytes, streamed and verified against dgst,
// in the first environment. Re-uploading an existing blob is a no-op.
func (s *Service) UploadBlob(ctx context.Context, env string, dgst v1.Hash, r io.Reader, size int64) (created bool, err error) {
	e, err := s.publishable(env)
	if err != nil {
		return false, err
	}
	if size > s.limits.MaxFileSize {
		return false, Errorf(TooLarge, CodeTooLarge, "blob of %d bytes is over the limit of %d bytes", size, s.limits.MaxFileSize)
	}
	// An unknown size is bounded by reading one byte past the limit.
	limited := &limitReader{r: r, left: s.limits.MaxFileSize}
	created, err = e.Blobs.PutBlob(ctx, dgst, limited, size)
	switch {
	case limited.over:
		return false, Errorf(TooLarge, CodeTooLarge, "blob is over the limit of %d bytes", s.limits.MaxFileSize)
	case errors.Is(err, blob.ErrDigestMismatch):
		return false, Errorf(Invalid, CodeDigestMismatch, "uploaded bytes do not match digest %s (or their length does not match the declared size)", dgst).WithCause(err)
	case err != nil:
		return false, storageError(err)
	}
	return created, nil
}

// StatBlob reports the size of a stored blob of env.
func (s *Service) StatBlob(ctx context.Context, env string, dgst v1.Hash) (int64, error) {
	e, err := s.env(env)
	if err != nil {
		return 0, err
	}
	size, err := e.Blobs.StatBlob(ctx, dgst)
	if err != nil {
		return 0, storageError(err)
	}
	return size, nil
}

// PublishRequest is a version to publish whose file blobs are already uploaded.
type PublishRequest struct {
	Name         string
	Version      string
	Kind         string
	Files        []File
	Labels       map[string]string
	SourceCommit string
	// CISignatures are the publisher's CI signatures (cosign sign-blob
	// output) over the manifest or over files.
	CISignatures []CISignature
}

// CISignature is one CI signature in a publish request. Subject is
// SubjectManifest or a file path.
type CISignature struct {
	Subject   string `json:"subject"`
	Signature string `json:"signature"`
}

// PublishResult is the committed version and whether this call created it.
type PublishResult struct {
	Record  VersionRecord
	Created bool
}

// Publish commits name@version in the first environment once every file blob
// is stored. Blobs, config and manifest are written first (immutable,
// content-addressed); the index commit is the single pointer flip that makes
// the version visible, so an interrupted publish leaves nothing visible and a
// retry completes it. Re-publishing identical content succeeds with
// Created=false; different content is Exists/version_exists.
func (s *Service) Publish(ctx context.Context, env string, by audit.Actor, req PublishRequest) (PublishResult, error) {
	e, err := s.publishable(env)
	if err != nil {
		return PublishResult{}, err
	}
	name, err := ParseName(req.Name)
	if err != nil {
		return PublishResult{}, err
	}
	ver, err := ParseVersion(req.Version)
	if err != nil {
		return PublishResult{}, err
	}
	kind, err := ParseKind(req.Kind)
	if err != nil {
		return PublishResult{}, err
	}
	if err := ValidateLabels(req.Labels); err != nil {
		return PublishResult{}, err
	}
	if len(req.SourceCommit) > 256 {
		return PublishResult{}, Errorf(Invalid, CodeInvalidRequest, "sourceCommit is longer than 256 bytes")
	}
	files, err := s.checkFiles(ctx, e, req.Files)
	if err != nil {
		return PublishResult{}, err
	}
	if err := s.checkKind(ctx, e, name, kind); err != nil {
		return PublishResult{}, err
	}

	built, err := BuildManifest(Config{Kind: kind, Name: name, Version: ver.Canonical, SourceCommit: req.SourceCommit, Labels: req.Labels}, files)
	if err != nil {
		return PublishResult{}, err
	}
	if _, err := e.Blobs.PutBlob(ctx, built.ConfigDigest, bytes.NewReader(built.Config), int64(len(built.Config))); err != nil {
		return PublishResult{}, storageError(err)
	}
	if _, err := e.Blobs.PutBlob(ctx, built.ManifestDigest, bytes.NewReader(built.Manifest), int64(len(built.Manifest))); err != nil {
		return PublishResult{}, storageError(err)
	}
	ciSigs, trust, err := s.checkCISignatures(e, built, files, req.CISignatures)
	if err != nil {
		return PublishResult{}, err
	}
	envSig, err := s.signManifest(ctx, e, built)
	if err != nil {
		return PublishResult{}, err
	}
	target := name + "@" + ver.Canonical
	rec := VersionRecord{
		Environment:     e.Name,
		Name:            name,
		Version:         ver.Canonical,
		OriginalVersion: ver.Original,
		Kind:            kind,
		ManifestDigest:  built.ManifestDigest,
		ManifestSize:    int64(len(built.Manifest)),
		Files:           files,
		Labels:          req.Labels,
		SourceCommit:    req.SourceCommit,
		CreatedAt:       s.now().UTC(),
		CreatedBy:       by.Name,
		CISignature:     trust,
		Signatures:      append([]Signature{envSig}, ciSigs...),
	}
	ev := by.Event(e.Name, audit.ActionPublish, target, audit.Success)
	ev.Time = rec.CreatedAt
	ev.Details = map[string]string{"manifestDigest": built.ManifestDigest.String(), "ciSignature": string(trust)}
	stored, created, err := e.Index.CommitVersion(ctx, rec, ev)
	if err != nil {
		var de *Error
		if errors.As(err, &de) && de.Kind == Exists {
			return PublishResult{}, Errorf(Exists, CodeVersionExists,
				"%s already exists in %s with different content; versions are immutable, publish a new version", target, e.Name).
				WithDetails(map[string]string{"existingManifestDigest": s.existingDigest(ctx, e, name, ver.Canonical)})
		}
		return PublishResult{}, err
	}
	// The ref object makes the bucket self-describing (reindex). It is
	// written after the commit and is create-once, so a retry is harmless.
	if err := e.Blobs.PutObject(ctx, RefKey(name, ver.Canonical), []byte(stored.ManifestDigest.String())); err != nil && !errors.Is(err, blob.ErrExists) {
		return PublishResult{}, storageError(err)
	}
	return PublishResult{Record: stored, Created: created}, nil
}

func (s *Service) existingDigest(ctx context.Context, e *Environment, name, version string) string {
	rec, err := e.Index.GetVersion(ctx, name, version)
	if err != nil {
		return ""
	}
	return rec.ManifestDigest.String()
}

// SignatureKey is the bucket key of the signature by key keyID over the
// manifest with digest manifest.
func SignatureKey(manifest v1.Hash, keyID string) string {
	return "signatures/sha256/" + manifest.Hex + "/" + strings.ReplaceAll(keyID, ":", "-")
}

// maxSignatureSize bounds a stored or submitted signature (an ECDSA P-256
// signature is about 96 base64 characters; RSA-4096 about 700).
const maxSignatureSize = 4096

// signManifest returns the environment's signature over the manifest bytes.
func (s *Service) signManifest(ctx context.Context, e *Environment, built Built) (Signature, error) {
	return SignManifest(ctx, e.Blobs, e.Signer, built.ManifestDigest, built.Manifest, s.now())
}

// SignManifest returns signer's signature over manifest, stored in the
// bucket create-once before any record names it: ECDSA signatures differ on
// every call, so a retry (or a concurrent publish or promotion) adopts the
// stored one and every copy of the record names the same bytes.
func SignManifest(ctx context.Context, blobs Blobs, signer ManifestSigner, digest v1.Hash, manifest []byte, now time.Time) (Signature, error) {
	keyID := signer.KeyID()
	key := SignatureKey(digest, keyID)
	sig := Signature{Role: SignedByEnvironment, KeyID: keyID, Subject: SubjectManifest, Trusted: true, CreatedAt: now.UTC()}
	for attempt := 0; attempt < 2; attempt++ {
		stored, err := blobs.GetObject(ctx, key, maxSignatureSize)
		if err == nil {
			sig.Signature = string(stored)
			return sig, nil
		}
		if !errors.Is(err, blob.ErrNotFound) {
			return Signature{}, storageError(err)
		}
		b64, err := signer.SignBlob(manifest)
		if err != nil {
			return Signature{}, Errorf(Internal, CodeInternal, "signing failed").WithCause(err)
		}
		switch err := blobs.PutObject(ctx, key, []byte(b64)); {
		case err == nil:
			sig.Signature = b64
			return sig, nil
		case !errors.Is(err, blob.ErrExists):
			return Signature{}, storageError(err)
		}
		// Lost a race to another signer: read back the winner's signature.
	}
	return Signature{}, Errorf(Unavailable, CodeUnavailable, "signature object for %s keeps changing", digest)
}

// checkCISignatures validates the publisher's CI signatures and judges them
// against the environment's trusted CI keys (see JudgeCISignatures).
func (s *Service) checkCISignatures(e *Environment, built Built, files []File, in []CISignature) ([]Signature, CITrust, error) {
	if len(in) == 0 {
		return nil, CIAbsent, nil
	}
	if len(in) > len(files)+1 {
		return nil, "", Errorf(Invalid, CodeInvalidRequest, "more CI signatures than subjects")
	}
	byPath := make(map[string]bool, len(files))
	for _, f := range files {
		byPath[f.Path] = true
	}
	seen := map[string]bool{}
	sigs := make([]Signature, 0, len(in))
	for _, cs := range in {
		if seen[cs.Subject] {
			return nil, "", Errorf(Invalid, CodeInvalidRequest, "two CI signatures for %q", truncate(cs.Subject))
		}
		seen[cs.Subject] = true
		sigText := strings.TrimSpace(cs.Signature)
		if sigText == "" || len(sigText) > maxSignatureSize {
			return nil, "", Errorf(Invalid, CodeInvalidRequest, "CI signature for %q is empty or longer than %d bytes", truncate(cs.Subject), maxSignatureSize)
		}
		if cs.Subject != SubjectManifest && !byPath[cs.Subject] {
			return nil, "", Errorf(Invalid, CodeInvalidRequest, "CI signature for %q: not %q nor a file of this version", truncate(cs.Subject), SubjectManifest)
		}
		sigs = append(sigs, Signature{Role: SignedByCI, Subject: cs.Subject, Signature: sigText, CreatedAt: s.now().UTC()})
	}
	judged, trust := JudgeCISignatures(e.TrustedCI, built.Manifest, files, sigs)
	return judged, trust, nil
}

// JudgeCISignatures checks CI signatures against trusted keys (nil trusts
// none) and returns them with KeyID and Trusted set. The content is
// "trusted" when a trusted key signed the manifest, or signed every file;
// "untrusted" when signatures exist but that does not hold; "absent" when
// there are none. Signatures that do not verify are kept, untrusted, so a
// gate can say why. Promotion calls it again with the target's keys.
func JudgeCISignatures(keys CIKeys, manifest []byte, files []File, sigs []Signature) ([]Signature, CITrust) {
	digests := make(map[string]string, len(files))
	for _, f := range files {
		digests[f.Path] = f.Digest.String()
	}
	var out []Signature
	manifestTrusted, filesTrusted := false, map[string]bool{}
	for _, sig := range sigs {
		if sig.Role != SignedByCI {
			continue
		}
		sig.KeyID, sig.Trusted = "", false
		if keys != nil {
			var keyID string
			var err error
			if sig.Subject == SubjectManifest {
				keyID, err = keys.Identify(manifest, sig.Signature)
			} else if d, ok := digests[sig.Subject]; ok {
				keyID, err = keys.IdentifyDigest(d, sig.Signature)
			} else {
				err = errors.New("unknown subject")
			}
			if err == nil {
				sig.KeyID, sig.Trusted = keyID, true
				if sig.Subject == SubjectManifest {
					manifestTrusted = true
				} else {
					filesTrusted[sig.Subject] = true
				}
			}
		}
		out = append(out, sig)
	}
	switch {
	case len(out) == 0:
		return nil, CIAbsent
	case manifestTrusted || len(filesTrusted) == len(files):
		return out, CITrusted
	}
	return out, CIUntrusted
}

// RefKey is the bucket key of the pointer from name@version to its manifest.
// The "-" segment, never part of a name, keeps "x@1.0.0" and a name "x/1.0.0"
// from colliding (a key cannot also be a prefix of another key).
func RefKey(name, version string) string { return "refs/" + name + "/-/" + version }

// checkFiles validates the file list and confirms every blob is stored with
// the declared size, so a version never points at missing content.
func (s *Service) checkFiles(ctx context.Context, e *Environment, in []File) ([]File, error) {
	if len(in) == 0 {
		return nil, Errorf(Invalid, CodeInvalidRequest, "a version needs at least one file")
	}
	if len(in) > s.limits.MaxFiles {
		return nil, Errorf(TooLarge, CodeTooLarge, "%d files is over the limit of %d", len(in), s.limits.MaxFiles)
	}
	seen := make(map[string]bool, len(in))
	out := make([]File, 0, len(in))
	for _, f := range in {
		p, err := ParseFilePath(f.Path)
		if err != nil {
			return nil, err
		}
		if seen[p] {
			return nil, Errorf(Invalid, CodeInvalidPath, "file path %q is listed twice", p)
		}
		seen[p] = true
		if _, err := ParseDigest(f.Digest.String()); err != nil {
			return nil, err
		}
		if f.Size < 0 {
			return nil, Errorf(Invalid, CodeInvalidRequest, "file %q has a negative size", p)
		}
		if len(f.MediaType) > 255 {
			return nil, Errorf(Invalid, CodeInvalidRequest, "file %q has a media type longer than 255 bytes", p)
		}
		size, err := e.Blobs.StatBlob(ctx, f.Digest)
		switch {
		case errors.Is(err, blob.ErrNotFound):
			return nil, Errorf(Invalid, CodeBlobNotFound, "file %q: blob %s has not been uploaded", p, f.Digest).
				WithDetails(map[string]string{"path": p, "digest": f.Digest.String()})
		case err != nil:
			return nil, storageError(err)
		case size != f.Size:
			return nil, Errorf(Invalid, CodeBlobSizeMismatch, "file %q: declared size %d, stored blob has %d bytes", p, f.Size, size)
		}
		mt := f.MediaType
		if mt == "" {
			mt = DefaultFileMediaType
		}
		out = append(out, File{Path: p, Digest: f.Digest, Size: f.Size, MediaType: mt})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// checkKind keeps every version of a name the same kind: gates and
// consumers rely on "fraud-detector" always being a model.
func (s *Service) checkKind(ctx context.Context, e *Environment, name string, kind Kind) error {
	versions, err := e.Index.ListVersions(ctx, name)
	if err != nil {
		return err
	}
	for _, v := range versions {
		if v.Kind != kind {
			return Errorf(Conflict, CodeKindMismatch, "%s is a %s artifact; cannot publish a %s version of it", name, v.Kind, kind)
		}
	}
	return nil
}

// ListArtifacts lists the names in env.
func (s *Service) ListArtifacts(ctx context.Context, env string) ([]ArtifactSummary, error) {
	e, err := s.env(env)
	if err != nil {
		return nil, err
	}
	return e.Index.ListArtifacts(ctx)
}

// ListVersions lists name's versions in env, highest semver first.
func (s *Service) ListVersions(ctx context.Context, env, name string) ([]VersionRecord, error) {
	e, err := s.env(env)
	if err != nil {
		return nil, err
	}
	if _, err := ParseName(name); err != nil {
		return nil, err
	}
	versions, err := e.Index.ListVersions(ctx, name)
	if err != nil {
		return nil, err
	}
	sortBySemverDesc(versions)
	return versions, nil
}

func sortBySemverDesc(versions []VersionRecord) {
	parsed := make(map[string]Version, len(versions))
	for _, v := range versions {
		if pv, err := ParseVersion(v.Version); err == nil {
			parsed[v.Version] = pv
		}
	}
	sort.SliceStable(versions, func(i, j int) bool {
		a, aok := parsed[versions[i].Version]
		b, bok := parsed[versions[j].Version]
		if !aok || !bok {
			return versions[i].Version > versions[j].Version
		}
		return a.SemVer.GreaterThan(b.SemVer)
	})
}

// GetVersion returns name@version in env.
func (s *Service) GetVersion(ctx context.Context, env, name, version string) (VersionRecord, error) {
	e, err := s.env(env)
	if err != nil {
		return VersionRecord{}, err
	}
	return s.getVersion(ctx, e, name, version)
}

func (s *Service) getVersion(ctx context.Context, e *Environment, name, version string) (VersionRecord, error) {
	return FindVersion(ctx, e.Index, e.Name, name, version)
}

// VersionGetter reads one version of an environment's index.
type VersionGetter interface {
	GetVersion(ctx context.Context, name, version string) (VersionRecord, error)
}

// FindVersion validates name and version, looks up the canonical version in
// idx (the index of environment env), and reports a missing one as
// NotFound/version_not_found naming the environment.
func FindVersion(ctx context.Context, idx VersionGetter, env, name, version string) (VersionRecord, error) {
	if _, err := ParseName(name); err != nil {
		return VersionRecord{}, err
	}
	ver, err := ParseVersion(version)
	if err != nil {
		return VersionRecord{}, err
	}
	rec, err := idx.GetVersion(ctx, name, ver.Canonical)
	if err != nil {
		if KindOf(err) == NotFound {
			return VersionRecord{}, Errorf(NotFound, CodeVersionNotFound, "%s@%s does not exist in %s", name, ver.Canonical, env)
		}
		return VersionRecord{}, err
	}
	return rec, nil
}

// Manifest returns the exact stored manifest bytes of name@version in env.
func (s *Service) Manifest(ctx context.Context, env, name, version string) ([]byte, VersionRecord, error) {
	e, err := s.env(env)
	if err != nil {
		return nil, VersionRecord{}, err
	}
	rec, err := s.getVersion(ctx, e, name, version)
	if err != nil {
		return nil, VersionRecord{}, err
	}
	rc, _, err := e.Blobs.OpenBlob(ctx, rec.ManifestDigest)
	if err != nil {
		return nil, VersionRecord{}, storageError(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, MaxManifestSize+1))
	if err != nil {
		return nil, VersionRecord{}, storageError(err)
	}
	return data, rec, nil
}

// OpenFile streams one file of name@version. The reader verifies the digest
// as it goes and fails at the end when the stored bytes are corrupt.
func (s *Service) OpenFile(ctx context.Context, env, name, version, path string) (io.ReadCloser, File, error) {
	e, err := s.env(env)
	if err != nil {
		return nil, File{}, err
	}
	rec, err := s.getVersion(ctx, e, name, version)
	if err != nil {
		return nil, File{}, err
	}
	for _, f := range rec.Files {
		if f.Path == path {
			rc, _, err := e.Blobs.OpenBlob(ctx, f.Digest)
			if err != nil {
				return nil, File{}, storageError(err)
			}
			return rc, f, nil
		}
	}
	return nil, File{}, Errorf(NotFound, CodeNotFound, "%s@%s has no file %q", name, rec.Version, truncate(path))
}

// Resolve returns the highest version of name in env that satisfies the
// semver constraint (e.g. "^1.2"). Pre-releases match only when the
// constraint names one, as in npm and Masterminds/semver.
func (s *Service) Resolve(ctx context.Context, env, name, constraint string) (VersionRecord, error) {
	c, err := ParseConstraint(constraint)
	if err != nil {
		return VersionRecord{}, err
	}
	versions, err := s.ListVersions(ctx, env, name)
	if err != nil {
		return VersionRecord{}, err
	}
	for _, v := range versions {
		pv, err := ParseVersion(v.Version)
		if err == nil && c.Check(pv.SemVer) {
			return v, nil
		}
	}
	return VersionRecord{}, Errorf(NotFound, CodeNoMatch, "no version of %s in %s satisfies %q", name, env, constraint)
}

// storageError classifies a blob store failure.
func storageError(err error) error {
	var de *Error
	switch {
	case errors.As(err, &de):
		return err
	case errors.Is(err, blob.ErrNotFound):
		return Errorf(NotFound, CodeBlobNotFound, "blob not found").WithCause(err)
	case errors.Is(err, blob.ErrDigestMismatch):
		return Errorf(Internal, CodeDigestMismatch, "stored content does not match its digest").WithCause(err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return Errorf(Unavailable, CodeUnavailable, "request cancelled or timed out").WithCause(err)
	}
	return Errorf(Unavailable, CodeUnavailable, "storage is unavailable").WithCause(err)
}

// limitReader fails once more than left bytes are read, remembering why.
type limitReader struct {
	r    io.Reader
	left int64
	over bool
}

var errTooLarge = errors.New("registry: over size limit")

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left < 0 {
		l.over = true
		return 0, errTooLarge
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		l.over = true
		return n, errTooLarge
	}
	return n, err
}
