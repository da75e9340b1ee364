package metadata

import (
	"context"
	"database/sql"
	"errors"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/registry"
)

const releaseColumns = `id, environment, name, version, manifest_digest, action, source,
	previous_id, actor, reason, gate_run_id, created_at, number, triggered_by, forced`

// CurrentRelease returns the release of name that e's environment serves:
// its newest (highest id). Returns a NotFound error (code not_found) when
// name has never been released there.
func (e *Env) CurrentRelease(ctx context.Context, name string) (registry.Release, error) {
	rel, err := currentRelease(ctx, e.s.rdb, e.env, name)
	if errors.Is(err, sql.ErrNoRows) {
		return registry.Release{}, registry.CodeNotFound.Errorf("%s has no release in %s", name, e.env)
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
		&previous, &r.Actor, &r.Reason, &r.GateRunID, &created, &r.Number, &r.TriggeredBy, &r.Forced); err != nil {
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
func (e *Env) CommitPromotion(ctx context.Context, p registry.PromotionCommit) (registry.Release, bool, error) {
	if err := e.checkPromotion(p); err != nil {
		return registry.Release{}, false, err
	}
	rel := p.Release
	rel.ID, rel.PreviousID, rel.Number = 0, 0, 0
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
func (e *Env) checkPromotion(p registry.PromotionCommit) error {
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

// insertRelease appends rel, filling in its ID, PreviousID (the id of the
// name's current release) and Number (the current release's plus one),
// unless rel is a promotion and that version has been promoted already; it
// reports whether rel was inserted. The caller must hold lockReleases, so
// that the current release read here is still current at the insert.
//
// A release is never dated before the one it supersedes: CreatedAt is taken
// before the transaction, and a writer that waited for the lock may hold an
// older time than the release committed meanwhile. Keeping CreatedAt in
// chain order is what makes "the release current at T" (ReleasesAt) the
// newest release created at or before T.
func insertRelease(ctx context.Context, tx querier, rel *registry.Release) (bool, error) {
	var (
		previous sql.NullInt64
		number   int64 = 1
	)
	cur, err := currentRelease(ctx, tx, rel.Environment, rel.Name)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return false, dbError("current release", err)
	default:
		previous = sql.NullInt64{Int64: cur.ID, Valid: true}
		number = cur.Number + 1
		if rel.CreatedAt.Before(cur.CreatedAt) {
			rel.CreatedAt = cur.CreatedAt
		}
	}
	var id int64
	err = tx.QueryRowContext(ctx, `INSERT INTO releases (environment, name, version, manifest_digest,
			action, source, previous_id, actor, reason, gate_run_id, created_at, number, triggered_by, forced)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
		ON CONFLICT (environment, name, version) WHERE action = 'promotion' DO NOTHING
		RETURNING id`,
		rel.Environment, rel.Name, rel.Version, rel.ManifestDigest.String(), rel.Action, rel.Source, previous,
		rel.Actor, rel.Reason, rel.GateRunID, formatTime(rel.CreatedAt), number, rel.TriggeredBy, rel.Forced).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil // ON CONFLICT: returned nothing
	}
	if err != nil {
		return false, dbError("insert release", err)
	}
	rel.ID, rel.PreviousID, rel.Number = id, previous.Int64, number
	return true, nil
}
