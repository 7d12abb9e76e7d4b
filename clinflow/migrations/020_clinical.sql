-- Clinical data batches: FHIR resources (from bulk NDJSON and mapped HL7 v2), per-source
-- watermarks, quarantined records and batch reports.
--
-- Idempotency rule: no column is filled from now() on a path a repeated load can take without
-- changing data. fhir_resources has no load timestamp at all; watermark and batch timestamps
-- change only together with a real change of the row.

CREATE TABLE fhir_resources (
    resource_type  text        NOT NULL,
    id             text        NOT NULL,
    version_id     text,
    last_updated   timestamptz NOT NULL,
    source_system  text        NOT NULL,
    batch_id       text        NOT NULL,
    body           jsonb       NOT NULL,
    content_sha256 text        NOT NULL,
    PRIMARY KEY (resource_type, id)
);

CREATE INDEX fhir_resources_batch ON fhir_resources (batch_id);
CREATE INDEX fhir_resources_source_updated ON fhir_resources (source_system, last_updated);

-- High-water mark of meta.lastUpdated per source system, committed after a successful batch.
CREATE TABLE source_watermarks (
    source_system text        PRIMARY KEY,
    high_water    timestamptz NOT NULL,
    batch_id      text        NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Records set aside with full context. The raw record is stored encrypted (AES-GCM by the
-- caller, key id for rotation) and/or as a reference to an encrypted object in S3.
CREATE TABLE quarantine (
    quarantine_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    batch_id       text        NOT NULL,
    source_system  text        NOT NULL,
    source_uri     text        NOT NULL,
    line_index     bigint,
    message_index  bigint,
    byte_offset    bigint      NOT NULL,
    reason_code    text        NOT NULL,
    message        text        NOT NULL,
    raw_ciphertext bytea,
    raw_key_id     text,
    raw_object_ref text,
    raw_truncated  boolean     NOT NULL DEFAULT false,
    attempt        integer     NOT NULL DEFAULT 1,
    status         text        NOT NULL DEFAULT 'open'
        CHECK (status IN ('open', 'recovered', 'discarded')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    resolved_at    timestamptz,
    -- A record is quarantined once per batch, however often its partition is retried.
    UNIQUE (batch_id, source_uri, byte_offset)
);

CREATE INDEX quarantine_open ON quarantine (status, reason_code) WHERE status = 'open';

CREATE TABLE batches (
    batch_id      text        PRIMARY KEY,
    source_system text        NOT NULL,
    kind          text        NOT NULL CHECK (kind IN ('fhir', 'hl7')),
    status        text        NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'completed', 'failed')),
    report        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);

GRANT SELECT, INSERT, UPDATE ON fhir_resources, source_watermarks, quarantine, batches
    TO clinflow_app;
