-- 0004_retention.sql - heartbeats in daily partitions dropped whole, daily rollups kept after the
-- raw rows go, and what retention needs to find old rows quickly. A day is a UTC day numbered
-- from 1970-01-01 (day 0); its partition is heartbeats_YYYYMMDD, holding server_ts in
-- [day * 86400000000, (day + 1) * 86400000000).
--
-- Partitions are made ahead: this migration makes one for every day that has rows and for
-- yesterday to three days ahead, and each retention run (every --retention-interval) makes them
-- up to three days ahead again. A heartbeat outside every daily partition (the server was down
-- for days, or the clock jumped) lands in heartbeats_default, so ingest never fails for a
-- missing partition; when its day's partition is made later, its rows move there first.

-- The old table keeps its rows until they are copied; its names make way for the new ones.
ALTER TABLE heartbeats RENAME TO heartbeats_unpartitioned;
ALTER TABLE heartbeats_unpartitioned RENAME CONSTRAINT heartbeats_pkey TO heartbeats_unpartitioned_pkey;
DROP INDEX heartbeats_agent_time;
DROP INDEX heartbeats_time;
ALTER TABLE heartbeats_unpartitioned ALTER COLUMN id DROP IDENTITY;

-- Ids come from a sequence (an identity column on a partitioned table is not given to rows
-- written into a partition directly, as the partition maker below does).
CREATE SEQUENCE heartbeats_id_seq AS BIGINT;
SELECT setval('heartbeats_id_seq', coalesce(max(id), 0) + 1, false) FROM heartbeats_unpartitioned;

CREATE TABLE heartbeats (
    id              BIGINT NOT NULL DEFAULT nextval('heartbeats_id_seq'),
    agent_id        TEXT COLLATE "C" NOT NULL,
    server_ts       BIGINT NOT NULL,
    agent_ts        BIGINT,
    status          TEXT NOT NULL,
    cpu_pct         DOUBLE PRECISION,
    mem_pct         DOUBLE PRECISION,
    tokens_per_min  DOUBLE PRECISION,
    cost_usd        DOUBLE PRECISION,
    confidence      DOUBLE PRECISION,
    parent_agent_id TEXT,
    child_agent_ids JSONB NOT NULL,
    name            TEXT,
    labels          JSONB NOT NULL,
    -- A key of a partitioned table includes the partition column; this one also serves
    -- retention, which reads the oldest rows in (server_ts, id) order.
    PRIMARY KEY (server_ts, id)
) PARTITION BY RANGE (server_ts);
ALTER SEQUENCE heartbeats_id_seq OWNED BY heartbeats.id;
CREATE TABLE heartbeats_default PARTITION OF heartbeats DEFAULT;
-- History pages: one agent, ascending (server_ts, id).
CREATE INDEX heartbeats_agent_time ON heartbeats (agent_id, server_ts, id);

-- Makes day d's partition unless it exists, moving into it any rows of that day that landed in
-- the default partition. Returns whether it made one. Callers on several nodes take turns.
CREATE FUNCTION aei_heartbeat_partition(d int) RETURNS boolean
LANGUAGE plpgsql AS $fn$
DECLARE
    part text := 'heartbeats_' || to_char(date '1970-01-01' + d, 'YYYYMMDD');
    lo bigint := d::bigint * 86400000000;
    hi bigint := (d::bigint + 1) * 86400000000;
BEGIN
    PERFORM pg_advisory_xact_lock(1952673135, 1);
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE heartbeats INCLUDING DEFAULTS)', part);
    EXECUTE format('WITH m AS (DELETE FROM heartbeats_default WHERE server_ts >= %s AND '
                   'server_ts < %s RETURNING *) INSERT INTO %I SELECT * FROM m', lo, hi, part);
    EXECUTE format('ALTER TABLE heartbeats ATTACH PARTITION %I FOR VALUES FROM (%s) TO (%s)',
                   part, lo, hi);
    RETURN true;
END
$fn$;

DO $do$
DECLARE
    d int;
BEGIN
    FOR d IN
        SELECT DISTINCT (server_ts / 86400000000)::int FROM heartbeats_unpartitioned
        WHERE server_ts >= 0
        UNION
        SELECT floor(extract(epoch FROM now()) / 86400)::int + g FROM generate_series(-1, 3) g
    LOOP
        PERFORM aei_heartbeat_partition(d);
    END LOOP;
END
$do$;

INSERT INTO heartbeats (id, agent_id, server_ts, agent_ts, status, cpu_pct, mem_pct,
                        tokens_per_min, cost_usd, confidence, parent_agent_id, child_agent_ids,
                        name, labels)
SELECT id, agent_id, server_ts, agent_ts, status, cpu_pct, mem_pct, tokens_per_min, cost_usd,
       confidence, parent_agent_id, child_agent_ids, name, labels
FROM heartbeats_unpartitioned;
DROP TABLE heartbeats_unpartitioned;

CREATE TABLE rollups (
    agent_id           TEXT COLLATE "C" NOT NULL,
    day                INTEGER NOT NULL,
    heartbeats         BIGINT NOT NULL,
    cpu_n              BIGINT NOT NULL,  -- heartbeats that reported cpu_pct
    cpu_sum            DOUBLE PRECISION NOT NULL,
    cpu_max            DOUBLE PRECISION,
    mem_n              BIGINT NOT NULL,
    mem_sum            DOUBLE PRECISION NOT NULL,
    mem_max            DOUBLE PRECISION,
    tokens_per_min_max DOUBLE PRECISION,
    cost_added         DOUBLE PRECISION NOT NULL,  -- see retention.c: the rise of the cumulative cost
    PRIMARY KEY (agent_id, day)
);

-- Each agent's cumulative cost_usd at its last rolled-up heartbeat that reported one, from which
-- the next heartbeat's rise is measured.
CREATE TABLE rollup_agents (
    agent_id  TEXT COLLATE "C" PRIMARY KEY,
    last_cost DOUBLE PRECISION NOT NULL
);

-- Heartbeats up to (rolled_ts, rolled_id), in (server_ts, id) order, are in the rollups; raw
-- rows are deleted only up to there.
CREATE TABLE retention_state (
    one       INTEGER PRIMARY KEY CHECK (one = 1),
    rolled_ts BIGINT NOT NULL,
    rolled_id BIGINT NOT NULL
);
INSERT INTO retention_state VALUES (1, -9223372036854775808, -9223372036854775808);

-- An execution's last decision, to tell whether it is still active.
CREATE INDEX decisions_execution_time ON decisions (execution_id, server_ts);

-- Rolls up the next heartbeats, at most n of them, older than `before`, in (server_ts, id)
-- order; returns how many. The plain bounds on server_ts beside the row comparisons let the
-- planner leave out the partitions outside them (a row comparison does not prune). One call is one statement for the client (pgbouncer), and callers
-- on several nodes take turns so that no heartbeat is counted twice.
CREATE FUNCTION aei_rollup_step(before bigint, n int) RETURNS int
LANGUAGE plpgsql AS $fn$
DECLARE
    c_ts bigint;
    c_id bigint;
    e_ts bigint;
    e_id bigint;
    v_rows int;
BEGIN
    PERFORM pg_advisory_xact_lock(1952673135, 2);
    SELECT rolled_ts, rolled_id INTO c_ts, c_id FROM retention_state;
    SELECT x.server_ts, x.id, x.k INTO e_ts, e_id, v_rows
    FROM (SELECT h.server_ts, h.id, row_number() OVER (ORDER BY h.server_ts, h.id) AS k
          FROM (SELECT server_ts, id FROM heartbeats
                WHERE server_ts >= c_ts AND (server_ts, id) > (c_ts, c_id) AND server_ts < before
                ORDER BY server_ts, id LIMIT n) h) x
    ORDER BY x.k DESC LIMIT 1;
    IF e_ts IS NULL THEN
        RETURN 0;
    END IF;
    WITH b AS (
        SELECT agent_id, server_ts, id, (server_ts / 86400000000)::int AS day, cpu_pct, mem_pct,
               tokens_per_min, cost_usd
        FROM heartbeats
        WHERE server_ts BETWEEN c_ts AND e_ts
          AND (server_ts, id) > (c_ts, c_id) AND (server_ts, id) <= (e_ts, e_id)),
    c AS (
        SELECT b.agent_id, b.day, b.cost_usd AS cost,
               coalesce(lag(b.cost_usd) OVER (PARTITION BY b.agent_id ORDER BY b.server_ts, b.id),
                        (SELECT a.last_cost FROM rollup_agents a WHERE a.agent_id = b.agent_id))
                   AS prev
        FROM b WHERE b.cost_usd IS NOT NULL),
    cd AS (
        SELECT agent_id, day,
               sum(CASE WHEN prev IS NULL THEN cost WHEN cost >= prev THEN cost - prev
                        ELSE cost END) AS added
        FROM c GROUP BY agent_id, day),
    g AS (
        SELECT agent_id, day, count(*) AS heartbeats, count(cpu_pct) AS cpu_n,
               coalesce(sum(cpu_pct), 0) AS cpu_sum, max(cpu_pct) AS cpu_max,
               count(mem_pct) AS mem_n, coalesce(sum(mem_pct), 0) AS mem_sum,
               max(mem_pct) AS mem_max, max(tokens_per_min) AS tpm_max
        FROM b GROUP BY agent_id, day)
    INSERT INTO rollups AS r (agent_id, day, heartbeats, cpu_n, cpu_sum, cpu_max, mem_n, mem_sum,
                              mem_max, tokens_per_min_max, cost_added)
    SELECT g.agent_id, g.day, g.heartbeats, g.cpu_n, g.cpu_sum, g.cpu_max, g.mem_n, g.mem_sum,
           g.mem_max, g.tpm_max, coalesce(cd.added, 0)
    FROM g LEFT JOIN cd USING (agent_id, day)
    ON CONFLICT (agent_id, day) DO UPDATE SET
        heartbeats = r.heartbeats + excluded.heartbeats,
        cpu_n = r.cpu_n + excluded.cpu_n,
        cpu_sum = r.cpu_sum + excluded.cpu_sum,
        cpu_max = greatest(r.cpu_max, excluded.cpu_max),
        mem_n = r.mem_n + excluded.mem_n,
        mem_sum = r.mem_sum + excluded.mem_sum,
        mem_max = greatest(r.mem_max, excluded.mem_max),
        tokens_per_min_max = greatest(r.tokens_per_min_max, excluded.tokens_per_min_max),
        cost_added = r.cost_added + excluded.cost_added;
    INSERT INTO rollup_agents (agent_id, last_cost)
    SELECT DISTINCT ON (agent_id) agent_id, cost_usd FROM heartbeats
    WHERE server_ts BETWEEN c_ts AND e_ts
      AND (server_ts, id) > (c_ts, c_id) AND (server_ts, id) <= (e_ts, e_id)
      AND cost_usd IS NOT NULL
    ORDER BY agent_id, server_ts DESC, id DESC
    ON CONFLICT (agent_id) DO UPDATE SET last_cost = excluded.last_cost;
    UPDATE retention_state SET rolled_ts = e_ts, rolled_id = e_id;
    RETURN v_rows;
END
$fn$;

-- Deletes rolled-up heartbeats older than `before`: drops the oldest daily partition that lies
-- wholly before it (dropped names it), else deletes at most n rows of the default partition
-- (deleted counts them). Dropping a partition locks the parent table for a moment; rather than
-- queue behind a long reader (and have ingest queue behind the drop), it gives up after 200 ms
-- with SQLSTATE 55P03, and the next run tries again.
CREATE FUNCTION aei_expire_heartbeats(before bigint, n int, OUT deleted bigint, OUT dropped text)
LANGUAGE plpgsql AS $fn$
DECLARE
    lim bigint;
    lim_id bigint;
    hi bigint;
BEGIN
    deleted := 0;
    SELECT rolled_ts, rolled_id INTO lim, lim_id FROM retention_state;
    SELECT c.relname, ((to_date(right(c.relname, 8), 'YYYYMMDD') - date '1970-01-01') + 1)::bigint
                      * 86400000000
    INTO dropped, hi
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'heartbeats'::regclass AND c.relname ~ '^heartbeats_[0-9]{8}$'
    ORDER BY c.relname LIMIT 1;
    -- The oldest partition goes if it ended before `before` and all its rows are rolled up.
    IF dropped IS NOT NULL AND hi <= before AND NOT EXISTS (
           SELECT 1 FROM heartbeats WHERE server_ts < hi AND (server_ts, id) > (lim, lim_id)) THEN
        PERFORM set_config('lock_timeout', '200ms', true);
        EXECUTE format('DROP TABLE %I', dropped);
        RETURN;
    END IF;
    dropped := NULL;
    DELETE FROM heartbeats_default WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM heartbeats_default
        WHERE server_ts < before AND (server_ts, id) <= (lim, lim_id)
        ORDER BY server_ts, id LIMIT n));
    GET DIAGNOSTICS deleted = ROW_COUNT;
END
$fn$;

-- Deletes at most n decisions of an execution whose last activity (its last decision, or its
-- end) is before `before`, and the execution itself once it has none left (gone). It takes the
-- execution's turn as aei_put_decisions() does, so a batch for it waits; an execution that has
-- become active again is left alone.
CREATE FUNCTION aei_expire_execution(exec text, before bigint, n int, OUT deleted bigint,
                                     OUT gone boolean)
LANGUAGE plpgsql AS $fn$
BEGIN
    deleted := 0;
    gone := false;
    PERFORM pg_advisory_xact_lock(1952673134, hashtext(exec));
    IF NOT EXISTS (SELECT 1 FROM executions WHERE execution_id = exec
                   AND coalesce(ended, 0) < before) OR
       EXISTS (SELECT 1 FROM decisions WHERE execution_id = exec AND server_ts >= before) THEN
        RETURN;
    END IF;
    DELETE FROM decisions WHERE id = ANY (ARRAY(
        SELECT id FROM decisions WHERE execution_id = exec LIMIT n));
    GET DIAGNOSTICS deleted = ROW_COUNT;
    IF deleted < n THEN
        DELETE FROM executions WHERE execution_id = exec;
        gone := true;
    END IF;
END
$fn$;
