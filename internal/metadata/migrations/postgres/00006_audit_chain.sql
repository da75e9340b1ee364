-- Tamper evidence and append-only enforcement for the audit trail and
-- releases, and the columns exact audit queries need. Keep in step with
-- ../sqlite/00006_audit_chain.sql.

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
ALTER TABLE audit_events ADD COLUMN prev_hash TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE audit_events ADD COLUMN hash TEXT COLLATE "C" NOT NULL DEFAULT '';

-- One event per chain position: even a writer that skipped the per-
-- environment lock could not fork a chain. Also the index of the head.
CREATE UNIQUE INDEX audit_events_env_seq ON audit_events (environment, seq) WHERE seq > 0;
-- Rows still to seal; empty once the store has started after this migration.
CREATE INDEX audit_events_unsealed ON audit_events (environment, id) WHERE hash = '';

-- The typical queries, newest first (ORDER BY id DESC LIMIT n), at 1M
-- events over a year, 1,000 names and 50 actors (bench_test.go, EXPLAIN
-- ANALYZE). By name (by actor alike, through audit_events_env_actor_id),
-- an index walk that stops after n rows:
--   Limit (actual rows=100)
--     ->  Index Scan Backward using audit_events_env_name_id on audit_events (actual rows=100)
--           Index Cond: ((environment = 'prod') AND (name = 'model-0421'))
--   Execution Time: 0.489 ms
-- A time window (QueryAudit: ids by "id + 0" in a subquery, see there)
-- reads the window's ids from a time index, sorts them, fetches n rows:
--   Sort  ->  Nested Loop
--     ->  HashAggregate  ->  Limit  ->  Sort (Sort Key: ((id + 0)) DESC, top-N heapsort)
--           ->  Index Only Scan using audit_events_env_time on audit_events (actual rows=2740)
--                 Index Cond: ((environment = 'prod') AND (occurred_at >= '2025-06-01T…') AND (occurred_at < '2025-06-02T…'))
--                 Heap Fetches: 0
--     ->  Index Scan using audit_events_pkey on audit_events (actual rows=1 loops=100)
--   Execution Time: 1.481 ms
-- where the plain query walks the primary key back from the newest event:
--   Index Scan Backward using audit_events_pkey (Rows Removed by Filter: 583561)
--   Execution Time: 239.383 ms
-- An actor over a month: Index Only Scan using audit_events_env_actor_time.
CREATE INDEX audit_events_env_name_id ON audit_events (environment, name, id);
CREATE INDEX audit_events_env_name_version_id ON audit_events (environment, name, version, id);
CREATE INDEX audit_events_env_actor_id ON audit_events (environment, actor, id);
-- An actor with most of the events (CI) queried over a time range: the
-- range of this index and a top-n sort, not a walk back through all of
-- the actor's events.
CREATE INDEX audit_events_env_actor_time ON audit_events (environment, actor, occurred_at, id);
CREATE INDEX audit_events_env_time ON audit_events (environment, occurred_at, id);

-- Append-only, enforced by the database: UPDATE, DELETE and TRUNCATE of
-- audit events and releases are refused whoever asks, the service included.
-- The one UPDATE allowed is sealing a row written before the chain existed
-- (hash '' → its chain columns), which changes none of its content.
-- +goose StatementBegin
CREATE FUNCTION stagegate_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'stagegate: % is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION stagegate_audit_seal_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.hash = '' AND NEW.hash <> '' AND NEW.seq > 0
        AND NEW.id = OLD.id AND NEW.occurred_at = OLD.occurred_at AND NEW.environment = OLD.environment
        AND NEW.actor = OLD.actor AND NEW.credential_id = OLD.credential_id AND NEW.action = OLD.action
        AND NEW.target = OLD.target AND NEW.outcome = OLD.outcome AND NEW.error_code = OLD.error_code
        AND NEW.request_id = OLD.request_id AND NEW.details = OLD.details THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'stagegate: % is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION stagegate_audit_seal_only();
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION stagegate_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION stagegate_append_only();
CREATE TRIGGER releases_no_update BEFORE UPDATE ON releases
    FOR EACH ROW EXECUTE FUNCTION stagegate_append_only();
CREATE TRIGGER releases_no_delete BEFORE DELETE ON releases
    FOR EACH ROW EXECUTE FUNCTION stagegate_append_only();
CREATE TRIGGER releases_no_truncate BEFORE TRUNCATE ON releases
    FOR EACH STATEMENT EXECUTE FUNCTION stagegate_append_only();

-- +goose Down
DROP TRIGGER releases_no_truncate ON releases;
DROP TRIGGER releases_no_delete ON releases;
DROP TRIGGER releases_no_update ON releases;
DROP TRIGGER audit_events_no_truncate ON audit_events;
DROP TRIGGER audit_events_no_delete ON audit_events;
DROP TRIGGER audit_events_no_update ON audit_events;
DROP FUNCTION stagegate_audit_seal_only();
DROP FUNCTION stagegate_append_only();
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
