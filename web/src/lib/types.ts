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
  /** The team of the token that registered it. */
  team_id?: string;
  /** What operators last asked of it: pause makes it paused, terminate terminated. */
  control?: 'active' | 'paused' | 'terminated';
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

/** One audit row, as GET /api/v0/audit lists it; `verified` is computed on read. */
export interface AuditRow {
  id: number;
  team_id: string;
  seq: number;
  ts: string;
  ts_us: number;
  actor_type: 'user' | 'agent' | 'service';
  actor_id: string;
  action_type: string;
  resource_id: string;
  /** A JSON object, or a string when the stored context is not JSON (a tampered row). */
  context: unknown;
  prev_hash: string;
  immutable_hash: string;
  verified: boolean;
}

export interface AuditPage {
  rows: AuditRow[];
  next: string | null;
}

export interface AuditVerification {
  ok: boolean;
  rows_checked: number;
  checkpoint?: boolean;
  seconds?: number;
  error?: string;
  first_bad: null | { id: number; team_id: string; seq: number; reason: string; message: string };
}

export interface LatencySummary {
  count: number;
  mean_ms: number | null;
  p50_ms: number | null;
  p99_ms: number | null;
}

export interface Rates {
  per_second_10s: number;
  per_second_60s: number;
}

export interface StoreCall {
  ok: boolean;
  query_ms: number;
  error?: string;
}

/** GET /api/v0/debug/health. */
export interface DebugHealth {
  version: string;
  started: string;
  now: string;
  uptime_seconds: number;
  store: {
    backend: 'sqlite' | 'postgres';
    probe: StoreCall;
    latency: { commit: LatencySummary; read: LatencySummary };
  };
  websocket: {
    connections: number;
    subscribed: number;
    agents_all: number;
    agent_topics: number;
    execution_topics: number;
    command_topics: number;
    push_latency: LatencySummary;
  };
  rates: { heartbeats: Rates; decisions: Rates };
  errors: {
    total: number;
    recent: { ts: string; where: string; status: number | null; code: string; message: string }[];
  };
  audit_sample: StoreCall & { rows: AuditRow[] };
}

export type Role = 'admin' | 'operator' | 'viewer' | 'agent';

/** Who a token speaks for: GET /api/v0/me. */
export interface Principal {
  id: string;
  kind: 'admin' | 'user' | 'agent';
  team: string;
  role: Role;
  /** The token's id; null for the bootstrap token. */
  token_id?: string | null;
}

export type AgentAction = 'execute' | 'pause' | 'resume' | 'terminate';

/** The answer to POST /api/v0/agents/{agent_id}/{action}: 202 with the command queued. */
export interface CommandAccepted {
  command: {
    command_id: string;
    agent_id: string;
    action: AgentAction;
    status: string;
    created: string;
    [more: string]: unknown;
  };
  /** Set for execute: the execution the agent was asked to run. */
  execution_id?: string;
}
