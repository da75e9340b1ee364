package rollback

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/environment"
	"github.com/stagegate/stagegate/gates"
	"github.com/stagegate/stagegate/registry"
)

// Index is the part of an environment's metadata a rollback uses.
type Index interface {
	GetVersion(ctx context.Context, name, version string) (registry.VersionRecord, error)
	ListEvidence(ctx context.Context, name, version string) ([]registry.Evidence, error)
	CurrentRelease(ctx context.Context, name string) (registry.Release, error)
	ListReleases(ctx context.Context, name string) ([]registry.Release, error)
	PageReleases(ctx context.Context, name string, p registry.ReleasePage) ([]registry.Release, error)
	ReleasesAt(ctx context.Context, at time.Time, name string) ([]registry.Release, error)
	RecordGateRun(ctx context.Context, run registry.GateRun) error
	CommitRollback(ctx context.Context, c registry.RollbackCommit) (registry.Release, bool, error)
}

// Content is the part of an environment's bucket a rollback uses: it reads
// blobs and signatures, and writes the attestation create-once.
type Content interface {
	OpenBlob(ctx context.Context, dgst v1.Hash) (io.ReadCloser, int64, error)
	PutObject(ctx context.Context, key string, data []byte) error
	GetObject(ctx context.Context, key string, maxSize int64) ([]byte, error)
}

func index(e *environment.Environment) Index     { return e.Metadata() }
func content(e *environment.Environment) Content { return e.Blobs() }

// Service runs rollbacks and answers release history. It looks up no
// environment: each call gets the one authentication bound, and reads and
// writes only that environment.
type Service struct {
	engine gates.Engine
	now    func() time.Time
}

// New returns a Service with the given clock (nil: time.Now).
func New(now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{engine: gates.Engine{Clock: now}, now: now}
}

// Audit actions of this package.
const (
	ActionRollback = "artifact.rollback"
	ActionDryRun   = "artifact.rollback.dry_run"
)

// PredicateType names the in-toto predicate of rollback attestations. It is
// not the promotion's (https://stagegate.dev/gates/v1): a rollback passed
// the short rollback gate set, not the environment's promotion policy, and
// a consumer checking "passed prod's gates" must not mistake one for the
// other.
const PredicateType = "https://stagegate.dev/rollback/v1"

// maxReason bounds a rollback's reason, as a promotion's.
const maxReason = 1024

// Request asks for a rollback of Name in an environment.
type Request struct {
	Name string
	// Version is the version to make current again; "" means the version
	// of the release before the current one.
	Version string
	// Reason is required: it is recorded in the release and the audit trail.
	Reason string
	DryRun bool
	// Force lifts the environment's freeze windows (they are still
	// evaluated, and reported as advisory); only a caller with MayForce may
	// ask for it.
	Force bool
	// MayForce is true for an admin of the environment; the HTTP layer sets
	// it from the credential's role.
	MayForce bool
	// IfCurrent, when not 0, is the id of the release the caller judged:
	// the rollback happens only while that release is current
	// (release_changed otherwise, also when it changes before the commit).
	IfCurrent int64
	// TriggeredBy is recorded in the release, e.g. "alertmanager:<fingerprint>".
	TriggeredBy string
}

// Outcome says what a rollback did.
type Outcome string

// Outcomes of Rollback.
const (
	RolledBack Outcome = "rolled-back" // a release was appended
	Unchanged  Outcome = "unchanged"   // the target was current already: nothing appended
	DryRun     Outcome = "dry-run"     // the gates passed; nothing appended
)

// Result is a rollback's outcome.
type Result struct {
	Outcome Outcome
	// Version is the version rolled back to (for a dry run, that would be).
	Version string
	// Release is the release current after the call: the new one, or the
	// one that already served the target. nil for a dry run.
	Release *registry.Release
	// Previous is the release that was current when the rollback was
	// decided.
	Previous *registry.Release
	GateRun  *registry.GateRun // nil when no gates ran (Unchanged)
	Report   *gates.Report
	// Audited is true when the store appended the audit event with the
	// release, in its transaction; otherwise the caller records success.
	Audited bool
}

// Rollback makes req.Version (default: the version of the release before
// the current one) the current release of req.Name in e again, after the
// rollback gate set passed. Refusals are errors with stable codes:
// invalid_name, invalid_version and invalid_request for a bad request,
// forbidden for Force without MayForce, not_eligible (details: eligible
// versions and the current one) for a version never released in e,
// gate_failed (details: gate run id and report) when a gate refused, and
// release_changed when another release became current meanwhile.
func (s *Service) Rollback(ctx context.Context, e *environment.Environment, by audit.Actor, req Request) (Result, error) {
	name, err := registry.ParseName(req.Name)
	if err != nil {
		return Result{}, err
	}
	target := ""
	if req.Version != "" {
		v, err := registry.ParseVersion(req.Version)
		if err != nil {
			return Result{}, err
		}
		target = v.Canonical
	}
	if strings.TrimSpace(req.Reason) == "" {
		return Result{}, registry.CodeInvalidRequest.Errorf("a reason is required: say why %s is rolled back in %s", name, e.Name())
	}
	if len(req.Reason) > maxReason {
		return Result{}, registry.CodeInvalidRequest.Errorf("reason is longer than %d bytes", maxReason)
	}
	if req.Force && !req.MayForce {
		return Result{}, registry.CodeForbidden.Errorf("only an admin of %s may force a rollback past its freeze windows", e.Name())
	}

	releases, err := index(e).ListReleases(ctx, name)
	if err != nil {
		return Result{}, err
	}
	if len(releases) == 0 {
		return Result{}, notEligible(name, target, nil, "%s has never been released in %s: there is nothing to roll back", name, e.Name())
	}
	cur := releases[0]
	if req.IfCurrent != 0 && cur.ID != req.IfCurrent {
		return Result{}, changed(e, cur)
	}
	eligible := eligibleVersions(releases)
	if target == "" {
		prev, ok := previousRelease(releases, cur)
		if !ok {
			return Result{}, notEligible(name, target, releases, "release %d of %s in %s (%s) is its first: there is no earlier release to roll back to", cur.Number, name, e.Name(), cur.Version)
		}
		target = prev.Version
	}
	res := Result{Previous: &cur, Version: target}
	if target == cur.Version {
		// Idempotent: what the caller wants is what is served.
		res.Outcome, res.Release = Unchanged, &cur
		return res, nil
	}
	if !slices.Contains(eligible, target) {
		return Result{}, notEligible(name, target, releases, "%s@%s was never released in %s, so it cannot be rolled back to", name, target, e.Name())
	}
	rec, err := index(e).GetVersion(ctx, name, target)
	if err != nil {
		return Result{}, err
	}
	if want := releasedDigest(releases, target); rec.ManifestDigest != want {
		return Result{}, registry.CodeInternal.Errorf("internal error").WithCause(fmt.Errorf("rollback: %s@%s in %s is %s, released as %s", name, target, e.Name(), rec.ManifestDigest, want))
	}

	forced := req.Force && req.MayForce
	subject, err := s.subject(ctx, e, rec, by)
	if err != nil {
		return Result{}, err
	}
	report := s.engine.Evaluate(ctx, gates.RollbackPolicy(e.Name(), e.Policy(), forced), subject)
	run, err := s.recordRun(ctx, e, rec, by, req.DryRun, report)
	if err != nil {
		return Result{}, err
	}
	res.GateRun, res.Report = &run, &report
	if !report.Passed {
		return res, registry.CodeGateFailed.Errorf("%d check(s) refused rolling back %s in %s to %s",
			len(report.Failures()), name, e.Name(), target).
			WithDetails(map[string]any{"gateRunId": run.ID, "report": report})
	}
	if req.DryRun {
		res.Outcome = DryRun
		return res, nil
	}

	now := s.now().UTC()
	if err := s.attest(ctx, e, rec, cur, run, by, req.Reason, forced, now); err != nil {
		return res, err
	}
	release := registry.Release{
		Environment: e.Name(), Name: name, Version: target, ManifestDigest: rec.ManifestDigest,
		Action: registry.ReleaseRollback, Actor: by.Name, Reason: req.Reason, GateRunID: run.ID,
		CreatedAt: now, TriggeredBy: req.TriggeredBy, Forced: forced,
	}
	event := by.Event(e.Name(), ActionRollback, name+"@"+target, audit.Success)
	event.Time = now
	event.Details = map[string]string{
		"from": cur.Version, "fromRelease": strconv.FormatInt(cur.Number, 10),
		"gateRunId": run.ID, "manifestDigest": rec.ManifestDigest.String(),
	}
	if forced {
		event.Details["forced"] = "true"
	}
	if by.Owner != "" {
		event.Details["identity"] = by.Owner
	}
	if req.TriggeredBy != "" {
		event.Details["triggeredBy"] = req.TriggeredBy
	}
	commit := registry.RollbackCommit{Release: release, Event: event}
	if req.Version == "" || req.IfCurrent != 0 {
		// The target was derived from cur (or cur was judged): a rollback
		// decided against one release must not land after another.
		commit.ExpectedCurrentID = cur.ID
	}
	out, created, err := index(e).CommitRollback(ctx, commit)
	if err != nil {
		return res, err
	}
	res.Outcome, res.Release, res.Audited = RolledBack, &out, true
	if !created {
		res.Outcome = Unchanged
	}
	return res, nil
}

// eligibleVersions lists the versions released in the environment, newest
// release first, each once.
func eligibleVersions(releases []registry.Release) []string {
	var out []string
	for _, r := range releases {
		if !slices.Contains(out, r.Version) {
			out = append(out, r.Version)
		}
	}
	return out
}

// previousRelease is the release cur superseded.
func previousRelease(releases []registry.Release, cur registry.Release) (registry.Release, bool) {
	for _, r := range releases {
		if r.ID == cur.PreviousID && cur.PreviousID != 0 {
			return r, true
		}
	}
	return registry.Release{}, false
}

func releasedDigest(releases []registry.Release, version string) v1.Hash {
	for _, r := range releases {
		if r.Version == version {
			return r.ManifestDigest
		}
	}
	return v1.Hash{}
}

// NotEligibleDetails are the details of a not_eligible error.
type NotEligibleDetails struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"` // the version asked for; "" for the default target
	// Current is the version served now ("" when the name was never
	// released); Eligible the other versions released before, newest
	// release first.
	Current  string   `json:"current,omitempty"`
	Eligible []string `json:"eligible"`
}

func notEligible(name, target string, releases []registry.Release, format string, args ...any) error {
	d := NotEligibleDetails{Name: name, Version: target, Eligible: []string{}}
	if len(releases) > 0 {
		d.Current = releases[0].Version
		for _, v := range eligibleVersions(releases) {
			if v != d.Current {
				d.Eligible = append(d.Eligible, v)
			}
		}
	}
	return registry.CodeNotEligible.Errorf(format, args...).WithDetails(d)
}

func changed(e *environment.Environment, cur registry.Release) error {
	return registry.CodeReleaseChanged.Errorf("release %d of %s in %s (%s, by %s) is current now; look again and retry",
		cur.Number, cur.Name, e.Name(), cur.Version, cur.Actor).WithDetails(map[string]any{"current": cur})
}

// Pseudo-paths under which the manifest and config blobs appear in the
// integrity check's report; real file paths never start with '<'.
const (
	manifestPath = "<manifest>"
	configPath   = "<config>"
)

// subject gathers what the rollback gates look at: every blob of the
// version in e's bucket and the verdict on e's signature.
func (s *Service) subject(ctx context.Context, e *environment.Environment, rec registry.VersionRecord, by audit.Actor) (*gates.Subject, error) {
	evidence, err := index(e).ListEvidence(ctx, rec.Name, rec.Version)
	if err != nil {
		return nil, err
	}
	b := content(e)
	files := make([]gates.File, 0, len(rec.Files)+2)
	for _, f := range rec.Files {
		files = append(files, gates.File{Path: f.Path, Digest: f.Digest, Size: f.Size, MediaType: f.MediaType, Open: opener(b, f.Digest)})
	}
	manifest, manifestErr := readManifest(ctx, b, rec.ManifestDigest)
	if manifestErr == nil {
		if m, _, err := registry.ParseManifest(manifest); err == nil {
			files = append(files, gates.File{Path: configPath, Digest: m.Config.Digest, Size: m.Config.Size, Open: opener(b, m.Config.Digest)})
		}
	}
	files = append(files, gates.File{Path: manifestPath, Digest: rec.ManifestDigest, Size: rec.ManifestSize, Open: opener(b, rec.ManifestDigest)})
	docs := make([]gates.Evidence, len(evidence))
	for i, d := range evidence {
		docs[i] = gates.Evidence{Type: d.Type, Digest: d.Digest, Size: d.Size, MediaType: d.MediaType, Open: opener(b, d.Digest)}
	}
	return &gates.Subject{
		Name: rec.Name, Version: rec.Version, Kind: rec.Kind,
		Source: e.Name(), Target: e.Name(), Environments: e.Order(),
		Files: files, Evidence: docs, PublishedAt: rec.CreatedAt,
		Actor: by.Name, Identity: by.Owner, KeyCreatedBy: by.KeyCreatedBy,
		EnvironmentSignature: s.judgeSignature(ctx, e, rec, manifest, manifestErr),
		Now:                  s.now().UTC(),
	}, nil
}

func opener(b Content, d v1.Hash) gates.Opener {
	return func(ctx context.Context) (io.ReadCloser, error) {
		rc, _, err := b.OpenBlob(ctx, d)
		return rc, err
	}
}

// readManifest reads the stored manifest whole; an error wrapping
// registry.ErrDigestMismatch means the bytes are not the ones released.
func readManifest(ctx context.Context, b Content, dgst v1.Hash) ([]byte, error) {
	rc, size, err := b.OpenBlob(ctx, dgst)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if size > registry.MaxManifestSize {
		return nil, fmt.Errorf("the stored manifest has %d bytes, over the limit of %d", size, registry.MaxManifestSize)
	}
	return io.ReadAll(io.LimitReader(rc, registry.MaxManifestSize+1))
}

// judgeSignature verifies e's signature over the manifest with e's current
// and rotated keys. The signatures are read from e's bucket under
// registry.SignatureKey for the current key and for every environment key
// the version record names, then from the record itself: a signature
// verifies the exact manifest bytes wherever it was kept.
func (s *Service) judgeSignature(ctx context.Context, e *environment.Environment, rec registry.VersionRecord, manifest []byte, manifestErr error) gates.Signature {
	switch {
	case errors.Is(manifestErr, registry.ErrDigestMismatch):
		return gates.Signature{Status: gates.SignatureUntrusted, Detail: "the stored manifest does not match its digest, so no signature over it can be trusted"}
	case manifestErr != nil:
		return gates.Signature{Status: gates.SignatureError, Detail: "reading the manifest: " + manifestErr.Error()}
	}
	keyIDs := []string{e.Signer().KeyID()}
	var recorded []string
	for _, sig := range rec.Signatures {
		if sig.Role == registry.SignedByEnvironment && sig.Subject == registry.SubjectManifest {
			recorded = append(recorded, sig.Signature)
			if !slices.Contains(keyIDs, sig.KeyID) {
				keyIDs = append(keyIDs, sig.KeyID)
			}
		}
	}
	tried := 0
	verdict := func(keyID, where string) gates.Signature {
		detail := where
		if keyID != e.Signer().KeyID() {
			detail += "; made by a rotated key, still trusted"
		}
		return gates.Signature{Status: gates.SignatureTrusted, KeyID: keyID, Detail: detail}
	}
	for _, id := range keyIDs {
		key := registry.SignatureKey(rec.ManifestDigest, id)
		sig, err := content(e).GetObject(ctx, key, registry.MaxSignatureSize)
		if errors.Is(err, registry.ErrObjectNotFound) {
			continue
		}
		if err != nil {
			return gates.Signature{Status: gates.SignatureError, Detail: "reading " + key + ": " + err.Error()}
		}
		tried++
		if kid, err := e.Verifier().Identify(manifest, string(sig)); err == nil {
			return verdict(kid, "stored at "+key)
		}
	}
	for _, sig := range recorded {
		tried++
		if kid, err := e.Verifier().Identify(manifest, sig); err == nil {
			return verdict(kid, "from the version record; the bucket holds no signature that verifies")
		}
	}
	if tried == 0 {
		return gates.Signature{Status: gates.SignatureAbsent, Detail: fmt.Sprintf("neither %s's bucket nor the version record holds one", e.Name())}
	}
	return gates.Signature{Status: gates.SignatureUntrusted, Detail: fmt.Sprintf("%d stored signature(s), none made by %s's current or rotated keys over these bytes", tried, e.Name())}
}

func (s *Service) recordRun(ctx context.Context, e *environment.Environment, rec registry.VersionRecord, by audit.Actor, dryRun bool, report gates.Report) (registry.GateRun, error) {
	// Source is the environment itself: a rollback reads nothing elsewhere.
	run, err := report.Run(e.Name(), e.Name(), rec, by.Name, dryRun)
	if err != nil {
		return registry.GateRun{}, err
	}
	if err := index(e).RecordGateRun(ctx, run); err != nil {
		return registry.GateRun{}, err
	}
	return run, nil
}

// maxAttestationSize bounds a stored attestation read back whole.
const maxAttestationSize = 4 << 20

// attest signs an in-toto statement of the rollback's gate results with
// e's key (a DSSE envelope, verifiable with `cosign
// verify-blob-attestation --type https://stagegate.dev/rollback/v1`) and
// stores it create-once under the gate run's key, before the release that
// names the gate run is committed.
func (s *Service) attest(ctx context.Context, e *environment.Environment, rec registry.VersionRecord, from registry.Release,
	run registry.GateRun, by audit.Actor, reason string, forced bool, now time.Time) error {
	predicate, err := json.Marshal(map[string]any{
		"environment":    e.Name(),
		"artifact":       rec.Name,
		"version":        rec.Version,
		"action":         registry.ReleaseRollback,
		"fromVersion":    from.Version,
		"fromRelease":    from.Number,
		"reason":         reason,
		"actor":          by.Name,
		"forced":         forced,
		"gateRunId":      run.ID,
		"policyDigest":   run.PolicyDigest,
		"passed":         run.Passed,
		"report":         run.Report,
		"rolledBackAt":   now,
		"manifestDigest": rec.ManifestDigest.String(),
	})
	if err != nil {
		return err
	}
	envelope, err := e.Signer().AttestBlob(rec.Name+"@"+rec.Version, rec.ManifestDigest.String(), PredicateType, predicate)
	if err != nil {
		return registry.CodeInternal.Errorf("attestation failed").WithCause(err)
	}
	key := registry.RollbackAttestationKey(rec.ManifestDigest, e.Signer().KeyID(), run.ID)
	if err := content(e).PutObject(ctx, key, envelope); err != nil && !errors.Is(err, registry.ErrObjectExists) {
		return registry.StorageError("writing rollback attestation", err)
	}
	return nil
}

// Attestation returns the rollback attestation of name@version in e made
// for gate run gateRunID.
func (s *Service) Attestation(ctx context.Context, e *environment.Environment, name, version, gateRunID string) ([]byte, error) {
	rec, err := e.FindVersion(ctx, name, version)
	if err != nil {
		return nil, err
	}
	if !validRunID(gateRunID) {
		return nil, registry.CodeInvalidRequest.Errorf("gateRun must be a gate run id (gr_ and 24 hex digits)")
	}
	data, err := content(e).GetObject(ctx, registry.RollbackAttestationKey(rec.ManifestDigest, e.Signer().KeyID(), gateRunID), maxAttestationSize)
	if errors.Is(err, registry.ErrObjectNotFound) {
		return nil, registry.CodeNotFound.Errorf("%s@%s has no rollback attestation for gate run %s in %s", rec.Name, rec.Version, gateRunID, e.Name())
	}
	if err != nil {
		return nil, registry.StorageError("reading rollback attestation", err)
	}
	return data, nil
}

func validRunID(id string) bool {
	hexPart, ok := strings.CutPrefix(id, "gr_")
	if !ok || len(hexPart) != 24 {
		return false
	}
	_, err := hex.DecodeString(hexPart)
	return err == nil && strings.ToLower(hexPart) == hexPart
}
