import { act, cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { MemoryRouter } from 'react-router';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { setPrincipal } from '../../lib/principal';
import { fleet } from '../../lib/session';
import type { Principal } from '../../lib/types';
import { ActionsButton } from './ActionsButton';
import { AgentActionsPanel } from './AgentActionsPanel';
import { panelTarget } from './agentActions';

const as = (role: Principal['role']): Principal => ({ id: 'u', kind: 'user', team: 'red', role });

/** The server's answer to every POST, recorded. */
function answer(status: number, body: unknown) {
  const sent: { url: string; body: unknown; method?: string }[] = [];
  vi.stubGlobal('fetch', vi.fn(async (url: string, init: RequestInit) => {
    sent.push({ url, method: init.method, body: JSON.parse(String(init.body)) });
    return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
  }));
  return sent;
}

const accepted = (action: string, extra = {}) => ({
  command: { command_id: 'cmd-1', agent_id: 'bot-1', action, status: 'pending', created: '2026-11-24T23:00:00.000000Z' },
  ...extra,
});

function ui() {
  return render(
    <MemoryRouter>
      <ActionsButton agentId="bot-1" />
      <AgentActionsPanel />
    </MemoryRouter>,
  );
}

beforeEach(() => sessionStorage.setItem('aei.token', 't'));
afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  act(() => {
    panelTarget.set(null);
    setPrincipal(null);
  });
});

describe('agent actions', () => {
  it('are offered to admins and operators, never to viewers', () => {
    setPrincipal(as('viewer'));
    ui();
    expect(screen.queryByRole('button', { name: 'actions for bot-1' })).toBeNull();
    act(() => panelTarget.set('bot-1')); // even a panel opened some other way stays shut
    expect(screen.queryByTestId('actions-panel')).toBeNull();
    cleanup();
    for (const role of ['operator', 'admin'] as const) {
      act(() => setPrincipal(as(role)));
      ui();
      expect(screen.getByTestId('actions-panel')).toBeTruthy();
      expect(screen.getByRole('button', { name: 'actions for bot-1' })).toBeTruthy();
      cleanup();
    }
  });

  it('execute: asks for a prompt, sends it with the reason, links the trace', async () => {
    setPrincipal(as('operator'));
    const sent = answer(202, accepted('execute', { execution_id: 'exec-42' }));
    ui();
    fireEvent.click(screen.getByRole('button', { name: 'actions for bot-1' }));
    fireEvent.click(screen.getByRole('button', { name: 'Execute…' }));
    const dialog = screen.getByRole('dialog', { name: 'Execute bot-1' });
    fireEvent.click(screen.getByRole('button', { name: 'Execute' }));
    expect(screen.getByRole('alert').textContent).toBe('Prompt: write what the agent should do.');
    expect(sent).toEqual([]);
    fireEvent.change(dialog.querySelector('textarea')!, { target: { value: 'summarise the logs' } });
    fireEvent.change(dialog.querySelector('input[name=reason]')!, { target: { value: 'weekly report' } });
    await act(async () => fireEvent.click(screen.getByRole('button', { name: 'Execute' })));
    expect(sent).toEqual([{ url: '/api/v0/agents/bot-1/execute', method: 'POST', body: { prompt: 'summarise the logs', reason: 'weekly report' } }]);
    expect(screen.queryByRole('dialog')).toBeNull();
    expect(screen.getByTestId('action-outcome').textContent).toContain('Execute sent: command cmd-1 is pending.');
    expect(screen.getByRole('link', { name: 'Open the trace of exec-42' }).getAttribute('href')).toBe('/traces/exec-42');
  });

  it('pause: confirms first, and cancel sends nothing', async () => {
    setPrincipal(as('admin'));
    const sent = answer(202, accepted('pause'));
    ui();
    fireEvent.click(screen.getByRole('button', { name: 'actions for bot-1' }));
    fireEvent.click(screen.getByRole('button', { name: 'Pause…' }));
    expect(screen.getByRole('dialog', { name: 'Pause bot-1' }).querySelector('textarea')).toBeNull();
    fireEvent.click(screen.getByRole('button', { name: 'Cancel' }));
    expect(sent).toEqual([]);
    fireEvent.click(screen.getByRole('button', { name: 'Pause…' }));
    await act(async () => fireEvent.click(screen.getByRole('button', { name: 'Pause' })));
    expect(sent).toEqual([{ url: '/api/v0/agents/bot-1/pause', method: 'POST', body: {} }]);
    expect(screen.getByTestId('action-outcome').textContent).toBe('Pause sent: command cmd-1 is pending.');
    expect(screen.queryByRole('link')).toBeNull();
  });

  for (const [status, code, message, shown] of [
    [403, 'forbidden', 'viewers may not act on agents', 'Not allowed: viewers may not act on agents'],
    [409, 'conflict', 'agent "bot-1" is paused already', 'Not now: agent "bot-1" is paused already'],
    [404, 'not_found', 'no agent "bot-1"', 'no agent "bot-1"'],
    [503, 'store_unavailable', 'the store is unavailable', 'The store is unavailable; nothing was sent. Try again shortly. (the store is unavailable)'],
  ] as const) {
    it(`shows a ${status} refusal in words`, async () => {
      setPrincipal(as('operator'));
      answer(status, { error: { code, message } });
      ui();
      fireEvent.click(screen.getByRole('button', { name: 'actions for bot-1' }));
      fireEvent.click(screen.getByRole('button', { name: 'Terminate…' }));
      await act(async () => fireEvent.click(screen.getByRole('button', { name: 'Terminate' })));
      await waitFor(() => expect(screen.getByTestId('action-outcome').textContent).toBe(shown));
    });
  }

  it("shows the agent's state, paused included", () => {
    setPrincipal(as('operator'));
    const agent = {
      agent_id: 'bot-1', name: 'Bot', status: 'idle', metrics: { cpu_pct: null, mem_pct: null, tokens_per_min: null, cost_usd: null, confidence: null },
      parent_agent_id: null, child_agent_ids: [], labels: {}, schema_version: '0', first_seen: '', last_heartbeat: '', agent_ts: null,
      liveness: 'online', estimated_cost_usd: null, team_id: 'red', control: 'paused',
    } as const;
    act(() => {
      fleet.handle({ type: 'snapshot', topic: 'agents:all', epoch: 'e', seq: 1, agents: [{ ...agent, child_agent_ids: [], labels: {}, metrics: { ...agent.metrics } }], totals: null as never });
      fleet.flush();
    });
    ui();
    fireEvent.click(screen.getByRole('button', { name: 'actions for bot-1' }));
    expect(screen.getByTestId('actions-panel').textContent).toContain('Bot · idle · online · paused');
  });

  it('closes', () => {
    setPrincipal(as('operator'));
    ui();
    fireEvent.click(screen.getByRole('button', { name: 'actions for bot-1' }));
    fireEvent.click(screen.getByRole('button', { name: 'close actions' }));
    expect(screen.queryByTestId('actions-panel')).toBeNull();
  });
});
