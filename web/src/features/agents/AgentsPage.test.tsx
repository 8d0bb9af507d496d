import { act, cleanup, render, screen } from '@testing-library/react';
import { Profiler } from 'react';
import { MemoryRouter } from 'react-router';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fleet } from '../../lib/session';
import type { Agent, HubMessage } from '../../lib/types';
import { AgentRow } from './AgentRow';
import { AgentsPage } from './AgentsPage';

const EPOCH = '0123456789abcdef';
let seq = 1000;

function agent(id: string, over: Partial<Agent> = {}): Agent {
  return {
    agent_id: id, name: null, status: 'idle',
    metrics: { cpu_pct: 10, mem_pct: 20, tokens_per_min: 100, cost_usd: 1, confidence: 80 },
    parent_agent_id: null, child_agent_ids: [], labels: {}, schema_version: '0',
    first_seen: '2026-11-24T15:00:00.000000Z', last_heartbeat: '2026-11-24T15:00:00.000000Z',
    agent_ts: null, liveness: 'online', estimated_cost_usd: null, ...over,
  };
}

function load(agents: Agent[]) {
  const msg: HubMessage = {
    type: 'snapshot', topic: 'agents:all', epoch: EPOCH, seq: ++seq, agents,
    totals: { cost_usd: 0, estimated_cost_usd: 0, tokens_per_min: 0, agents: agents.length, agents_by_status: { idle: 0, processing: 0, waiting: 0, error: 0, complete: 0 }, agents_by_liveness: { online: 0, stale: 0, dead: 0 } },
  };
  act(() => {
    fleet.handle(msg);
    fleet.flush();
  });
}

function change(id: string, changed: object) {
  act(() => {
    fleet.handle({ type: 'delta', epoch: EPOCH, seq: ++seq, agent_id: id, changed, server_ts: '' } as HubMessage);
    fleet.flush();
  });
}

beforeAll(() => {
  // jsdom does no layout: give the scroll area a size so that the virtualizer has a window.
  globalThis.ResizeObserver = class {
    observe() {}
    unobserve() {}
    disconnect() {}
  } as unknown as typeof ResizeObserver;
  for (const [prop, v] of [['clientHeight', 720], ['clientWidth', 1200], ['offsetHeight', 36], ['offsetWidth', 1200]] as const)
    Object.defineProperty(HTMLElement.prototype, prop, { configurable: true, get: () => v });
});
afterEach(cleanup);

describe('AgentRow', () => {
  it('re-renders for its own agent only, and flashes the changed cell', () => {
    load([agent('a'), agent('b')]);
    const renders: Record<string, number> = { a: 0, b: 0 };
    render(
      <MemoryRouter>
        {['a', 'b'].map((id) => (
          <Profiler key={id} id={id} onRender={() => renders[id]++}>
            <AgentRow id={id} top={0} />
          </Profiler>
        ))}
      </MemoryRouter>,
    );
    const before = { ...renders };
    change('a', { metrics: { cpu_pct: 77 } });
    expect(renders.a).toBe(before.a + 1);
    expect(renders.b).toBe(before.b);
    const cpu = document.querySelector('[data-agent-id="a"] [data-col="cpu"]')!;
    expect(cpu.textContent).toBe('77%');
    expect(cpu.className).toContain('flash');
    expect(document.querySelector('[data-agent-id="a"] [data-col="mem"]')!.className).not.toContain('flash');
  });
});

describe('AgentsPage', () => {
  it('draws only the rows in view: 10,000 agents, a screenful of rows', () => {
    load(Array.from({ length: 10000 }, (_, i) => agent(`agent-${String(i).padStart(5, '0')}`)));
    render(
      <MemoryRouter>
        <AgentsPage />
      </MemoryRouter>,
    );
    const rows = document.querySelectorAll('[data-agent-id]');
    expect(rows.length).toBeGreaterThan(10);
    expect(rows.length).toBeLessThan(60);
    expect(screen.getByTestId('agent-count').textContent).toBe('10000 agents');
  });

  it("says why the fleet is empty when the hub refused it to this token (an agent's)", () => {
    load([]);
    act(() => {
      fleet.handle({ type: 'error', code: 'forbidden', message: 'agent tokens watch their own agent only.', topic: 'agents:all' });
      fleet.flush();
    });
    render(
      <MemoryRouter>
        <AgentsPage />
      </MemoryRouter>,
    );
    expect(screen.getByRole('alert').textContent).toMatch(/does not show the fleet to this token: agent tokens watch/);
    expect(screen.queryByText(/No agents yet/)).toBeNull();
    act(() => {
      fleet.handle({ type: 'subscribed', topic: 'agents:all', epoch: EPOCH, seq: ++seq, recovered: false });
      fleet.flush();
    });
  });

  it('filters by liveness and status', () => {
    load([agent('a1'), agent('a2', { liveness: 'dead' }), agent('a3', { status: 'error' })]);
    render(
      <MemoryRouter>
        <AgentsPage />
      </MemoryRouter>,
    );
    const shown = () => [...document.querySelectorAll('[data-agent-id]')].map((e) => e.getAttribute('data-agent-id'));
    expect(shown()).toEqual(['a1', 'a2', 'a3']);
    act(() => {
      const sel = screen.getByLabelText('filter by liveness') as HTMLSelectElement;
      sel.value = 'dead';
      sel.dispatchEvent(new Event('change', { bubbles: true }));
    });
    expect(shown()).toEqual(['a2']);
    change('a1', { liveness: 'dead' });
    expect(shown()).toEqual(['a1', 'a2']);
  });
});
