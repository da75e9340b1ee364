package metadata

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/registry"
)

const evidenceColumns = `environment, name, version, manifest_digest, type, digest, size, media_type,
	created_at, created_by`

// AddEvidence records ev, an evidence document of ev.Name@ev.Version, and
// appends event (in e's environment) in one transaction. ev.Environment
// must be e's environment (an Internal error otherwise). The version must
// exist in e's environment (a NotFound error with code version_not_found
// otherwise) and ev.ManifestDigest must be its manifest digest (an Internal
// error otherwise); nothing is written on error. Evidence is unique per
// (name, version, type, digest): a repeat returns (existing, false, nil)
// and still appends event.
func (e *Env) AddEvidence(ctx context.Context, ev registry.Evidence, event audit.Event) (registry.Evidence, bool, error) {
	if ev.Environment != e.env {
		return registry.Evidence{}, false, internalf("add evidence: evidence for environment %q through handle for %q", ev.Environment, e.env)
	}
	if err := checkEvidence(ev); err != nil {
		return registry.Evidence{}, false, err
	}
	event.Environment = e.env
	var (
		out     registry.Evidence
		created bool
	)
	err := e.s.inTx(ctx, func(tx *sql.Tx) error {
		var manifest string
		err := tx.QueryRowContext(ctx, `SELECT manifest_digest FROM versions
			WHERE environment = $1 AND name = $2 AND version = $3`, e.env, ev.Name, ev.Version).Scan(&manifest)
		if errors.Is(err, sql.ErrNoRows) {
			return registry.Errorf(registry.NotFound, registry.CodeVersionNotFound,
				"%s@%s not found in %s", ev.Name, ev.Version, e.env)
		}
		if err != nil {
			return dbError("add evidence", err)
		}
		if manifest != ev.ManifestDigest.String() {
			return internalf("add evidence: evidence names manifest %s, %s@%s is %s", ev.ManifestDigest, ev.Name, ev.Version, manifest)
		}
		if out, created, err = insertEvidence(ctx, tx, ev); err != nil {
			return err
		}
		if _, err := e.s.insertAudit(ctx, tx, event); err != nil {
			return dbError("append audit", err)
		}
		return nil
	})
	if err != nil {
		return registry.Evidence{}, false, err
	}
	return out, created, nil
}

func checkEvidence(ev registry.Evidence) error {
	if ev.Name == "" || ev.Version == "" || ev.Type == "" || ev.Digest.Algorithm == "" || ev.ManifestDigest.Algorithm == "" {
		return internalf("evidence: name, version, manifest digest, type and digest are required")
	}
	return nil
}

// insertEvidence inserts ev unless the same document is already recorded,
// and returns the stored row and whether it was inserted.
func insertEvidence(ctx context.Context, q querier, ev registry.Evidence) (registry.Evidence, bool, error) {
	ev.CreatedAt = normTime(ev.CreatedAt)
	res, err := q.ExecContext(ctx, `INSERT INTO evidence (`+evidenceColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (environment, name, version, type, digest) DO NOTHING`,
		ev.Environment, ev.Name, ev.Version, ev.ManifestDigest.String(), ev.Type, ev.Digest.String(),
		ev.Size, ev.MediaType, formatTime(ev.CreatedAt), ev.CreatedBy)
	if err != nil {
		return registry.Evidence{}, false, dbError("insert evidence", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return registry.Evidence{}, false, dbError("insert evidence", err)
	}
	if n == 1 {
		return ev, true, nil
	}
	existing, err := scanEvidence(q.QueryRowContext(ctx, `SELECT `+evidenceColumns+` FROM evidence
		WHERE environment = $1 AND name = $2 AND version = $3 AND type = $4 AND digest = $5`,
		ev.Environment, ev.Name, ev.Version, ev.Type, ev.Digest.String()))
	if err != nil {
		return registry.Evidence{}, false, dbError("get evidence", err)
	}
	return existing, false, nil
}

// ListEvidence returns the evidence of name@version in e's environment, in
// the order it was recorded (oldest first); an empty, non-nil slice when
// there is none.
func (e *Env) ListEvidence(ctx context.Context, name, version string) ([]registry.Evidence, error) {
	rows, err := e.s.rdb.QueryContext(ctx, `SELECT `+evidenceColumns+` FROM evidence
		WHERE environment = $1 AND name = $2 AND version = $3 ORDER BY id`, e.env, name, version)
	if err != nil {
		return nil, dbError("list evidence", err)
	}
	return collect(rows, "list evidence", scanEvidence)
}

func scanEvidence(sc scanner) (registry.Evidence, error) {
	var (
		ev                        registry.Evidence
		manifest, digest, created string
	)
	if err := sc.Scan(&ev.Environment, &ev.Name, &ev.Version, &manifest, &ev.Type, &digest,
		&ev.Size, &ev.MediaType, &created, &ev.CreatedBy); err != nil {
		return registry.Evidence{}, err
	}
	var err error
	if ev.ManifestDigest, err = v1.NewHash(manifest); err != nil {
		return registry.Evidence{}, err
	}
	if ev.Digest, err = v1.NewHash(digest); err != nil {
		return registry.Evidence{}, err
	}
	if ev.CreatedAt, err = parseTime(created); err != nil {
		return registry.Evidence{}, err
	}
	return ev, nil
}

const approvalColumns = `environment, name, version, manifest_digest, actor, credential_id, role,
	comment, created_at`

// AddApproval appends a, an approval to promote a.Name@a.Version into e's
// environment, and event (in e's environment) in one transaction.
// a.Environment must be e's environment (an Internal error otherwise). The
// version need not exist in e's environment yet. Approvals are never
// deduplicated: approving again later adds a row (refreshing its expiry);
// gates count distinct actors.
func (e *Env) AddApproval(ctx context.Context, a registry.Approval, event audit.Event) (registry.Approval, error) {
	if a.Environment != e.env {
		return registry.Approval{}, internalf("add approval: approval for environment %q through handle for %q", a.Environment, e.env)
	}
	if a.Name == "" || a.Version == "" || a.Actor == "" || a.ManifestDigest.Algorithm == "" {
		return registry.Approval{}, internalf("add approval: name, version, manifest digest and actor are required")
	}
	a.CreatedAt = normTime(a.CreatedAt)
	event.Environment = e.env
	err := e.s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO approvals (`+approvalColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			a.Environment, a.Name, a.Version, a.ManifestDigest.String(), a.Actor, a.CredentialID, a.Role,
			a.Comment, formatTime(a.CreatedAt)); err != nil {
			return dbError("add approval", err)
		}
		if _, err := e.s.insertAudit(ctx, tx, event); err != nil {
			return dbError("append audit", err)
		}
		return nil
	})
	if err != nil {
		return registry.Approval{}, err
	}
	return a, nil
}

// ListApprovals returns the approvals of name@version in e's environment,
// whatever manifest digest they name, oldest first; an empty, non-nil slice
// when there are none.
func (e *Env) ListApprovals(ctx context.Context, name, version string) ([]registry.Approval, error) {
	rows, err := e.s.rdb.QueryContext(ctx, `SELECT `+approvalColumns+` FROM approvals
		WHERE environment = $1 AND name = $2 AND version = $3 ORDER BY id`, e.env, name, version)
	if err != nil {
		return nil, dbError("list approvals", err)
	}
	return collect(rows, "list approvals", scanApproval)
}

func scanApproval(sc scanner) (registry.Approval, error) {
	var (
		a                 registry.Approval
		manifest, created string
	)
	if err := sc.Scan(&a.Environment, &a.Name, &a.Version, &manifest, &a.Actor, &a.CredentialID,
		&a.Role, &a.Comment, &created); err != nil {
		return registry.Approval{}, err
	}
	var err error
	if a.ManifestDigest, err = v1.NewHash(manifest); err != nil {
		return registry.Approval{}, err
	}
	if a.CreatedAt, err = parseTime(created); err != nil {
		return registry.Approval{}, err
	}
	return a, nil
}

const gateRunColumns = `id, environment, source, name, version, manifest_digest, policy_digest,
	passed, dry_run, actor, started_at, duration_ms, report`

// RecordGateRun stores run, a gate run whose target is e's environment.
// run.Environment must be e's environment and run.Report empty or valid JSON
// (an Internal error otherwise). Ids are unique across environments: an
// id that is already stored is an Exists error with code
// CodeGateRunExists, and nothing is written.
func (e *Env) RecordGateRun(ctx context.Context, run registry.GateRun) error {
	if run.Environment != e.env {
		return internalf("record gate run: run for environment %q through handle for %q", run.Environment, e.env)
	}
	if run.ID == "" {
		return internalf("record gate run: id is required")
	}
	report := "null"
	if len(run.Report) > 0 {
		if !json.Valid(run.Report) {
			return internalf("record gate run: report is not valid JSON")
		}
		report = string(run.Report)
	}
	res, err := e.s.db.ExecContext(ctx, `INSERT INTO gate_runs (`+gateRunColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
		ON CONFLICT (id) DO NOTHING`,
		run.ID, run.Environment, run.Source, run.Name, run.Version, optionalHash(run.ManifestDigest),
		run.PolicyDigest, run.Passed, run.DryRun, run.Actor, formatTime(run.StartedAt), run.DurationMS, report)
	if err != nil {
		return dbError("record gate run", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return dbError("record gate run", err)
	} else if n == 0 {
		return registry.Errorf(registry.Exists, CodeGateRunExists, "a gate run with id %q already exists", run.ID)
	}
	return nil
}

// GetGateRun returns gate run id of e's environment, or a NotFound error
// (code not_found) when there is none, even if another environment has it.
// A stored "null" report comes back as a nil Report.
func (e *Env) GetGateRun(ctx context.Context, id string) (registry.GateRun, error) {
	run, err := scanGateRun(e.s.rdb.QueryRowContext(ctx, `SELECT `+gateRunColumns+` FROM gate_runs
		WHERE environment = $1 AND id = $2`, e.env, id))
	if errors.Is(err, sql.ErrNoRows) {
		return registry.GateRun{}, registry.Errorf(registry.NotFound, registry.CodeNotFound, "no gate run %q in %s", id, e.env)
	}
	if err != nil {
		return registry.GateRun{}, dbError("get gate run", err)
	}
	return run, nil
}

func scanGateRun(sc scanner) (registry.GateRun, error) {
	var (
		r                         registry.GateRun
		manifest, started, report string
	)
	if err := sc.Scan(&r.ID, &r.Environment, &r.Source, &r.Name, &r.Version, &manifest, &r.PolicyDigest,
		&r.Passed, &r.DryRun, &r.Actor, &started, &r.DurationMS, &report); err != nil {
		return registry.GateRun{}, err
	}
	var err error
	if manifest != "" { // stored by optionalHash
		if r.ManifestDigest, err = v1.NewHash(manifest); err != nil {
			return registry.GateRun{}, err
		}
	}
	if r.StartedAt, err = parseTime(started); err != nil {
		return registry.GateRun{}, err
	}
	if report != "null" {
		r.Report = json.RawMessage(report)
	}
	return r, nil
}

const releaseColumns = `id, environment, name, version, manifest_digest, action, source,
	previous_id, actor, reason, gate_run_id, created_at`

// CurrentRelease returns the release of name that e's environment serves:
// its newest (highest id). Returns a NotFound error (code not_found) when
// name has never been released there.
func (e *Env) CurrentRelease(ctx context.Context, name string) (registry.Release, error) {
	rel, err := currentRelease(ctx, e.s.rdb, e.env, name)
	if errors.Is(err, sql.ErrNoRows) {
		return registry.Release{}, registry.Errorf(registry.NotFound, registry.CodeNotFound,
			"%s has no release in %s", name, e.env)
	}
	if err != nil {
		return registry.Release{}, dbError("current release", err)
	}
	return rel, nil
}

func currentRelease(ctx context.Context, q querier, env, name string) (registry.Release, error) {
	return scanRelease(q.QueryRowContext(ctx, `SELECT `+releaseColumns+` FROM releases
		WHERE environment = $1 AND name = $2 ORDER BY id DESC LIMIT 1`, env, name))
}

// ListReleases returns the releases of name in e's environment, newest
// first; an empty, non-nil slice when there are none.
func (e *Env) ListReleases(ctx context.Context, name string) ([]registry.Release, error) {
	rows, err := e.s.rdb.QueryContext(ctx, `SELECT `+releaseColumns+` FROM releases
		WHERE environment = $1 AND name = $2 ORDER BY id DESC`, e.env, name)
	if err != nil {
		return nil, dbError("list releases", err)
	}
	return collect(rows, "list releases", scanRelease)
}

func scanRelease(sc scanner) (registry.Release, error) {
	var (
		r                 registry.Release
		manifest, created string
		previous          sql.NullInt64
	)
	if err := sc.Scan(&r.ID, &r.Environment, &r.Name, &r.Version, &manifest, &r.Action, &r.Source,
		&previous, &r.Actor, &r.Reason, &r.GateRunID, &created); err != nil {
		return registry.Release{}, err
	}
	r.PreviousID = previous.Int64
	var err error
	if r.ManifestDigest, err = v1.NewHash(manifest); err != nil {
		return registry.Release{}, err
	}
	if r.CreatedAt, err = parseTime(created); err != nil {
		return registry.Release{}, err
	}
	return r, nil
}

// Promotion is what one promotion commits into its target environment.
type Promotion struct {
	// Version is the version as the target now holds it: Environment is
	// the target, Signatures are the ones to store with it.
	Version registry.VersionRecord
	// Evidence travels with the version (Environment is the target).
	Evidence []registry.Evidence
	// Release records the promotion: Action must be
	// registry.ReleasePromotion; ID and PreviousID are assigned by the store.
	Release registry.Release
	// Event is appended to the target's audit trail.
	Event audit.Event
}

// CommitPromotion commits p into e's environment in one transaction, so
// that a promoted version never appears without its release and audit
// event. Every record in p must belong to e's environment and name the same
// name, version and manifest digest (an Internal error otherwise).
//
// The version follows CommitVersion's rules: it is inserted, or an existing
// row with the same manifest digest is accepted; if the target holds
// name@version with another digest, the result is an Exists error with code
// version_exists and nothing at all is written (no release, no evidence, no
// audit event). A version is promoted into an environment at most once:
//   - no promotion release of it exists: the version, its signatures, the
//     evidence (documents already recorded are left as they are), the
//     release and p.Event are written, and the result is (release, true,
//     nil), the release carrying its assigned ID and PreviousID (the id of
//     the name's current release, 0 when there is none);
//   - one exists: an idempotent repeat, (existing, false, nil); only
//     p.Event is appended.
//
// Concurrent promotions, in any number of processes, agree on one release:
// a partial unique index on promotions decides. Release writers of one name
// are serialised (PostgreSQL: a transaction-scoped advisory lock; SQLite:
// its single writer), so that each release's PreviousID is the release it
// superseded.
func (e *Env) CommitPromotion(ctx context.Context, p Promotion) (registry.Release, bool, error) {
	if err := e.checkPromotion(p); err != nil {
		return registry.Release{}, false, err
	}
	rel := p.Release
	rel.ID, rel.PreviousID = 0, 0
	rel.CreatedAt = normTime(rel.CreatedAt)
	p.Event.Environment = e.env

	var created bool
	err := e.s.inTx(ctx, func(tx *sql.Tx) error {
		// First, before any row lock: the lock orders whole transactions.
		if err := e.s.lockReleases(ctx, tx, e.env, rel.Name); err != nil {
			return err
		}
		if _, _, err := commitVersionTx(ctx, tx, e.env, p.Version); err != nil {
			return err
		}
		var err error
		if created, err = insertRelease(ctx, tx, &rel); err != nil {
			return err
		}
		if created {
			if err := insertSignatures(ctx, tx, e.env, p.Version.ManifestDigest, p.Version.Signatures); err != nil {
				return err
			}
			for _, ev := range p.Evidence {
				if _, _, err := insertEvidence(ctx, tx, ev); err != nil {
					return err
				}
			}
		} else {
			// An earlier promotion of this version committed: it wrote all
			// of the above already.
			existing, err := scanRelease(tx.QueryRowContext(ctx, `SELECT `+releaseColumns+` FROM releases
				WHERE environment = $1 AND name = $2 AND version = $3 AND action = 'promotion'`,
				e.env, rel.Name, rel.Version))
			if err != nil {
				return dbError("get release", err)
			}
			rel = existing
		}
		if _, err := e.s.insertAudit(ctx, tx, p.Event); err != nil {
			return dbError("append audit", err)
		}
		return nil
	})
	if err != nil {
		return registry.Release{}, false, err
	}
	return rel, created, nil
}

// checkPromotion refuses a promotion whose parts disagree with e or with
// each other: the service layer should never build one.
func (e *Env) checkPromotion(p Promotion) error {
	v, r := p.Version, p.Release
	if v.Environment != e.env || r.Environment != e.env {
		return internalf("commit promotion: version for %q, release for %q through handle for %q", v.Environment, r.Environment, e.env)
	}
	if r.Action != registry.ReleasePromotion {
		return internalf("commit promotion: release action %q, want %q", r.Action, registry.ReleasePromotion)
	}
	if r.Name != v.Name || r.Version != v.Version || r.ManifestDigest != v.ManifestDigest {
		return internalf("commit promotion: release of %s@%s (%s) for version %s@%s (%s)",
			r.Name, r.Version, r.ManifestDigest, v.Name, v.Version, v.ManifestDigest)
	}
	for _, ev := range p.Evidence {
		if ev.Environment != e.env || ev.Name != v.Name || ev.Version != v.Version || ev.ManifestDigest != v.ManifestDigest {
			return internalf("commit promotion: evidence of %s %s@%s (%s) for version %s@%s (%s) in %s",
				ev.Environment, ev.Name, ev.Version, ev.ManifestDigest, v.Name, v.Version, v.ManifestDigest, e.env)
		}
		if err := checkEvidence(ev); err != nil {
			return err
		}
	}
	return nil
}

// lockReleases serialises, until tx ends, the transactions that append
// releases of name in env. Every release writer must call it first in its
// transaction. SQLite needs nothing: a write transaction there already
// holds the database's only write lock (BEGIN IMMEDIATE).
func (s *Store) lockReleases(ctx context.Context, tx *sql.Tx, env, name string) error {
	if s.driver != DriverPostgres {
		return nil
	}
	// The two-key form: its key space is apart from goose's bigint lock.
	// A hash collision only serialises two names needlessly.
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))`,
		"stagegate.releases:"+env, name); err != nil {
		return dbError("lock releases", err)
	}
	return nil
}

// insertRelease appends rel, filling in its ID and PreviousID (the id of the
// name's current release), unless rel is a promotion and that version has
// been promoted already; it reports whether rel was inserted. The caller
// must hold lockReleases.
func insertRelease(ctx context.Context, tx querier, rel *registry.Release) (bool, error) {
	var (
		id       int64
		previous sql.NullInt64
	)
	err := tx.QueryRowContext(ctx, `INSERT INTO releases (environment, name, version, manifest_digest,
			action, source, previous_id, actor, reason, gate_run_id, created_at)
		VALUES ($1, $2, $3, $4, $5, $6,
			(SELECT MAX(id) FROM releases WHERE environment = $7 AND name = $8),
			$9, $10, $11, $12)
		ON CONFLICT (environment, name, version) WHERE action = 'promotion' DO NOTHING
		RETURNING id, previous_id`,
		rel.Environment, rel.Name, rel.Version, rel.ManifestDigest.String(), rel.Action, rel.Source,
		rel.Environment, rel.Name,
		rel.Actor, rel.Reason, rel.GateRunID, formatTime(rel.CreatedAt)).Scan(&id, &previous)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil // ON CONFLICT: returned nothing
	}
	if err != nil {
		return false, dbError("insert release", err)
	}
	rel.ID, rel.PreviousID = id, previous.Int64
	return true, nil
}

// optionalHash stores an unset digest as "".
func optionalHash(h v1.Hash) string {
	if h == (v1.Hash{}) {
		return ""
	}
	return h.String()
}

// collect scans every row with scan; an empty, non-nil slice when there are
// none. It closes rows.
func collect[T any](rows *sql.Rows, op string, scan func(scanner) (T, error)) ([]T, error) {
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, dbError(op, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError(op, err)
	}
	return out, nil
}
