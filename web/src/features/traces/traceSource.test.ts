import { describe, expect, it, vi } from 'vitest';
import type { LiveClient, TopicHandler } from '../../lib/live';
import type { Decision, Execution } from '../../lib/types';
import { TraceSource, type TraceApi } from './traceSource';

function d(id: string, parent: string | null, depth: number | undefined, n: number): Decision {
  return {
    decision_id: id, execution_id: 'run', agent_id: 'a', parent_decision_id: parent,
    timestamp: `2026-11-24T15:00:00.${String(n).padStart(6, '0')}Z`, agent_ts: null, kind: null,
    reasoning_context: id, confidence_score: null, alternatives_considered: [], selected_outcome: null,
    labels: {}, duration_ms: null, tokens: null, cost_usd: null, ...(depth === undefined ? {} : { depth }),
  };
}

const execution = (decisions: number): Execution => ({
  execution_id: 'run', agent_id: 'a', status: 'running', started: '', ended: null, decisions,
  mean_confidence: null, cost_usd: null, pending_parents: 0,
});

/** An API over a fixed list of decisions, in pages of two. */
function fakeApi(stored: Decision[]) {
  const calls: string[] = [];
  const api: TraceApi = {
    getExecution: vi.fn(async () => execution(stored.length)),
    listDecisions: vi.fn(async (_id, p) => {
      calls.push(p.parent ? `parent=${p.parent}` : `cursor=${p.cursor ?? ''}`);
      const list = p.parent ? stored.filter((x) => x.parent_decision_id === p.parent) : stored;
      const from = p.cursor ? Number(p.cursor) : 0;
      const page = list.slice(from, from + 2);
      return { decisions: page, next: from + 2 < list.length ? String(from + 2) : null };
    }),
  };
  return { api, calls };
}

/** Records the subscription; the test plays the hub. */
function fakeLive() {
  const topics = new Map<string, TopicHandler>();
  const live = { subscribe: (t: string, h: TopicHandler) => (topics.set(t, h), () => topics.delete(t)) } as unknown as LiveClient;
  return { live, topics };
}

const settle = () => new Promise((r) => setTimeout(r, 0));

describe('TraceSource', () => {
  const stored = [d('r', null, 0, 1), d('c1', 'r', 1, 2), d('c2', 'r', 1, 3)];

  it('subscribes to execution:<id> first and reads the pages once subscribed', async () => {
    const { api, calls } = fakeApi(stored);
    const { live, topics } = fakeLive();
    const s = new TraceSource('run', api);
    s.open(live);
    expect(topics.has('execution:run')).toBe(true);
    expect(calls).toEqual([]); // nothing read before the subscription is in place
    const h = topics.get('execution:run')!;
    h.handle({ type: 'subscribed', topic: 'execution:run', epoch: 'e', seq: 5, recovered: false });
    await settle();
    expect(calls).toEqual(['cursor=']);
    expect(s.live).toBe(true);
    await s.loadMore();
    expect(s.tree.visibleRows().map((r) => r.id)).toEqual(['r', 'c1', 'c2']);
    expect(s.tree.preorderDone).toBe(true);
    // A live decision merges; one already listed does not appear twice.
    h.handle({ type: 'decision', topic: 'execution:run', epoch: 'e', seq: 6, decision: d('c3', 'r', undefined, 4) });
    h.handle({ type: 'decision', topic: 'execution:run', epoch: 'e', seq: 7, decision: d('c1', 'r', undefined, 2) });
    h.handle({ type: 'execution', topic: 'execution:run', epoch: 'e', seq: 8, execution: execution(4) });
    expect(s.tree.visibleRows().map((r) => r.id)).toEqual(['r', 'c1', 'c2', 'c3']);
    expect(s.execution?.decisions).toBe(4);
    expect(s.since()).toEqual({ epoch: 'e', seq: 8 });
    s.close();
    expect(topics.size).toBe(0);
  });

  it('reads the pages again when the hub could not replay the gap, or says reload', async () => {
    const { api, calls } = fakeApi(stored);
    const { live, topics } = fakeLive();
    const s = new TraceSource('run', api);
    s.open(live);
    const h = topics.get('execution:run')!;
    h.handle({ type: 'subscribed', topic: 'execution:run', epoch: 'e', seq: 5, recovered: false });
    await settle();
    await s.loadMore();
    calls.length = 0;
    h.handle({ type: 'subscribed', topic: 'execution:run', epoch: 'e', seq: 9, recovered: true });
    await settle();
    expect(calls).toEqual([]); // the missed messages follow
    h.handle({ type: 'subscribed', topic: 'execution:run', epoch: 'f', seq: 1, recovered: false });
    await settle();
    await settle();
    expect(calls).toEqual(['cursor=', 'cursor=2']);
    calls.length = 0;
    h.handle({ type: 'reload', topic: 'execution:run', epoch: 'f', seq: 30 });
    await settle();
    await settle();
    expect(calls).toEqual(['cursor=', 'cursor=2']);
    expect(s.tree.nodes.size).toBe(3);
  });

  it('expanding a node the pages have not reached fetches its children', async () => {
    const { api, calls } = fakeApi(stored);
    const s = new TraceSource('run', api);
    s.open(null);
    await settle();
    // First page: r, c1. r may have more children.
    expect(s.tree.needsChildren('c1')).toBe(true);
    s.toggle('c1');
    await settle();
    expect(calls).toContain('parent=c1');
    expect(s.tree.needsChildren('c1')).toBe(false);
    expect(s.tree.nodes.get('c1')!.childrenComplete).toBe(true);
  });
});
