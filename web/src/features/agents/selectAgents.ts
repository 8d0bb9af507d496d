// selectAgents.ts - which agents the table shows, in which order.
import type { Agent, AgentStatus, Liveness } from '../../lib/types';
import { COLUMNS } from './columns';

export interface AgentQuery {
  status: AgentStatus | 'all';
  liveness: Liveness | 'all';
  text: string;
  sort: string;
  descending: boolean;
}

export const DEFAULT_QUERY: AgentQuery = { status: 'all', liveness: 'all', text: '', sort: 'agent', descending: false };

/** The ids of the agents that match, sorted; nulls last whatever the direction, ties by id. */
export function selectAgents(ids: string[], get: (id: string) => Agent | undefined, q: AgentQuery): string[] {
  const text = q.text.trim().toLowerCase();
  const keyOf = COLUMNS.find((c) => c.key === q.sort)?.sort ?? ((a: Agent) => a.agent_id);
  const rows: { id: string; key: string | number | null }[] = [];
  for (const id of ids) {
    const a = get(id);
    if (!a) continue;
    if (q.status !== 'all' && a.status !== q.status) continue;
    if (q.liveness !== 'all' && a.liveness !== q.liveness) continue;
    if (text && !a.agent_id.toLowerCase().includes(text) && !(a.name ?? '').toLowerCase().includes(text)) continue;
    rows.push({ id, key: keyOf(a) });
  }
  const dir = q.descending ? -1 : 1;
  rows.sort((x, y) => {
    if (x.key === null || y.key === null) {
      if (x.key !== y.key) return x.key === null ? 1 : -1;
    } else if (x.key !== y.key) {
      return (x.key < y.key ? -1 : 1) * dir;
    }
    return x.id < y.id ? -1 : x.id > y.id ? 1 : 0;
  });
  return rows.map((r) => r.id);
}
