// api.ts - the HTTP API client: every call carries the token; a 401 signs the tab out.
import { clearToken, getToken } from './auth';
import type {
  AgentAction,
  AuditPage,
  AuditVerification,
  CommandAccepted,
  DebugHealth,
  Decision,
  Execution,
  Principal,
} from './types';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function request(path: string, token = getToken(), init: RequestInit = {}): Promise<Response> {
  const headers: Record<string, string> = token ? { Authorization: `Bearer ${token}` } : {};
  if (init.body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, { ...init, headers });
  if (r.ok) return r;
  let code = 'http_' + r.status;
  let message = `${r.status} ${r.statusText}`;
  try {
    const body = await r.json();
    code = body.error?.code ?? code;
    message = body.error?.message ?? message;
  } catch {
    // Not a JSON error document; keep the status line.
  }
  if (r.status === 401 && token === getToken())
    clearToken(`You were signed out: the server no longer accepts this token (${message}). It may have been revoked; sign in with a valid one.`);
  throw new ApiError(r.status, code, message);
}

export async function getJson<T>(path: string, token?: string): Promise<T> {
  return (await request(path, token)).json() as Promise<T>;
}

function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) q.set(k, String(v));
  const s = q.toString();
  return s ? '?' + s : '';
}

/** Checks a token before it is kept: resolves if the server accepts it. */
export async function checkToken(token: string): Promise<void> {
  await getJson('/api/v0/agents?limit=1', token);
}

/** Who the token speaks for; rejects with an ApiError (401 for a token the server refuses). */
export function getMe(token?: string): Promise<Principal> {
  return getJson<Principal>('/api/v0/me', token);
}

export interface AuditQuery {
  actor?: string;
  action_type?: string;
  resource_id?: string;
  from?: string;
  to?: string;
  cursor?: string | null;
  limit?: number;
}

export function listAudit(q: AuditQuery) {
  return getJson<AuditPage>('/api/v0/audit' + query({ ...q }));
}

export function verifyAudit() {
  return getJson<AuditVerification>('/api/v0/audit/verify');
}

export function getHealth() {
  return getJson<DebugHealth>('/api/v0/debug/health');
}

/** Asks an agent to act: execute (with a prompt), pause, resume or terminate. */
export async function actOnAgent(
  agentId: string,
  action: AgentAction,
  body: { prompt?: string; reason?: string },
): Promise<CommandAccepted> {
  const path = `/api/v0/agents/${encodeURIComponent(agentId)}/${action}`;
  const r = await request(path, undefined, { method: 'POST', body: JSON.stringify(body) });
  return r.json() as Promise<CommandAccepted>;
}

export interface ExecutionPage {
  executions: Execution[];
  next: string | null;
}

export function listExecutions(p: { agent_id?: string; cursor?: string | null; limit?: number }) {
  return getJson<ExecutionPage>('/api/v0/executions' + query(p));
}

export function getExecution(id: string) {
  return getJson<Execution>(`/api/v0/executions/${encodeURIComponent(id)}`);
}

export interface DecisionPage {
  decisions: Decision[];
  next: string | null;
}

export function listDecisions(
  executionId: string,
  p: { parent?: string; cursor?: string | null; limit?: number },
) {
  return getJson<DecisionPage>(
    `/api/v0/executions/${encodeURIComponent(executionId)}/decisions` + query(p),
  );
}

/** Downloads an API document as a file: a plain link cannot send the Authorization header. */
export async function download(path: string, filename: string): Promise<void> {
  const blob = await (await request(path)).blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
