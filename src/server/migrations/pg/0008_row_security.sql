-- 0008_row_security.sql - row-level security: a second line behind the application's team checks
-- (docs/auth.md). A session's scope is the setting aei.team (store_set_scope()): unset or ''
-- is unscoped and sees every row (the server's own work, admins); a team id admits only that
-- team's rows, for reading and for writing. FORCE makes the tables' owner obey the policies too,
-- since aeid usually connects as the owner; superusers and BYPASSRLS roles never do.
--
-- Every policy starts with the unscoped test, so an unscoped statement stops there for each row.
-- Its form is chosen for the planner (docs/decisions/0012-row-level-security.md):
-- - "(CASE WHEN unscoped THEN true END) IS NOT NULL" rather than "unscoped": the planner cannot
--   look into current_setting(), and guesses that an equality keeps 0.5% of the rows but that
--   IS NOT NULL keeps 99.5%. With the first guess, a page read in index order under a LIMIT looked
--   costly, and the audit walk by (team, seq) became a sequential scan and sort, 450 ms a page of
--   10,000 rows instead of 10 ms.
-- - current_setting() written out, not wrapped in an inlined SQL function or a scalar subquery,
--   and a function rather than an EXISTS subquery for the agent's team: each of those adds
--   planning time to every statement that touches the table, scoped or not, and the heartbeat
--   batch is planned afresh for every batch. Calling current_setting() per row costs about
--   40 ms per million rows scanned.

-- The team of an agent, as the caller's scope sees it (NULL for an agent it does not see). A
-- PL/pgSQL function keeps its plan for the session; its query is an index lookup on agents.
CREATE FUNCTION aei_agent_team(agent text) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $fn$
BEGIN
    RETURN (SELECT team_id FROM agents WHERE agent_id = agent);
END
$fn$;

-- One policy per table, for reading and writing alike: the row's team, as the expression beside
-- the table finds it, must be the scope. A decision is its execution's team's (the execution took
-- its agent's team when it began); decisions are written by aei_put_decisions(), whose plans are
-- kept for the session, so the planning of that subquery is paid once there. Heartbeats are
-- partitioned: the parent's policy applies to every statement that names heartbeats, which is
-- how aeid reads and writes them; the partitions themselves are addressed only by retention.
DO $do$
DECLARE
    p record;
BEGIN
    FOR p IN SELECT * FROM (VALUES
        ('agents', 'team_id'),
        ('executions', 'team_id'),
        ('commands', 'team_id'),
        ('audit_logs', 'team_id'),
        ('tokens', 'team_id'),
        ('users', 'team_id'),
        ('heartbeats', 'aei_agent_team(agent_id)'),
        ('rollups', 'aei_agent_team(agent_id)'),
        ('rollup_agents', 'aei_agent_team(agent_id)'),
        ('decisions', '(SELECT e.team_id FROM executions e '
                      'WHERE e.execution_id = decisions.execution_id)')) AS v (tab, team)
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY',
                       p.tab);
        EXECUTE format($p$CREATE POLICY team_scope ON %I
                          USING ((CASE WHEN coalesce(current_setting('aei.team', true), '') = ''
                                       THEN true END) IS NOT NULL
                                 OR %s = current_setting('aei.team', true))$p$, p.tab, p.team);
    END LOOP;
END
$do$;
