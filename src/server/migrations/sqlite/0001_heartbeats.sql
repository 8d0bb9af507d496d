-- 0001_heartbeats.sql - agents with their latest state, and every heartbeat for playback.
-- Times are integer microseconds since the Unix epoch, UTC, from the server clock.
CREATE TABLE agents (
    agent_id        TEXT PRIMARY KEY,
    name            TEXT,
    status          TEXT NOT NULL
                    CHECK (status IN ('idle', 'processing', 'waiting', 'error', 'complete')),
    cpu_pct         REAL,
    mem_pct         REAL,
    tokens_per_min  REAL,
    cost_usd        REAL,
    confidence      REAL,
    parent_agent_id TEXT,
    child_agent_ids TEXT NOT NULL DEFAULT '[]',
    labels          TEXT NOT NULL DEFAULT '{}',
    agent_ts        INTEGER,
    first_seen      INTEGER NOT NULL,
    last_heartbeat  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE heartbeats (
    id              INTEGER PRIMARY KEY,
    agent_id        TEXT NOT NULL,
    server_ts       INTEGER NOT NULL,
    agent_ts        INTEGER,
    status          TEXT NOT NULL,
    cpu_pct         REAL,
    mem_pct         REAL,
    tokens_per_min  REAL,
    cost_usd        REAL,
    confidence      REAL,
    parent_agent_id TEXT,
    child_agent_ids TEXT NOT NULL,
    name            TEXT,
    labels          TEXT NOT NULL
);

-- History pages: one agent, ascending (server_ts, id).
CREATE INDEX heartbeats_agent_time ON heartbeats (agent_id, server_ts, id);
-- Retention: the oldest rows across all agents.
CREATE INDEX heartbeats_time ON heartbeats (server_ts);
