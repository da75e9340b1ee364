package metadata

import (
	"context"
	"database/sql"
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
			return registry.CodeVersionNotFound.Errorf("%s@%s not found in %s", ev.Name, ev.Version, e.env)
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
