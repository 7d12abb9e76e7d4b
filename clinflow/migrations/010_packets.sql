-- Site packets: packets, their documents, validations and findings, the dead-letter queue,
-- reviewer decisions and checklist gaps. Applied once, in order, after 001 (core schema and
-- the clinflow_app role). Every table has a natural idempotency key so retried activities
-- upsert (INSERT ... ON CONFLICT DO NOTHING / DO UPDATE) instead of duplicating rows.

CREATE TABLE IF NOT EXISTS packets (
    packet_id               text PRIMARY KEY,          -- workflow id: packet-<site>-<protocol>-v<version>
    site_id                 text NOT NULL,
    site_number             text,
    protocol_number         text NOT NULL,
    protocol_version        text NOT NULL,
    region                  text NOT NULL,
    country                 char(2),
    target_activation_date  date,
    correlation_id          text,
    status                  text NOT NULL DEFAULT 'RECEIVED',
    outcome                 text CHECK (outcome IN ('VALIDATED', 'VALIDATED_WITH_WARNINGS',
                                'BLOCKED', 'APPROVED', 'REJECTED', 'DEAD_LETTERED', 'INCOMPLETE')),
    manifest                jsonb NOT NULL,
    submitted_at            timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    completed_at            timestamptz,
    UNIQUE (site_id, protocol_number, protocol_version)
);
CREATE INDEX IF NOT EXISTS packets_status_idx ON packets (status);
CREATE INDEX IF NOT EXISTS packets_region_idx ON packets (region);

CREATE TABLE IF NOT EXISTS packet_documents (
    document_key            text PRIMARY KEY,          -- doc-<sha256>-<site>-v<version>
    packet_id               text NOT NULL REFERENCES packets (packet_id),
    sha256                  char(64) NOT NULL,
    site_id                 text NOT NULL,
    protocol_version        text NOT NULL,
    file_name               text NOT NULL,
    s3_bucket               text NOT NULL,
    s3_key                  text NOT NULL,
    size_bytes              bigint NOT NULL CHECK (size_bytes >= 0),
    file_kind               text,                      -- PDF | DOCX | UNSUPPORTED
    declared_type           text,
    doc_type                text,
    classification_score    double precision,
    page_count              integer,
    ocr_pages               integer[] NOT NULL DEFAULT '{}',
    ocr_mean_confidence     double precision,
    extraction              jsonb,
    status                  text NOT NULL DEFAULT 'STORED',
    received_at             timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    UNIQUE (sha256, site_id, protocol_version)
);
CREATE INDEX IF NOT EXISTS packet_documents_packet_idx ON packet_documents (packet_id);

-- One row per document and stage: a replayed or retried validation updates, never adds.
CREATE TABLE IF NOT EXISTS packet_validations (
    validation_id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    packet_id               text NOT NULL REFERENCES packets (packet_id),
    document_key            text NOT NULL REFERENCES packet_documents (document_key),
    stage                   text NOT NULL CHECK (stage IN ('structural', 'semantic')),
    passed                  boolean NOT NULL,
    finding_count           integer NOT NULL DEFAULT 0,
    validated_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (document_key, stage)
);
CREATE INDEX IF NOT EXISTS packet_validations_packet_idx ON packet_validations (packet_id);

-- document_key is NULL for packet-level (cross-document) findings.
CREATE TABLE IF NOT EXISTS packet_findings (
    finding_id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    packet_id               text NOT NULL REFERENCES packets (packet_id),
    document_key            text REFERENCES packet_documents (document_key),
    code                    text NOT NULL,
    category                text NOT NULL CHECK (category IN ('COMPLIANCE_BLOCK',
                                'FATAL_SCHEMA_MISMATCH', 'RECOVERABLE_TIMEOUT', 'WARNING_DEVIATION')),
    message                 text NOT NULL,
    details                 jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at              timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS packet_findings_natural_key
    ON packet_findings (packet_id, coalesce(document_key, ''), code, md5(details::text));
CREATE INDEX IF NOT EXISTS packet_findings_category_idx ON packet_findings (category);

-- Dead-letter queue: what failed, why, every attempt, and where the bytes are kept.
CREATE TABLE IF NOT EXISTS dlq (
    dlq_id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    packet_id               text NOT NULL REFERENCES packets (packet_id),
    document_key            text,
    category                text NOT NULL CHECK (category IN ('COMPLIANCE_BLOCK',
                                'FATAL_SCHEMA_MISMATCH', 'RECOVERABLE_TIMEOUT', 'WARNING_DEVIATION')),
    code                    text NOT NULL,
    reason                  text NOT NULL,
    attempts                jsonb NOT NULL DEFAULT '[]'::jsonb,   -- [{attempt, at, error, ...}]
    s3_bucket               text,
    s3_key                  text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    replayed_at             timestamptz,
    replayed_by             text
);
-- At most one open (not yet replayed) entry per packet, document and code.
CREATE UNIQUE INDEX IF NOT EXISTS dlq_open_entry
    ON dlq (packet_id, coalesce(document_key, ''), code) WHERE replayed_at IS NULL;
CREATE INDEX IF NOT EXISTS dlq_created_idx ON dlq (created_at);

CREATE TABLE IF NOT EXISTS packet_reviews (
    review_id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    packet_id               text NOT NULL REFERENCES packets (packet_id),
    request_id              text NOT NULL UNIQUE,      -- the signal's idempotency key
    reviewer_id             text NOT NULL,
    reviewer_role           text NOT NULL,
    decision                text NOT NULL CHECK (decision IN ('APPROVE', 'REJECT')),
    reason                  text NOT NULL,
    signature_meaning       text NOT NULL,
    blocking_codes          text[] NOT NULL DEFAULT '{}',
    decided_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS packet_reviews_packet_idx ON packet_reviews (packet_id);

CREATE TABLE IF NOT EXISTS packet_gaps (
    gap_id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    packet_id               text NOT NULL REFERENCES packets (packet_id),
    code                    text NOT NULL,             -- GAP_DOCUMENT_MISSING | GAP_WRONG_VERSION
    doc_type                text NOT NULL,
    document_name           text,
    expected                text,
    found                   text,
    message                 text NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    resolved_at             timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS packet_gaps_open
    ON packet_gaps (packet_id, code, doc_type, coalesce(document_name, ''))
    WHERE resolved_at IS NULL;

GRANT SELECT, INSERT, UPDATE ON
    packets, packet_documents, packet_validations, packet_findings, dlq, packet_reviews,
    packet_gaps
TO clinflow_app;
