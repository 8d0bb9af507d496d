import { act, cleanup, render, screen } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { setPrincipal } from '../../lib/principal';
import type { DebugHealth } from '../../lib/types';
import { HealthPage, REFRESH_MS } from './HealthPage';

const none = { count: 0, mean_ms: null, p50_ms: null, p99_ms: null };

function doc(over: Partial<DebugHealth> = {}): DebugHealth {
  return {
    version: '0.1.0', started: '2026-11-24T22:00:00.000000Z', now: '2026-11-24T23:00:00.000000Z', uptime_seconds: 3725,
    store: { backend: 'postgres', probe: { ok: true, query_ms: 0.25 }, latency: { commit: { count: 10, mean_ms: 1.5, p50_ms: 2.5, p99_ms: 5 }, read: none } },
    websocket: { connections: 3, subscribed: 2, agents_all: 1, agent_topics: 1, execution_topics: 0, command_topics: 0, push_latency: none },
    rates: { heartbeats: { per_second_10s: 12.5, per_second_60s: 11 }, decisions: { per_second_10s: 0, per_second_60s: 0.25 } },
    errors: { total: 7, recent: [{ ts: '2026-11-24T22:59:00.000000Z', where: 'POST /api/v0/heartbeats', status: 503, code: 'store_unavailable', message: 'the store is unavailable' }] },
    audit_sample: { ok: true, query_ms: 0.4, rows: [] },
    ...over,
  };
}

function serve(...answers: DebugHealth[]) {
  const fetch = vi.fn(async () => new Response(JSON.stringify(answers.length > 1 ? answers.shift() : answers[0]), { status: 200 }));
  vi.stubGlobal('fetch', fetch);
  return fetch;
}

beforeEach(() => {
  sessionStorage.setItem('aei.token', 't');
  vi.useFakeTimers({ shouldAdvanceTime: true });
});
afterEach(() => {
  cleanup();
  vi.useRealTimers();
  vi.unstubAllGlobals();
  setPrincipal(null);
});

describe('HealthPage', () => {
  it('shows the report to an admin and refreshes it', async () => {
    setPrincipal({ id: 'bootstrap', kind: 'admin', team: 'default', role: 'admin' });
    const fetch = serve(doc(), doc({ websocket: { ...doc().websocket, connections: 9 } }));
    render(<HealthPage />);
    expect((await screen.findByTestId('ws-connections')).textContent).toMatch(/^3 connections, 2 subscribed \(1 to agents:all/);
    expect(screen.getByTestId('uptime').textContent).toMatch(/^1 h 2 min/);
    expect(screen.getByTestId('store-probe').textContent).toBe('postgres · answering, probe 0.250 ms');
    expect(screen.getByTestId('rate-heartbeats').textContent).toBe('heartbeats13/s11/s');
    const err = screen.getByTestId('health-errors').querySelector('tbody tr')!;
    expect([...err.children].map((c) => c.textContent).slice(1)).toEqual(['POST /api/v0/heartbeats', '503', 'store_unavailable', 'the store is unavailable']);
    expect(fetch).toHaveBeenCalledWith('/api/v0/debug/health', expect.anything());
    await act(async () => vi.advanceTimersByTime(REFRESH_MS + 10));
    expect((await screen.findByTestId('ws-connections')).textContent).toMatch(/^9 connections/);
  });

  it('shows a failing store as failing', async () => {
    setPrincipal({ id: 'bootstrap', kind: 'admin', team: 'default', role: 'admin' });
    serve(doc({
      store: { ...doc().store, probe: { ok: false, query_ms: 3, error: 'the store is unavailable' } },
      audit_sample: { ok: false, query_ms: 3, error: 'the store is unavailable', rows: [] },
    }));
    render(<HealthPage />);
    expect((await screen.findByTestId('store-probe')).textContent).toBe('postgres · failing: the store is unavailable');
    expect(screen.getByText('Could not read the audit log: the store is unavailable')).toBeTruthy();
  });

  it('tells anyone but an admin that it is not theirs, without asking the server', async () => {
    setPrincipal({ id: 'olga', kind: 'user', team: 'red', role: 'operator' });
    const fetch = serve(doc());
    render(<HealthPage />);
    expect(screen.getByRole('alert').textContent).toBe("Only admins see the server's health.");
    expect(fetch).not.toHaveBeenCalled();
  });
});
