-- 0009_history_in_bulk.sql - each agent's history index, written in bulk (decision 0002).
-- An index on heartbeats (agent_id, ...) took one entry per heartbeat in every commit, so a batch
-- from 100 agents dirtied 100 index leaves, each written whole to the WAL: 60 % of a commit.
-- heartbeat_history holds the same entries, but the writer adds them a few thousand at a time,
-- sorted by agent, so each leaf is written once per run of entries. Heartbeats with an id above
-- heartbeat_history_state.indexed_id are not in it yet; history reads scan those by rowid.
CREATE TABLE heartbeat_history (
    agent_id  TEXT NOT NULL,
    server_ts INTEGER NOT NULL,
    id        INTEGER NOT NULL,
    PRIMARY KEY (agent_id, server_ts, id)
) WITHOUT ROWID;

CREATE TABLE heartbeat_history_state (
    one        INTEGER PRIMARY KEY CHECK (one = 1),
    indexed_id INTEGER NOT NULL
);

-- In key order, so that the index is built leaf after leaf; OR IGNORE, as in store_sqlite.c, spares
-- SQLite a statement journal as large as the index.
INSERT OR IGNORE INTO heartbeat_history
SELECT agent_id, server_ts, id FROM heartbeats ORDER BY agent_id, server_ts, id;
INSERT INTO heartbeat_history_state SELECT 1, coalesce(max(id), 0) FROM heartbeats;
DROP INDEX heartbeats_agent_time;

-- Whatever deletes a heartbeat (retention) deletes its entry.
CREATE TRIGGER heartbeats_unindex AFTER DELETE ON heartbeats BEGIN
    DELETE FROM heartbeat_history
    WHERE agent_id = old.agent_id AND server_ts = old.server_ts AND id = old.id;
END;
