package metadata

import (
	"context"
	"database/sql"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/registry"
)

const approvalColumns = `environment, name, version, manifest_digest, actor, credential_id, identity,
	key_created_by, role, comment, created_at`

// AddApproval appends a, an approval to promote a.Name@a.Version into e's
// environment, and event (in e's environment) in one transaction.
// a.Environment must be e's environment (an Internal error otherwise). The
// version need not exist in e's environment yet. Approvals are never
// deduplicated: approving again later adds a row (refreshing its expiry);
// gates count distinct identities. An approval without an identity could
// never count, so it is refused (Internal: the service checks first).
func (e *Env) AddApproval(ctx context.Context, a registry.Approval, event audit.Event) (registry.Approval, error) {
	if a.Environment != e.env {
		return registry.Approval{}, internalf("add approval: approval for environment %q through handle for %q", a.Environment, e.env)
	}
	if a.Name == "" || a.Version == "" || a.Actor == "" || a.Identity == "" || a.ManifestDigest.Algorithm == "" {
		return registry.Approval{}, internalf("add approval: name, version, manifest digest, actor and identity are required")
	}
	a.CreatedAt = normTime(a.CreatedAt)
	event.Environment = e.env
	err := e.s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO approvals (`+approvalColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
			a.Environment, a.Name, a.Version, a.ManifestDigest.String(), a.Actor, a.CredentialID, a.Identity,
			a.KeyCreatedBy, a.Role, a.Comment, formatTime(a.CreatedAt)); err != nil {
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
		&a.Identity, &a.KeyCreatedBy, &a.Role, &a.Comment, &created); err != nil {
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
