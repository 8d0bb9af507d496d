-- 0008_row_security.sql - row-level security: a second line behind the application's team checks
-- (docs/auth.md). A session's scope is the setting aei.team (store_set_scope()): unset or ''
-- is unscoped and sees every row (the server's own work, admins); a team id admits only that
-- team's rows, for reading and for writing. FORCE makes the tables' owner obey the policies too,
-- since aeid usually connects as the owner; superusers and BYPASSRLS roles never do.
--
-- The scope is read through a scalar subquery, (SELECT aei_scope()): PostgreSQL computes it once
-- per statement (an InitPlan) instead of once per row, so an unscoped statement pays one
-- comparison of a computed value per row, and a scoped one can use team_id in an index
-- condition. Tables without team_id find it through the agent (heartbeats, rollups) or the
-- execution (decisions) with an EXISTS on that table's primary key.
CREATE FUNCTION aei_scope() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$ SELECT nullif(current_setting('aei.team', true), '') $$;

ALTER TABLE agents ENABLE ROW LEVEL SECURITY;
ALTER TABLE agents FORCE ROW LEVEL SECURITY;
CREATE POLICY team_scope ON agents
    USING ((SELECT aei_scope()) IS NULL OR team_id = (SELECT aei_scope()));

ALTER TABLE executions ENABLE ROW LEVEL SECURITY;
ALTER TABLE executions FORCE ROW LEVEL SECURITY;
CREATE POLICY team_scope ON executions
    USING ((SELECT aei_scope()) IS NULL OR team_id = (SELECT aei_scope()));

ALTER TABLE commands ENABLE ROW LEVEL SECURITY;
ALTER TABLE commands FORCE ROW LEVEL SECURITY;
CREATE POLICY team_scope ON commands
    USING ((SELECT aei_scope()) IS NULL OR team_id = (SELECT aei_scope()));

ALTER TABLE audit_logs ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_logs FORCE ROW LEVEL SECURITY;
CREATE POLICY team_scope ON audit_logs
    USING ((SELECT aei_scope()) IS NULL OR team_id = (SELECT aei_scope()));

ALTER TABLE tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY team_scope ON tokens
    USING ((SELECT aei_scope()) IS NULL OR team_id = (SELECT aei_scope()));

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY team_scope ON users
    USING ((SELECT aei_scope()) IS NULL OR team_id = (SELECT aei_scope()));

-- Partitioned: the parent's policy applies to every statement that names heartbeats, which is
-- how aeid reads and writes them; the partitions themselves are addressed only by retention.
ALTER TABLE heartbeats ENABLE ROW LEVEL SECURITY;
ALTER TABLE heartbeats FORCE ROW LEVEL SECURITY;
CREATE POLICY team_scope ON heartbeats
    USING ((SELECT aei_scope()) IS NULL OR EXISTS (
        SELECT 1 FROM agents a
        WHERE a.agent_id = heartbeats.agent_id AND a.team_id = (SELECT aei_scope())));

ALTER TABLE rollups ENABLE ROW LEVEL SECURITY;
ALTER TABLE rollups FORCE ROW LEVEL SECURITY;
CREATE POLICY team_scope ON rollups
    USING ((SELECT aei_scope()) IS NULL OR EXISTS (
        SELECT 1 FROM agents a
        WHERE a.agent_id = rollups.agent_id AND a.team_id = (SELECT aei_scope())));

ALTER TABLE rollup_agents ENABLE ROW LEVEL SECURITY;
ALTER TABLE rollup_agents FORCE ROW LEVEL SECURITY;
CREATE POLICY team_scope ON rollup_agents
    USING ((SELECT aei_scope()) IS NULL OR EXISTS (
        SELECT 1 FROM agents a
        WHERE a.agent_id = rollup_agents.agent_id AND a.team_id = (SELECT aei_scope())));

-- A decision is its execution's team's (the execution took its agent's team when it began).
ALTER TABLE decisions ENABLE ROW LEVEL SECURITY;
ALTER TABLE decisions FORCE ROW LEVEL SECURITY;
CREATE POLICY team_scope ON decisions
    USING ((SELECT aei_scope()) IS NULL OR EXISTS (
        SELECT 1 FROM executions e
        WHERE e.execution_id = decisions.execution_id AND e.team_id = (SELECT aei_scope())));
