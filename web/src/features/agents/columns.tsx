// columns.tsx - the agents table's columns in one place: header, width, cell and sort key.
import type { ReactNode } from 'react';
import { Link } from 'react-router';
import { LivenessBadge } from '../../components/LivenessBadge';
import { RelativeTime } from '../../components/RelativeTime';
import { ActionsButton } from '../actions/ActionsButton';
import { confidence, count, percent, usd } from '../../lib/format';
import type { Agent } from '../../lib/types';

export interface Column {
  key: string;
  label: string;
  width: string;
  /** Fields whose change flashes this cell. */
  fields: string[];
  cell: (a: Agent) => ReactNode;
  sort?: (a: Agent) => string | number | null;
  numeric?: boolean;
}

const LIVENESS_ORDER = { online: 0, stale: 1, dead: 2 };

function children(a: Agent): ReactNode {
  const ids = a.child_agent_ids;
  if (!ids.length) return <span className="muted">—</span>;
  const shown = ids.slice(0, 2).join(', ');
  return (
    <span title={ids.join(', ')}>
      {shown}
      {ids.length > 2 && <span className="muted"> +{ids.length - 2}</span>}
    </span>
  );
}

export const COLUMNS: Column[] = [
  {
    key: 'agent', label: 'Agent', width: 'minmax(12rem, 2fr)', fields: ['name'],
    cell: (a) => (
      <span className="agent-name">
        <span className="id">{a.agent_id}</span>
        {a.name && <span className="muted"> {a.name}</span>}
      </span>
    ),
    sort: (a) => a.agent_id,
  },
  { key: 'status', label: 'Status', width: '7rem', fields: ['status'], cell: (a) => <span className={`status st-${a.status}`}>{a.status}</span>, sort: (a) => a.status },
  { key: 'liveness', label: 'Liveness', width: '6.5rem', fields: ['liveness'], cell: (a) => <LivenessBadge liveness={a.liveness} />, sort: (a) => LIVENESS_ORDER[a.liveness] },
  { key: 'cpu', label: 'CPU', width: '4.5rem', fields: ['cpu_pct'], cell: (a) => percent(a.metrics.cpu_pct), sort: (a) => a.metrics.cpu_pct, numeric: true },
  { key: 'mem', label: 'Mem', width: '4.5rem', fields: ['mem_pct'], cell: (a) => percent(a.metrics.mem_pct), sort: (a) => a.metrics.mem_pct, numeric: true },
  { key: 'tpm', label: 'Tokens/min', width: '7.5rem', fields: ['tokens_per_min'], cell: (a) => count(a.metrics.tokens_per_min), sort: (a) => a.metrics.tokens_per_min, numeric: true },
  {
    key: 'cost', label: 'Cost', width: '6rem', fields: ['cost_usd', 'estimated_cost_usd'],
    cell: (a) =>
      a.metrics.cost_usd !== null ? usd(a.metrics.cost_usd) : a.estimated_cost_usd !== null ? <span title="estimated from tokens">≈{usd(a.estimated_cost_usd)}</span> : '—',
    sort: (a) => a.metrics.cost_usd ?? a.estimated_cost_usd, numeric: true,
  },
  { key: 'confidence', label: 'Conf.', width: '4.5rem', fields: ['confidence'], cell: (a) => confidence(a.metrics.confidence), sort: (a) => a.metrics.confidence, numeric: true },
  { key: 'heartbeat', label: 'Last heartbeat', width: '8.5rem', fields: ['last_heartbeat'], cell: (a) => <RelativeTime iso={a.last_heartbeat} />, sort: (a) => a.last_heartbeat },
  { key: 'parent', label: 'Parent', width: 'minmax(6rem, 1fr)', fields: ['parent_agent_id'], cell: (a) => a.parent_agent_id ?? <span className="muted">—</span>, sort: (a) => a.parent_agent_id },
  { key: 'children', label: 'Children', width: 'minmax(6rem, 1fr)', fields: ['child_agent_ids'], cell: children, sort: (a) => a.child_agent_ids.length },
  {
    key: 'executions', label: 'Traces', width: '5.5rem', fields: [],
    cell: (a) => <Link to={`/agents/${encodeURIComponent(a.agent_id)}/executions`}>executions</Link>,
  },
  /* Empty for roles that may not act; the button opens the side panel (AgentActionsPanel). */
  { key: 'actions', label: '', width: '5.5rem', fields: [], cell: (a) => <ActionsButton agentId={a.agent_id} /> },
];

export const GRID_TEMPLATE = COLUMNS.map((c) => c.width).join(' ');

/** Sort keys that change with every heartbeat: the order is refreshed on a timer, not per
 * delta, so rows do not jump under the pointer many times a second. */
export const VOLATILE_SORTS = new Set(['cpu', 'mem', 'tpm', 'cost', 'confidence', 'heartbeat']);
