-- 0010_execution_team.sql - an execution is filed under the right team, and a batch of decisions
-- adds only to executions its sender may add to, each under the agent it belongs to.
--
-- Before this, an execution whose first decision came before its agent's first heartbeat took
-- team 'default' for good (0007's trigger), out of its own team's sight; and a batch could add
-- decisions to any execution, another team's or another agent's included.

-- A new execution takes its agent's team or, while the agent is not registered, the team the
-- writer gives it (the sender's), no longer 'default'.
CREATE OR REPLACE FUNCTION aei_execution_team() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.team_id := coalesce((SELECT team_id FROM agents WHERE agent_id = NEW.agent_id),
                            NEW.team_id);
    RETURN NEW;
END $$;

-- An agent that registers takes along the executions sent for it before, wherever they were
-- filed: an execution belongs to its agent's team. An agent's team never changes after this.
CREATE FUNCTION aei_agent_executions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE executions SET team_id = NEW.team_id
    WHERE agent_id = NEW.agent_id AND team_id <> NEW.team_id;
    RETURN NULL;
END $$;
CREATE TRIGGER agents_executions AFTER INSERT ON agents
    FOR EACH ROW EXECUTE FUNCTION aei_agent_executions();

-- The executions misfiled before this migration, whose agent has registered since.
UPDATE executions e SET team_id = a.team_id
FROM agents a
WHERE a.agent_id = e.agent_id AND e.team_id <> a.team_id;

-- aei_put_decisions() of 0002, told who sends the batch: the team a new execution takes while
-- its agent is not registered, and the team (NULL: any) and agent (NULL: any) whose executions
-- the sender may add to.
DROP FUNCTION aei_put_decisions(jsonb);
CREATE FUNCTION aei_put_decisions(batch jsonb, team text, scope_team text, scope_agent text)
RETURNS int[]
LANGUAGE plpgsql AS $fn$
DECLARE
    h int;
    stored int[];
    n_new bigint;
    n_ins bigint;
    bad record;
BEGIN
    FOR h IN SELECT DISTINCT hashtext(x ->> 'execution_id') FROM jsonb_array_elements(batch) x
             ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(1952673134, h);
    END LOOP;

    -- Each execution belongs to one agent: that of its row, or of its first decision in the
    -- batch. The first refusal, an execution out of the sender's scope before any decision
    -- naming another agent, fails the batch (DETAIL: the index of the decision; HINT: the agent
    -- the execution belongs to, for a conflict only). Under the locks, the rows read here are
    -- the ones the batch adds to.
    SELECT b.ord, b.execution_id, b.agent_id, coalesce(e.agent_id, b.first_agent) AS owner,
           coalesce(scope_team <> e.team_id OR scope_agent <> e.agent_id, false) AS hidden
    INTO bad
    FROM (SELECT x.*, first_value(x.agent_id) OVER (PARTITION BY x.execution_id
                                                   ORDER BY x.ord) AS first_agent
          FROM jsonb_to_recordset(batch) AS x(ord int, execution_id text, agent_id text)) b
    LEFT JOIN executions e ON e.execution_id = b.execution_id
    WHERE coalesce(scope_team <> e.team_id OR scope_agent <> e.agent_id, false)
       OR b.agent_id <> coalesce(e.agent_id, b.first_agent)
    ORDER BY 5 DESC, b.ord
    LIMIT 1;
    IF FOUND AND bad.hidden THEN
        RAISE EXCEPTION 'execution % is out of this sender''s scope', bad.execution_id
            USING ERRCODE = 'AE404', DETAIL = bad.ord::text;
    ELSIF FOUND THEN
        RAISE EXCEPTION 'execution % belongs to agent %, not %', bad.execution_id, bad.owner,
                        bad.agent_id
            USING ERRCODE = 'AE409', DETAIL = bad.ord::text, HINT = bad.owner;
    END IF;

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
                                     confidence_n, confidence_sum, cost_usd, pending, team_id)
        SELECT agg.execution_id, agg.agent_id, 'running', agg.started, agg.decisions,
               agg.confidence_n, agg.confidence_sum, agg.cost_usd,
               agg.waiting - coalesce(landed.resolved, 0), coalesce(team, 'default')
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

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'aei_app') THEN
        GRANT EXECUTE ON FUNCTION aei_put_decisions(jsonb, text, text, text),
                                  aei_agent_executions() TO aei_app;
    END IF;
END $$;
