-- 0009_heartbeat_batch.sql - a batch of heartbeats is stored by a procedure, so that its statement
-- is planned once per server session rather than once per batch (planning was the largest single
-- cost of the statement sent with each batch: docs/decisions/0002). The batch comes as one array
-- per column (binary from aeid), child_agent_ids and labels as one jsonb array each with a
-- document per heartbeat; latest marks the last heartbeat of each agent in the batch, which alone
-- writes the agent's row, with agent_name (NULL keeps the agent's name), first_ts (a new agent's
-- first_seen) and team_id ('' for the default team) as they apply to the agent.
CREATE PROCEDURE aei_put_heartbeats(agent_id text[], name text[], status text[],
                                    cpu_pct float8[], mem_pct float8[], tokens_per_min float8[],
                                    cost_usd float8[], confidence float8[],
                                    parent_agent_id text[], child_agent_ids jsonb, labels jsonb,
                                    agent_ts int8[], server_ts int8[], latest bool[],
                                    first_ts int8[], team_id text[], agent_name text[])
LANGUAGE plpgsql AS $fn$
BEGIN
    -- The arrays are read in step by set-returning functions in the select list (in FROM, each
    -- would first fill a tuplestore of its own); heartbeats are inserted in batch order, so that
    -- their ids follow it.
    WITH u AS (SELECT unnest(agent_id) AS agent_id, unnest(name) AS name, unnest(status) AS status,
                      unnest(cpu_pct) AS cpu_pct, unnest(mem_pct) AS mem_pct,
                      unnest(tokens_per_min) AS tokens_per_min, unnest(cost_usd) AS cost_usd,
                      unnest(confidence) AS confidence, unnest(parent_agent_id) AS parent_agent_id,
                      unnest(agent_ts) AS agent_ts, unnest(server_ts) AS server_ts,
                      unnest(latest) AS latest, unnest(first_ts) AS first_ts,
                      unnest(team_id) AS team_id, unnest(agent_name) AS agent_name,
                      generate_subscripts(agent_id, 1) AS ord),
         b AS (SELECT u.*, child_agent_ids -> (u.ord - 1) AS children,
                      labels -> (u.ord - 1) AS label_map FROM u),
         ins AS (INSERT INTO heartbeats (agent_id, name, status, cpu_pct, mem_pct, tokens_per_min,
                                          cost_usd, confidence, parent_agent_id, child_agent_ids,
                                          labels, agent_ts, server_ts)
                 SELECT b.agent_id, b.name, b.status, b.cpu_pct, b.mem_pct, b.tokens_per_min,
                        b.cost_usd, b.confidence, b.parent_agent_id, b.children, b.label_map,
                        b.agent_ts, b.server_ts
                 FROM b ORDER BY b.ord),
         -- Known agents are updated in place, which costs less than the upsert's checks
         -- (store-bench +8 %); the upsert registers new ones, and still settles an agent that
         -- another writer registered meanwhile.
         upd AS (UPDATE agents AS a SET name = coalesce(b.agent_name, a.name), status = b.status,
                        cpu_pct = b.cpu_pct, mem_pct = b.mem_pct,
                        tokens_per_min = b.tokens_per_min, cost_usd = b.cost_usd,
                        confidence = b.confidence, parent_agent_id = b.parent_agent_id,
                        child_agent_ids = b.children, labels = b.label_map,
                        agent_ts = b.agent_ts, last_heartbeat = b.server_ts
                 FROM b WHERE b.latest AND a.agent_id = b.agent_id RETURNING a.agent_id)
    INSERT INTO agents AS a (agent_id, name, status, cpu_pct, mem_pct, tokens_per_min, cost_usd,
                             confidence, parent_agent_id, child_agent_ids, labels, agent_ts,
                             last_heartbeat, first_seen, team_id)
    SELECT b.agent_id, b.agent_name, b.status, b.cpu_pct, b.mem_pct, b.tokens_per_min, b.cost_usd,
           b.confidence, b.parent_agent_id, b.children, b.label_map, b.agent_ts, b.server_ts,
           b.first_ts, coalesce(nullif(b.team_id, ''), 'default')
    FROM b WHERE b.latest AND b.agent_id NOT IN (SELECT upd.agent_id FROM upd)
    ON CONFLICT ON CONSTRAINT agents_pkey DO UPDATE SET name = coalesce(excluded.name, a.name),
        status = excluded.status, cpu_pct = excluded.cpu_pct, mem_pct = excluded.mem_pct,
        tokens_per_min = excluded.tokens_per_min, cost_usd = excluded.cost_usd,
        confidence = excluded.confidence, parent_agent_id = excluded.parent_agent_id,
        child_agent_ids = excluded.child_agent_ids, labels = excluded.labels,
        agent_ts = excluded.agent_ts, last_heartbeat = excluded.last_heartbeat;
END
$fn$;
