-- One row per (message_id, channel): a line sent to both channels is two rows, so
-- "rows == lines" holds per channel (DESIGN.md, Postgres). Every body field is a column;
-- fields of newer body schemas that this version does not know are kept in `extra`.
CREATE TABLE workflow_comms.agent_messages (
    -- Monotonic per insert: a resumable cursor for SSE (Last-Event-ID).
    id                 bigserial PRIMARY KEY,
    message_id         text        NOT NULL,
    channel            text        NOT NULL CHECK (channel IN ('run', 'general')),
    workflow_uid       text        NOT NULL,
    workflow_name      text        NOT NULL,
    workflow_namespace text        NOT NULL,
    agent_id           text        NOT NULL,
    -- kind and role are checked by the writer, not here: a newer body schema may add values.
    kind               text        NOT NULL,
    role               text        NOT NULL,
    "timestamp"        timestamptz NOT NULL,
    content            text        NOT NULL,
    source             text        NOT NULL,
    line               integer     NOT NULL CHECK (line >= 1),
    step_id            text        NOT NULL,
    run_id             text,
    stage              text,
    runtime            text,
    tool               jsonb,
    attrs              jsonb       NOT NULL DEFAULT '{}'::jsonb,
    "schema"           integer     NOT NULL CHECK ("schema" >= 1),
    extra              jsonb,
    -- How the row arrived: live from the stream (with its stream sequence) or by the backfill.
    arrived_via        text        NOT NULL CHECK (arrived_via IN ('nats', 'backfill')),
    stream_seq         bigint,
    stored_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT agent_messages_message_channel_key UNIQUE (message_id, channel)
);

-- A run's timeline: its files' lines in order (order by line, never by timestamp).
CREATE INDEX agent_messages_run_timeline_idx
    ON workflow_comms.agent_messages (workflow_uid, channel, source, line);

-- The general channel across runs, by (timestamp, workflow_uid, source, line).
CREATE INDEX agent_messages_general_time_idx
    ON workflow_comms.agent_messages ("timestamp", workflow_uid, source, line)
    WHERE channel = 'general';

-- Filters by agent and by kind, newest first.
CREATE INDEX agent_messages_agent_idx ON workflow_comms.agent_messages (agent_id, "timestamp");
CREATE INDEX agent_messages_kind_idx ON workflow_comms.agent_messages (kind, "timestamp");

-- runId resolves to every workflow carrying that run_id when it is not a workflow_uid.
CREATE INDEX agent_messages_run_id_idx
    ON workflow_comms.agent_messages (run_id)
    WHERE run_id IS NOT NULL;

-- Pruning by age (agent-comms prune), and time-range filters over both channels.
CREATE INDEX agent_messages_timestamp_idx ON workflow_comms.agent_messages ("timestamp");
