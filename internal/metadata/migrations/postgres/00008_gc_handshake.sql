-- The publish/gc handshake (internal/hygiene GC) in the metadata store
-- instead of bucket objects: a publish's intent, gc's lease and its
-- tombstones. Each was a storage request of every publish (an intent
-- object, a read of gc/lease); rows are far cheaper. Times are Unix
-- nanoseconds of the writer's clock. Keep in step with
-- ../sqlite/00008_gc_handshake.sql.

-- +goose Up
CREATE TABLE gc_intents (
    environment TEXT   NOT NULL,
    id          TEXT   NOT NULL, -- random, one per publish attempt
    digests     TEXT   NOT NULL, -- the digests it will commit, one a line
    created_ns  BIGINT NOT NULL,
    PRIMARY KEY (environment, id)
);
CREATE INDEX gc_intents_created ON gc_intents (environment, created_ns);
-- At most one gc sweeps an environment at a time.
CREATE TABLE gc_leases (
    environment TEXT   PRIMARY KEY,
    since_ns    BIGINT NOT NULL
);
CREATE TABLE gc_tombstones (
    environment TEXT NOT NULL,
    digest      TEXT NOT NULL, -- sha256 hex
    PRIMARY KEY (environment, digest)
);

-- +goose Down
DROP TABLE gc_tombstones;
DROP TABLE gc_leases;
DROP INDEX gc_intents_created;
DROP TABLE gc_intents;
