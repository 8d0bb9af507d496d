-- 0005_audit.sql - teams, users, tokens and the tamper-evident audit log (docs/audit.md).
CREATE TABLE teams (
    team_id TEXT PRIMARY KEY,
    created INTEGER NOT NULL
);
-- A user belongs to one team, with one role.
CREATE TABLE users (
    user_id TEXT PRIMARY KEY,
    team_id TEXT NOT NULL REFERENCES teams (team_id),
    role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    created INTEGER NOT NULL
);
-- Only a token's BLAKE3 hash is kept; token_id names it in listings and revocations.
CREATE TABLE tokens (
    token_id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('user', 'agent')),
    team_id TEXT NOT NULL REFERENCES teams (team_id),
    user_id TEXT REFERENCES users (user_id),
    agent_id TEXT,
    created INTEGER NOT NULL,
    revoked INTEGER,
    CHECK ((kind = 'user') = (user_id IS NOT NULL) AND (kind = 'agent') = (agent_id IS NOT NULL))
);
CREATE INDEX tokens_team ON tokens (team_id, created);
-- Hashes are lowercase hex; seq counts 1, 2, 3... per team. No foreign key to teams: the log
-- outlives what it speaks of.
CREATE TABLE audit_logs (
    id INTEGER PRIMARY KEY,
    team_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    actor_type TEXT NOT NULL CHECK (actor_type IN ('user', 'agent', 'service')),
    actor_id TEXT NOT NULL,
    action_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    context TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    immutable_hash TEXT NOT NULL
);
CREATE UNIQUE INDEX audit_logs_chain ON audit_logs (team_id, seq);
CREATE INDEX audit_logs_actor ON audit_logs (actor_id, ts);
CREATE INDEX audit_logs_resource ON audit_logs (resource_id, ts);
CREATE INDEX audit_logs_action ON audit_logs (action_type, ts);
CREATE INDEX audit_logs_time ON audit_logs (ts);
-- Rows are never changed or removed. SQLite has no TRUNCATE: DELETE without WHERE fires the
-- delete trigger too (a table with triggers is never emptied by the truncate shortcut).
CREATE TRIGGER audit_logs_no_update BEFORE UPDATE ON audit_logs
BEGIN
    SELECT RAISE(ABORT, 'audit_logs rows are immutable: UPDATE refused');
END;
CREATE TRIGGER audit_logs_no_delete BEFORE DELETE ON audit_logs
BEGIN
    SELECT RAISE(ABORT, 'audit_logs rows are immutable: DELETE refused');
END;
