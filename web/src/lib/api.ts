// api.ts - the HTTP API client: every call carries the token; a 401 signs the tab out.
import { clearToken, getToken } from './auth';
import type { Decision, Execution } from './types';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function request(path: string, token = getToken()): Promise<Response> {
  const r = await fetch(path, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
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
  if (r.status === 401 && token === getToken()) clearToken();
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
