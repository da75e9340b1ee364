package metadata

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The metadata side of the publish/gc handshake (internal/hygiene GC has
// the ordering argument). A publish writes its intent and commits it
// before it reads the lease and the tombstones; gc takes the lease and
// commits its tombstones before it reads the intents. Every statement
// here is its own transaction, so each write is visible to every read
// that starts after it returned (on SQLite, reads go through the reader
// pool, which in WAL mode sees every transaction committed before the
// read began).

// WriteIntent records a publish attempt's intent: the digests it is about
// to commit a version naming.
func (e *Env) WriteIntent(ctx context.Context, id string, digests []v1.Hash, at time.Time) error {
	var b strings.Builder
	for _, d := range digests {
		b.WriteString(d.Hex)
		b.WriteByte('\n')
	}
	_, err := e.s.db.ExecContext(ctx, `INSERT INTO gc_intents (environment, id, digests, created_ns) VALUES ($1, $2, $3, $4)`,
		e.env, id, b.String(), at.UnixNano())
	return dbError("write intent", err)
}

// DeleteIntent removes an intent whose publish committed or gave up.
func (e *Env) DeleteIntent(ctx context.Context, id string) error {
	_, err := e.s.db.ExecContext(ctx, `DELETE FROM gc_intents WHERE environment = $1 AND id = $2`, e.env, id)
	return dbError("delete intent", err)
}

// GCLease reports whether a gc holds the environment's lease, and since
// when.
func (e *Env) GCLease(ctx context.Context) (held bool, since time.Time, err error) {
	rows, err := e.s.rdb.QueryContext(ctx, `SELECT since_ns FROM gc_leases WHERE environment = $1`, e.env)
	if err != nil {
		return false, time.Time{}, dbError("read gc lease", err)
	}
	defer rows.Close()
	if !rows.Next() {
		return false, time.Time{}, dbError("read gc lease", rows.Err())
	}
	var ns int64
	if err := rows.Scan(&ns); err != nil {
		return false, time.Time{}, dbError("read gc lease", err)
	}
	return true, time.Unix(0, ns), nil
}

// Tombstoned returns those of hexes (sha256 hex digests) gc has a
// tombstone on.
func (e *Env) Tombstoned(ctx context.Context, hexes []string) ([]string, error) {
	var out []string
	for _, h := range hexes {
		var one int
		err := e.s.rdb.QueryRowContext(ctx, `SELECT 1 FROM gc_tombstones WHERE environment = $1 AND digest = $2`, e.env, h).Scan(&one)
		switch {
		case err == nil:
			out = append(out, h)
		case errors.Is(err, sql.ErrNoRows):
		default:
			return nil, dbError("read tombstone", err)
		}
	}
	return out, nil
}

// TakeGCLease takes the environment's gc lease; false when another gc
// holds it (or one crashed holding it).
func (e *Env) TakeGCLease(ctx context.Context, since time.Time) (bool, error) {
	res, err := e.s.db.ExecContext(ctx, `INSERT INTO gc_leases (environment, since_ns) VALUES ($1, $2) ON CONFLICT (environment) DO NOTHING`,
		e.env, since.UnixNano())
	if err != nil {
		return false, dbError("take gc lease", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, dbError("take gc lease", err)
	}
	return n == 1, nil
}

// ReleaseGCLease drops the environment's gc lease.
func (e *Env) ReleaseGCLease(ctx context.Context) error {
	_, err := e.s.db.ExecContext(ctx, `DELETE FROM gc_leases WHERE environment = $1`, e.env)
	return dbError("release gc lease", err)
}

// WriteTombstones records gc's tombstones on hexes, in one transaction.
func (e *Env) WriteTombstones(ctx context.Context, hexes []string) error {
	return e.s.inTx(ctx, func(tx *sql.Tx) error {
		for _, h := range hexes {
			if _, err := tx.ExecContext(ctx, `INSERT INTO gc_tombstones (environment, digest) VALUES ($1, $2) ON CONFLICT (environment, digest) DO NOTHING`,
				e.env, h); err != nil {
				return dbError("write tombstone", err)
			}
		}
		return nil
	})
}

// DeleteTombstones removes every tombstone of the environment: under the
// lease, all of them are the running gc's (or a failed run's).
func (e *Env) DeleteTombstones(ctx context.Context) error {
	_, err := e.s.db.ExecContext(ctx, `DELETE FROM gc_tombstones WHERE environment = $1`, e.env)
	return dbError("delete tombstones", err)
}

// LiveIntents returns the digests (sha256 hex) named by intents written at
// or after since.
func (e *Env) LiveIntents(ctx context.Context, since time.Time) ([]string, error) {
	rows, err := e.s.rdb.QueryContext(ctx, `SELECT digests FROM gc_intents WHERE environment = $1 AND created_ns >= $2`, e.env, since.UnixNano())
	if err != nil {
		return nil, dbError("read intents", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var digests string
		if err := rows.Scan(&digests); err != nil {
			return nil, dbError("read intents", err)
		}
		out = append(out, strings.Fields(digests)...)
	}
	return out, dbError("read intents", rows.Err())
}

// DeleteIntentsBefore removes intents written before t (no longer
// honoured: their publishes gave up) and returns how many.
func (e *Env) DeleteIntentsBefore(ctx context.Context, t time.Time) (int64, error) {
	res, err := e.s.db.ExecContext(ctx, `DELETE FROM gc_intents WHERE environment = $1 AND created_ns < $2`, e.env, t.UnixNano())
	if err != nil {
		return 0, dbError("delete old intents", err)
	}
	n, err := res.RowsAffected()
	return n, dbError("delete old intents", err)
}
