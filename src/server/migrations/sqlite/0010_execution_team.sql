-- 0010_execution_team.sql - an execution is filed under the right team.
--
-- Before this, an execution whose first decision came before its agent's first heartbeat took
-- team 'default' for good (0007's trigger), out of its own team's sight.

-- A new execution takes its agent's team or, while the agent is not registered, the team the
-- writer gives it (the sender's), no longer 'default'.
DROP TRIGGER executions_team;
CREATE TRIGGER executions_team AFTER INSERT ON executions
WHEN EXISTS (SELECT 1 FROM agents WHERE agent_id = NEW.agent_id)
BEGIN
    UPDATE executions SET team_id = (SELECT team_id FROM agents WHERE agent_id = NEW.agent_id)
    WHERE execution_id = NEW.execution_id;
END;

-- An agent that registers takes along the executions sent for it before, wherever they were
-- filed: an execution belongs to its agent's team. An agent's team never changes after this.
CREATE TRIGGER agents_executions AFTER INSERT ON agents
BEGIN
    UPDATE executions SET team_id = NEW.team_id
    WHERE agent_id = NEW.agent_id AND team_id <> NEW.team_id;
END;

-- The executions misfiled before this migration, whose agent has registered since.
UPDATE executions SET team_id = (SELECT team_id FROM agents WHERE agent_id = executions.agent_id)
WHERE team_id <> coalesce((SELECT team_id FROM agents WHERE agent_id = executions.agent_id),
                          team_id);
