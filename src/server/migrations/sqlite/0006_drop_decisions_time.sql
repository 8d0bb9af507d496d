-- 0006_drop_decisions_time.sql - retention finds old executions by their last decision
-- (decisions_execution_time, 0004), so the index of every decision by time alone only cost each
-- insert a B-tree write: about a fifth of a decision's index work (docs/decisions/0008).
DROP INDEX decisions_time;
