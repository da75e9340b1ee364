package metadata

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/registry"
)

const auditColumns = `id, occurred_at, environment, actor, credential_id, action, target, name, version,
	outcome, error_code, request_id, details, seq, prev_hash, hash`

// AppendAudit records ev, an event of e's environment, and returns its id.
// An ev.Environment other than e's (including "") is an Internal error and
// nothing is written: the handle does not relabel events it was not meant
// to receive. A zero ev.Time means now.
func (e *Env) AppendAudit(ctx context.Context, ev audit.Event) (int64, error) {
	if ev.Environment != e.env {
		return 0, internalf("append audit: event for environment %q through handle for %q", ev.Environment, e.env)
	}
	return e.s.appendAudit(ctx, ev)
}

// appendAudit appends ev through its environment's group commit
// (groupcommit.go).
func (s *Store) appendAudit(ctx context.Context, ev audit.Event) (int64, error) {
	job := &chainJob{ev: ev}
	s.chained(ctx, ev.Environment, job)
	if job.err != nil {
		return 0, dbError("append audit", job.err)
	}
	return job.id, nil
}

// insertAudit appends ev to the hash chain of ev.Environment inside tx and
// returns its id. Every audit write goes through it, so that every event is
// chained. ev.ID, Seq, PrevHash, Hash, Name and Version are ignored: the
// database assigns the id, the chain the rest, and Name and Version come
// from ev.Target.
//
// It must be the last statement of its transaction that takes a lock: it
// serialises the environment's audit writers until tx ends (PostgreSQL: a
// transaction-scoped advisory lock taken before the id is allocated;
// SQLite: its single writer), so that each event links to the one
// committed before it, and ids grow in commit order within an environment.
// That is what keeps id cursors and exports from skipping an event that
// commits late.
func (s *Store) insertAudit(ctx context.Context, tx *sql.Tx, ev audit.Event) (int64, error) {
	head, err := s.lockedHead(ctx, tx, ev.Environment)
	if err != nil {
		return 0, err
	}
	id, _, err := s.insertLinked(ctx, tx, ev, head)
	return id, err
}

// lockedHead takes env's audit lock for the rest of tx (see insertAudit)
// and returns the head of its chain, which the lock keeps current.
func (s *Store) lockedHead(ctx context.Context, tx *sql.Tx, env string) (audit.Head, error) {
	if err := s.lockAudit(ctx, tx, env); err != nil {
		return audit.Head{}, err
	}
	head, err := auditHead(ctx, tx, env)
	if err != nil {
		return audit.Head{}, dbError("append audit", err)
	}
	return head, nil
}

// insertLinked appends ev after head, which must be the current head of
// ev.Environment's chain under its lock (lockedHead), and returns the id
// and the new head.
func (s *Store) insertLinked(ctx context.Context, tx *sql.Tx, ev audit.Event, head audit.Head) (int64, audit.Head, error) {
	ev, args, err := s.auditRow(ev, head)
	if err != nil {
		return 0, head, err
	}
	var id int64
	err = tx.QueryRowContext(ctx, `INSERT INTO audit_events (`+auditInsertColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id`, args...).Scan(&id)
	if err != nil {
		return 0, head, dbError("append audit", err)
	}
	return id, audit.Head{Seq: ev.Seq, Hash: ev.Hash}, nil
}

// auditInsertColumns are the columns an append writes, in auditRow's order.
const auditInsertColumns = `occurred_at, environment, actor, credential_id, action, target, name, version,
	outcome, error_code, request_id, details, seq, prev_hash, hash`

// auditRow completes ev (time, name and version from the target), links it
// after head, and returns it with the values of auditInsertColumns.
func (s *Store) auditRow(ev audit.Event, head audit.Head) (audit.Event, []any, error) {
	if ev.Time.IsZero() {
		ev.Time = s.now()
	}
	ev.Name, ev.Version = targetArtifact(ev.Target)
	ev = ev.Normalize()
	ev = ev.Link(head)
	details, err := toJSON(ev.Details)
	if err != nil {
		return ev, nil, internalf("append audit: encode details: %v", err)
	}
	return ev, []any{formatTime(ev.Time), ev.Environment, ev.Actor, ev.CredentialID, ev.Action, ev.Target,
		ev.Name, ev.Version, string(ev.Outcome), ev.ErrorCode, ev.RequestID, details,
		ev.Seq, ev.PrevHash, ev.Hash}, nil
}

// lockAudit serialises, until tx ends, the transactions that append to
// env's audit chain. SQLite needs nothing: a write transaction there holds
// the database's only write lock (BEGIN IMMEDIATE).
func (s *Store) lockAudit(ctx context.Context, tx *sql.Tx, env string) error {
	if s.driver != DriverPostgres {
		return nil
	}
	// Two-key form, apart from goose's bigint lock and from lockReleases'
	// keys (whose first key hashes "stagegate.releases:<env>").
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('stagegate.audit'), hashtext($1))`, env); err != nil {
		return dbError("lock audit", err)
	}
	return nil
}

// auditHead returns the last event of env's chain; the zero Head when it
// has none.
func auditHead(ctx context.Context, q querier, env string) (audit.Head, error) {
	var h audit.Head
	err := q.QueryRowContext(ctx, `SELECT seq, hash FROM audit_events
		WHERE environment = $1 AND seq > 0 ORDER BY seq DESC LIMIT 1`, env).Scan(&h.Seq, &h.Hash)
	if errors.Is(err, sql.ErrNoRows) {
		return audit.Head{}, nil
	}
	return h, err
}

// targetArtifact returns the artifact a "name@version" target names: the
// name when it is a valid one, and the canonical version when it parses.
// Other targets (key names, digests) name none.
func targetArtifact(target string) (name, version string) {
	i := strings.LastIndexByte(target, '@')
	if i < 0 {
		return "", ""
	}
	if _, err := registry.ParseName(target[:i]); err != nil {
		return "", ""
	}
	if v, err := registry.ParseVersion(target[i+1:]); err == nil {
		version = v.Canonical
	}
	return target[:i], version
}

// AuditHead returns the last event of e's audit chain (the zero Head when
// the environment has no events): what a checkpoint signs.
func (e *Env) AuditHead(ctx context.Context) (audit.Head, error) {
	h, err := auditHead(ctx, e.s.rdb, e.env)
	if err != nil {
		return audit.Head{}, dbError("audit head", err)
	}
	return h, nil
}

// auditWhere builds the WHERE clause of f for env's events; Limit and
// BeforeID are the caller's.
type auditWhere struct {
	where []string
	args  []any
}

// add appends a condition; cond has one %d per value, each replaced by
// that value's argument position.
func (w *auditWhere) add(cond string, vals ...any) {
	pos := make([]any, len(vals))
	for i, v := range vals {
		w.args = append(w.args, v)
		pos[i] = len(w.args)
	}
	w.where = append(w.where, fmt.Sprintf(cond, pos...))
}

func (w *auditWhere) String() string { return strings.Join(w.where, " AND ") }

func auditFilter(env string, f audit.Filter) *auditWhere {
	w := &auditWhere{}
	w.add("environment = $%d", env)
	if f.Action != "" {
		w.add("action = $%d", f.Action)
	}
	if prefix, ok := strings.CutSuffix(f.Target, "*"); ok {
		if prefix != "" {
			// substr counts characters in both dialects, and unlike LIKE it
			// is case-sensitive everywhere and has no wildcards to escape.
			w.add("substr(target, 1, $%d) = $%d", utf8.RuneCountInString(prefix), prefix)
		}
	} else if f.Target != "" {
		w.add("target = $%d", f.Target)
	}
	if f.Name != "" {
		w.add("name = $%d", f.Name)
	}
	if f.Version != "" {
		w.add("version = $%d", f.Version)
	}
	if f.Actor != "" {
		w.add("actor = $%d", f.Actor)
	}
	if f.Outcome != "" {
		w.add("outcome = $%d", string(f.Outcome))
	}
	if f.RequestID != "" {
		w.add("request_id = $%d", f.RequestID)
	}
	if !f.Since.IsZero() {
		w.add("occurred_at >= $%d", formatTime(normTime(f.Since)))
	}
	if !f.Until.IsZero() {
		w.add("occurred_at < $%d", formatTime(normTime(f.Until)))
	}
	return w
}

// QueryAudit returns e's audit events that match every non-zero field of f,
// newest first (by id), at most f.EffectiveLimit() of them. Since is
// inclusive and Until exclusive; a Target ending in '*' matches by prefix;
// Name and Version match exactly; BeforeID returns only events older than
// that id, to page backwards. Paging with the last id of each page as the
// next BeforeID neither skips nor repeats an event, however many are
// appended meanwhile: within an environment ids grow in commit order
// (insertAudit).
func (e *Env) QueryAudit(ctx context.Context, f audit.Filter) ([]audit.Event, error) {
	w := auditFilter(e.env, f)
	if f.BeforeID > 0 {
		w.add("id < $%d", f.BeforeID)
	}
	w.args = append(w.args, f.EffectiveLimit())
	query := fmt.Sprintf(`SELECT %s FROM audit_events WHERE %s ORDER BY id DESC LIMIT $%d`,
		auditColumns, w, len(w.args))
	if !f.Since.IsZero() && !f.Until.IsZero() {
		// A window with both ends is read from a time index and sorted,
		// at a cost that grows with the window (a day at 1M events a year:
		// ~3 ms). Left to itself PostgreSQL walks back from the newest
		// event through the primary key, expecting the window's events to
		// be spread evenly over ids when they sit together, maybe a year
		// back: ~240 ms at 1M events, growing with the trail (see the plans
		// in migration 00006). "id + 0" is the same order but no index's,
		// so that walk is never chosen; the inner query reads only ids,
		// which the time indexes hold, and the outer one fetches n rows.
		// A one-sided range keeps the walk, which meets its newest events
		// at once.
		query = fmt.Sprintf(`SELECT %s FROM audit_events WHERE id IN (
			SELECT id FROM audit_events WHERE %s ORDER BY id + 0 DESC LIMIT $%d) ORDER BY id DESC`,
			auditColumns, w, len(w.args))
	}
	rows, err := e.s.rdb.QueryContext(ctx, query, w.args...)
	if err != nil {
		return nil, dbError("query audit", err)
	}
	return collect(rows, "query audit", scanAudit)
}

// exportBatch is how many events an export reads per query: its memory
// bound, whatever the size of the trail.
const exportBatch = 500

// ExportAudit calls fn with every event of e's environment that matches f,
// oldest first (by id), and stops at fn's first error, which it returns.
// f.Limit and f.BeforeID are ignored. The export ends at the newest event
// committed when it starts, so a busy trail cannot keep it going; and
// since ids grow in commit order within an environment, it includes every
// event up to there. It reads in batches of a few hundred rows: memory
// stays constant at any size, and no query or connection is held while fn
// runs (a slow reader on the other end of an HTTP stream holds nothing in
// the database).
func (e *Env) ExportAudit(ctx context.Context, f audit.Filter, fn func(audit.Event) error) error {
	return e.s.exportAudit(ctx, e.env, f, fn)
}

// ExportUnboundAudit is ExportAudit for the trail of refusals that no
// environment owns (environment ""), which no Env handle reads.
func (s *Store) ExportUnboundAudit(ctx context.Context, f audit.Filter, fn func(audit.Event) error) error {
	return s.exportAudit(ctx, "", f, fn)
}

func (s *Store) exportAudit(ctx context.Context, env string, f audit.Filter, fn func(audit.Event) error) error {
	var last int64
	if err := s.rdb.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM audit_events WHERE environment = $1`,
		env).Scan(&last); err != nil {
		return dbError("export audit", err)
	}
	w := auditFilter(env, f)
	w.add("id <= $%d", last)
	w.add("id > $%d", int64(0))
	after := len(w.args) // the position of the cursor argument
	w.args = append(w.args, exportBatch)
	query := fmt.Sprintf(`SELECT %s FROM audit_events WHERE %s ORDER BY id LIMIT $%d`, auditColumns, w, len(w.args))
	for {
		rows, err := s.rdb.QueryContext(ctx, query, w.args...)
		if err != nil {
			return dbError("export audit", err)
		}
		batch, err := collect(rows, "export audit", scanAudit)
		if err != nil {
			return err
		}
		for _, ev := range batch {
			if err := fn(ev); err != nil {
				return err
			}
		}
		if len(batch) < exportBatch {
			return nil
		}
		w.args[after-1] = batch[len(batch)-1].ID
	}
}

func scanAudit(sc scanner) (audit.Event, error) {
	var (
		ev                   audit.Event
		at, outcome, details string
	)
	if err := sc.Scan(&ev.ID, &at, &ev.Environment, &ev.Actor, &ev.CredentialID, &ev.Action,
		&ev.Target, &ev.Name, &ev.Version, &outcome, &ev.ErrorCode, &ev.RequestID, &details,
		&ev.Seq, &ev.PrevHash, &ev.Hash); err != nil {
		return audit.Event{}, err
	}
	ev.Outcome = audit.Outcome(outcome)
	var err error
	if ev.Time, err = parseTime(at); err != nil {
		return audit.Event{}, err
	}
	if err := fromJSON(details, &ev.Details); err != nil {
		return audit.Event{}, err
	}
	return ev, nil
}

// sealLegacyAudit chains the events written before the chain existed
// (migration 00006 leaves their hash empty), oldest first, each
// environment's under its audit lock, so that every event is covered. It
// runs at Open, before the store serves: afterwards there is nothing left
// to seal and it costs one index probe. The append-only trigger allows
// exactly this update (chain columns of an unsealed row, content
// unchanged).
func (s *Store) sealLegacyAudit(ctx context.Context) error {
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT environment FROM audit_events WHERE hash = ''`)
	if err != nil {
		return dbError("seal audit", err)
	}
	envs, err := collect(rows, "seal audit", func(sc scanner) (string, error) {
		var env string
		return env, sc.Scan(&env)
	})
	if err != nil {
		return err
	}
	for _, env := range envs {
		if err := s.inTx(ctx, func(tx *sql.Tx) error { return s.sealEnv(ctx, tx, env) }); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) sealEnv(ctx context.Context, tx *sql.Tx, env string) error {
	if err := s.lockAudit(ctx, tx, env); err != nil {
		return err
	}
	head, err := auditHead(ctx, tx, env)
	if err != nil {
		return dbError("seal audit", err)
	}
	for {
		rows, err := tx.QueryContext(ctx, `SELECT `+auditColumns+` FROM audit_events
			WHERE environment = $1 AND hash = '' ORDER BY id LIMIT $2`, env, exportBatch)
		if err != nil {
			return dbError("seal audit", err)
		}
		batch, err := collect(rows, "seal audit", scanAudit)
		if err != nil {
			return err
		}
		for _, ev := range batch {
			// The content is hashed as stored: the trigger refuses any
			// change to it.
			ev.Name, ev.Version = targetArtifact(ev.Target)
			ev = ev.Link(head)
			if _, err := tx.ExecContext(ctx, `UPDATE audit_events SET name = $1, version = $2, seq = $3,
				prev_hash = $4, hash = $5 WHERE id = $6 AND hash = ''`,
				ev.Name, ev.Version, ev.Seq, ev.PrevHash, ev.Hash, ev.ID); err != nil {
				return dbError("seal audit", err)
			}
			head = audit.Head{Seq: ev.Seq, Hash: ev.Hash}
		}
		if len(batch) < exportBatch {
			return nil
		}
	}
}
