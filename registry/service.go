package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/audit"
)

// Index is the part of an environment's metadata the registry uses.
type Index interface {
	CommitVersion(ctx context.Context, rec VersionRecord, ev audit.Event) (VersionRecord, bool, error)
	GetVersion(ctx context.Context, name, version string) (VersionRecord, error)
	ListVersions(ctx context.Context, name string) ([]VersionRecord, error)
	ListArtifacts(ctx context.Context) ([]ArtifactSummary, error)
}

// Limits bound what a publisher may store.
type Limits struct {
	MaxFileSize int64 // bytes per file (blob)
	MaxFiles    int   // files per version
}

// DefaultLimits are used for zero fields of Limits.
var DefaultLimits = Limits{MaxFileSize: 50 << 30, MaxFiles: 10000}

// Service publishes and reads artifact versions. It knows nothing of HTTP
// and looks up no environment: every call gets the Env that authentication
// bound, and the actor.
type Service struct {
	limits Limits
	now    func() time.Time
}

// NewService returns a Service with the given limits (zero fields take
// DefaultLimits) and clock.
func NewService(limits Limits, now func() time.Time) *Service {
	if limits.MaxFileSize <= 0 {
		limits.MaxFileSize = DefaultLimits.MaxFileSize
	}
	if limits.MaxFiles <= 0 {
		limits.MaxFiles = DefaultLimits.MaxFiles
	}
	if now == nil {
		now = time.Now
	}
	return &Service{limits: limits, now: now}
}

// Limits returns the effective limits.
func (s *Service) Limits() Limits { return s.limits }

// publishable refuses every environment but the first.
func publishable(e Env) error {
	if !e.AcceptsPublish() {
		return CodePublishNotFirst.Errorf("environment %q accepts no publishes: publish into the first environment and promote", e.Name())
	}
	return nil
}

// UploadBlob stores one file's bytes, streamed and verified against dgst,
// in the first environment. Re-uploading an existing blob is a no-op.
func (s *Service) UploadBlob(ctx context.Context, e Env, dgst v1.Hash, r io.Reader, size int64) (created bool, err error) {
	if err := publishable(e); err != nil {
		return false, err
	}
	if size > s.limits.MaxFileSize {
		return false, CodeTooLarge.Errorf("blob of %d bytes is over the limit of %d bytes", size, s.limits.MaxFileSize)
	}
	// An unknown size is bounded by reading one byte past the limit.
	limited := &limitReader{r: r, left: s.limits.MaxFileSize}
	created, err = e.Blobs().PutBlob(ctx, dgst, limited, size)
	switch {
	case limited.over:
		return false, CodeTooLarge.Errorf("blob is over the limit of %d bytes", s.limits.MaxFileSize)
	case limited.readErr != nil && err != nil:
		// The client's body broke off (fewer bytes than declared, a reset,
		// a cut for being too slow): the client's fault, not storage's.
		return false, CodeIncompleteBody.Errorf("the upload of %s ended after %d bytes, before the body was complete: %v",
			dgst, limited.read, limited.readErr).WithCause(err)
	case errors.Is(err, ErrDigestMismatch):
		return false, CodeDigestMismatch.Errorf("uploaded bytes do not match digest %s (or their length does not match the declared size)", dgst).WithCause(err)
	case err != nil:
		return false, StorageError("storing blob", err)
	}
	return created, nil
}

// StatBlob reports the size of a stored blob of e.
func (s *Service) StatBlob(ctx context.Context, e Env, dgst v1.Hash) (int64, error) {
	size, err := e.Blobs().StatBlob(ctx, dgst)
	if errors.Is(err, ErrObjectNotFound) {
		return 0, CodeNotFound.Errorf("blob %s is not stored in %s", dgst, e.Name())
	}
	if err != nil {
		return 0, StorageError("stat blob", err)
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
	// Contents are the bytes of small files, by path, sent with the
	// version instead of uploaded before it (at most MaxInlineContents in
	// all): a small publish is then one request, and the service stores
	// those blobs itself instead of looking up uploaded ones.
	Contents map[string][]byte
}

// MaxInlineContents bounds the bytes of all PublishRequest.Contents of one
// publish (base64 in the JSON body makes them a third larger).
const MaxInlineContents = 1 << 20

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
func (s *Service) Publish(ctx context.Context, e Env, by audit.Actor, req PublishRequest) (PublishResult, error) {
	if err := publishable(e); err != nil {
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
		return PublishResult{}, CodeInvalidRequest.Errorf("sourceCommit is longer than 256 bytes")
	}
	files, err := s.parseFiles(req.Files)
	if err != nil {
		return PublishResult{}, err
	}
	contents, err := checkContents(files, req.Contents)
	if err != nil {
		return PublishResult{}, err
	}
	built, err := BuildManifest(Config{Kind: kind, Name: name, Version: ver.Canonical, SourceCommit: req.SourceCommit, Labels: req.Labels}, files)
	if err != nil {
		return PublishResult{}, err
	}
	// The intent and the gc check come before anything is looked up in
	// the bucket, so that every blob found below is one gc either saw
	// named or had finished with (internal/hygiene GC).
	intentID, intentAt, err := s.announce(ctx, e, files, built)
	if err != nil {
		return PublishResult{}, err
	}
	// Once the version is committed (or the publish gave up) the intent
	// protects nothing: the index names the blobs, or nothing does.
	defer e.Metadata().DeleteIntent(context.WithoutCancel(ctx), intentID) // best effort: gc removes stale ones

	if err := s.statFiles(ctx, e, files, contents); err != nil {
		return PublishResult{}, err
	}
	if err := s.checkKind(ctx, e, name, kind); err != nil {
		return PublishResult{}, err
	}
	ciSigs, trust, err := s.checkCISignatures(e, built, files, req.CISignatures)
	if err != nil {
		return PublishResult{}, err
	}
	envSig, err := s.storeImmutables(ctx, e, name, built, inlineFiles(files, contents))
	if err != nil {
		return PublishResult{}, err
	}
	target := name + "@" + ver.Canonical
	rec := VersionRecord{
		Environment:     e.Name(),
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
	ev := by.Event(e.Name(), audit.ActionPublish, target, audit.Success)
	ev.Time = rec.CreatedAt
	ev.Details = map[string]string{"manifestDigest": built.ManifestDigest.String(), "ciSignature": string(trust)}
	if IntentExpired(intentAt) {
		// gc stops honouring the intent after IntentTTL: a commit this
		// late might name blobs it already removed.
		return PublishResult{}, CodeUnavailable.Errorf("publishing %s took longer than %s; retry", target, IntentTTL/2)
	}
	stored, created, err := e.Metadata().CommitVersion(ctx, rec, ev)
	if err != nil {
		var de *Error
		if errors.As(err, &de) && de.Kind == Exists {
			return PublishResult{}, CodeVersionExists.Errorf("%s already exists in %s with different content; versions are immutable, publish a new version", target, e.Name()).
				WithDetails(map[string]string{"existingManifestDigest": s.existingDigest(ctx, e, name, ver.Canonical)})
		}
		return PublishResult{}, err
	}
	// The ref object makes the bucket self-describing (reindex). It is
	// written after the commit and is create-once, so a retry is harmless.
	if err := e.Blobs().PutObject(ctx, RefKey(name, ver.Canonical), []byte(stored.ManifestDigest.String())); err != nil && !errors.Is(err, ErrObjectExists) {
		return PublishResult{}, StorageError("writing ref", err)
	}
	return PublishResult{Record: stored, Created: created}, nil
}

// inlineFile is a file of a publish whose bytes came with it.
type inlineFile struct {
	File
	content []byte
}

func inlineFiles(files []File, contents map[string][]byte) []inlineFile {
	var out []inlineFile
	for _, f := range files {
		if data, ok := contents[f.Path]; ok {
			out = append(out, inlineFile{File: f, content: data})
		}
	}
	return out
}

// checkContents refuses inline contents that name no listed file, are too
// large in all, or are not the bytes their file's digest and size name;
// all of it before anything is stored. It returns them by canonical path.
func checkContents(files []File, contents map[string][]byte) (map[string][]byte, error) {
	if len(contents) == 0 {
		return nil, nil
	}
	byPath := make(map[string]File, len(files))
	for _, f := range files {
		byPath[f.Path] = f
	}
	out := make(map[string][]byte, len(contents))
	total := 0
	for given, data := range contents {
		path, err := ParseFilePath(given)
		if err != nil {
			return nil, err
		}
		f, ok := byPath[path]
		if !ok {
			return nil, CodeInvalidRequest.Errorf("contents name %q, which is not a listed file", truncate(given))
		}
		if _, dup := out[path]; dup {
			return nil, CodeInvalidRequest.Errorf("contents name file %q twice", path)
		}
		total += len(data)
		if total > MaxInlineContents {
			return nil, CodeTooLarge.Errorf("contents hold over %d bytes: upload larger files as blobs first", MaxInlineContents)
		}
		if int64(len(data)) != f.Size || DigestOf(data) != f.Digest {
			return nil, CodeDigestMismatch.Errorf("the contents of file %q do not match its digest %s and size %d", path, f.Digest, f.Size).
				WithDetails(map[string]string{"path": path, "digest": f.Digest.String()})
		}
		out[path] = data
	}
	return out, nil
}

// storeImmutables writes the config and manifest blobs, the environment's
// signature objects and the blobs of files sent inline, for a version
// about to be committed. They are independent, content-addressed,
// create-once objects, so they are written concurrently: a small publish
// then waits for one storage round trip instead of one per object.
// Nothing points at them until the index commit, which runs only after all
// are stored, so an interrupted publish leaves nothing visible and a retry
// finds them in place.
func (s *Service) storeImmutables(ctx context.Context, e Env, name string, built Built, inline []inlineFile) (Signature, error) {
	var (
		wg               sync.WaitGroup
		configErr, mfErr error
		envSig           Signature
		sigErr           error
		inlineErrs       = make([]error, len(inline))
	)
	for i, f := range inline {
		wg.Go(func() {
			_, inlineErrs[i] = s.UploadBlob(ctx, e, f.Digest, bytes.NewReader(f.content), f.Size)
		})
	}
	wg.Add(3)
	go func() {
		defer wg.Done()
		_, configErr = e.Blobs().PutBlob(ctx, built.ConfigDigest, bytes.NewReader(built.Config), int64(len(built.Config)))
	}()
	go func() {
		defer wg.Done()
		_, mfErr = e.Blobs().PutBlob(ctx, built.ManifestDigest, bytes.NewReader(built.Manifest), int64(len(built.Manifest)))
	}()
	go func() {
		defer wg.Done()
		envSig, sigErr = e.SignManifest(ctx, name, built.ManifestDigest, built.Manifest, s.now())
	}()
	wg.Wait()
	for _, err := range inlineErrs {
		if err != nil {
			return Signature{}, err
		}
	}
	switch {
	case configErr != nil:
		return Signature{}, StorageError("storing config", configErr)
	case mfErr != nil:
		return Signature{}, StorageError("storing manifest", mfErr)
	case sigErr != nil:
		return Signature{}, sigErr
	}
	return envSig, nil
}

func (s *Service) existingDigest(ctx context.Context, e Env, name, version string) string {
	rec, err := e.Metadata().GetVersion(ctx, name, version)
	if err != nil {
		return ""
	}
	return rec.ManifestDigest.String()
}

// MaxSignatureSize bounds a stored or submitted signature (an ECDSA P-256
// signature is about 96 base64 characters; RSA-4096 about 700).
const MaxSignatureSize = 4096

// checkCISignatures validates the publisher's CI signatures and judges them
// against the environment's trusted CI keys (see JudgeCISignatures).
func (s *Service) checkCISignatures(e Env, built Built, files []File, in []CISignature) ([]Signature, CITrust, error) {
	if len(in) == 0 {
		return nil, CIAbsent, nil
	}
	if len(in) > len(files)+1 {
		return nil, "", CodeInvalidRequest.Errorf("more CI signatures than subjects")
	}
	byPath := make(map[string]bool, len(files))
	for _, f := range files {
		byPath[f.Path] = true
	}
	seen := map[string]bool{}
	sigs := make([]Signature, 0, len(in))
	for _, cs := range in {
		if seen[cs.Subject] {
			return nil, "", CodeInvalidRequest.Errorf("two CI signatures for %q", truncate(cs.Subject))
		}
		seen[cs.Subject] = true
		sigText := strings.TrimSpace(cs.Signature)
		if sigText == "" || len(sigText) > MaxSignatureSize {
			return nil, "", CodeInvalidRequest.Errorf("CI signature for %q is empty or longer than %d bytes", truncate(cs.Subject), MaxSignatureSize)
		}
		if cs.Subject != SubjectManifest && !byPath[cs.Subject] {
			return nil, "", CodeInvalidRequest.Errorf("CI signature for %q: not %q nor a file of this version", truncate(cs.Subject), SubjectManifest)
		}
		sigs = append(sigs, Signature{Role: SignedByCI, Subject: cs.Subject, Signature: sigText, CreatedAt: s.now().UTC()})
	}
	judged, trust := e.JudgeCISignatures(built.Manifest, files, sigs)
	return judged, trust, nil
}

// tombstoneWait is how long a publish waits for gc to finish with a blob
// it names before it answers blob_being_collected.
const tombstoneWait = 5 * time.Second

// announce writes the intent of a publish: every digest the version will
// name (AnnounceBlobs).
func (s *Service) announce(ctx context.Context, e Env, files []File, built Built) (string, time.Time, error) {
	digests := make([]v1.Hash, 0, len(files)+2)
	digests = append(digests, built.ManifestDigest, built.ConfigDigest)
	for _, f := range files {
		digests = append(digests, f.Digest)
	}
	return AnnounceBlobs(ctx, e.Metadata(), digests)
}

// IntentStore is the metadata a writer's half of the gc handshake uses.
type IntentStore interface {
	WriteIntent(ctx context.Context, id string, digests []v1.Hash, at time.Time) error
	GCLease(ctx context.Context) (held bool, since time.Time, err error)
	Tombstoned(ctx context.Context, hexes []string) ([]string, error)
}

// AnnounceBlobs is a writer's half of the handshake with `stagegate gc`
// (internal/hygiene GC), called before it looks up or writes any of the
// blobs digests it will commit an index row naming: it commits the intent
// (a metadata row) and only then looks for a gc sweeping. Without one (the
// usual case: one read) the writer goes on. With one, it waits, a few
// seconds at most, until gc's tombstones on its digests are gone: gc then
// either saw the intent and kept the blobs, or removed them, and the
// writer's own stat or create-once write that follows says so. It returns
// the intent's id, for the writer to delete it once it committed or gave
// up, and when it was written, for IntentExpired.
func AnnounceBlobs(ctx context.Context, m IntentStore, digests []v1.Hash) (string, time.Time, error) {
	raw := make([]byte, 16)
	rand.Read(raw)
	id := hex.EncodeToString(raw)
	at := time.Now()
	if err := m.WriteIntent(ctx, id, digests, at); err != nil {
		return id, at, err
	}
	held, _, err := m.GCLease(ctx)
	if err != nil || !held {
		return id, at, err
	}
	hexes := make([]string, len(digests))
	for i, d := range digests {
		hexes[i] = d.Hex
	}
	deadline := time.Now().Add(tombstoneWait)
	for {
		left, err := m.Tombstoned(ctx, hexes)
		if err != nil {
			return id, at, err
		}
		if len(left) == 0 {
			return id, at, nil
		}
		if time.Now().After(deadline) {
			return id, at, CodeBlobCollected.Errorf("stagegate gc is removing or re-checking blob sha256:%s; retry shortly", left[0]).
				WithDetails(map[string]string{"digest": "sha256:" + left[0]})
		}
		select {
		case <-ctx.Done():
			return id, at, StorageError("waiting for gc", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		hexes = left
	}
}

// IntentExpired reports whether an intent written at at (AnnounceBlobs)
// is too old to commit on: gc honours it for IntentTTL, and the other half
// is margin for the commit itself and for clock skew.
func IntentExpired(at time.Time) bool { return time.Since(at) > IntentTTL/2 }

// parseFiles validates the file list (nothing is looked up).
func (s *Service) parseFiles(in []File) ([]File, error) {
	if len(in) == 0 {
		return nil, CodeInvalidRequest.Errorf("a version needs at least one file")
	}
	if len(in) > s.limits.MaxFiles {
		return nil, CodeTooLarge.Errorf("%d files is over the limit of %d", len(in), s.limits.MaxFiles)
	}
	seen := make(map[string]bool, len(in))
	out := make([]File, 0, len(in))
	for _, f := range in {
		p, err := ParseFilePath(f.Path)
		if err != nil {
			return nil, err
		}
		if seen[p] {
			return nil, CodeInvalidPath.Errorf("file path %q is listed twice", p)
		}
		seen[p] = true
		if _, err := ParseDigest(f.Digest.String()); err != nil {
			return nil, err
		}
		if f.Size < 0 {
			return nil, CodeInvalidRequest.Errorf("file %q has a negative size", p)
		}
		if len(f.MediaType) > 255 {
			return nil, CodeInvalidRequest.Errorf("file %q has a media type longer than 255 bytes", p)
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

// statFiles confirms every uploaded file's blob is stored with the
// declared size, so a version never points at missing content. Files sent
// inline are stored by the publish itself (storeImmutables).
func (s *Service) statFiles(ctx context.Context, e Env, files []File, inline map[string][]byte) error {
	for _, f := range files {
		if _, ok := inline[f.Path]; ok {
			continue
		}
		size, err := e.Blobs().StatBlob(ctx, f.Digest)
		switch {
		case errors.Is(err, ErrObjectNotFound):
			return CodeBlobNotFound.Errorf("file %q: blob %s has not been uploaded", f.Path, f.Digest).
				WithDetails(map[string]string{"path": f.Path, "digest": f.Digest.String()})
		case err != nil:
			return StorageError("stat blob", err)
		case size != f.Size:
			return CodeBlobSizeMismatch.Errorf("file %q: declared size %d, stored blob has %d bytes", f.Path, f.Size, size)
		}
	}
	return nil
}

// KindIndex is an optional capability of an environment's metadata: the
// kind of a name's versions (all share one), read from one row. Without it
// checkKind lists every version of the name, which grows with its history.
type KindIndex interface {
	// ArtifactKind returns the kind of name's versions; ok is false when
	// name has none.
	ArtifactKind(ctx context.Context, name string) (kind Kind, ok bool, err error)
}

// checkKind keeps every version of a name the same kind: gates and
// consumers rely on "fraud-detector" always being a model.
func (s *Service) checkKind(ctx context.Context, e Env, name string, kind Kind) error {
	if ki, ok := e.Metadata().(KindIndex); ok {
		have, found, err := ki.ArtifactKind(ctx, name)
		if err != nil {
			return err
		}
		if found && have != kind {
			return CodeKindMismatch.Errorf("%s is a %s artifact; cannot publish a %s version of it", name, have, kind)
		}
		return nil
	}
	versions, err := e.Metadata().ListVersions(ctx, name)
	if err != nil {
		return err
	}
	for _, v := range versions {
		if v.Kind != kind {
			return CodeKindMismatch.Errorf("%s is a %s artifact; cannot publish a %s version of it", name, v.Kind, kind)
		}
	}
	return nil
}

// ListArtifacts lists the names in e.
func (s *Service) ListArtifacts(ctx context.Context, e Env) ([]ArtifactSummary, error) {
	return e.Metadata().ListArtifacts(ctx)
}

// ListVersions lists name's versions in e, highest semver first.
func (s *Service) ListVersions(ctx context.Context, e Env, name string) ([]VersionRecord, error) {
	if _, err := ParseName(name); err != nil {
		return nil, err
	}
	versions, err := e.Metadata().ListVersions(ctx, name)
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

// GetVersion returns name@version in e.
func (s *Service) GetVersion(ctx context.Context, e Env, name, version string) (VersionRecord, error) {
	return e.FindVersion(ctx, name, version)
}

// Manifest returns the exact stored manifest bytes of name@version in e,
// verified against their digest before anything is returned.
func (s *Service) Manifest(ctx context.Context, e Env, name, version string) ([]byte, VersionRecord, error) {
	rec, err := e.FindVersion(ctx, name, version)
	if err != nil {
		return nil, VersionRecord{}, err
	}
	data, err := ReadManifest(ctx, e.Blobs(), rec.ManifestDigest)
	if err != nil {
		return nil, VersionRecord{}, err
	}
	return data, rec, nil
}

// ReadManifest reads a stored manifest whole and verified: every reader of
// manifests goes through it, so they all apply MaxManifestSize alike and
// none can hand out bytes whose digest was not checked.
func ReadManifest(ctx context.Context, b Blobs, dgst v1.Hash) ([]byte, error) {
	rc, size, err := b.OpenBlob(ctx, dgst)
	if err != nil {
		return nil, StorageError("reading manifest "+dgst.String(), err)
	}
	defer rc.Close()
	if size > MaxManifestSize {
		return nil, CodeInternal.Errorf("stored manifest %s has %d bytes, over the limit of %d", dgst, size, MaxManifestSize)
	}
	// The verifying reader checks the digest when it reaches EOF, which
	// ReadAll does for any object within the limit.
	data, err := io.ReadAll(io.LimitReader(rc, MaxManifestSize+1))
	if err != nil {
		return nil, StorageError("reading manifest "+dgst.String(), err)
	}
	return data, nil
}

// OpenFile streams one file of name@version. The reader verifies the digest
// as it goes and fails at the end when the stored bytes are corrupt.
func (s *Service) OpenFile(ctx context.Context, e Env, name, version, path string) (io.ReadCloser, File, error) {
	rec, err := e.FindVersion(ctx, name, version)
	if err != nil {
		return nil, File{}, err
	}
	for _, f := range rec.Files {
		if f.Path == path {
			rc, _, err := e.Blobs().OpenBlob(ctx, f.Digest)
			if err != nil {
				return nil, File{}, StorageError("opening "+f.Digest.String(), err)
			}
			return rc, f, nil
		}
	}
	return nil, File{}, CodeNotFound.Errorf("%s@%s has no file %q", name, rec.Version, truncate(path))
}

// Resolve returns the highest version of name in e that satisfies the
// semver constraint (e.g. "^1.2"). Pre-releases match only when the
// constraint names one, as in npm and Masterminds/semver.
func (s *Service) Resolve(ctx context.Context, e Env, name, constraint string) (VersionRecord, error) {
	c, err := ParseConstraint(constraint)
	if err != nil {
		return VersionRecord{}, err
	}
	versions, err := s.ListVersions(ctx, e, name)
	if err != nil {
		return VersionRecord{}, err
	}
	for _, v := range versions {
		pv, err := ParseVersion(v.Version)
		if err == nil && c.Check(pv.SemVer) {
			return v, nil
		}
	}
	return VersionRecord{}, CodeNoMatch.Errorf("no version of %s in %s satisfies %q", name, e.Name(), constraint)
}

// limitReader fails once more than left bytes are read, remembering why,
// and remembers how the underlying reader failed, if it did.
type limitReader struct {
	r       io.Reader
	left    int64
	over    bool
	read    int64
	readErr error // a failure of r other than io.EOF
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
	l.read += int64(n)
	if err != nil && err != io.EOF {
		l.readErr = err
	}
	l.left -= int64(n)
	if l.left < 0 {
		l.over = true
		return n, errTooLarge
	}
	return n, err
}
