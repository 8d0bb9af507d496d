// AgentsPage.tsx - every agent, live, virtualized: only the rows on screen exist in the DOM.
import { useVirtualizer } from '@tanstack/react-virtual';
import { useEffect, useMemo, useRef, useState, useSyncExternalStore } from 'react';
import { fleet } from '../../lib/session';
import { AgentActionsPanel } from '../actions/AgentActionsPanel';
import type { AgentStatus, Liveness } from '../../lib/types';
import { AgentRow, ROW_HEIGHT } from './AgentRow';
import { COLUMNS, GRID_TEMPLATE, VOLATILE_SORTS } from './columns';
import { DEFAULT_QUERY, selectAgents, type AgentQuery } from './selectAgents';

const STATUSES: (AgentStatus | 'all')[] = ['all', 'idle', 'processing', 'waiting', 'error', 'complete'];
const LIVENESSES: (Liveness | 'all')[] = ['all', 'online', 'stale', 'dead'];

/** Re-reads the store's data version once a second while sorting by a metric. */
function useResortTick(active: boolean): number {
  const [tick, setTick] = useState(0);
  useEffect(() => {
    if (!active) return;
    let seen = fleet.dataVersion;
    const t = setInterval(() => {
      if (fleet.dataVersion !== seen) {
        seen = fleet.dataVersion;
        setTick((n) => n + 1);
      }
    }, 1000);
    return () => clearInterval(t);
  }, [active]);
  return tick;
}

export function AgentsPage() {
  const [q, setQ] = useState<AgentQuery>(DEFAULT_QUERY);
  const listVersion = useSyncExternalStore(
    (l) => fleet.subscribeList(l),
    () => fleet.listVersion,
  );
  const tick = useResortTick(VOLATILE_SORTS.has(q.sort));
  const ids = useMemo(
    () => selectAgents(fleet.agentIds(), (id) => fleet.get(id)?.agent, q),
    // listVersion and tick say when the store changed in a way that matters here.
    [listVersion, tick, q],
  );
  const total = fleet.agentIds().length;
  const scrollRef = useRef<HTMLDivElement>(null);
  const virtualizer = useVirtualizer({
    count: ids.length,
    getScrollElement: () => scrollRef.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 3,
    getItemKey: (i) => ids[i],
  });

  const sortBy = (key: string) =>
    setQ((old) => ({ ...old, sort: key, descending: old.sort === key ? !old.descending : false }));

  return (
    <section className="page agents-page">
      <div className="toolbar">
        <h1>Agents</h1>
        <label>
          status{' '}
          <select aria-label="filter by status" value={q.status} onChange={(e) => setQ({ ...q, status: e.target.value as AgentQuery['status'] })}>
            {STATUSES.map((s) => <option key={s} value={s}>{s}</option>)}
          </select>
        </label>
        <label>
          liveness{' '}
          <select aria-label="filter by liveness" value={q.liveness} onChange={(e) => setQ({ ...q, liveness: e.target.value as AgentQuery['liveness'] })}>
            {LIVENESSES.map((s) => <option key={s} value={s}>{s}</option>)}
          </select>
        </label>
        <input type="search" placeholder="search id or name" aria-label="search agents" value={q.text} onChange={(e) => setQ({ ...q, text: e.target.value })} />
        <span className="muted" data-testid="agent-count">
          {ids.length === total ? `${total} agents` : `${ids.length} of ${total} agents`}
        </span>
      </div>
      <div className="agents-body">
        <div className="table" role="table" aria-rowcount={ids.length}>
          <div className="row head" role="row" style={{ gridTemplateColumns: GRID_TEMPLATE }}>
            {COLUMNS.map((c) => (
              <div key={c.key} role="columnheader" className={`cell${c.numeric ? ' num' : ''}`} aria-sort={q.sort === c.key ? (q.descending ? 'descending' : 'ascending') : undefined}>
                {c.sort ? (
                  <button type="button" className="sort" onClick={() => sortBy(c.key)}>
                    {c.label}
                    {q.sort === c.key ? (q.descending ? ' ▼' : ' ▲') : ''}
                  </button>
                ) : (
                  c.label
                )}
              </div>
            ))}
          </div>
          <div className="scroll" ref={scrollRef} data-testid="agents-scroll">
            {total === 0 && fleet.refusal() ? (
              <p className="empty error" role="alert">
                The hub does not show the fleet to this token: {fleet.refusal()} An agent&apos;s token watches its own
                agent only; sign in with a user&apos;s token to see the fleet.
              </p>
            ) : total === 0 ? (
              <p className="empty">
                No agents yet. An agent appears here with its first heartbeat (POST /api/v0/heartbeats).
              </p>
            ) : ids.length === 0 ? (
              <p className="empty">No agent matches these filters.</p>
            ) : (
              <div style={{ height: virtualizer.getTotalSize(), position: 'relative' }}>
                {virtualizer.getVirtualItems().map((v) => (
                  <AgentRow key={v.key as string} id={ids[v.index]} top={v.start} />
                ))}
              </div>
            )}
          </div>
        </div>
        <AgentActionsPanel />
      </div>
    </section>
  );
}
