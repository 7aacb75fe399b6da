-- Live reading (the web issue): a cursor that never skips a late commit, a NOTIFY after every
-- insert, and a per-run summary the runs list reads instead of aggregating the whole table.
--
-- The cursor. `id` comes from a sequence when a row is inserted, not when it commits: with two
-- writers (consumer replicas, a backfill) a reader could see id 20 committed while id 15 is
-- still in flight, move its cursor past 15 and never see it. So every INSERT into the table first
-- takes one transaction-level advisory lock (a BEFORE STATEMENT trigger, so no writer can forget
-- it), held until its transaction ends: ids are handed out in commit order, and once a reader
-- sees id N every row with a smaller id is committed or gone for good. Writers queue for the
-- length of an insert plus its commit, one at a time; the sequence must keep CACHE 1 (the
-- default), or each session would draw ids from its own block.
CREATE FUNCTION workflow_comms.agent_messages_serialize() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- "agent_ms" in ASCII; the migration lock is "agent_cm".
    PERFORM pg_advisory_xact_lock(7018690069353426291);
    RETURN NULL;
END
$$;

CREATE TRIGGER agent_messages_serialize
    BEFORE INSERT ON workflow_comms.agent_messages
    FOR EACH STATEMENT EXECUTE FUNCTION workflow_comms.agent_messages_serialize();

-- One row per workflow, kept up to date by the insert trigger below (run-channel rows only).
CREATE TABLE workflow_comms.agent_runs (
    workflow_uid       text        PRIMARY KEY,
    workflow_name      text        NOT NULL,
    workflow_namespace text        NOT NULL,
    run_id             text,
    agents             text[]      NOT NULL,
    messages           bigint      NOT NULL,
    -- Commands that failed: tool results with a non-zero exit code or a failed status.
    failures           bigint      NOT NULL,
    errors             bigint      NOT NULL,
    first_at           timestamptz NOT NULL,
    last_at            timestamptz NOT NULL,
    last_stored_at     timestamptz NOT NULL,
    -- The last turn event: running (turn.started), succeeded (turn.completed), failed
    -- (turn.failed or a fatal error); NULL before the first. `stale` is decided when read.
    outcome            text,
    outcome_at         timestamptz,
    max_id             bigint      NOT NULL
);

CREATE INDEX agent_runs_recent_idx ON workflow_comms.agent_runs (last_at DESC, workflow_uid DESC);
CREATE INDEX agent_runs_namespace_idx
    ON workflow_comms.agent_runs (workflow_namespace, last_at DESC, workflow_uid DESC);
CREATE INDEX agent_runs_run_id_idx ON workflow_comms.agent_runs (run_id) WHERE run_id IS NOT NULL;

-- What one row says about its run's outcome (NULL: nothing).
CREATE FUNCTION workflow_comms.row_outcome(kind text, attrs jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN attrs->>'event_type' = 'turn.started' THEN 'running'
        WHEN attrs->>'event_type' = 'turn.completed' THEN 'succeeded'
        WHEN attrs->>'event_type' IN ('turn.failed', 'thread.failed') THEN 'failed'
        WHEN kind = 'error' AND attrs->>'fatal' = 'true' THEN 'failed'
    END
$$;

CREATE FUNCTION workflow_comms.row_failed(kind text, tool jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT kind = 'tool_result' AND tool IS NOT NULL AND (
        tool->>'status' = 'failed'
        OR (jsonb_typeof(tool->'exit_code') = 'number' AND (tool->>'exit_code')::numeric <> 0)
    )
$$;

-- Fold inserted rows into agent_runs and tell LISTENers (NOTIFY is delivered at commit, so a
-- listener that reads by cursor on receipt finds the rows). The payload is small: the highest
-- id and up to 100 changed runs (null when more changed).
CREATE FUNCTION workflow_comms.agent_messages_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    top bigint;
    changed text[];
BEGIN
    SELECT max(id), array_agg(DISTINCT workflow_uid) FILTER (WHERE channel = 'run')
      INTO top, changed
      FROM new_rows;
    IF top IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO workflow_comms.agent_runs AS r
    SELECT workflow_uid,
           (array_agg(workflow_name ORDER BY id DESC))[1],
           (array_agg(workflow_namespace ORDER BY id DESC))[1],
           (array_agg(run_id ORDER BY id DESC) FILTER (WHERE run_id IS NOT NULL))[1],
           array_agg(DISTINCT agent_id ORDER BY agent_id),
           count(*),
           count(*) FILTER (WHERE workflow_comms.row_failed(kind, tool)),
           count(*) FILTER (WHERE kind = 'error'),
           min("timestamp"),
           max("timestamp"),
           max(stored_at),
           (array_agg(workflow_comms.row_outcome(kind, attrs) ORDER BY "timestamp" DESC, line DESC)
               FILTER (WHERE workflow_comms.row_outcome(kind, attrs) IS NOT NULL))[1],
           max("timestamp") FILTER (WHERE workflow_comms.row_outcome(kind, attrs) IS NOT NULL),
           max(id)
      FROM new_rows
     WHERE channel = 'run'
     GROUP BY workflow_uid
    ON CONFLICT (workflow_uid) DO UPDATE SET
        workflow_name = EXCLUDED.workflow_name,
        workflow_namespace = EXCLUDED.workflow_namespace,
        run_id = coalesce(EXCLUDED.run_id, r.run_id),
        agents = ARRAY(SELECT DISTINCT a FROM unnest(r.agents || EXCLUDED.agents) AS a ORDER BY a),
        messages = r.messages + EXCLUDED.messages,
        failures = r.failures + EXCLUDED.failures,
        errors = r.errors + EXCLUDED.errors,
        first_at = least(r.first_at, EXCLUDED.first_at),
        last_at = greatest(r.last_at, EXCLUDED.last_at),
        last_stored_at = greatest(r.last_stored_at, EXCLUDED.last_stored_at),
        outcome = CASE WHEN EXCLUDED.outcome_at IS NOT NULL
                        AND (r.outcome_at IS NULL OR EXCLUDED.outcome_at >= r.outcome_at)
                       THEN EXCLUDED.outcome ELSE r.outcome END,
        outcome_at = greatest(r.outcome_at, EXCLUDED.outcome_at),
        max_id = greatest(r.max_id, EXCLUDED.max_id);
    PERFORM pg_notify(
        'agent_comms_messages',
        json_build_object(
            'id', top,
            'runs', CASE WHEN cardinality(changed) <= 100 THEN to_json(changed) END
        )::text
    );
    RETURN NULL;
END
$$;

CREATE TRIGGER agent_messages_inserted
    AFTER INSERT ON workflow_comms.agent_messages
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION workflow_comms.agent_messages_inserted();

-- Runs stored before this migration: the same summary, computed once.
INSERT INTO workflow_comms.agent_runs
SELECT workflow_uid,
       (array_agg(workflow_name ORDER BY id DESC))[1],
       (array_agg(workflow_namespace ORDER BY id DESC))[1],
       (array_agg(run_id ORDER BY id DESC) FILTER (WHERE run_id IS NOT NULL))[1],
       array_agg(DISTINCT agent_id ORDER BY agent_id),
       count(*),
       count(*) FILTER (WHERE workflow_comms.row_failed(kind, tool)),
       count(*) FILTER (WHERE kind = 'error'),
       min("timestamp"),
       max("timestamp"),
       max(stored_at),
       (array_agg(workflow_comms.row_outcome(kind, attrs) ORDER BY "timestamp" DESC, line DESC)
           FILTER (WHERE workflow_comms.row_outcome(kind, attrs) IS NOT NULL))[1],
       max("timestamp") FILTER (WHERE workflow_comms.row_outcome(kind, attrs) IS NOT NULL),
       max(id)
  FROM workflow_comms.agent_messages
 WHERE channel = 'run'
 GROUP BY workflow_uid;


-- Resuming one run by cursor (SSE history and Last-Event-ID) without scanning other runs' ids.
CREATE INDEX agent_messages_run_cursor_idx ON workflow_comms.agent_messages (workflow_uid, channel, id);
