-- Identities behind keys and approvals, so that approvals are counted per
-- person rather than per key name. Keep in step with
-- ../sqlite/00004_owners.sql.
--
-- Rows written before this migration get '': such keys keep reading,
-- publishing and promoting where no approvals are required, but cannot
-- approve or mint keys that need an owner, and fail any approvals check as
-- promoters; approvals recorded without an identity never count.

-- +goose Up
-- The person or system accountable for the key (an email, or an OIDC
-- subject), and the identity that minted it.
ALTER TABLE api_keys ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN created_by_owner TEXT NOT NULL DEFAULT '';
-- The approving key's owner and the identity that minted that key.
ALTER TABLE approvals ADD COLUMN identity TEXT NOT NULL DEFAULT '';
ALTER TABLE approvals ADD COLUMN key_created_by TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE approvals DROP COLUMN key_created_by;
ALTER TABLE approvals DROP COLUMN identity;
ALTER TABLE api_keys DROP COLUMN created_by_owner;
ALTER TABLE api_keys DROP COLUMN owner;
