-- Signatures over a version's manifest (the environment's key) or its files
-- (the publisher's CI key), and whether the CI signatures were trusted.
-- Keyed by manifest digest: a signature is about content, whatever the name.

-- +goose Up
ALTER TABLE versions ADD COLUMN ci_signature TEXT NOT NULL DEFAULT 'absent';

CREATE TABLE signatures (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    environment     TEXT NOT NULL,
    manifest_digest TEXT NOT NULL,
    role            TEXT NOT NULL, -- environment | ci
    key_id          TEXT NOT NULL,
    subject         TEXT NOT NULL, -- "manifest" or a file path
    signature       TEXT NOT NULL, -- base64, as cosign sign-blob writes it
    trusted         BOOLEAN NOT NULL,
    created_at      TEXT NOT NULL,
    CONSTRAINT signatures_unique UNIQUE (environment, manifest_digest, role, key_id, subject)
);

-- +goose Down
DROP TABLE signatures;
ALTER TABLE versions DROP COLUMN ci_signature;
