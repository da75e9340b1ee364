package metadata

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/stagegate/stagegate/registry"
)

// CommitRollback appends c.Release, a rollback of e's environment, and
// c.Event in one transaction, under the same per-name lock as promotions,
// so that a rollback and a promotion of one name racing each other still
// form one chain: each release supersedes exactly the one current when it
// committed, and its Number is that release's plus one.
//
// Under the lock, with the name's current release in hand:
//   - current already serves c.Release's version and manifest: nothing is
//     appended but c.Event, and the result is (current, false, nil) — two
//     rollbacks to one version (a retry, or a repeated alert) make one
//     release;
//   - c.ExpectedCurrentID is set and another release is current: a
//     Conflict error with code release_changed, and nothing is written;
//   - otherwise the release is appended with c.Event, and the result is the
//     release with its ID, PreviousID and Number, and true.
//
// The version must have been released in e's environment before (a
// Conflict error with code not_eligible otherwise, nothing written); a
// release of another environment, or with an action other than rollback,
// is an Internal error.
func (e *Env) CommitRollback(ctx context.Context, c registry.RollbackCommit) (registry.Release, bool, error) {
	rel := c.Release
	switch {
	case rel.Environment != e.env:
		return registry.Release{}, false, internalf("commit rollback: release for %q through handle for %q", rel.Environment, e.env)
	case rel.Action != registry.ReleaseRollback:
		return registry.Release{}, false, internalf("commit rollback: release action %q, want %q", rel.Action, registry.ReleaseRollback)
	case rel.Source != "":
		return registry.Release{}, false, internalf("commit rollback: a rollback has no source environment, got %q", rel.Source)
	}
	rel.ID, rel.PreviousID, rel.Number = 0, 0, 0
	rel.CreatedAt = normTime(rel.CreatedAt)
	c.Event.Environment = e.env

	var created bool
	err := e.s.inTx(ctx, func(tx *sql.Tx) error {
		// First, before any row lock: the lock orders whole transactions.
		if err := e.s.lockReleases(ctx, tx, e.env, rel.Name); err != nil {
			return err
		}
		var released int
		err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM releases
			WHERE environment = $1 AND name = $2 AND version = $3 AND manifest_digest = $4`,
			e.env, rel.Name, rel.Version, rel.ManifestDigest.String()).Scan(&released)
		if err != nil {
			return dbError("eligible release", err)
		}
		if released == 0 {
			return registry.CodeNotEligible.Errorf("%s@%s (%s) was never released in %s", rel.Name, rel.Version, rel.ManifestDigest, e.env)
		}
		cur, err := currentRelease(ctx, tx, e.env, rel.Name)
		if err != nil {
			return dbError("current release", err)
		}
		switch {
		case cur.Version == rel.Version && cur.ManifestDigest == rel.ManifestDigest:
			rel = cur
		case c.ExpectedCurrentID != 0 && cur.ID != c.ExpectedCurrentID:
			return registry.CodeReleaseChanged.Errorf("release %d of %s in %s (%s, by %s) became current while the rollback ran; look again and retry",
				cur.Number, cur.Name, e.env, cur.Version, cur.Actor).
				WithDetails(map[string]any{"current": cur})
		default:
			if created, err = insertRelease(ctx, tx, &rel); err != nil {
				return err
			}
			if !created {
				return internalf("commit rollback: release of %s@%s was not inserted", rel.Name, rel.Version)
			}
		}
		if _, err := e.s.insertAudit(ctx, tx, c.Event); err != nil {
			return dbError("append audit", err)
		}
		return nil
	})
	if err != nil {
		return registry.Release{}, false, err
	}
	return rel, created, nil
}

// PageReleases returns releases of name in e's environment, newest first:
// at most p.EffectiveLimit() of them, numbered below p.Before when it is
// positive. An empty, non-nil slice when there are none.
func (e *Env) PageReleases(ctx context.Context, name string, p registry.ReleasePage) ([]registry.Release, error) {
	query, args := `SELECT `+releaseColumns+` FROM releases WHERE environment = $1 AND name = $2`, []any{e.env, name}
	if p.Before > 0 {
		args = append(args, p.Before)
		query += fmt.Sprintf(` AND number < $%d`, len(args))
	}
	args = append(args, p.EffectiveLimit())
	query += fmt.Sprintf(` ORDER BY number DESC LIMIT $%d`, len(args))
	rows, err := e.s.rdb.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, dbError("page releases", err)
	}
	return collect(rows, "page releases", scanRelease)
}

// ReleasesAt returns, for every name released in e's environment at or
// before at (or only for name, when it is not ""), the release that was
// current at that instant: the newest created at or before it. Names first
// released after at are absent. Sorted by name; an empty, non-nil slice
// when there are none.
func (e *Env) ReleasesAt(ctx context.Context, at time.Time, name string) ([]registry.Release, error) {
	query, args := releasesAtAllSQLite, []any{e.env, formatTime(normTime(at))}
	switch {
	case name != "":
		query, args = releaseAtOne, append(args, name)
	case e.s.driver == DriverPostgres:
		query = releasesAtAllPostgres
	}
	rows, err := e.s.rdb.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, dbError("releases at", err)
	}
	return collect(rows, "releases at", scanRelease)
}

// The release of a name current at $2 is its newest created at or before
// $2: releases of a name are appended in chain order with non-decreasing
// CreatedAt (insertRelease clamps a late writer's time to its
// predecessor's), and number breaks the ties that clamping makes. One
// probe of releases_env_name_time finds it.
const releaseAtOne = `SELECT ` + releaseColumns + ` FROM releases
	WHERE environment = $1 AND name = $3 AND created_at <= $2
	ORDER BY created_at DESC, number DESC LIMIT 1`

// releasesAtAll… is that probe for every name, by driver: the names come
// from releases_first, the first release (number 1) of each name, which
// the migrations keep in a partial index of one entry per name; then one
// probe of releases_env_name_time per name, as a LATERAL join on
// PostgreSQL and a correlated subquery on SQLite, which has no LATERAL.
// A GROUP BY over the environment's releases read all of them up to at
// instead. At 100,000 releases over 1,000 names (bench_test.go), backend
// CPU per call on PostgreSQL: 32 ms for the GROUP BY, 24 ms with the names
// from a recursive skip scan of releases_env_name_id (1,000 more probes),
// 11 ms this way. PostgreSQL (EXPLAIN ANALYZE, on a loaded machine):
//
//	Nested Loop (actual rows=1000 loops=1)
//	  ->  Index Only Scan using releases_first on releases f (actual rows=1000 loops=1)
//	        Index Cond: ((environment = 'prod') AND (created_at <= '2025-06-01T00:00:00.000000Z'))
//	        Heap Fetches: 0
//	  ->  Memoize (actual rows=1 loops=1000)
//	        ->  Limit (actual rows=1 loops=1000)
//	              ->  Index Scan Backward using releases_env_name_time on releases (actual rows=1 loops=1000)
//	                    Index Cond: ((environment = 'prod') AND (name = f.name) AND (created_at <= '2025-06-01T00:00:00.000000Z'))
//	Execution Time: 43.557 ms
//
// SQLite (EXPLAIN QUERY PLAN):
//
//	SEARCH releases USING INTEGER PRIMARY KEY (rowid=?)
//	LIST SUBQUERY 2
//	SEARCH f USING COVERING INDEX releases_first (environment=?)
//	CORRELATED SCALAR SUBQUERY 1
//	SEARCH r USING COVERING INDEX releases_env_name_time (environment=? AND name=? AND created_at<?)
//	USE TEMP B-TREE FOR ORDER BY
const (
	releasesAtAllPostgres = `SELECT r.* FROM releases AS f CROSS JOIN LATERAL (
			SELECT ` + releaseColumns + ` FROM releases
			WHERE environment = $1 AND name = f.name AND created_at <= $2
			ORDER BY created_at DESC, number DESC LIMIT 1) AS r
		WHERE f.environment = $1 AND f.number = 1 AND f.created_at <= $2
		ORDER BY f.name`
	releasesAtAllSQLite = `SELECT ` + releaseColumns + ` FROM releases WHERE id IN (
			SELECT (SELECT id FROM releases AS r
				WHERE r.environment = $1 AND r.name = f.name AND r.created_at <= $2
				ORDER BY r.created_at DESC, r.number DESC LIMIT 1)
			FROM releases AS f WHERE f.environment = $1 AND f.number = 1 AND f.created_at <= $2)
		ORDER BY name`
)
