-- Initial schema: the versions index, the audit trail and API keys.
-- Every table carries an environment column and every query filters on it.
-- Timestamps are UTC text, "2006-01-02T15:04:05.000000Z": fixed width, so
-- text order is time order. JSON columns hold Go values as encoding/json
-- writes them. Keep in step with ../postgres/00001_init.sql.

-- +goose Up
CREATE TABLE versions (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    environment      TEXT    NOT NULL,
    name             TEXT    NOT NULL,
    version          TEXT    NOT NULL, -- canonical semver
    original_version TEXT    NOT NULL,
    kind             TEXT    NOT NULL,
    manifest_digest  TEXT    NOT NULL, -- "sha256:<hex>"
    manifest_size    BIGINT  NOT NULL,
    files            TEXT    NOT NULL, -- JSON []registry.File
    labels           TEXT    NOT NULL, -- JSON map[string]string
    source_commit    TEXT    NOT NULL,
    created_at       TEXT    NOT NULL,
    created_by       TEXT    NOT NULL,
    -- Immutability of name@version per environment; also the (environment, name) index.
    CONSTRAINT versions_env_name_version UNIQUE (environment, name, version)
);
-- Releases, signatures and evidence name versions by manifest digest.
CREATE INDEX versions_env_digest ON versions (environment, manifest_digest);

CREATE TABLE audit_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    occurred_at   TEXT NOT NULL,
    environment   TEXT NOT NULL, -- '' only for refusals before an environment was known
    actor         TEXT NOT NULL,
    credential_id TEXT NOT NULL,
    action        TEXT NOT NULL,
    target        TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    error_code    TEXT NOT NULL,
    request_id    TEXT NOT NULL,
    details       TEXT NOT NULL -- JSON map[string]string
);
-- Queries are per environment, newest first, paged by id.
CREATE INDEX audit_events_env_id ON audit_events (environment, id);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    environment TEXT NOT NULL,
    role        TEXT NOT NULL,
    token_hash  TEXT NOT NULL, -- hex sha256 of the bearer token
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    revoked_at  TEXT NULL,
    CONSTRAINT api_keys_token_hash UNIQUE (token_hash)
);
CREATE INDEX api_keys_env_created ON api_keys (environment, created_at);

-- +goose Down
DROP TABLE api_keys;
DROP TABLE audit_events;
DROP TABLE versions;
