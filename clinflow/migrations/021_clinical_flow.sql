-- Clinical batches through Temporal: per-partition progress committed in the same
-- transaction as each chunk's rows, so a partition retried after a crash resumes after the
-- last committed chunk and counts every record exactly once.
--
-- attempt_token identifies one execution of a batch (continue-as-new keeps it; a forced
-- re-run gets a new one), so a re-run re-reads its inputs instead of reusing old progress.

CREATE TABLE clinical_partition_progress (
    batch_id         text    NOT NULL,
    attempt_token    text    NOT NULL,
    partition_id     text    NOT NULL,
    committed_offset bigint  NOT NULL,
    chunks           integer NOT NULL DEFAULT 0,
    done             boolean NOT NULL DEFAULT false,
    report           jsonb   NOT NULL,
    counts           jsonb   NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (batch_id, attempt_token, partition_id)
);

GRANT SELECT, INSERT, UPDATE ON clinical_partition_progress TO clinflow_app;
