-- 0003_execution_end.sql - how an execution ended: the failure context of a failed or abandoned
-- one (compact JSON: a string or an object), NULL otherwise.
ALTER TABLE executions ADD COLUMN failure TEXT;
