-- Messages that can never be stored (not JSON, not an object, a required field missing, too
-- big, or refused by Postgres): kept byte for byte so `agent-comms dead-letters replay` can
-- store them once the code that judged them is fixed.
CREATE TABLE workflow_comms.dead_letters (
    id          bigserial   PRIMARY KEY,
    raw         bytea       NOT NULL,
    -- SHA-256 of raw: with stream_seq, what makes a redelivered poison message the same letter.
    digest      text        NOT NULL,
    subject     text,
    stream_seq  bigint,
    reason      text        NOT NULL,
    headers     jsonb,
    first_seen  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now(),
    -- How many times this message was dead-lettered (a redelivery counts again).
    attempts    integer     NOT NULL DEFAULT 1,
    replayed_at timestamptz
);

CREATE UNIQUE INDEX dead_letters_seq_digest_key
    ON workflow_comms.dead_letters (stream_seq, digest)
    WHERE stream_seq IS NOT NULL;

CREATE INDEX dead_letters_pending_idx
    ON workflow_comms.dead_letters (id)
    WHERE replayed_at IS NULL;
