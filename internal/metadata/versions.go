package metadata

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/registry"
)

const versionColumns = `environment, name, version, original_version, kind, manifest_digest,
	manifest_size, files, labels, source_commit, created_at, created_by, ci_signature`

// CommitVersion records rec and appends ev (with ev.Environment set to e's
// environment) in one transaction, so a version never appears without its
// audit event. rec.Environment must be e's environment (an Internal error
// otherwise). It reports whether rec was created:
//   - name@version is new: (rec, true, nil);
//   - it exists with the same manifest digest: an idempotent repeat,
//     (existing, false, nil), and ev is still appended;
//   - it exists with another digest: an Exists error with code
//     version_exists, and nothing is written.
//
// Concurrent callers, in any number of processes, agree on one winner: the
// unique constraint decides.
//
// The transaction is shared with other versions and audit events of the
// environment committed at the same moment (group commit, groupcommit.go); each
// keeps its own outcome.
func (e *Env) CommitVersion(ctx context.Context, rec registry.VersionRecord, ev audit.Event) (registry.VersionRecord, bool, error) {
	ev.Environment = e.env
	job := &chainJob{rec: &rec, ev: ev}
	e.s.chained(ctx, e.env, job)
	if job.err != nil {
		return registry.VersionRecord{}, false, job.err
	}
	return job.out, job.created, nil
}

// commitVersionTx is CommitVersion's rule for the version row, inside the
// caller's transaction: insert rec, or accept an existing row of
// name@version with the same manifest digest (created is then false), or
// fail with an Exists error (code version_exists) when its digest differs;
// the caller must then roll back. rec.Signatures are neither written nor
// returned: signatures are the caller's to add.
func commitVersionTx(ctx context.Context, tx querier, env string, rec registry.VersionRecord) (registry.VersionRecord, bool, error) {
	rec, args, err := versionRow(env, rec)
	if err != nil {
		return registry.VersionRecord{}, false, err
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO versions (`+versionColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
		ON CONFLICT (environment, name, version) DO NOTHING`, args...)
	if err != nil {
		return registry.VersionRecord{}, false, dbError("insert version", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return registry.VersionRecord{}, false, dbError("insert version", err)
	}
	if n == 1 {
		return rec, true, nil
	}
	return existingVersion(ctx, tx, env, rec)
}

// versionRow checks rec (its environment must be env) and returns it as it
// is stored (time normalised, no signatures) with the values of
// versionColumns.
func versionRow(env string, rec registry.VersionRecord) (registry.VersionRecord, []any, error) {
	if rec.Environment != env {
		return registry.VersionRecord{}, nil, internalf("commit version: record for environment %q through handle for %q", rec.Environment, env)
	}
	if rec.Name == "" || rec.Version == "" || rec.ManifestDigest.Algorithm == "" {
		return registry.VersionRecord{}, nil, internalf("commit version: name, version and manifest digest are required")
	}
	rec.CreatedAt = normTime(rec.CreatedAt)
	rec.Signatures = nil
	files, err := toJSON(rec.Files)
	if err != nil {
		return registry.VersionRecord{}, nil, internalf("commit version: encode files: %v", err)
	}
	labels, err := toJSON(rec.Labels)
	if err != nil {
		return registry.VersionRecord{}, nil, internalf("commit version: encode labels: %v", err)
	}
	return rec, []any{rec.Environment, rec.Name, rec.Version, rec.OriginalVersion, string(rec.Kind),
		rec.ManifestDigest.String(), rec.ManifestSize, files, labels, rec.SourceCommit,
		formatTime(rec.CreatedAt), rec.CreatedBy, ciTrust(rec.CISignature)}, nil
}

// existingVersion is commitVersionTx's answer when rec's insert did
// nothing: someone else committed name@version first, and under READ
// COMMITTED (PostgreSQL) or the write lock (SQLite) it is visible. The
// same manifest digest is an idempotent repeat; another is version_exists.
func existingVersion(ctx context.Context, tx querier, env string, rec registry.VersionRecord) (registry.VersionRecord, bool, error) {
	existing, err := scanVersion(tx.QueryRowContext(ctx, `SELECT `+versionColumns+` FROM versions
		WHERE environment = $1 AND name = $2 AND version = $3`, env, rec.Name, rec.Version))
	if err != nil {
		return registry.VersionRecord{}, false, dbError("get version", err)
	}
	if existing.ManifestDigest != rec.ManifestDigest {
		return registry.VersionRecord{}, false, registry.CodeVersionExists.Errorf("%s@%s already exists in %s with different content", rec.Name, rec.Version, env).
			WithDetails(map[string]string{"manifestDigest": existing.ManifestDigest.String()})
	}
	return existing, false, nil
}

// GetVersion returns name@version (canonical version) in e's environment,
// or a NotFound error with code version_not_found.
func (e *Env) GetVersion(ctx context.Context, name, version string) (registry.VersionRecord, error) {
	return getVersion(ctx, e.s.rdb, e.env, name, version)
}

func getVersion(ctx context.Context, q querier, env, name, version string) (registry.VersionRecord, error) {
	row := q.QueryRowContext(ctx, `SELECT `+versionColumns+` FROM versions
		WHERE environment = $1 AND name = $2 AND version = $3`, env, name, version)
	rec, err := scanVersion(row)
	if errors.Is(err, sql.ErrNoRows) {
		return registry.VersionRecord{}, registry.CodeVersionNotFound.Errorf("%s@%s not found in %s", name, version, env)
	}
	if err != nil {
		return registry.VersionRecord{}, dbError("get version", err)
	}
	if rec.Signatures, err = listSignatures(ctx, q, env, rec.ManifestDigest); err != nil {
		return registry.VersionRecord{}, err
	}
	return rec, nil
}

// AddSignatures records signatures over a manifest of e's environment
// (e.g. a rotated key signing again). Existing ones are left as they are.
func (e *Env) AddSignatures(ctx context.Context, manifest v1.Hash, sigs []registry.Signature) error {
	return e.s.inTx(ctx, func(tx *sql.Tx) error {
		return insertSignatures(ctx, tx, e.env, manifest, sigs)
	})
}

func insertSignatures(ctx context.Context, q querier, env string, manifest v1.Hash, sigs []registry.Signature) error {
	for _, sig := range sigs {
		if _, err := q.ExecContext(ctx, `INSERT INTO signatures
			(environment, manifest_digest, role, key_id, subject, signature, trusted, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (environment, manifest_digest, role, key_id, subject) DO NOTHING`,
			env, manifest.String(), string(sig.Role), sig.KeyID, sig.Subject, sig.Signature, sig.Trusted,
			formatTime(normTime(sig.CreatedAt))); err != nil {
			return dbError("insert signature", err)
		}
	}
	return nil
}

func listSignatures(ctx context.Context, q querier, env string, manifest v1.Hash) ([]registry.Signature, error) {
	rows, err := q.QueryContext(ctx, `SELECT role, key_id, subject, signature, trusted, created_at
		FROM signatures WHERE environment = $1 AND manifest_digest = $2 ORDER BY id`, env, manifest.String())
	if err != nil {
		return nil, dbError("list signatures", err)
	}
	sigs, err := collect(rows, "list signatures", scanSignature)
	if err != nil {
		return nil, err
	}
	if len(sigs) == 0 {
		// nil, not empty: a version committed without signatures reads back
		// exactly as it was committed.
		return nil, nil
	}
	return sigs, nil
}

func scanSignature(sc scanner) (registry.Signature, error) {
	var (
		sig           registry.Signature
		role, created string
	)
	if err := sc.Scan(&role, &sig.KeyID, &sig.Subject, &sig.Signature, &sig.Trusted, &created); err != nil {
		return registry.Signature{}, err
	}
	sig.Role = registry.SignerRole(role)
	var err error
	if sig.CreatedAt, err = parseTime(created); err != nil {
		return registry.Signature{}, err
	}
	return sig, nil
}

// ciTrust stores an unset trust as absent.
func ciTrust(t registry.CITrust) string {
	if t == "" {
		return string(registry.CIAbsent)
	}
	return string(t)
}

// ListVersions returns every version of name in e's environment, in
// publish order; an empty, non-nil slice when there are none.
func (e *Env) ListVersions(ctx context.Context, name string) ([]registry.VersionRecord, error) {
	rows, err := e.s.rdb.QueryContext(ctx, `SELECT `+versionColumns+` FROM versions
		WHERE environment = $1 AND name = $2 ORDER BY id`, e.env, name)
	if err != nil {
		return nil, dbError("list versions", err)
	}
	return collect(rows, "list versions", scanVersion)
}

var _ registry.KindIndex = (*Env)(nil)

// ArtifactKind returns the kind of name's versions in e's environment (the
// registry keeps one kind per name, so any row answers); ok is false when
// name has no version. It implements registry.KindIndex: a publish checks
// the kind with one indexed row instead of listing the name's history.
func (e *Env) ArtifactKind(ctx context.Context, name string) (registry.Kind, bool, error) {
	var kind string
	err := e.s.rdb.QueryRowContext(ctx, `SELECT kind FROM versions
		WHERE environment = $1 AND name = $2 LIMIT 1`, e.env, name).Scan(&kind)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, dbError("artifact kind", err)
	}
	return registry.Kind(kind), true, nil
}

// ListArtifacts summarises every name in e's environment, sorted by name
// (byte order). Kind is the kind of the newest version.
func (e *Env) ListArtifacts(ctx context.Context) ([]registry.ArtifactSummary, error) {
	rows, err := e.s.rdb.QueryContext(ctx, `SELECT v.name, COUNT(*), MAX(v.created_at),
		(SELECT n.kind FROM versions n WHERE n.environment = v.environment AND n.name = v.name
			ORDER BY n.created_at DESC, n.id DESC LIMIT 1)
		FROM versions v WHERE v.environment = $1 GROUP BY v.environment, v.name`, e.env)
	if err != nil {
		return nil, dbError("list artifacts", err)
	}
	out, err := collect(rows, "list artifacts", scanArtifact)
	if err != nil {
		return nil, err
	}
	// Sorted here, not in SQL, so that both databases agree whatever their collation.
	slices.SortFunc(out, func(a, b registry.ArtifactSummary) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func scanArtifact(sc scanner) (registry.ArtifactSummary, error) {
	var (
		a          registry.ArtifactSummary
		last, kind string
	)
	if err := sc.Scan(&a.Name, &a.VersionCount, &last, &kind); err != nil {
		return registry.ArtifactSummary{}, err
	}
	a.Kind = registry.Kind(kind)
	var err error
	if a.LastPublished, err = parseTime(last); err != nil {
		return registry.ArtifactSummary{}, err
	}
	return a, nil
}

func scanVersion(sc scanner) (registry.VersionRecord, error) {
	var (
		r                           registry.VersionRecord
		kind, digest, files, labels string
		created, ci                 string
	)
	if err := sc.Scan(&r.Environment, &r.Name, &r.Version, &r.OriginalVersion, &kind, &digest,
		&r.ManifestSize, &files, &labels, &r.SourceCommit, &created, &r.CreatedBy, &ci); err != nil {
		return registry.VersionRecord{}, err
	}
	r.Kind = registry.Kind(kind)
	r.CISignature = registry.CITrust(ci)
	var err error
	if r.ManifestDigest, err = v1.NewHash(digest); err != nil {
		return registry.VersionRecord{}, err
	}
	if err := fromJSON(files, &r.Files); err != nil {
		return registry.VersionRecord{}, err
	}
	if err := fromJSON(labels, &r.Labels); err != nil {
		return registry.VersionRecord{}, err
	}
	if r.CreatedAt, err = parseTime(created); err != nil {
		return registry.VersionRecord{}, err
	}
	return r, nil
}
