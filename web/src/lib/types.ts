// types.ts - the documents of the HTTP API (docs/api/openapi.yaml) and of the live hub
// (docs/api/asyncapi.yaml), written out by hand from those schemas.

export type AgentStatus = 'idle' | 'processing' | 'waiting' | 'error' | 'complete';
export type Liveness = 'online' | 'stale' | 'dead';

export interface AgentMetrics {
  cpu_pct: number | null;
  mem_pct: number | null;
  tokens_per_min: number | null;
  cost_usd: number | null;
  confidence: number | null;
}

/** An agent as the hub sends it: GET /api/v0/agents plus liveness and estimated_cost_usd. */
export interface Agent {
  agent_id: string;
  name: string | null;
  status: AgentStatus;
  metrics: AgentMetrics;
  parent_agent_id: string | null;
  child_agent_ids: string[];
  labels: Record<string, string>;
  schema_version: string;
  first_seen: string;
  last_heartbeat: string;
  agent_ts: string | null;
  liveness: Liveness;
  estimated_cost_usd: number | null;
}

export interface Totals {
  cost_usd: number;
  estimated_cost_usd: number;
  tokens_per_min: number;
  agents: number;
  agents_by_status: Record<AgentStatus, number>;
  agents_by_liveness: Record<Liveness, number>;
}

export type ExecutionStatus = 'running' | 'completed' | 'failed' | 'abandoned';

export interface Execution {
  execution_id: string;
  agent_id: string;
  status: ExecutionStatus;
  started: string;
  ended: string | null;
  decisions: number;
  mean_confidence: number | null;
  cost_usd: number | null;
  pending_parents: number;
  /** Why it failed or was abandoned, as given when it ended. */
  failure?: unknown;
}

export interface Alternative {
  option: string;
  reason_rejected: string | null;
  score?: number | null;
}

/** A stored decision, as GET /api/v0/executions/{id}/decisions lists it. */
export interface Decision {
  decision_id: string;
  execution_id: string;
  agent_id: string;
  parent_decision_id: string | null;
  timestamp: string;
  agent_ts: string | null;
  kind: string | null;
  reasoning_context: unknown;
  confidence_score: number | null;
  alternatives_considered: Alternative[];
  selected_outcome: unknown;
  labels: Record<string, string>;
  duration_ms: number | null;
  tokens: number | null;
  cost_usd: number | null;
  /** Set in the HTTP listing; a decision that arrives live has none. */
  depth?: number;
}

export interface Position {
  epoch: string;
  seq: number;
}

/** The messages the hub sends (asyncapi.yaml), plus the execution topic's two. */
export type HubMessage =
  | { type: 'subscribed'; topic: string; epoch: string; seq: number; recovered: boolean }
  | {
      type: 'snapshot';
      topic: string;
      epoch: string;
      seq: number;
      agents: Agent[];
      totals: Totals;
    }
  | {
      type: 'delta';
      epoch: string;
      seq: number;
      agent_id: string;
      changed: Partial<Omit<Agent, 'metrics'>> & { metrics?: Partial<AgentMetrics> };
      server_ts: string;
      topic?: string;
    }
  | {
      type: 'event';
      epoch: string;
      seq: number;
      event: string;
      agent_id: string;
      liveness: Liveness;
      last_heartbeat: string;
      server_ts: string;
      topic?: string;
    }
  | ({ type: 'totals'; epoch: string; seq: number; topic?: string } & Totals)
  | { type: 'decision'; topic: string; epoch: string; seq: number; decision: Decision }
  | { type: 'execution'; topic: string; epoch: string; seq: number; execution: Execution }
  | { type: 'reload'; topic: string; epoch: string; seq: number }
  | { type: 'unsubscribed'; topic: string }
  | { type: 'pong'; server_ts: string }
  | { type: 'error'; code: string; message: string; topic?: string };
