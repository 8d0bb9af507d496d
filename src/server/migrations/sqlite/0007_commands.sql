-- 0007_commands.sql - teams own agents and executions; operators' commands to agents.
-- An agent belongs to the team of the token that registered it, for good; its executions
-- belong to its team. Agents registered before teams existed are the default team's.
ALTER TABLE agents ADD COLUMN team_id TEXT NOT NULL DEFAULT 'default';
-- What operators last asked of the agent: active, paused (pause) or terminated (terminate).
ALTER TABLE agents ADD COLUMN control TEXT NOT NULL DEFAULT 'active'
    CHECK (control IN ('active', 'paused', 'terminated'));
CREATE INDEX agents_team ON agents (team_id, agent_id);
ALTER TABLE executions ADD COLUMN team_id TEXT NOT NULL DEFAULT 'default';
CREATE INDEX executions_team ON executions (team_id, started, execution_id);
-- An execution takes its agent's team when its first decision creates it.
CREATE TRIGGER executions_team AFTER INSERT ON executions
BEGIN
    UPDATE executions SET team_id = coalesce(
        (SELECT team_id FROM agents WHERE agent_id = NEW.agent_id), 'default')
    WHERE execution_id = NEW.execution_id;
END;
-- A command: recorded with its audit row in the transaction that checked the caller's rights,
-- handed to the agent only after that commits (pending), sent (delivered) until the agent
-- acknowledges it with a result (succeeded, failed or rejected).
CREATE TABLE commands (
    command_id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL,
    team_id TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('execute', 'pause', 'resume', 'terminate', 'assign',
                                           'override', 'reassign')),
    params TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'delivered', 'succeeded', 'failed', 'rejected')),
    actor_type TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    audit_id INTEGER NOT NULL,
    created INTEGER NOT NULL,
    delivered INTEGER,
    acked INTEGER,
    result TEXT
);
-- An agent's commands newest first; the open ones, loaded when the server starts.
CREATE INDEX commands_agent ON commands (agent_id, created, command_id);
CREATE INDEX commands_open ON commands (status) WHERE status IN ('pending', 'delivered');
