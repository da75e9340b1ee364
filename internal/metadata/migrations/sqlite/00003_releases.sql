-- Evidence, approvals, releases and gate runs. Keep in step with
-- ../postgres/00003_releases.sql.

-- +goose Up
-- Evidence documents attached to a version; the bytes are a blob in the
-- environment's bucket. Immutable per (version, type, digest).
CREATE TABLE evidence (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    environment     TEXT   NOT NULL,
    name            TEXT   NOT NULL,
    version         TEXT   NOT NULL,
    manifest_digest TEXT   NOT NULL, -- the version's manifest
    type            TEXT   NOT NULL, -- junit | metrics | provenance | ...
    digest          TEXT   NOT NULL, -- the document's blob
    size            BIGINT NOT NULL,
    media_type      TEXT   NOT NULL,
    created_at      TEXT NOT NULL,
    created_by      TEXT   NOT NULL,
    -- Also the (environment, name, version) index that listing uses.
    CONSTRAINT evidence_unique UNIQUE (environment, name, version, type, digest)
);

-- Approvals are appended, never changed: re-approving adds a row, and gates
-- count distinct, unexpired actors.
CREATE TABLE approvals (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    environment     TEXT NOT NULL, -- the environment the version may enter
    name            TEXT NOT NULL,
    version         TEXT NOT NULL,
    manifest_digest TEXT NOT NULL,
    actor           TEXT NOT NULL,
    credential_id   TEXT NOT NULL,
    role            TEXT NOT NULL,
    comment         TEXT NOT NULL,
    created_at      TEXT NOT NULL
);
CREATE INDEX approvals_env_name_version ON approvals (environment, name, version, id);

-- Releases are append-only; the current release of a name is the one with
-- the highest id. Each release names its predecessor (NULL for the first),
-- and no two releases of a name share one, so the history of a name is a
-- single chain.
CREATE TABLE releases (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    environment     TEXT NOT NULL,
    name            TEXT NOT NULL,
    version         TEXT NOT NULL,
    manifest_digest TEXT NOT NULL,
    action          TEXT NOT NULL CHECK (action IN ('promotion', 'rollback')),
    source          TEXT NOT NULL, -- environment promoted from; '' for a rollback
    previous_id     INTEGER NULL REFERENCES releases (id),
    actor           TEXT NOT NULL,
    reason          TEXT NOT NULL,
    gate_run_id     TEXT NOT NULL, -- '' when no gate run was recorded
    created_at      TEXT NOT NULL
);
CREATE INDEX releases_env_name_id ON releases (environment, name, id);
-- A version is promoted into an environment at most once; rollbacks to it
-- may repeat. Concurrent promotions of one version agree on one release.
CREATE UNIQUE INDEX releases_promotion_once ON releases (environment, name, version)
    WHERE action = 'promotion';
CREATE UNIQUE INDEX releases_chain ON releases (environment, name, COALESCE(previous_id, 0));

-- One stored gate evaluation (a promotion's or a dry run's). Ids are unique
-- across environments.
CREATE TABLE gate_runs (
    id              TEXT PRIMARY KEY,
    environment     TEXT    NOT NULL, -- target
    source          TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    version         TEXT    NOT NULL,
    manifest_digest TEXT    NOT NULL,
    policy_digest   TEXT    NOT NULL,
    passed          BOOLEAN NOT NULL,
    dry_run         BOOLEAN NOT NULL,
    actor           TEXT    NOT NULL,
    started_at      TEXT NOT NULL,
    duration_ms     BIGINT  NOT NULL,
    report          TEXT    NOT NULL -- JSON, as given
);
CREATE INDEX gate_runs_env_name_version ON gate_runs (environment, name, version, started_at);

-- +goose Down
DROP TABLE gate_runs;
DROP TABLE releases;
DROP TABLE approvals;
DROP TABLE evidence;
