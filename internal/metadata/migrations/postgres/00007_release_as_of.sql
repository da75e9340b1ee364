-- Releases as of a time at scale, and rollbacks forced past a freeze
-- window. Keep in step with ../sqlite/00007_release_as_of.sql.

-- +goose Up
-- "The release of each name current at T" (ReleasesAt, plans in
-- ../../rollbacks.go): the names released by T are the first releases
-- (number 1) created by T, one entry per name in this partial index...
CREATE INDEX releases_first ON releases (environment, name, created_at) WHERE number = 1;
-- ...and each name's release current at T is one probe of this one: the
-- newest created at or before T, ties (a release dated like the one it
-- superseded, see insertRelease) broken by number.
CREATE INDEX releases_env_name_time ON releases (environment, name, created_at, number);
-- An admin forced the rollback past the environment's freeze windows
-- (rollback --force); the audit event records it too.
ALTER TABLE releases ADD COLUMN forced BOOLEAN NOT NULL DEFAULT FALSE;

-- +goose Down
ALTER TABLE releases DROP COLUMN forced;
DROP INDEX releases_env_name_time;
DROP INDEX releases_first;
