import { describe, expect, it, vi } from 'vitest';
import type { Agent, HubMessage, Totals } from '../../lib/types';
import { AgentStore } from './agentStore';

const EPOCH = '9f3c2a1b7d4e6f80';

function agent(id: string, over: Partial<Agent> = {}): Agent {
  return {
    agent_id: id, name: null, status: 'idle',
    metrics: { cpu_pct: 10, mem_pct: 20, tokens_per_min: 100, cost_usd: 1, confidence: 80 },
    parent_agent_id: null, child_agent_ids: [], labels: {}, schema_version: '0',
    first_seen: '2026-11-24T15:00:00.000000Z', last_heartbeat: '2026-11-24T15:00:00.000000Z',
    agent_ts: null, liveness: 'online', estimated_cost_usd: null, ...over,
  };
}

const totals = (n: number): Totals => ({
  cost_usd: n, estimated_cost_usd: 0, tokens_per_min: 100 * n, agents: n,
  agents_by_status: { idle: n, processing: 0, waiting: 0, error: 0, complete: 0 },
  agents_by_liveness: { online: n, stale: 0, dead: 0 },
});

function snapshot(seq: number, agents: Agent[], epoch = EPOCH): HubMessage {
  return { type: 'snapshot', topic: 'agents:all', epoch, seq, agents, totals: totals(agents.length) };
}

function delta(seq: number, id: string, changed: object): HubMessage {
  return { type: 'delta', epoch: EPOCH, seq, agent_id: id, changed, server_ts: '2026-11-24T15:00:01.000000Z' } as HubMessage;
}

function feed(s: AgentStore, ...msgs: HubMessage[]) {
  msgs.forEach((m) => s.handle(m));
  s.flush();
}

describe('AgentStore', () => {
  it('a snapshot replaces the fleet and sets the resume position', () => {
    const s = new AgentStore();
    feed(s, { type: 'subscribed', topic: 'agents:all', epoch: EPOCH, seq: 10, recovered: false }, snapshot(10, [agent('a'), agent('b')]));
    expect(s.agentIds()).toEqual(['a', 'b']);
    expect(s.since()).toEqual({ epoch: EPOCH, seq: 10 });
    expect(s.totals()?.agents).toBe(2);
    feed(s, snapshot(20, [agent('b')]));
    expect(s.agentIds()).toEqual(['b']);
    expect(s.get('a')).toBeUndefined();
  });

  it('a delta replaces changed fields and only the metrics present', () => {
    const s = new AgentStore(() => 1000);
    feed(s, snapshot(1, [agent('a')]));
    feed(s, delta(2, 'a', { status: 'processing', metrics: { cpu_pct: 55 } }));
    const a = s.get('a')!.agent;
    expect(a.status).toBe('processing');
    expect(a.metrics).toEqual({ cpu_pct: 55, mem_pct: 20, tokens_per_min: 100, cost_usd: 1, confidence: 80 });
    expect(s.get('a')!.changedAt).toEqual({ status: 1000, cpu_pct: 1000 });
    expect(s.since()).toEqual({ epoch: EPOCH, seq: 2 });
  });

  it("an unknown agent's first delta adds it with its full state", () => {
    const s = new AgentStore();
    feed(s, snapshot(1, []));
    const { agent_id: _, ...rest } = agent('new', { name: 'New' });
    feed(s, delta(5, 'new', { agent_id: 'new', ...rest }));
    expect(s.agentIds()).toEqual(['new']);
    expect(s.get('new')!.agent.name).toBe('New');
  });

  it('ignores a delta not above the seq already applied to the agent', () => {
    const s = new AgentStore();
    feed(s, snapshot(10, [agent('a')]));
    feed(s, delta(9, 'a', { status: 'error' })); // older than the snapshot
    expect(s.get('a')!.agent.status).toBe('idle');
    feed(s, delta(12, 'a', { status: 'waiting' }), delta(12, 'a', { status: 'error' }));
    expect(s.get('a')!.agent.status).toBe('waiting');
  });

  it('notifies only the changed row; the list only when membership, status or liveness change', () => {
    const s = new AgentStore();
    feed(s, snapshot(1, [agent('a'), agent('b')]));
    const a = vi.fn(), b = vi.fn(), list = vi.fn();
    s.subscribeRow('a', a);
    s.subscribeRow('b', b);
    s.subscribeList(list);
    feed(s, delta(2, 'a', { metrics: { cpu_pct: 1 } }), delta(3, 'a', { metrics: { cpu_pct: 2 } }));
    expect(a).toHaveBeenCalledTimes(1); // once per frame
    expect(b).not.toHaveBeenCalled();
    expect(list).not.toHaveBeenCalled();
    feed(s, delta(4, 'b', { liveness: 'stale' }));
    expect(b).toHaveBeenCalledTimes(1);
    expect(list).toHaveBeenCalledTimes(1);
  });

  it('a resync snapshot keeps the rows that did not change, so they do not re-render', () => {
    const s = new AgentStore();
    feed(s, snapshot(1, [agent('a'), agent('b')]));
    const rowA = s.get('a');
    const a = vi.fn(), b = vi.fn();
    s.subscribeRow('a', a);
    s.subscribeRow('b', b);
    feed(s, snapshot(50, [agent('a'), agent('b', { status: 'error' })]));
    expect(s.get('a')).toBe(rowA);
    expect(a).not.toHaveBeenCalled();
    expect(b).toHaveBeenCalledTimes(1);
  });

  it("the hub's refusal of the fleet is kept for the page to show, and a later subscription clears it", () => {
    const s = new AgentStore();
    const list = vi.fn();
    s.subscribeList(list);
    const message = "an agent's token may subscribe to agent:<id> and commands:<id> of its own agent only";
    feed(s, { type: 'error', code: 'forbidden', message, topic: 'agents:all' });
    expect(s.refusal()).toBe(message);
    expect(list).toHaveBeenCalledTimes(1);
    feed(s, { type: 'subscribed', topic: 'agents:all', epoch: EPOCH, seq: 1, recovered: false }, snapshot(1, []));
    expect(s.refusal()).toBeNull();
  });

  it('totals replace the totals and do not move the resume position', () => {
    const s = new AgentStore();
    feed(s, snapshot(7, [agent('a')]));
    feed(s, { type: 'totals', epoch: EPOCH, seq: 99, ...totals(3) });
    expect(s.totals()?.agents).toBe(3);
    expect(s.since()).toEqual({ epoch: EPOCH, seq: 7 });
  });

  it('events advance the position and are kept, newest first', () => {
    const s = new AgentStore();
    feed(s, snapshot(1, [agent('a')]));
    feed(s, delta(2, 'a', { liveness: 'stale' }), { type: 'event', epoch: EPOCH, seq: 3, event: 'agent.stale', agent_id: 'a', liveness: 'stale', last_heartbeat: '', server_ts: 't' });
    expect(s.since()?.seq).toBe(3);
    expect(s.events[0]).toMatchObject({ event: 'agent.stale', agent_id: 'a' });
  });

  it('a new epoch (server restart) takes the new position even if its seq is lower', () => {
    const s = new AgentStore();
    feed(s, snapshot(500, [agent('a')]));
    feed(s, { type: 'subscribed', topic: 'agents:all', epoch: 'aaaaaaaaaaaaaaaa', seq: 3, recovered: false }, snapshot(3, [agent('a')], 'aaaaaaaaaaaaaaaa'));
    expect(s.since()).toEqual({ epoch: 'aaaaaaaaaaaaaaaa', seq: 3 });
    feed(s, { ...(delta(4, 'a', { status: 'error' }) as object), epoch: 'aaaaaaaaaaaaaaaa' } as HubMessage);
    expect(s.get('a')!.agent.status).toBe('error');
  });
});
