-- 0008_row_security.sql - row-level security: a second line behind the application's team checks
-- (docs/auth.md). A session's scope is the setting aei.team (store_set_scope()): unset or ''
-- is unscoped and sees every row (the server's own work, admins); a team id admits only that
-- team's rows, for reading and for writing. FORCE makes the tables' owner obey the policies too,
-- since aeid usually connects as the owner; superusers and BYPASSRLS roles never do.
--
-- Every policy starts with the unscoped test, so an unscoped statement stops there for each row.
-- The forms were chosen by measuring the heartbeat batch, which is planned afresh for every batch
-- (docs/decisions/0012-row-level-security.md): current_setting() written out rather than wrapped
-- in an inlined SQL function or a scalar subquery, and a function rather than an EXISTS subquery
-- for the agent's team, since each of those adds planning time to every statement that touches
-- the table, scoped or not. Calling current_setting() per row costs about 40 ms per million rows
-- scanned.

-- The team of an agent, as the caller's scope sees it (NULL for an agent it does not see). A
-- PL/pgSQL function keeps its plan for the session; its query is an index lookup on agents.
CREATE FUNCTION aei_agent_team(agent text) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $fn$
BEGIN
    RETURN (SELECT team_id FROM agents WHERE agent_id = agent);
END
$fn$;

ALTER TABLE agents ENABLE ROW LEVEL SECURITY;
ALTER TABLE agents FORCE ROW LEVEL SECURITY;
CREATE POLICY team_scope ON agents
    USING (coalesce(current_setting('aei.team', true), '') = ''
           OR team_id = current_setting('aei.team', true));

ALTER TABLE executions ENABLE ROW LEVEL SECURITY;
ALTER TABLE executions FORCE ROW LEVEL SECURITY;
CREATE POLICY team_scope ON executions
    USING (coalesce(current_setting('aei.team', true), '') = ''
           OR team_id = current_setting('aei.team', true));

ALTER TABLE commands ENABLE ROW LEVEL SECURITY;
ALTER TABLE commands FORCE ROW LEVEL SECURITY;
CREATE POLICY team_scope ON commands
    USING (coalesce(current_setting('aei.team', true), '') = ''
           OR team_id = current_setting('aei.team', true));

ALTER TABLE audit_logs ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_logs FORCE ROW LEVEL SECURITY;
CREATE POLICY team_scope ON audit_logs
    USING (coalesce(current_setting('aei.team', true), '') = ''
           OR team_id = current_setting('aei.team', true));

ALTER TABLE tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY team_scope ON tokens
    USING (coalesce(current_setting('aei.team', true), '') = ''
           OR team_id = current_setting('aei.team', true));

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY team_scope ON users
    USING (coalesce(current_setting('aei.team', true), '') = ''
           OR team_id = current_setting('aei.team', true));

-- Partitioned: the parent's policy applies to every statement that names heartbeats, which is
-- how aeid reads and writes them; the partitions themselves are addressed only by retention.
ALTER TABLE heartbeats ENABLE ROW LEVEL SECURITY;
ALTER TABLE heartbeats FORCE ROW LEVEL SECURITY;
CREATE POLICY team_scope ON heartbeats
    USING (coalesce(current_setting('aei.team', true), '') = ''
           OR aei_agent_team(agent_id) = current_setting('aei.team', true));

ALTER TABLE rollups ENABLE ROW LEVEL SECURITY;
ALTER TABLE rollups FORCE ROW LEVEL SECURITY;
CREATE POLICY team_scope ON rollups
    USING (coalesce(current_setting('aei.team', true), '') = ''
           OR aei_agent_team(agent_id) = current_setting('aei.team', true));

ALTER TABLE rollup_agents ENABLE ROW LEVEL SECURITY;
ALTER TABLE rollup_agents FORCE ROW LEVEL SECURITY;
CREATE POLICY team_scope ON rollup_agents
    USING (coalesce(current_setting('aei.team', true), '') = ''
           OR aei_agent_team(agent_id) = current_setting('aei.team', true));

-- A decision is its execution's team's (the execution took its agent's team when it began).
-- Decisions are written by aei_put_decisions(), whose plans are kept for the session, so the
-- planning an EXISTS adds is paid once; a scoped read of a page of a tree then probes the
-- executions primary key per row, or hashes the team's executions for a large one.
ALTER TABLE decisions ENABLE ROW LEVEL SECURITY;
ALTER TABLE decisions FORCE ROW LEVEL SECURITY;
CREATE POLICY team_scope ON decisions
    USING (coalesce(current_setting('aei.team', true), '') = ''
           OR EXISTS (SELECT 1 FROM executions e
                      WHERE e.execution_id = decisions.execution_id
                        AND e.team_id = current_setting('aei.team', true)));
