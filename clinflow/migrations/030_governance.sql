-- Governance: business roles in the database, audit access segmented by role, reviewer keys.
--
-- Business roles are NOLOGIN group roles; a person's login role is made a member of one
-- (e.g. CREATE ROLE jdoe LOGIN IN ROLE clinflow_qa). What each may read of the audit trail is
-- enforced here, by row-level security and column privileges, so it holds at a SQL prompt too:
--   clinflow_qa                  every event, every column, read-only
--   clinflow_regulatory_affairs  compliance events, every column, read-only
--   clinflow_clinical_ops        data and operational events, every column, read-only
--   clinflow_devops              operational events only, and never `details` or `reason`
--                                (document contents and free text stay out of reach)
-- No role may UPDATE or DELETE audit entries (no privilege, and the 001 trigger refuses
-- everyone). The application role clinflow_app keeps INSERT/SELECT on every row, which the
-- chain needs. The table owner (migrations/administration) is not subject to RLS.
-- A role added later that must read audit_log needs its own policy below, in a new migration.

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['clinflow_clinical_ops', 'clinflow_regulatory_affairs',
                             'clinflow_qa', 'clinflow_devops'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN NOINHERIT', r);
        END IF;
        EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', r);
    END LOOP;
END
$$;

-- Event categories as data: the longest matching action prefix decides.
CREATE TABLE IF NOT EXISTS audit_action_categories (
    prefix      text PRIMARY KEY,
    category    text NOT NULL CHECK (category IN ('operational', 'compliance', 'data')),
    description text NOT NULL DEFAULT ''
);

INSERT INTO audit_action_categories (prefix, category, description) VALUES
    ('stack.',             'operational', 'local stack and infrastructure'),
    ('worker.',            'operational', 'worker start, stop, drain'),
    ('workflow.',          'operational', 'workflow lifecycle'),
    ('schedule.',          'operational', 'Temporal schedules'),
    ('dlq.',               'operational', 'dead-letter queue'),
    ('archive.',           'operational', 'audit archive sealing'),
    ('audit.',             'operational', 'audit chain maintenance and verification'),
    ('retention.',         'operational', 'retention runs'),
    ('intake.',            'operational', 'intake of files'),
    ('auth.',              'compliance',  'access tokens, refused attempts, reviewer keys'),
    ('access.',            'compliance',  'access to raw contents (presigned URLs, downloads)'),
    ('codec.',             'compliance',  'payload decoding for the Temporal UI'),
    ('esign.',             'compliance',  'electronic signatures'),
    ('signature.',         'compliance',  'document signature validation'),
    ('compliance.',        'compliance',  'compliance blocks and checks'),
    ('packet.review.',     'compliance',  'reviewer decisions (signed)'),
    ('packet.decision.',   'compliance',  'reviewer decisions and refused decision attempts'),
    ('packet.blocked',     'compliance',  'packets held for review'),
    ('packet.gap',         'compliance',  'checklist gaps'),
    ('retention.purge',    'compliance',  'crypto-shredding and deletion records'),
    ('purge.',             'compliance',  'crypto-shredding and deletion records'),
    ('residency.',         'compliance',  'cross-region transfers'),
    ('packet.',            'data',        'site packet processing'),
    ('document.',          'data',        'document processing'),
    ('clinical.',          'data',        'clinical data batches'),
    ('batch.',             'data',        'clinical data batches'),
    ('fhir.',              'data',        'FHIR loads'),
    ('hl7.',               'data',        'HL7 v2 loads'),
    ('quarantine.',        'data',        'quarantined records')
ON CONFLICT (prefix) DO NOTHING;

-- Unknown actions fall in 'data', the most restricted category.
CREATE OR REPLACE FUNCTION audit_action_category(p_action text) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    SELECT coalesce(
        (SELECT category FROM public.audit_action_categories
          WHERE starts_with(p_action, prefix)
          ORDER BY length(prefix) DESC LIMIT 1),
        'data')
$$;
REVOKE ALL ON FUNCTION audit_action_category(text) FROM PUBLIC;

ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;

CREATE POLICY audit_app_select ON audit_log FOR SELECT TO clinflow_app USING (true);
CREATE POLICY audit_app_insert ON audit_log FOR INSERT TO clinflow_app WITH CHECK (true);
CREATE POLICY audit_qa_select ON audit_log FOR SELECT TO clinflow_qa USING (true);
CREATE POLICY audit_ra_select ON audit_log FOR SELECT TO clinflow_regulatory_affairs
    USING (audit_action_category(action) = 'compliance');
CREATE POLICY audit_ops_select ON audit_log FOR SELECT TO clinflow_clinical_ops
    USING (audit_action_category(action) IN ('data', 'operational'));
CREATE POLICY audit_devops_select ON audit_log FOR SELECT TO clinflow_devops
    USING (audit_action_category(action) = 'operational');

GRANT SELECT ON audit_log TO clinflow_qa, clinflow_regulatory_affairs, clinflow_clinical_ops;
GRANT SELECT (chain, seq, entry_id, occurred_at, actor, action, location, subject_ref,
              payload_sha256, key_id)
    ON audit_log TO clinflow_devops;
GRANT SELECT ON audit_chain_head TO clinflow_qa, clinflow_devops;

GRANT SELECT ON audit_action_categories
    TO clinflow_app, clinflow_qa, clinflow_regulatory_affairs, clinflow_clinical_ops,
       clinflow_devops;
GRANT EXECUTE ON FUNCTION audit_action_category(text)
    TO clinflow_app, clinflow_qa, clinflow_regulatory_affairs, clinflow_clinical_ops,
       clinflow_devops;

-- Views that read through the caller's own privileges and policies (security_invoker).
-- audit_events: no details, no reason; for every role, DevOps included.
CREATE OR REPLACE VIEW audit_events WITH (security_invoker = true) AS
    SELECT chain, seq, entry_id, occurred_at, actor, action,
           audit_action_category(action) AS category, location, subject_ref, payload_sha256
      FROM audit_log;
-- audit_events_detailed: everything plus the category; for roles allowed to see details.
CREATE OR REPLACE VIEW audit_events_detailed WITH (security_invoker = true) AS
    SELECT chain, seq, entry_id, occurred_at, actor, action,
           audit_action_category(action) AS category, location, reason, subject_ref,
           payload_sha256, details
      FROM audit_log;

GRANT SELECT ON audit_events
    TO clinflow_app, clinflow_qa, clinflow_regulatory_affairs, clinflow_clinical_ops,
       clinflow_devops;
GRANT SELECT ON audit_events_detailed
    TO clinflow_app, clinflow_qa, clinflow_regulatory_affairs, clinflow_clinical_ops;

-- Reviewers' Ed25519 public keys for electronic signatures (21 CFR Part 11).
CREATE TABLE IF NOT EXISTS reviewer_keys (
    key_id        text PRIMARY KEY,                 -- hex of SHA-256(raw public key)[:16 bytes]
    user_id       text NOT NULL,
    public_key    text NOT NULL,                    -- PEM SubjectPublicKeyInfo
    algorithm     text NOT NULL DEFAULT 'Ed25519' CHECK (algorithm = 'Ed25519'),
    registered_at timestamptz NOT NULL DEFAULT now(),
    registered_by text NOT NULL,
    revoked_at    timestamptz
);
CREATE INDEX IF NOT EXISTS reviewer_keys_user ON reviewer_keys (user_id);

-- Keys are registered and may be revoked; never rewritten or deleted.
GRANT SELECT, INSERT ON reviewer_keys TO clinflow_app;
GRANT UPDATE (revoked_at) ON reviewer_keys TO clinflow_app;
GRANT SELECT ON reviewer_keys TO clinflow_qa, clinflow_regulatory_affairs;
