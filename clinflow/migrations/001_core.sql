-- Core schema: the application role and the append-only audit trail.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'clinflow_app') THEN
        CREATE ROLE clinflow_app NOLOGIN;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO clinflow_app;

-- One row per chain: the serialisation point for appenders and the chain's anchor.
CREATE TABLE audit_chain_head (
    chain      text PRIMARY KEY,
    seq        bigint NOT NULL,
    mac        bytea NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE audit_log (
    chain          text NOT NULL,
    seq            bigint NOT NULL,
    entry_id       text NOT NULL,
    occurred_at    timestamptz NOT NULL,
    actor          text NOT NULL,
    action         text NOT NULL,
    location       text NOT NULL,
    reason         text,
    subject_ref    text,
    payload_sha256 text,
    details        jsonb NOT NULL DEFAULT '{}'::jsonb,
    key_id         text NOT NULL,
    prev_mac       bytea NOT NULL,
    mac            bytea NOT NULL,
    PRIMARY KEY (chain, seq),
    UNIQUE (chain, entry_id)
);

CREATE INDEX audit_log_subject ON audit_log (subject_ref);
CREATE INDEX audit_log_action ON audit_log (action, occurred_at);

-- The database itself refuses to change history, whoever asks.
CREATE FUNCTION audit_log_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();

REVOKE ALL ON audit_log FROM PUBLIC;
GRANT SELECT, INSERT ON audit_log TO clinflow_app;
GRANT SELECT, INSERT, UPDATE ON audit_chain_head TO clinflow_app;
