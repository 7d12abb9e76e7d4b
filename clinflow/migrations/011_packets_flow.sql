-- Site packet flow: the attempt history of packet activities (what the dead-letter queue
-- reports as "every attempt"). One row per workflow, activity, subject and attempt, so a
-- retried write of the same failure is a no-op.

CREATE TABLE IF NOT EXISTS packet_attempts (
    workflow_id             text NOT NULL,
    activity                text NOT NULL,             -- activity type, e.g. packets.parse
    subject                 text NOT NULL DEFAULT '',  -- document key, or '' for the packet
    attempt                 integer NOT NULL CHECK (attempt >= 1),
    category                text NOT NULL,
    code                    text NOT NULL,
    reason                  text NOT NULL,
    failed_at               timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workflow_id, activity, subject, attempt)
);

GRANT SELECT, INSERT ON packet_attempts TO clinflow_app;
