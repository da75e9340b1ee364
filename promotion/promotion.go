// Package promotion moves a version from one environment to the next
// through the gate engine, and records what gates read: evidence attached by
// CI and approvals by the target environment's approvers.
//
// A promotion is crash-safe and idempotent. Everything immutable is written
// first (blobs copied into the target bucket, the target's signature and the
// gate attestation, both create-once), then one metadata transaction commits
// the version, its evidence, the release and the audit event. A retry finds
// the existing release; concurrent promotions of one version yield one
// release (the store's unique constraint decides).
package promotion

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/gates"
	"github.com/stagegate/stagegate/internal/blob"
	"github.com/stagegate/stagegate/registry"
)

// Index is the metadata of one environment (an environment-scoped handle).
type Index interface {
	GetVersion(ctx context.Context, name, version string) (registry.VersionRecord, error)
	ListEvidence(ctx context.Context, name, version string) ([]registry.Evidence, error)
	AddEvidence(ctx context.Context, ev registry.Evidence, event audit.Event) (registry.Evidence, bool, error)
	ListApprovals(ctx context.Context, name, version string) ([]registry.Approval, error)
	AddApproval(ctx context.Context, a registry.Approval, event audit.Event) (registry.Approval, error)
	CurrentRelease(ctx context.Context, name string) (registry.Release, error)
	ListReleases(ctx context.Context, name string) ([]registry.Release, error)
	RecordGateRun(ctx context.Context, run registry.GateRun) error
	GetGateRun(ctx context.Context, id string) (registry.GateRun, error)
	CommitPromotion(ctx context.Context, c Commit) (registry.Release, bool, error)
}

// Commit is what one promotion writes into its target in one transaction.
type Commit struct {
	Version  registry.VersionRecord
	Evidence []registry.Evidence
	Release  registry.Release
	Event    audit.Event
}

// Signer is an environment's key: it signs manifests and gate attestations.
type Signer interface {
	registry.ManifestSigner
	AttestBlob(subjectName, subjectDigest, predicateType string, predicate json.RawMessage) ([]byte, error)
}

// Environment is one environment as promotion sees it.
type Environment struct {
	Name      string
	Index     Index
	Blobs     *blob.Store
	Signer    Signer
	TrustedCI registry.CIKeys // nil: no CI key is trusted (signature check unconfigured)
	Policy    *gates.Policy   // gates for promotions into this environment; nil for the first
}

// Service runs promotions, evidence and approvals.
type Service struct {
	envs   []*Environment
	byName map[string]*Environment
	engine gates.Engine
	now    func() time.Time
}

// New builds a Service over environments in promotion order.
func New(envs []*Environment, now func() time.Time) (*Service, error) {
	if now == nil {
		now = time.Now
	}
	s := &Service{envs: envs, byName: map[string]*Environment{}, engine: gates.Engine{Clock: now}, now: now}
	for i, e := range envs {
		if i > 0 && e.Policy == nil {
			return nil, fmt.Errorf("promotion: environment %q has no gate policy", e.Name)
		}
		s.byName[e.Name] = e
	}
	return s, nil
}

func (s *Service) env(name string) (*Environment, int, error) {
	for i, e := range s.envs {
		if e.Name == name {
			return e, i, nil
		}
	}
	return nil, 0, registry.Errorf(registry.NotFound, registry.CodeNotFound, "unknown environment %q", name)
}

func (s *Service) names() []string {
	out := make([]string, len(s.envs))
	for i, e := range s.envs {
		out[i] = e.Name
	}
	return out
}

// PredicateType names stagegate's gate-result attestations.
const PredicateType = "https://stagegate.dev/gates/v1"

// Error codes of this package.
const (
	CodeGateFailed       = "gate_failed"
	CodeInvalidEvidence  = "invalid_evidence"
	CodeNotPromotable    = "promotion_not_allowed"
	CodeEvidenceNotFirst = "evidence_not_allowed"
)

// AddEvidence attaches an evidence document to name@version in env, which
// must be the first environment (evidence describes what CI built; it then
// travels with the version). The document is validated, stored as a blob,
// and recorded; the same document again is an idempotent success.
func (s *Service) AddEvidence(ctx context.Context, env string, by audit.Actor, name, version, typ string, data []byte) (registry.Evidence, bool, error) {
	e, i, err := s.env(env)
	if err != nil {
		return registry.Evidence{}, false, err
	}
	if i != 0 {
		return registry.Evidence{}, false, registry.Errorf(registry.Forbidden, CodeEvidenceNotFirst,
			"evidence is attached in %q, where versions are published; it travels with promotions", s.envs[0].Name)
	}
	rec, err := getVersion(ctx, e, name, version)
	if err != nil {
		return registry.Evidence{}, false, err
	}
	if err := gates.ValidateEvidence(typ, data); err != nil {
		return registry.Evidence{}, false, registry.Errorf(registry.Invalid, CodeInvalidEvidence, "%v", err)
	}
	dgst := registry.DigestOf(data)
	if _, err := e.Blobs.PutBlob(ctx, dgst, bytes.NewReader(data), int64(len(data))); err != nil {
		return registry.Evidence{}, false, registry.Errorf(registry.Unavailable, registry.CodeUnavailable, "storing evidence failed").WithCause(err)
	}
	doc := registry.Evidence{
		Environment: e.Name, Name: rec.Name, Version: rec.Version, ManifestDigest: rec.ManifestDigest,
		Type: typ, Digest: dgst, Size: int64(len(data)), MediaType: evidenceMediaType(typ),
		CreatedAt: s.now().UTC(), CreatedBy: by.Name,
	}
	event := by.Event(e.Name, ActionEvidenceAdd, rec.Name+"@"+rec.Version, audit.Success)
	event.Time = doc.CreatedAt
	event.Details = map[string]string{"type": typ, "digest": dgst.String()}
	return e.Index.AddEvidence(ctx, doc, event)
}

// ListEvidence returns the evidence of name@version in env.
func (s *Service) ListEvidence(ctx context.Context, env, name, version string) ([]registry.Evidence, error) {
	e, _, err := s.env(env)
	if err != nil {
		return nil, err
	}
	rec, err := getVersion(ctx, e, name, version)
	if err != nil {
		return nil, err
	}
	return e.Index.ListEvidence(ctx, rec.Name, rec.Version)
}

func evidenceMediaType(typ string) string {
	if typ == registry.EvidenceJUnit {
		return "application/xml"
	}
	return "application/json"
}

// Audit actions of this package.
const (
	ActionEvidenceAdd = "evidence.add"
	ActionApprove     = "artifact.approve"
	ActionPromote     = "artifact.promote"
	ActionDryRun      = "artifact.promote.dry_run"
)

// Approve records by's approval to promote name@version into env. The
// version is looked up in the environment before env, where it must be.
func (s *Service) Approve(ctx context.Context, env string, by audit.Actor, role, name, version, comment string) (registry.Approval, error) {
	e, i, err := s.env(env)
	if err != nil {
		return registry.Approval{}, err
	}
	if i == 0 {
		return registry.Approval{}, registry.Errorf(registry.Invalid, CodeNotPromotable, "nothing is promoted into %q; approvals are for later environments", env)
	}
	if len(comment) > 1024 {
		return registry.Approval{}, registry.Errorf(registry.Invalid, registry.CodeInvalidRequest, "comment is longer than 1024 bytes")
	}
	rec, err := getVersion(ctx, s.envs[i-1], name, version)
	if err != nil {
		return registry.Approval{}, err
	}
	a := registry.Approval{Environment: e.Name, Name: rec.Name, Version: rec.Version, ManifestDigest: rec.ManifestDigest,
		Actor: by.Name, CredentialID: by.CredentialID, Role: role, Comment: comment, CreatedAt: s.now().UTC()}
	event := by.Event(e.Name, ActionApprove, rec.Name+"@"+rec.Version, audit.Success)
	event.Time = a.CreatedAt
	event.Details = map[string]string{"manifestDigest": rec.ManifestDigest.String()}
	return e.Index.AddApproval(ctx, a, event)
}

// Request asks for a promotion into a target environment.
type Request struct {
	Name    string
	Version string
	From    string // default: the environment before the target
	Reason  string
	DryRun  bool
}

// Result is a promotion's outcome.
type Result struct {
	GateRun *registry.GateRun // nil when an earlier promotion had already released the version
	Report  *gates.Report
	Release *registry.Release // nil for a dry run
	Created bool              // this call created the release
}

// Promote evaluates target's policy for name@version from the source
// environment and, when every required check passes and this is not a dry
// run, promotes it. A refusal is a GateFailed error whose details carry the
// gate run (id and report), so a client can show why and what to fix.
func (s *Service) Promote(ctx context.Context, target string, by audit.Actor, req Request) (Result, error) {
	t, ti, err := s.env(target)
	if err != nil {
		return Result{}, err
	}
	if ti == 0 {
		return Result{}, registry.Errorf(registry.Invalid, CodeNotPromotable, "%q is the first environment: publish into it instead", target)
	}
	if len(req.Reason) > 1024 {
		return Result{}, registry.Errorf(registry.Invalid, registry.CodeInvalidRequest, "reason is longer than 1024 bytes")
	}
	src := s.envs[ti-1]
	if req.From != "" {
		if src, _, err = s.env(req.From); err != nil {
			return Result{}, err
		}
	}
	rec, err := getVersion(ctx, src, req.Name, req.Version)
	if err != nil {
		return Result{}, err
	}
	if !req.DryRun {
		if res, done, err := s.alreadyPromoted(ctx, t, rec); done || err != nil {
			return res, err
		}
	}
	manifest, err := readBlob(ctx, src.Blobs, rec.ManifestDigest, registry.MaxManifestSize)
	if err != nil {
		return Result{}, err
	}
	subject, evidence, err := s.subject(ctx, src, t, rec, manifest, by)
	if err != nil {
		return Result{}, err
	}
	report := s.engine.Evaluate(ctx, t.Policy, subject)
	run, err := s.recordRun(ctx, t, src, rec, by, req.DryRun, report)
	if err != nil {
		return Result{}, err
	}
	res := Result{GateRun: &run, Report: &report}
	if !report.Passed {
		return res, registry.Errorf(registry.GateFailed, CodeGateFailed, "%d check(s) refused promoting %s@%s into %s",
			len(report.Failures()), rec.Name, rec.Version, t.Name).
			WithDetails(map[string]any{"gateRunId": run.ID, "report": report})
	}
	if req.DryRun {
		return res, nil
	}
	release, created, err := s.commit(ctx, src, t, rec, manifest, evidence, subject.Signature, run, by, req.Reason)
	if err != nil {
		return res, err
	}
	res.Release, res.Created = &release, created
	return res, nil
}

// alreadyPromoted reports an existing promotion of rec into t, so a retry
// after a crash (or a repeated CI step) answers with the release instead of
// running gates whose inputs (approvals, freeze windows) may have moved on.
func (s *Service) alreadyPromoted(ctx context.Context, t *Environment, rec registry.VersionRecord) (Result, bool, error) {
	existing, err := t.Index.GetVersion(ctx, rec.Name, rec.Version)
	switch {
	case registry.KindOf(err) == registry.NotFound:
		return Result{}, false, nil
	case err != nil:
		return Result{}, false, err
	case existing.ManifestDigest != rec.ManifestDigest:
		return Result{}, true, registry.Errorf(registry.Exists, registry.CodeVersionExists,
			"%s@%s already exists in %s with different content", rec.Name, rec.Version, t.Name)
	}
	releases, err := t.Index.ListReleases(ctx, rec.Name)
	if err != nil {
		return Result{}, false, err
	}
	for _, r := range releases {
		if r.Action == registry.ReleasePromotion && r.Version == rec.Version {
			r := r
			return Result{Release: &r}, true, nil
		}
	}
	return Result{}, false, nil
}

// subject gathers what the gates may look at.
func (s *Service) subject(ctx context.Context, src, t *Environment, rec registry.VersionRecord, manifest []byte, by audit.Actor) (*gates.Subject, []registry.Evidence, error) {
	evidence, err := src.Index.ListEvidence(ctx, rec.Name, rec.Version)
	if err != nil {
		return nil, nil, err
	}
	subj := &gates.Subject{
		Name: rec.Name, Version: rec.Version, Kind: rec.Kind,
		Source: src.Name, Target: t.Name, Environments: s.names(),
		Files:       gateFiles(src.Blobs, rec.Files),
		Evidence:    gateEvidence(src.Blobs, evidence),
		PublishedAt: rec.CreatedAt,
		Actor:       by.Name,
		Now:         s.now().UTC(),
	}
	cur, err := t.Index.CurrentRelease(ctx, rec.Name)
	switch {
	case registry.KindOf(err) == registry.NotFound:
	case err != nil:
		return nil, nil, err
	default:
		curRec, err := t.Index.GetVersion(ctx, cur.Name, cur.Version)
		if err != nil {
			return nil, nil, err
		}
		curEvidence, err := t.Index.ListEvidence(ctx, cur.Name, cur.Version)
		if err != nil {
			return nil, nil, err
		}
		subj.Current = &gates.Release{Version: cur.Version, Files: gateFiles(t.Blobs, curRec.Files), Evidence: gateEvidence(t.Blobs, curEvidence)}
	}
	approvals, err := t.Index.ListApprovals(ctx, rec.Name, rec.Version)
	if err != nil {
		return nil, nil, err
	}
	for _, a := range approvals {
		if a.ManifestDigest == rec.ManifestDigest {
			subj.Approvals = append(subj.Approvals, gates.Approval{Actor: a.Actor, Role: a.Role, Environment: a.Environment, At: a.CreatedAt})
		}
	}
	subj.Signature = judgeSignature(t.TrustedCI, manifest, rec)
	return subj, evidence, nil
}

// judgeSignature re-checks the version's CI signatures with the target's
// trusted keys: trust is a property of the environment that relies on it.
func judgeSignature(keys registry.CIKeys, manifest []byte, rec registry.VersionRecord) gates.Signature {
	if keys == nil {
		return gates.Signature{Status: gates.SignatureUnconfigured}
	}
	sigs, trust := registry.JudgeCISignatures(keys, manifest, rec.Files, rec.Signatures)
	out := gates.Signature{Status: gates.SignatureStatus(trust)}
	for _, sig := range sigs {
		if sig.Trusted {
			out.KeyID = sig.KeyID
			break
		}
	}
	switch trust {
	case registry.CIAbsent:
		out.Detail = "the version carries no CI signature"
	case registry.CIUntrusted:
		out.Detail = fmt.Sprintf("%d CI signature(s), but neither the manifest nor every file is signed by a trusted key", len(sigs))
	}
	return out
}

func gateFiles(b *blob.Store, files []registry.File) []gates.File {
	out := make([]gates.File, len(files))
	for i, f := range files {
		out[i] = gates.File{Path: f.Path, Digest: f.Digest, Size: f.Size, MediaType: f.MediaType, Open: opener(b, f.Digest)}
	}
	return out
}

func gateEvidence(b *blob.Store, docs []registry.Evidence) []gates.Evidence {
	out := make([]gates.Evidence, len(docs))
	for i, d := range docs {
		out[i] = gates.Evidence{Type: d.Type, Digest: d.Digest, Size: d.Size, MediaType: d.MediaType, Open: opener(b, d.Digest)}
	}
	return out
}

func opener(b *blob.Store, d v1.Hash) gates.Opener {
	return func(ctx context.Context) (io.ReadCloser, error) {
		rc, _, err := b.OpenBlob(ctx, d)
		return rc, err
	}
}

func (s *Service) recordRun(ctx context.Context, t, src *Environment, rec registry.VersionRecord, by audit.Actor, dryRun bool, report gates.Report) (registry.GateRun, error) {
	id, err := newRunID()
	if err != nil {
		return registry.GateRun{}, err
	}
	raw, err := json.Marshal(report)
	if err != nil {
		return registry.GateRun{}, err
	}
	run := registry.GateRun{
		ID: id, Environment: t.Name, Source: src.Name, Name: rec.Name, Version: rec.Version,
		ManifestDigest: rec.ManifestDigest, PolicyDigest: report.PolicyDigest, Passed: report.Passed,
		DryRun: dryRun, Actor: by.Name, StartedAt: report.StartedAt.UTC(), DurationMS: report.Duration.Milliseconds(), Report: raw,
	}
	if err := t.Index.RecordGateRun(ctx, run); err != nil {
		return registry.GateRun{}, err
	}
	return run, nil
}

func newRunID() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return "gr_" + hex.EncodeToString(b[:]), nil
}

// GateRun returns a stored gate run of env.
func (s *Service) GateRun(ctx context.Context, env, id string) (registry.GateRun, error) {
	e, _, err := s.env(env)
	if err != nil {
		return registry.GateRun{}, err
	}
	return e.Index.GetGateRun(ctx, id)
}

// Releases returns name's releases in env, newest first.
func (s *Service) Releases(ctx context.Context, env, name string) ([]registry.Release, error) {
	e, _, err := s.env(env)
	if err != nil {
		return nil, err
	}
	if _, err := registry.ParseName(name); err != nil {
		return nil, err
	}
	return e.Index.ListReleases(ctx, name)
}

// commit copies, signs, attests and records the promotion.
func (s *Service) commit(ctx context.Context, src, t *Environment, rec registry.VersionRecord, manifest []byte,
	evidence []registry.Evidence, sig gates.Signature, run registry.GateRun, by audit.Actor, reason string) (registry.Release, bool, error) {
	m, _, err := registry.ParseManifest(manifest)
	if err != nil {
		return registry.Release{}, false, err
	}
	digests := []v1.Hash{m.Config.Digest}
	for _, f := range rec.Files {
		digests = append(digests, f.Digest)
	}
	for _, d := range evidence {
		digests = append(digests, d.Digest)
	}
	// The manifest goes last: once it is in the target bucket, everything it
	// names is there too.
	digests = append(digests, rec.ManifestDigest)
	for _, d := range digests {
		if _, err := t.Blobs.CopyBlob(ctx, src.Blobs, d); err != nil {
			return registry.Release{}, false, storageError("copying blob "+d.String(), err)
		}
	}
	now := s.now().UTC()
	envSig, err := registry.SignManifest(ctx, t.Blobs, t.Signer, rec.ManifestDigest, manifest, now)
	if err != nil {
		return registry.Release{}, false, err
	}
	if err := s.attest(ctx, t, rec, run, now); err != nil {
		return registry.Release{}, false, err
	}
	version := rec
	version.Environment = t.Name
	version.CreatedAt = now
	version.CreatedBy = by.Name
	version.Signatures = []registry.Signature{envSig}
	for _, s := range rec.Signatures {
		if s.Role == registry.SignedByCI {
			version.Signatures = append(version.Signatures, s)
		}
	}
	if sig.Status != gates.SignatureUnconfigured {
		version.CISignature = registry.CITrust(sig.Status)
	}
	moved := make([]registry.Evidence, len(evidence))
	for i, d := range evidence {
		d.Environment = t.Name
		moved[i] = d
	}
	release := registry.Release{
		Environment: t.Name, Name: rec.Name, Version: rec.Version, ManifestDigest: rec.ManifestDigest,
		Action: registry.ReleasePromotion, Source: src.Name, Actor: by.Name, Reason: reason, GateRunID: run.ID, CreatedAt: now,
	}
	event := by.Event(t.Name, ActionPromote, rec.Name+"@"+rec.Version, audit.Success)
	event.Time = now
	event.Details = map[string]string{"source": src.Name, "gateRunId": run.ID, "manifestDigest": rec.ManifestDigest.String()}
	out, created, err := t.Index.CommitPromotion(ctx, Commit{Version: version, Evidence: moved, Release: release, Event: event})
	if err != nil {
		return registry.Release{}, false, err
	}
	if err := t.Blobs.PutObject(ctx, registry.RefKey(rec.Name, rec.Version), []byte(rec.ManifestDigest.String())); err != nil && !errors.Is(err, blob.ErrExists) {
		return registry.Release{}, false, storageError("writing ref", err)
	}
	return out, created, nil
}

// AttestationKey is the bucket key of the target's gate attestation for a
// manifest.
func AttestationKey(manifest v1.Hash, keyID string) string {
	return "attestations/sha256/" + manifest.Hex + "/" + strings.ReplaceAll(keyID, ":", "-") + ".json"
}

// attest signs an in-toto statement of the gate results with the target's
// key (a DSSE envelope, verifiable with `cosign verify-blob-attestation
// --type https://stagegate.dev/gates/v1`), stored create-once.
func (s *Service) attest(ctx context.Context, t *Environment, rec registry.VersionRecord, run registry.GateRun, now time.Time) error {
	key := AttestationKey(rec.ManifestDigest, t.Signer.KeyID())
	if _, err := t.Blobs.GetObject(ctx, key, 4<<20); err == nil {
		return nil
	} else if !errors.Is(err, blob.ErrNotFound) {
		return storageError("reading attestation", err)
	}
	predicate, err := json.Marshal(map[string]any{
		"environment":  t.Name,
		"source":       run.Source,
		"artifact":     rec.Name,
		"version":      rec.Version,
		"gateRunId":    run.ID,
		"policyDigest": run.PolicyDigest,
		"passed":       run.Passed,
		"report":       run.Report,
		"promotedAt":   now,
	})
	if err != nil {
		return err
	}
	envelope, err := t.Signer.AttestBlob(rec.Name+"@"+rec.Version, rec.ManifestDigest.String(), PredicateType, predicate)
	if err != nil {
		return registry.Errorf(registry.Internal, registry.CodeInternal, "attestation failed").WithCause(err)
	}
	if err := t.Blobs.PutObject(ctx, key, envelope); err != nil && !errors.Is(err, blob.ErrExists) {
		return storageError("writing attestation", err)
	}
	return nil
}

// Attestation returns the stored gate attestation of name@version in env.
func (s *Service) Attestation(ctx context.Context, env, name, version string) ([]byte, error) {
	e, _, err := s.env(env)
	if err != nil {
		return nil, err
	}
	rec, err := getVersion(ctx, e, name, version)
	if err != nil {
		return nil, err
	}
	data, err := e.Blobs.GetObject(ctx, AttestationKey(rec.ManifestDigest, e.Signer.KeyID()), 4<<20)
	if errors.Is(err, blob.ErrNotFound) {
		return nil, registry.Errorf(registry.NotFound, registry.CodeNotFound, "%s@%s has no gate attestation in %s", rec.Name, rec.Version, env)
	}
	if err != nil {
		return nil, storageError("reading attestation", err)
	}
	return data, nil
}

func getVersion(ctx context.Context, e *Environment, name, version string) (registry.VersionRecord, error) {
	return registry.FindVersion(ctx, e.Index, e.Name, name, version)
}

func readBlob(ctx context.Context, b *blob.Store, d v1.Hash, max int64) ([]byte, error) {
	rc, _, err := b.OpenBlob(ctx, d)
	if err != nil {
		return nil, storageError("reading "+d.String(), err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, storageError("reading "+d.String(), err)
	}
	return data, nil
}

func storageError(what string, err error) error {
	var de *registry.Error
	if errors.As(err, &de) {
		return err
	}
	if errors.Is(err, blob.ErrNotFound) {
		return registry.Errorf(registry.Internal, registry.CodeBlobNotFound, "%s: blob missing from storage", what).WithCause(err)
	}
	return registry.Errorf(registry.Unavailable, registry.CodeUnavailable, "%s: storage unavailable", what).WithCause(err)
}
