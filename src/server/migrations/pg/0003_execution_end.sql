-- 0003_execution_end.sql - how an execution ended: the failure context of a failed or abandoned
-- one (a JSON string or object), NULL otherwise.
ALTER TABLE executions ADD COLUMN failure JSONB;
