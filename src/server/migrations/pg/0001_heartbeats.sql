-- 0001_heartbeats.sql - agents with their latest state, and every heartbeat for playback.
-- Times are integer microseconds since the Unix epoch, UTC, from the server clock.
-- Agent ids compare byte by byte (COLLATE "C"), as on SQLite, whatever the database's locale.
CREATE TABLE agents (
    agent_id        TEXT COLLATE "C" PRIMARY KEY,
    name            TEXT,
    status          TEXT NOT NULL
                    CHECK (status IN ('idle', 'processing', 'waiting', 'error', 'complete')),
    cpu_pct         DOUBLE PRECISION,
    mem_pct         DOUBLE PRECISION,
    tokens_per_min  DOUBLE PRECISION,
    cost_usd        DOUBLE PRECISION,
    confidence      DOUBLE PRECISION,
    parent_agent_id TEXT,
    child_agent_ids JSONB NOT NULL DEFAULT '[]',
    labels          JSONB NOT NULL DEFAULT '{}',
    agent_ts        BIGINT,
    first_seen      BIGINT NOT NULL,
    last_heartbeat  BIGINT NOT NULL
);

CREATE TABLE heartbeats (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
    labels          JSONB NOT NULL
);

-- History pages: one agent, ascending (server_ts, id).
CREATE INDEX heartbeats_agent_time ON heartbeats (agent_id, server_ts, id);
-- Retention: the oldest rows across all agents.
CREATE INDEX heartbeats_time ON heartbeats (server_ts);
