// ExecutionsPage.tsx - an agent's executions (or everyone's), newest first, a page at a time;
// each links to its trace.
import { useCallback, useEffect, useState } from 'react';
import { Link, useParams } from 'react-router';
import { listExecutions } from '../../lib/api';
import { clockTime, confidence, count, usd } from '../../lib/format';
import type { Execution } from '../../lib/types';

const PAGE = 100;

export function ExecutionsPage() {
  const { agentId } = useParams();
  const [items, setItems] = useState<Execution[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [state, setState] = useState<'loading' | 'idle' | 'error'>('loading');
  const [error, setError] = useState('');

  const load = useCallback(
    async (cursor: string | null, replace: boolean) => {
      setState('loading');
      try {
        const page = await listExecutions({ agent_id: agentId, cursor, limit: PAGE });
        setItems((old) => (replace ? page.executions : [...old, ...page.executions]));
        setNext(page.next);
        setState('idle');
      } catch (e) {
        setError((e as Error).message);
        setState('error');
      }
    },
    [agentId],
  );

  useEffect(() => {
    setItems([]);
    load(null, true);
  }, [load]);

  return (
    <section className="page executions-page">
      <div className="toolbar">
        <h1>{agentId ? <>Executions of <span className="id">{agentId}</span></> : 'Executions'}</h1>
        <Link to="/">← agents</Link>
      </div>
      {state === 'error' && <p className="error" role="alert">Could not list executions: {error}</p>}
      <table className="plain" data-testid="executions">
        <thead>
          <tr>
            <th>Execution</th>
            {!agentId && <th>Agent</th>}
            <th>Status</th>
            <th>Started</th>
            <th className="num">Decisions</th>
            <th className="num">Mean conf.</th>
            <th className="num">Cost</th>
          </tr>
        </thead>
        <tbody>
          {items.map((x) => (
            <tr key={x.execution_id} data-execution-id={x.execution_id}>
              <td><Link to={`/traces/${encodeURIComponent(x.execution_id)}`}>{x.execution_id}</Link></td>
              {!agentId && <td>{x.agent_id}</td>}
              <td>{x.status}</td>
              <td>{clockTime(x.started)}</td>
              <td className="num">{count(x.decisions)}</td>
              <td className="num">{confidence(x.mean_confidence)}</td>
              <td className="num">{usd(x.cost_usd)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {state === 'idle' && items.length === 0 && <p className="empty">No executions recorded{agentId ? ' for this agent' : ''} yet.</p>}
      {state === 'loading' && <p className="muted">Loading…</p>}
      {next && state === 'idle' && (
        <button type="button" onClick={() => load(next, false)}>Load more</button>
      )}
    </section>
  );
}
