-- Release numbers per environment and name ("release 3 of fraud-detector in
-- prod"), and what triggered a rollback when it was not a person. Keep in
-- step with ../sqlite/00005_release_numbers.sql.

-- +goose Up
-- Assigned with the id, under the per-name release lock: the number of the
-- name's current release plus one.
ALTER TABLE releases ADD COLUMN number BIGINT NOT NULL DEFAULT 0;
-- e.g. "alertmanager:<fingerprint>"; '' for a person's promotion or rollback.
ALTER TABLE releases ADD COLUMN triggered_by TEXT NOT NULL DEFAULT '';
-- Existing releases are numbered in id order, which is their chain order.
UPDATE releases SET number = (SELECT COUNT(*) FROM releases AS r
    WHERE r.environment = releases.environment AND r.name = releases.name AND r.id <= releases.id);
-- One release per number; also the index of history pages (number < cursor).
CREATE UNIQUE INDEX releases_number ON releases (environment, name, number);

-- +goose Down
DROP INDEX releases_number;
ALTER TABLE releases DROP COLUMN triggered_by;
ALTER TABLE releases DROP COLUMN number;
