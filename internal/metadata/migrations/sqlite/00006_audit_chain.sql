-- Tamper evidence and append-only enforcement for the audit trail and
-- releases, and the columns exact audit queries need. Keep in step with
-- ../postgres/00006_audit_chain.sql.

-- +goose Up
-- The artifact a "name@version" target names (version canonical), so that
-- queries match them exactly instead of by substring of target.
ALTER TABLE audit_events ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_events ADD COLUMN version TEXT NOT NULL DEFAULT '';
-- Each environment's events form a hash chain (package audit): seq is the
-- position in it (1, 2, …), prev_hash the hash of event seq-1 ('' for the
-- first), hash the sha256 of the event's canonical form. Rows written
-- before this migration have seq 0 and hash '' until the store seals them
-- at its next start (Store.sealLegacyAudit).
ALTER TABLE audit_events ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE audit_events ADD COLUMN prev_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_events ADD COLUMN hash TEXT NOT NULL DEFAULT '';

-- One event per chain position: even a writer that skipped the write lock
-- could not fork a chain. Also the index of the head.
CREATE UNIQUE INDEX audit_events_env_seq ON audit_events (environment, seq) WHERE seq > 0;
-- Rows still to seal; empty once the store has started after this migration.
CREATE INDEX audit_events_unsealed ON audit_events (environment, id) WHERE hash = '';

-- The typical queries, newest first (ORDER BY id DESC LIMIT n); see the
-- PostgreSQL migration for the plans. SQLite plans them alike (EXPLAIN
-- QUERY PLAN at 1M events, bench_test.go):
--   by name      SEARCH audit_events USING INDEX audit_events_env_name_id (environment=? AND name=?)
--   time window  SEARCH audit_events USING INTEGER PRIMARY KEY (rowid=?)
--                LIST SUBQUERY 1
--                SEARCH audit_events USING COVERING INDEX audit_events_env_time (environment=? AND occurred_at>? AND occurred_at<?)
CREATE INDEX audit_events_env_name_id ON audit_events (environment, name, id);
CREATE INDEX audit_events_env_name_version_id ON audit_events (environment, name, version, id);
CREATE INDEX audit_events_env_actor_id ON audit_events (environment, actor, id);
-- An actor with most of the events (CI) queried over a time range: the
-- range of this index and a top-n sort, not a walk back through all of
-- the actor's events.
CREATE INDEX audit_events_env_actor_time ON audit_events (environment, actor, occurred_at, id);
CREATE INDEX audit_events_env_time ON audit_events (environment, occurred_at, id);

-- Append-only, enforced by the database: UPDATE and DELETE of audit events
-- and releases are refused whoever asks, the service included. The one
-- UPDATE allowed is sealing a row written before the chain existed (hash
-- '' → its chain columns), which changes none of its content.
-- +goose StatementBegin
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
WHEN NOT (OLD.hash = '' AND NEW.hash <> '' AND NEW.seq > 0
    AND NEW.id = OLD.id AND NEW.occurred_at = OLD.occurred_at AND NEW.environment = OLD.environment
    AND NEW.actor = OLD.actor AND NEW.credential_id = OLD.credential_id AND NEW.action = OLD.action
    AND NEW.target = OLD.target AND NEW.outcome = OLD.outcome AND NEW.error_code = OLD.error_code
    AND NEW.request_id = OLD.request_id AND NEW.details = OLD.details)
BEGIN
    SELECT RAISE(ABORT, 'stagegate: audit_events is append-only: UPDATE refused');
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'stagegate: audit_events is append-only: DELETE refused');
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER releases_no_update BEFORE UPDATE ON releases
BEGIN
    SELECT RAISE(ABORT, 'stagegate: releases is append-only: UPDATE refused');
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER releases_no_delete BEFORE DELETE ON releases
BEGIN
    SELECT RAISE(ABORT, 'stagegate: releases is append-only: DELETE refused');
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER releases_no_delete;
DROP TRIGGER releases_no_update;
DROP TRIGGER audit_events_no_delete;
DROP TRIGGER audit_events_no_update;
DROP INDEX audit_events_env_time;
DROP INDEX audit_events_env_actor_time;
DROP INDEX audit_events_env_actor_id;
DROP INDEX audit_events_env_name_version_id;
DROP INDEX audit_events_env_name_id;
DROP INDEX audit_events_unsealed;
DROP INDEX audit_events_env_seq;
ALTER TABLE audit_events DROP COLUMN hash;
ALTER TABLE audit_events DROP COLUMN prev_hash;
ALTER TABLE audit_events DROP COLUMN seq;
ALTER TABLE audit_events DROP COLUMN version;
ALTER TABLE audit_events DROP COLUMN name;
