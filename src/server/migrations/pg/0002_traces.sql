-- 0002_traces.sql - decision traces: executions with running figures, and their decisions.
-- A decision's place in its execution's tree is its path: the keys (its row id and its
-- ancestors', 16 lowercase hex digits each) from its root down, so that ascending path is the
-- tree in pre-order and depth is length(path) / 16 - 1. A decision whose parent has not arrived
-- has a NULL path until the parent lands. Ids and paths compare byte by byte (COLLATE "C").
CREATE TABLE executions (
    execution_id    TEXT COLLATE "C" PRIMARY KEY,
    agent_id        TEXT COLLATE "C" NOT NULL,
    status          TEXT NOT NULL DEFAULT 'running'
                    CHECK (status IN ('running', 'completed', 'failed', 'abandoned')),
    started         BIGINT NOT NULL,
    ended           BIGINT,
    decisions       BIGINT NOT NULL DEFAULT 0,
    confidence_n    BIGINT NOT NULL DEFAULT 0,
    confidence_sum  DOUBLE PRECISION NOT NULL DEFAULT 0,
    cost_usd        DOUBLE PRECISION NOT NULL DEFAULT 0,
    pending         BIGINT NOT NULL DEFAULT 0
);

-- Newest first, for every agent, by one agent, or by status.
CREATE INDEX executions_started ON executions (started DESC, execution_id DESC);
CREATE INDEX executions_agent ON executions (agent_id, started, execution_id);
CREATE INDEX executions_status ON executions (status, started, execution_id);

CREATE SEQUENCE decisions_id_seq AS BIGINT;

CREATE TABLE decisions (
    id                      BIGINT PRIMARY KEY DEFAULT nextval('decisions_id_seq'),
    decision_id             TEXT COLLATE "C" NOT NULL,
    execution_id            TEXT COLLATE "C" NOT NULL,
    agent_id                TEXT COLLATE "C" NOT NULL,
    parent_decision_id      TEXT COLLATE "C",
    -- The depth limit (TRACE_DEPTH_MAX 255) is this check: a batch that would break it fails.
    path                    TEXT COLLATE "C" CONSTRAINT decisions_depth
                            CHECK (length(path) <= 16 * 256),
    server_ts               BIGINT NOT NULL,
    agent_ts                BIGINT,
    reasoning_context       JSONB,
    confidence_score        DOUBLE PRECISION,
    alternatives_considered JSONB NOT NULL DEFAULT '[]',
    selected_outcome        TEXT,
    kind                    TEXT,
    labels                  JSONB NOT NULL DEFAULT '{}',
    duration_ms             DOUBLE PRECISION,
    tokens                  DOUBLE PRECISION,
    cost_usd                DOUBLE PRECISION
);
ALTER SEQUENCE decisions_id_seq OWNED BY decisions.id;

-- Idempotent ingest.
CREATE UNIQUE INDEX decisions_decision_id ON decisions (decision_id);
-- Pre-order pages of one execution (waiting decisions, path NULL, sit apart).
CREATE INDEX decisions_tree ON decisions (execution_id, path);
-- One decision's children in order, and the waiting children of a parent that lands.
CREATE INDEX decisions_parent ON decisions (execution_id, parent_decision_id, path);
-- Retention: the oldest decisions across all executions.
CREATE INDEX decisions_time ON decisions (server_ts);

-- Stores one batch (a JSON array of decisions, each with its index "ord") and returns the
-- indexes of the decisions it stored; those whose decision_id is stored already, or repeats an
-- earlier one in the batch, are left out. One call is one statement for the client, so it
-- works through pgbouncer in transaction mode. Batches touching the same execution take turns
-- (a transaction-scoped advisory lock per execution, taken in one order against deadlocks), and
-- the work runs after the locks in a fresh snapshot, so that a child and a parent arriving in
-- two concurrent batches always meet.
CREATE FUNCTION aei_put_decisions(batch jsonb) RETURNS int[]
LANGUAGE plpgsql AS $fn$
DECLARE
    h int;
    stored int[];
    n_new bigint;
    n_ins bigint;
BEGIN
    FOR h IN SELECT DISTINCT hashtext(x ->> 'execution_id') FROM jsonb_array_elements(batch) x
             ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(1952673134, h);
    END LOOP;

    WITH b AS (
        SELECT * FROM jsonb_to_recordset(batch) AS x(
            ord int, decision_id text, execution_id text, agent_id text,
            parent_decision_id text, server_ts bigint, agent_ts bigint,
            reasoning_context jsonb, confidence_score float8, alternatives_considered jsonb,
            selected_outcome text, kind text, labels jsonb, duration_ms float8, tokens float8,
            cost_usd float8)),
    -- The first of each decision_id in the batch, if it is not stored already, with its id.
    -- A scalar subquery rather than NOT EXISTS: the plan is cached while the table is small,
    -- and an anti join would then stay a sequential scan as the table grows.
    n AS (
        SELECT f.*, nextval('decisions_id_seq') AS id
        FROM (SELECT DISTINCT ON (decision_id) * FROM b ORDER BY decision_id, ord) f
        WHERE (SELECT true FROM decisions d WHERE d.decision_id = f.decision_id) IS NULL
        ORDER BY f.ord),
    -- The decisions that may take a place now: the new ones, and those of the same
    -- executions still waiting for a parent.
    c AS (
        SELECT id, decision_id, execution_id, parent_decision_id, true AS is_new FROM n
        UNION ALL
        SELECT d.id, d.decision_id, d.execution_id, d.parent_decision_id, false
        FROM decisions d
        WHERE d.path IS NULL
          AND d.execution_id IN (SELECT execution_id FROM n)),
    -- Their paths: from roots and stored parents down through the candidates. The recursion
    -- stops one level past the limit, where the check on path fails the batch.
    r AS (
        WITH RECURSIVE t(id, decision_id, execution_id, is_new, path) AS (
            SELECT c.id, c.decision_id, c.execution_id, c.is_new, lpad(to_hex(c.id), 16, '0')
            FROM c WHERE c.parent_decision_id IS NULL
            UNION ALL
            SELECT c.id, c.decision_id, c.execution_id, c.is_new,
                   p.path || lpad(to_hex(c.id), 16, '0')
            FROM c JOIN decisions p
              ON p.decision_id = c.parent_decision_id AND p.execution_id = c.execution_id
            WHERE p.path IS NOT NULL
            UNION ALL
            SELECT c.id, c.decision_id, c.execution_id, c.is_new,
                   t.path || lpad(to_hex(c.id), 16, '0')
            FROM t JOIN c
              ON c.parent_decision_id = t.decision_id AND c.execution_id = t.execution_id
            WHERE length(t.path) <= 16 * 256)
        SELECT * FROM t),
    placed AS (SELECT n.*, r.path FROM n LEFT JOIN r ON r.id = n.id),
    ins AS (
        INSERT INTO decisions (id, decision_id, execution_id, agent_id, parent_decision_id,
                               path, server_ts, agent_ts, reasoning_context, confidence_score,
                               alternatives_considered, selected_outcome, kind, labels,
                               duration_ms, tokens, cost_usd)
        SELECT id, decision_id, execution_id, agent_id, parent_decision_id, path, server_ts,
               agent_ts, reasoning_context, confidence_score,
               coalesce(alternatives_considered, '[]'), selected_outcome, kind,
               coalesce(labels, '{}'), duration_ms, tokens, cost_usd
        FROM placed
        ORDER BY id
        ON CONFLICT (decision_id) DO NOTHING
        RETURNING id),
    upd AS (
        UPDATE decisions d SET path = r.path FROM r
        WHERE d.id = r.id AND NOT r.is_new AND d.path IS NULL
        RETURNING d.execution_id),
    -- The figures come from what was to be inserted: if a row was not (a conflict), the
    -- check below rolls everything back.
    agg AS (
        SELECT execution_id, count(*) AS decisions,
               count(confidence_score) AS confidence_n,
               coalesce(sum(confidence_score), 0) AS confidence_sum,
               coalesce(sum(cost_usd), 0) AS cost_usd,
               count(*) FILTER (WHERE path IS NULL) AS waiting,
               (array_agg(agent_id ORDER BY ord))[1] AS agent_id,
               (array_agg(server_ts ORDER BY ord))[1] AS started
        FROM placed
        GROUP BY execution_id),
    landed AS (SELECT execution_id, count(*) AS resolved FROM upd GROUP BY execution_id),
    ex AS (
        INSERT INTO executions AS e (execution_id, agent_id, status, started, decisions,
                                     confidence_n, confidence_sum, cost_usd, pending)
        SELECT agg.execution_id, agg.agent_id, 'running', agg.started, agg.decisions,
               agg.confidence_n, agg.confidence_sum, agg.cost_usd,
               agg.waiting - coalesce(landed.resolved, 0)
        FROM agg LEFT JOIN landed USING (execution_id)
        ORDER BY agg.execution_id
        ON CONFLICT (execution_id) DO UPDATE SET
            decisions = e.decisions + excluded.decisions,
            confidence_n = e.confidence_n + excluded.confidence_n,
            confidence_sum = e.confidence_sum + excluded.confidence_sum,
            cost_usd = e.cost_usd + excluded.cost_usd,
            pending = e.pending + excluded.pending)
    SELECT (SELECT count(*) FROM n), (SELECT count(*) FROM ins),
           (SELECT array_agg(ord ORDER BY ord) FROM n)
    INTO n_new, n_ins, stored;

    -- Another execution's batch took one of these decision_ids in the meantime (the locks are
    -- per execution): the paths computed here may be wrong, so let the client retry.
    IF n_ins <> n_new THEN
        RAISE EXCEPTION 'a decision_id of this batch was stored concurrently'
            USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN coalesce(stored, '{}');
END
$fn$;

-- One page of an execution's tree in pre-order. A function only to read in index order
-- whatever the statistics say: an execution that grew since the last ANALYZE looks small to the
-- planner, which would then fetch all of its decisions after the cursor and sort them (60 ms for
-- a page of a 100,000-decision tree instead of 0.5 ms). The setting lasts for the call only.
CREATE FUNCTION aei_decision_page(exec text, after text, lim bigint) RETURNS SETOF decisions
LANGUAGE sql STABLE SET enable_sort = off AS $fn$
    SELECT * FROM decisions
    WHERE execution_id = exec AND path > after
    ORDER BY path
    LIMIT lim
$fn$;
