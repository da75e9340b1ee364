package metadata

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/stagegate/stagegate/audit"
)

const auditColumns = `id, occurred_at, environment, actor, credential_id, action, target,
	outcome, error_code, request_id, details`

// AppendAudit records ev, an event of e's environment, and returns its id.
// An ev.Environment other than e's (including "") is an Internal error and
// nothing is written: the handle does not relabel events it was not meant
// to receive. A zero ev.Time means now.
func (e *Env) AppendAudit(ctx context.Context, ev audit.Event) (int64, error) {
	if ev.Environment != e.env {
		return 0, internalf("append audit: event for environment %q through handle for %q", ev.Environment, e.env)
	}
	id, err := e.s.insertAudit(ctx, e.s.db, ev)
	if err != nil {
		return 0, dbError("append audit", err)
	}
	return id, nil
}

// insertAudit appends ev through q (the pool or a transaction). ev.ID is
// ignored: ids are assigned by the database and grow with time.
func (s *Store) insertAudit(ctx context.Context, q querier, ev audit.Event) (int64, error) {
	if ev.Time.IsZero() {
		ev.Time = s.now()
	}
	details, err := toJSON(ev.Details)
	if err != nil {
		return 0, internalf("append audit: encode details: %v", err)
	}
	var id int64
	err = q.QueryRowContext(ctx, `INSERT INTO audit_events (occurred_at, environment, actor,
			credential_id, action, target, outcome, error_code, request_id, details)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id`,
		formatTime(ev.Time), ev.Environment, ev.Actor, ev.CredentialID, ev.Action, ev.Target,
		string(ev.Outcome), ev.ErrorCode, ev.RequestID, details).Scan(&id)
	return id, err
}

// QueryAudit returns e's audit events that match every non-zero field of f,
// newest first (by id), at most f.EffectiveLimit() of them. Since is
// inclusive and Until exclusive; a Target ending in '*' matches by prefix;
// BeforeID returns only events older than that id, to page backwards.
func (e *Env) QueryAudit(ctx context.Context, f audit.Filter) ([]audit.Event, error) {
	var (
		where = []string{"environment = $1"}
		args  = []any{e.env}
	)
	// cond has one %d per argument; each is replaced by that argument's position.
	add := func(cond string, vals ...any) {
		pos := make([]any, len(vals))
		for i, v := range vals {
			args = append(args, v)
			pos[i] = len(args)
		}
		where = append(where, fmt.Sprintf(cond, pos...))
	}
	if f.Action != "" {
		add("action = $%d", f.Action)
	}
	if prefix, ok := strings.CutSuffix(f.Target, "*"); ok {
		if prefix != "" {
			// substr counts characters in both dialects, and unlike LIKE it
			// is case-sensitive everywhere and has no wildcards to escape.
			add("substr(target, 1, $%d) = $%d", utf8.RuneCountInString(prefix), prefix)
		}
	} else if f.Target != "" {
		add("target = $%d", f.Target)
	}
	if f.Actor != "" {
		add("actor = $%d", f.Actor)
	}
	if f.Outcome != "" {
		add("outcome = $%d", string(f.Outcome))
	}
	if f.RequestID != "" {
		add("request_id = $%d", f.RequestID)
	}
	if !f.Since.IsZero() {
		add("occurred_at >= $%d", formatTime(normTime(f.Since)))
	}
	if !f.Until.IsZero() {
		add("occurred_at < $%d", formatTime(normTime(f.Until)))
	}
	if f.BeforeID > 0 {
		add("id < $%d", f.BeforeID)
	}
	args = append(args, f.EffectiveLimit())
	query := fmt.Sprintf(`SELECT %s FROM audit_events WHERE %s ORDER BY id DESC LIMIT $%d`,
		auditColumns, strings.Join(where, " AND "), len(args))

	rows, err := e.s.rdb.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, dbError("query audit", err)
	}
	return collect(rows, "query audit", scanAudit)
}

func scanAudit(sc scanner) (audit.Event, error) {
	var (
		ev                   audit.Event
		at, outcome, details string
	)
	if err := sc.Scan(&ev.ID, &at, &ev.Environment, &ev.Actor, &ev.CredentialID, &ev.Action,
		&ev.Target, &outcome, &ev.ErrorCode, &ev.RequestID, &details); err != nil {
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
