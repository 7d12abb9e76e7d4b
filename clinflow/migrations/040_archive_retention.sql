-- Governance: sealed audit archive segments, escrowed object data keys (crypto-shredding),
-- and the purge rights retention needs.

-- One row per sealed segment of an audit chain, written once, never changed. Each row anchors
-- the object in write-once storage (key + version id + digest) and chains to the previous
-- segment (prev_segment_sha256), so a removed or replaced segment is visible from either side.
CREATE TABLE audit_archive_segments (
    chain               text        NOT NULL,
    segment_no          bigint      NOT NULL CHECK (segment_no >= 1),
    first_seq           bigint      NOT NULL,
    last_seq            bigint      NOT NULL,
    entry_count         integer     NOT NULL,
    bucket              text        NOT NULL,
    object_key          text        NOT NULL,
    version_id          text,
    segment_sha256      text        NOT NULL,
    prev_segment_sha256 text,
    last_mac            bytea       NOT NULL,
    signature           text        NOT NULL,
    signing_key_id      text        NOT NULL,
    lock_mode           text        NOT NULL CHECK (lock_mode IN ('object-lock', 'bucket-policy')),
    retain_until        timestamptz,
    sealed_at           timestamptz NOT NULL,
    PRIMARY KEY (chain, segment_no),
    UNIQUE (chain, first_seq),
    CHECK (last_seq >= first_seq AND entry_count = last_seq - first_seq + 1)
);

CREATE FUNCTION audit_archive_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_archive_segments is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_archive_no_update BEFORE UPDATE OR DELETE ON audit_archive_segments
    FOR EACH ROW EXECUTE FUNCTION audit_archive_refuse_change();
CREATE TRIGGER audit_archive_no_truncate BEFORE TRUNCATE ON audit_archive_segments
    FOR EACH STATEMENT EXECUTE FUNCTION audit_archive_refuse_change();

REVOKE ALL ON audit_archive_segments FROM PUBLIC;
GRANT SELECT, INSERT ON audit_archive_segments TO clinflow_app;

-- Escrowed data keys of envelope-v2 objects. Destroying a key (wrapped_key := NULL) makes every
-- copy of its object unreadable; the row stays as the record of what was destroyed and when.
CREATE TABLE object_data_keys (
    key_id         text        PRIMARY KEY,
    bucket         text        NOT NULL,
    object_key     text        NOT NULL,
    kek_id         text        NOT NULL,
    wrap_nonce     bytea,
    wrapped_key    bytea,
    created_at     timestamptz NOT NULL DEFAULT now(),
    destroyed_at   timestamptz,
    destroyed_by   text,
    destroy_reason text,
    CHECK ((destroyed_at IS NULL) = (wrapped_key IS NOT NULL AND wrap_nonce IS NOT NULL))
);

CREATE INDEX object_data_keys_object ON object_data_keys (bucket, object_key);

-- A destroyed key stays destroyed; key rows are never deleted; only destruction may change one.
CREATE FUNCTION object_data_keys_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' THEN
        RAISE EXCEPTION 'object_data_keys rows are never deleted: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF OLD.destroyed_at IS NOT NULL THEN
        RAISE EXCEPTION 'data key % was destroyed at %; it cannot change', OLD.key_id,
            OLD.destroyed_at USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.key_id <> OLD.key_id OR NEW.bucket <> OLD.bucket OR NEW.object_key <> OLD.object_key
        OR NEW.kek_id <> OLD.kek_id OR NEW.created_at <> OLD.created_at
        OR NEW.destroyed_at IS NULL THEN
        RAISE EXCEPTION 'data key %: only destruction may change an escrowed key', OLD.key_id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER object_data_keys_guard BEFORE UPDATE OR DELETE ON object_data_keys
    FOR EACH ROW EXECUTE FUNCTION object_data_keys_guard();

REVOKE ALL ON object_data_keys FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON object_data_keys TO clinflow_app;

-- Retention purges expired rows of these tables (every purge is recorded on the audit chain).
GRANT DELETE ON quarantine, dlq TO clinflow_app;
