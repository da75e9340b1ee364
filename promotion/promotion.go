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
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/environment"
	"github.com/stagegate/stagegate/gates"
	"github.com/stagegate/stagegate/registry"
)

// Index is the part of an environment's metadata a promotion uses.
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
	CommitPromotion(ctx context.Context, c registry.PromotionCommit) (registry.Release, bool, error)
}

// Content is the part of an environment's bucket a promotion uses: it
// reads the source, copies into the target and writes create-once objects.
type Content interface {
	OpenBlob(ctx context.Context, dgst v1.Hash) (io.ReadCloser, int64, error)
	CopyBlob(ctx context.Context, from registry.Blobs, dgst v1.Hash) (bool, error)
	PutObject(ctx context.Context, key string, data []byte) error
	GetObject(ctx context.Context, key string, maxSize int64) ([]byte, error)
}

// Service runs promotions, evidence and approvals. It looks up no
// environment: each call gets the one authentication bound, and a
// promotion's source is that environment's Previous().
type Service struct {
	engine gates.Engine
	now    func() time.Time
}

// New returns a Service with the given clock.
func New(now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{engine: gates.Engine{Clock: now}, now: now}
}

func index(e *environment.Environment) Index     { return e.Metadata() }
func content(e *environment.Environment) Content { return e.Blobs() }

// PredicateType names stagegate's gate-result attestations.
const PredicateType = "https://stagegate.dev/gates/v1"

// AddEvidence attaches an evidence document to name@version in env, which
// must be the first environment (evidence describes what CI built; it then
// travels with the version). The document is validated, stored as a blob,
// and recorded; the same document again is an idempotent success.
func (s *Service) AddEvidence(ctx context.Context, e *environment.Environment, by audit.Actor, name, version, typ string, data []byte) (registry.Evidence, bool, error) {
	if !e.AcceptsPublish() {
		return registry.Evidence{}, false, registry.CodeEvidenceNotFirst.Errorf("evidence is attached in the first environment, where versions are published; it travels with promotions into %q", e.Name())
	}
	rec, err := e.FindVersion(ctx, name, version)
	if err != nil {
		return registry.Evidence{}, false, err
	}
	if err := gates.ValidateEvidence(typ, data); err != nil {
		return registry.Evidence{}, false, registry.CodeInvalidEvidence.Errorf("%v", err)
	}
	dgst := registry.DigestOf(data)
	if _, err := e.Blobs().PutBlob(ctx, dgst, bytes.NewReader(data), int64(len(data))); err != nil {
		return registry.Evidence{}, false, registry.StorageError("storing evidence", err)
	}
	doc := registry.Evidence{
		Environment: e.Name(), Name: rec.Name, Version: rec.Version, ManifestDigest: rec.ManifestDigest,
		Type: typ, Digest: dgst, Size: int64(len(data)), MediaType: evidenceMediaType(typ),
		CreatedAt: s.now().UTC(), CreatedBy: by.Name,
	}
	event := by.Event(e.Name(), ActionEvidenceAdd, rec.Name+"@"+rec.Version, audit.Success)
	event.Time = doc.CreatedAt
	event.Details = map[string]string{"type": typ, "digest": dgst.String()}
	return index(e).AddEvidence(ctx, doc, event)
}

// ListEvidence returns the evidence of name@version in e.
func (s *Service) ListEvidence(ctx context.Context, e *environment.Environment, name, version string) ([]registry.Evidence, error) {
	rec, err := e.FindVersion(ctx, name, version)
	if err != nil {
		return nil, err
	}
	return index(e).ListEvidence(ctx, rec.Name, rec.Version)
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

// Approve records by's approval to promote name@version into e. The
// version is looked up in e.Previous(), where it must be. The approver is
// counted as the person by.Owner: a key without an owner cannot approve,
// since its approval could never count.
func (s *Service) Approve(ctx context.Context, e *environment.Environment, by audit.Actor, role, name, version, comment string) (registry.Approval, error) {
	src, ok := e.Previous()
	if !ok {
		return registry.Approval{}, registry.CodeNotPromotable.Errorf("nothing is promoted into %q; approvals are for later environments", e.Name())
	}
	if len(comment) > 1024 {
		return registry.Approval{}, registry.CodeInvalidRequest.Errorf("comment is longer than 1024 bytes")
	}
	if by.Owner == "" {
		return registry.Approval{}, registry.CodeOwnerRequired.Errorf("key %q has no owner, and approvals count people, not keys: ask an admin to re-issue it with an owner", by.Name)
	}
	rec, err := src.FindVersion(ctx, name, version)
	if err != nil {
		return registry.Approval{}, err
	}
	a := registry.Approval{Environment: e.Name(), Name: rec.Name, Version: rec.Version, ManifestDigest: rec.ManifestDigest,
		Actor: by.Name, CredentialID: by.CredentialID, Identity: by.Owner, KeyCreatedBy: by.KeyCreatedBy,
		Role: role, Comment: comment, CreatedAt: s.now().UTC()}
	event := by.Event(e.Name(), ActionApprove, rec.Name+"@"+rec.Version, audit.Success)
	event.Time = a.CreatedAt
	event.Details = map[string]string{"manifestDigest": rec.ManifestDigest.String(), "identity": by.Owner}
	return index(e).AddApproval(ctx, a, event)
}

// Request asks for a promotion into a target environment.
type Request struct {
	Name    string
	Version string
	// From, when set, must name the environment before the target: the
	// source is always target.Previous(), never chosen by the caller.
	From   string
	Reason string
	DryRun bool
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
func (s *Service) Promote(ctx context.Context, t *environment.Environment, by audit.Actor, req Request) (Result, error) {
	src, ok := t.Previous()
	if !ok {
		return Result{}, registry.CodeNotPromotable.Errorf("%q is the first environment: publish into it instead", t.Name())
	}
	if req.From != "" && req.From != src.Name() {
		// Refused before anything of req.From is read: a credential of t
		// may read t's predecessor for a promotion, and nothing else.
		return Result{}, registry.CodeNotPromotable.Errorf("promotions into %q come from %q only, not %q", t.Name(), src.Name(), truncate(req.From, 64))
	}
	if len(req.Reason) > 1024 {
		return Result{}, registry.CodeInvalidRequest.Errorf("reason is longer than 1024 bytes")
	}
	rec, err := src.FindVersion(ctx, req.Name, req.Version)
	if err != nil {
		return Result{}, err
	}
	if !req.DryRun {
		if res, done, err := s.alreadyPromoted(ctx, t, rec); done || err != nil {
			return res, err
		}
	}
	manifest, err := registry.ReadManifest(ctx, src.Blobs(), rec.ManifestDigest)
	if err != nil {
		return Result{}, err
	}
	subject, evidence, err := s.subject(ctx, src, t, rec, manifest, by)
	if err != nil {
		return Result{}, err
	}
	var copies *staged
	if !req.DryRun {
		// The files are copied into the target while the gates run, and
		// published only if they pass (stage.go): a gate's read of a large
		// file and its copy then take the time of one, not of both, and
		// digest-integrity takes a copy's verification instead of reading
		// the file again.
		digests := make([]v1.Hash, len(rec.Files))
		for i, f := range rec.Files {
			digests[i] = f.Digest
		}
		copies = stage(ctx, content(t), src.Blobs(), digests)
		defer copies.decide(errNotPromoted) // aborts, unless commit decided first
		for i := range subject.Files {
			subject.Files[i].Verified = copies.verified(subject.Files[i].Digest)
		}
	}
	report := s.engine.Evaluate(ctx, t.Policy(), subject)
	run, err := s.recordRun(ctx, t, src, rec, by, req.DryRun, report)
	if err != nil {
		return Result{}, err
	}
	res := Result{GateRun: &run, Report: &report}
	if !report.Passed {
		return res, registry.CodeGateFailed.Errorf("%d check(s) refused promoting %s@%s into %s",
			len(report.Failures()), rec.Name, rec.Version, t.Name()).
			WithDetails(map[string]any{"gateRunId": run.ID, "report": report})
	}
	if req.DryRun {
		return res, nil
	}
	if err := copies.decide(nil); err != nil {
		return res, err
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
func (s *Service) alreadyPromoted(ctx context.Context, t *environment.Environment, rec registry.VersionRecord) (Result, bool, error) {
	existing, err := index(t).GetVersion(ctx, rec.Name, rec.Version)
	switch {
	case registry.KindOf(err) == registry.NotFound:
		return Result{}, false, nil
	case err != nil:
		return Result{}, false, err
	case existing.ManifestDigest != rec.ManifestDigest:
		return Result{}, true, registry.CodeVersionExists.Errorf("%s@%s already exists in %s with different content", rec.Name, rec.Version, t.Name())
	}
	releases, err := index(t).ListReleases(ctx, rec.Name)
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
func (s *Service) subject(ctx context.Context, src, t *environment.Environment, rec registry.VersionRecord, manifest []byte, by audit.Actor) (*gates.Subject, []registry.Evidence, error) {
	evidence, err := index(src).ListEvidence(ctx, rec.Name, rec.Version)
	if err != nil {
		return nil, nil, err
	}
	subj := &gates.Subject{
		Name: rec.Name, Version: rec.Version, Kind: rec.Kind,
		Source: src.Name(), Target: t.Name(), Environments: t.Order(),
		Files:       gateFiles(content(src), rec.Files),
		Evidence:    gateEvidence(content(src), evidence),
		PublishedAt: rec.CreatedAt,
		Actor:       by.Name,
		Now:         s.now().UTC(),
	}
	subj.Identity, subj.KeyCreatedBy = by.Owner, by.KeyCreatedBy
	cur, err := index(t).CurrentRelease(ctx, rec.Name)
	switch {
	case registry.KindOf(err) == registry.NotFound:
	case err != nil:
		return nil, nil, err
	default:
		curRec, err := index(t).GetVersion(ctx, cur.Name, cur.Version)
		if err != nil {
			return nil, nil, err
		}
		curEvidence, err := index(t).ListEvidence(ctx, cur.Name, cur.Version)
		if err != nil {
			return nil, nil, err
		}
		subj.Current = &gates.Release{Version: cur.Version, Files: gateFiles(content(t), curRec.Files), Evidence: gateEvidence(content(t), curEvidence)}
	}
	approvals, err := index(t).ListApprovals(ctx, rec.Name, rec.Version)
	if err != nil {
		return nil, nil, err
	}
	for _, a := range approvals {
		if a.ManifestDigest == rec.ManifestDigest {
			subj.Approvals = append(subj.Approvals, gates.Approval{Actor: a.Actor, Identity: a.Identity, KeyCreatedBy: a.KeyCreatedBy,
				Role: a.Role, Environment: a.Environment, At: a.CreatedAt})
		}
	}
	subj.Signature = judgeSignature(t, manifest, rec)
	return subj, evidence, nil
}

// judgeSignature re-checks the version's CI signatures with the target's
// trusted keys: trust is a property of the environment that relies on it.
func judgeSignature(t *environment.Environment, manifest []byte, rec registry.VersionRecord) gates.Signature {
	if !t.TrustsCI() {
		return gates.Signature{Status: gates.SignatureUnconfigured}
	}
	sigs, trust := t.JudgeCISignatures(manifest, rec.Files, rec.Signatures)
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

func gateFiles(b Content, files []registry.File) []gates.File {
	out := make([]gates.File, len(files))
	for i, f := range files {
		out[i] = gates.File{Path: f.Path, Digest: f.Digest, Size: f.Size, MediaType: f.MediaType, Open: opener(b, f.Digest)}
	}
	return out
}

func gateEvidence(b Content, docs []registry.Evidence) []gates.Evidence {
	out := make([]gates.Evidence, len(docs))
	for i, d := range docs {
		out[i] = gates.Evidence{Type: d.Type, Digest: d.Digest, Size: d.Size, MediaType: d.MediaType, Open: opener(b, d.Digest)}
	}
	return out
}

func opener(b Content, d v1.Hash) gates.Opener {
	return func(ctx context.Context) (io.ReadCloser, error) {
		rc, _, err := b.OpenBlob(ctx, d)
		return rc, err
	}
}

func (s *Service) recordRun(ctx context.Context, t, src *environment.Environment, rec registry.VersionRecord, by audit.Actor, dryRun bool, report gates.Report) (registry.GateRun, error) {
	run, err := report.Run(t.Name(), src.Name(), rec, by.Name, dryRun)
	if err != nil {
		return registry.GateRun{}, err
	}
	if err := index(t).RecordGateRun(ctx, run); err != nil {
		return registry.GateRun{}, err
	}
	return run, nil
}

// GateRun returns a stored gate run of e.
func (s *Service) GateRun(ctx context.Context, e *environment.Environment, id string) (registry.GateRun, error) {
	return index(e).GetGateRun(ctx, id)
}

// commit copies, signs, attests and records the promotion.
func (s *Service) commit(ctx context.Context, src, t *environment.Environment, rec registry.VersionRecord, manifest []byte,
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
	// names is there too. When the target could hold copies, the files were
	// copied while the gates ran (stage.go): for them this finds the blob
	// stored and copies nothing.
	digests = append(digests, rec.ManifestDigest)
	for _, d := range digests {
		if _, err := content(t).CopyBlob(ctx, src.Blobs(), d); err != nil {
			return registry.Release{}, false, registry.StorageError("copying blob "+d.String(), err)
		}
	}
	now := s.now().UTC()
	envSig, err := t.SignManifest(ctx, rec.Name, rec.ManifestDigest, manifest, now)
	if err != nil {
		return registry.Release{}, false, err
	}
	if err := s.attest(ctx, t, rec, run, now); err != nil {
		return registry.Release{}, false, err
	}
	version := rec
	version.Environment = t.Name()
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
		d.Environment = t.Name()
		moved[i] = d
	}
	release := registry.Release{
		Environment: t.Name(), Name: rec.Name, Version: rec.Version, ManifestDigest: rec.ManifestDigest,
		Action: registry.ReleasePromotion, Source: src.Name(), Actor: by.Name, Reason: reason, GateRunID: run.ID, CreatedAt: now,
	}
	event := by.Event(t.Name(), ActionPromote, rec.Name+"@"+rec.Version, audit.Success)
	event.Time = now
	event.Details = map[string]string{"source": src.Name(), "gateRunId": run.ID, "manifestDigest": rec.ManifestDigest.String()}
	if by.Owner != "" {
		event.Details["identity"] = by.Owner
	}
	out, created, err := index(t).CommitPromotion(ctx, registry.PromotionCommit{Version: version, Evidence: moved, Release: release, Event: event})
	if err != nil {
		return registry.Release{}, false, err
	}
	if err := content(t).PutObject(ctx, registry.RefKey(rec.Name, rec.Version), []byte(rec.ManifestDigest.String())); err != nil && !errors.Is(err, registry.ErrObjectExists) {
		return registry.Release{}, false, registry.StorageError("writing ref", err)
	}
	return out, created, nil
}

// attest signs an in-toto statement of the gate results with the target's
// key (a DSSE envelope, verifiable with `cosign verify-blob-attestation
// --type https://stagegate.dev/gates/v1`), stored create-once.
func (s *Service) attest(ctx context.Context, t *environment.Environment, rec registry.VersionRecord, run registry.GateRun, now time.Time) error {
	key := registry.AttestationKey(rec.ManifestDigest, t.Signer().KeyID())
	if _, err := content(t).GetObject(ctx, key, maxAttestationSize); err == nil {
		return nil
	} else if !errors.Is(err, registry.ErrObjectNotFound) {
		return registry.StorageError("reading attestation", err)
	}
	predicate, err := json.Marshal(map[string]any{
		"environment":  t.Name(),
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
	envelope, err := t.Signer().AttestBlob(rec.Name+"@"+rec.Version, rec.ManifestDigest.String(), PredicateType, predicate)
	if err != nil {
		return registry.CodeInternal.Errorf("attestation failed").WithCause(err)
	}
	if err := content(t).PutObject(ctx, key, envelope); err != nil && !errors.Is(err, registry.ErrObjectExists) {
		return registry.StorageError("writing attestation", err)
	}
	return nil
}

// maxAttestationSize bounds a stored gate attestation read back whole.
const maxAttestationSize = 4 << 20

// Attestation returns the stored gate attestation of name@version in e.
func (s *Service) Attestation(ctx context.Context, e *environment.Environment, name, version string) ([]byte, error) {
	rec, err := e.FindVersion(ctx, name, version)
	if err != nil {
		return nil, err
	}
	data, err := content(e).GetObject(ctx, registry.AttestationKey(rec.ManifestDigest, e.Signer().KeyID()), maxAttestationSize)
	if errors.Is(err, registry.ErrObjectNotFound) {
		return nil, registry.CodeNotFound.Errorf("%s@%s has no gate attestation in %s", rec.Name, rec.Version, e.Name())
	}
	if err != nil {
		return nil, registry.StorageError("reading attestation", err)
	}
	return data, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
