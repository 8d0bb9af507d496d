-- 0002_traces.sql - decision traces: executions with running figures, and their decisions.
-- A decision's place in its execution's tree is its path: the keys (its row id and its
-- ancestors', 16 lowercase hex digits each) from its root down, so that ascending path is the
-- tree in pre-order and depth is length(path) / 16 - 1. A decision whose parent has not arrived
-- has a NULL path until the parent lands.
CREATE TABLE executions (
    execution_id    TEXT PRIMARY KEY,
    agent_id        TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'running'
                    CHECK (status IN ('running', 'completed', 'failed', 'abandoned')),
    started         INTEGER NOT NULL,
    ended           INTEGER,
    decisions       INTEGER NOT NULL DEFAULT 0,
    confidence_n    INTEGER NOT NULL DEFAULT 0,
    confidence_sum  REAL NOT NULL DEFAULT 0,
    cost_usd        REAL NOT NULL DEFAULT 0,
    pending         INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- Newest first, for every agent, by one agent, or by status.
CREATE INDEX executions_started ON executions (started DESC, execution_id DESC);
CREATE INDEX executions_agent ON executions (agent_id, started, execution_id);
CREATE INDEX executions_status ON executions (status, started, execution_id);

CREATE TABLE decisions (
    id                      INTEGER PRIMARY KEY,
    decision_id             TEXT NOT NULL,
    execution_id            TEXT NOT NULL,
    agent_id                TEXT NOT NULL,
    parent_decision_id      TEXT,
    path                    TEXT CHECK (length(path) <= 16 * 256),
    server_ts               INTEGER NOT NULL,
    agent_ts                INTEGER,
    reasoning_context       TEXT,
    confidence_score        REAL,
    alternatives_considered TEXT NOT NULL DEFAULT '[]',
    selected_outcome        TEXT,
    kind                    TEXT,
    labels                  TEXT NOT NULL DEFAULT '{}',
    duration_ms             REAL,
    tokens                  REAL,
    cost_usd                REAL
);

-- Idempotent ingest.
CREATE UNIQUE INDEX decisions_decision_id ON decisions (decision_id);
-- Pre-order pages of one execution (waiting decisions, path NULL, sit apart).
CREATE INDEX decisions_tree ON decisions (execution_id, path);
-- One decision's children in order, and the waiting children of a parent that lands.
CREATE INDEX decisions_parent ON decisions (execution_id, parent_decision_id, path);
-- Retention: the oldest decisions across all executions.
CREATE INDEX decisions_time ON decisions (server_ts);
