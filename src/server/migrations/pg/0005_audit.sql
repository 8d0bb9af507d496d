-- 0005_audit.sql - teams, users, tokens and the tamper-evident audit log (docs/audit.md).
CREATE TABLE teams (
    team_id TEXT PRIMARY KEY,
    created BIGINT NOT NULL
);
-- A user belongs to one team, with one role.
CREATE TABLE users (
    user_id TEXT PRIMARY KEY,
    team_id TEXT NOT NULL REFERENCES teams (team_id),
    role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    created BIGINT NOT NULL
);
-- Only a token's BLAKE3 hash is kept; token_id names it in listings and revocations.
CREATE TABLE tokens (
    token_id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('user', 'agent')),
    team_id TEXT NOT NULL REFERENCES teams (team_id),
    user_id TEXT REFERENCES users (user_id),
    agent_id TEXT,
    created BIGINT NOT NULL,
    revoked BIGINT,
    CHECK ((kind = 'user') = (user_id IS NOT NULL) AND (kind = 'agent') = (agent_id IS NOT NULL))
);
CREATE INDEX tokens_team ON tokens (team_id, created);
-- Hashes are lowercase hex; seq counts 1, 2, 3... per team. No foreign key to teams: the log
-- outlives what it speaks of. The filtered indexes end with id so that pages need no sort.
CREATE TABLE audit_logs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    team_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    actor_type TEXT NOT NULL CHECK (actor_type IN ('user', 'agent', 'service')),
    actor_id TEXT NOT NULL,
    action_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    context TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    immutable_hash TEXT NOT NULL
);
CREATE UNIQUE INDEX audit_logs_chain ON audit_logs (team_id, seq);
CREATE INDEX audit_logs_actor ON audit_logs (actor_id, ts, id);
CREATE INDEX audit_logs_resource ON audit_logs (resource_id, ts, id);
CREATE INDEX audit_logs_action ON audit_logs (action_type, ts, id);
CREATE INDEX audit_logs_time ON audit_logs (ts, id);
-- Rows are never changed or removed, whoever asks (the owner and superusers too, unless they
-- drop the triggers first; see docs/audit.md).
CREATE FUNCTION aei_audit_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_logs rows are immutable: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_logs_no_change BEFORE UPDATE OR DELETE ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION aei_audit_immutable();
CREATE TRIGGER audit_logs_no_truncate BEFORE TRUNCATE ON audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION aei_audit_immutable();
-- The role aeid should log in through once migrated: everything on the other tables, only
-- INSERT and SELECT on audit_logs. Roles belong to the cluster, so it may exist already; a
-- connection that may not create roles leaves it to the operator (docs/audit.md).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'aei_app') THEN
        BEGIN
            CREATE ROLE aei_app NOLOGIN;
        EXCEPTION WHEN insufficient_privilege OR duplicate_object OR unique_violation THEN
            RAISE NOTICE 'role aei_app not created: %', SQLERRM;
        END;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'aei_app') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON agents, heartbeats, executions, decisions, teams,
            users, tokens TO aei_app;
        GRANT SELECT, INSERT ON audit_logs TO aei_app;
        GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO aei_app;
        GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO aei_app;
    END IF;
END
$$;
