package metadata

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/registry"
)

const selectKey = `SELECT id, name, environment, role, owner, token_hash, created_at, created_by,
	created_by_owner, revoked_at FROM api_keys`

// CreateKey stores k and appends ev (in e's environment) in one
// transaction. k.Environment must be e's environment (an Internal error
// otherwise). A key whose id or token hash is already stored, in any
// environment, is an Exists error with code registry.CodeKeyExists.Name, and nothing is
// written.
func (e *Env) CreateKey(ctx context.Context, k auth.Key, ev audit.Event) error {
	if k.Environment != e.env {
		return internalf("create key: key for environment %q through handle for %q", k.Environment, e.env)
	}
	if k.ID == "" || k.TokenHash == "" {
		return internalf("create key: id and token hash are required")
	}
	var revoked any
	if k.RevokedAt != nil {
		revoked = formatTime(*k.RevokedAt)
	}
	ev.Environment = e.env
	return e.s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO api_keys
			(id, name, environment, role, owner, token_hash, created_at, created_by, created_by_owner, revoked_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING`,
			k.ID, k.Name, k.Environment, string(k.Role), k.Owner, k.TokenHash, formatTime(k.CreatedAt),
			k.CreatedBy, k.CreatedByOwner, revoked)
		if err != nil {
			return dbError("create key", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return dbError("create key", err)
		} else if n == 0 {
			return registry.CodeKeyExists.Errorf("an API key with this id or token already exists")
		}
		if _, err := e.s.insertAudit(ctx, tx, ev); err != nil {
			return dbError("append audit", err)
		}
		return nil
	})
}

// ListKeys returns every key of e's environment, revoked ones included,
// oldest first.
func (e *Env) ListKeys(ctx context.Context) ([]auth.Key, error) {
	rows, err := e.s.rdb.QueryContext(ctx, selectKey+` WHERE environment = $1 ORDER BY created_at, id`, e.env)
	if err != nil {
		return nil, dbError("list keys", err)
	}
	return collect(rows, "list keys", scanKey)
}

// RevokeKey marks key id of e's environment revoked at at, and appends ev
// in the same transaction. Revoking a revoked key succeeds, keeps the
// first revocation time, and still appends ev. A key that does not exist in
// e's environment (even if it exists in another) is a NotFound error, and
// nothing is written.
func (e *Env) RevokeKey(ctx context.Context, id string, at time.Time, ev audit.Event) error {
	ev.Environment = e.env
	return e.s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE api_keys SET revoked_at = $1
			WHERE environment = $2 AND id = $3 AND revoked_at IS NULL`,
			formatTime(at), e.env, id)
		if err != nil {
			return dbError("revoke key", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return dbError("revoke key", err)
		}
		if n == 0 {
			var one int
			err := tx.QueryRowContext(ctx, `SELECT 1 FROM api_keys WHERE environment = $1 AND id = $2`,
				e.env, id).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return registry.CodeNotFound.Errorf("no API key %q in %s", id, e.env)
			}
			if err != nil {
				return dbError("revoke key", err)
			}
		}
		if _, err := e.s.insertAudit(ctx, tx, ev); err != nil {
			return dbError("append audit", err)
		}
		return nil
	})
}

func scanKey(sc scanner) (auth.Key, error) {
	var (
		k             auth.Key
		role, created string
		revoked       sql.NullString
	)
	if err := sc.Scan(&k.ID, &k.Name, &k.Environment, &role, &k.Owner, &k.TokenHash, &created,
		&k.CreatedBy, &k.CreatedByOwner, &revoked); err != nil {
		return auth.Key{}, err
	}
	k.Role = auth.Role(role)
	var err error
	if k.CreatedAt, err = parseTime(created); err != nil {
		return auth.Key{}, err
	}
	if k.RevokedAt, err = parseNullTime(revoked); err != nil {
		return auth.Key{}, err
	}
	return k, nil
}
