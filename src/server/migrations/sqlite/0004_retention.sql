-- 0004_retention.sql - daily rollups of heartbeats, kept after the raw rows are deleted, and what
-- retention needs to find old rows quickly. A day is a UTC day numbered from 1970-01-01 (day 0).
CREATE TABLE rollups (
    agent_id           TEXT NOT NULL,
    day                INTEGER NOT NULL,
    heartbeats         INTEGER NOT NULL,
    cpu_n              INTEGER NOT NULL,  -- heartbeats that reported cpu_pct
    cpu_sum            REAL NOT NULL,
    cpu_max            REAL,
    mem_n              INTEGER NOT NULL,
    mem_sum            REAL NOT NULL,
    mem_max            REAL,
    tokens_per_min_max REAL,
    cost_added         REAL NOT NULL,     -- see retention.c: the rise of the cumulative cost
    PRIMARY KEY (agent_id, day)
) WITHOUT ROWID;

-- Each agent's cumulative cost_usd at its last rolled-up heartbeat that reported one, from which
-- the next heartbeat's rise is measured.
CREATE TABLE rollup_agents (
    agent_id  TEXT PRIMARY KEY,
    last_cost REAL NOT NULL
) WITHOUT ROWID;

-- Heartbeats up to (rolled_ts, rolled_id), in (server_ts, id) order, are in the rollups; raw
-- rows are deleted only up to there.
CREATE TABLE retention_state (
    one       INTEGER PRIMARY KEY CHECK (one = 1),
    rolled_ts INTEGER NOT NULL,
    rolled_id INTEGER NOT NULL
);
INSERT INTO retention_state VALUES (1, -9223372036854775808, -9223372036854775808);

-- An execution's last decision, to tell whether it is still active.
CREATE INDEX decisions_execution_time ON decisions (execution_id, server_ts);
