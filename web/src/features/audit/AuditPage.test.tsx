import { act, cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { AuditRow } from '../../lib/types';
import { AuditPage } from './AuditPage';

function row(id: number, over: Partial<AuditRow> = {}): AuditRow {
  return {
    id, team_id: 'red', seq: id, ts: '2026-11-24T15:00:00.000000Z', ts_us: 1764000000000000 + id,
    actor_type: 'service', actor_id: 'cli:alice', action_type: 'token_create', resource_id: `tk_${id}`,
    context: { after: { role: 'viewer' }, reason: 'onboarding' }, prev_hash: '0'.repeat(64),
    immutable_hash: 'f'.repeat(64), verified: true, ...over,
  };
}

/** Answers the audit routes from a script; records each URL asked for. */
function serve(routes: Record<string, unknown>) {
  const asked: string[] = [];
  vi.stubGlobal('fetch', vi.fn(async (url: string) => {
    asked.push(url);
    const key = Object.keys(routes).find((k) => url === k) ?? Object.keys(routes).find((k) => url.startsWith(k));
    const body = key ? routes[key] : { error: { code: 'not_found', message: `no ${url}` } };
    return new Response(JSON.stringify(body), { status: key ? 200 : 404, headers: { 'content-type': 'application/json' } });
  }));
  return asked;
}

const shownIds = () => [...document.querySelectorAll('[data-audit-id]')].map((e) => e.getAttribute('data-audit-id'));

beforeEach(() => sessionStorage.setItem('aei.token', 't'));
afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

describe('AuditPage', () => {
  it('shows a page of rows with a badge each and the context readable on demand', async () => {
    serve({ '/api/v0/audit?limit=50': { rows: [row(2), row(1, { verified: false, context: 'not json' })], next: null } });
    render(<AuditPage />);
    await waitFor(() => expect(shownIds()).toEqual(['2', '1']));
    const badges = [...document.querySelectorAll('[data-audit-id] .badge')].map((b) => b.textContent);
    expect(badges).toEqual(['verified', 'tampered']);
    expect(document.querySelector('[data-audit-id="1"]')!.className).toBe('tampered');
    const pre = document.querySelector('[data-audit-id="2"] details pre')!;
    expect(JSON.parse(pre.textContent!)).toEqual({ after: { role: 'viewer' }, reason: 'onboarding' });
    expect(document.querySelector('[data-audit-id="1"] details pre')!.textContent).toBe('not json');
  });

  it('applies the filters as API parameters, dates as UTC days', async () => {
    const asked = serve({ '/api/v0/audit?': { rows: [], next: null } });
    render(<AuditPage />);
    await waitFor(() => expect(asked.length).toBe(1));
    fireEvent.change(screen.getByPlaceholderText('actor id'), { target: { value: 'cli:bob' } });
    fireEvent.change(screen.getByLabelText('from day (UTC)'), { target: { value: '2026-11-20' } });
    fireEvent.change(screen.getByLabelText('to day (UTC, included)'), { target: { value: '2026-11-24' } });
    fireEvent.click(screen.getByRole('button', { name: 'Apply' }));
    await waitFor(() => expect(asked.length).toBe(2));
    const q = new URL(asked[1], 'http://x').searchParams;
    expect(Object.fromEntries(q)).toEqual({ actor: 'cli:bob', from: '2026-11-20T00:00:00Z', to: '2026-11-25T00:00:00Z', limit: '50' });
    expect(await screen.findByText('No audit rows match these filters.')).toBeTruthy();
  });

  it('refuses a range that ends before it starts, naming the field', async () => {
    const asked = serve({ '/api/v0/audit?': { rows: [], next: null } });
    render(<AuditPage />);
    fireEvent.change(screen.getByLabelText('from day (UTC)'), { target: { value: '2026-11-25' } });
    fireEvent.change(screen.getByLabelText('to day (UTC, included)'), { target: { value: '2026-11-24' } });
    fireEvent.click(screen.getByRole('button', { name: 'Apply' }));
    expect((await screen.findByRole('alert')).textContent).toBe('To: pick a day on or after From.');
    expect(asked.length).toBe(1);
  });

  it('pages older with the cursor and back to newer', async () => {
    const asked = serve({
      '/api/v0/audit?limit=50': { rows: [row(3)], next: '100-3' },
      '/api/v0/audit?cursor=100-3&limit=50': { rows: [row(2)], next: null },
    });
    render(<AuditPage />);
    await waitFor(() => expect(shownIds()).toEqual(['3']));
    expect((screen.getByRole('button', { name: '← Newer' }) as HTMLButtonElement).disabled).toBe(true);
    fireEvent.click(screen.getByRole('button', { name: 'Older →' }));
    await waitFor(() => expect(shownIds()).toEqual(['2']));
    expect(screen.getByTestId('audit-page').textContent).toBe('page 2');
    expect((screen.getByRole('button', { name: 'Older →' }) as HTMLButtonElement).disabled).toBe(true);
    fireEvent.click(screen.getByRole('button', { name: '← Newer' }));
    await waitFor(() => expect(shownIds()).toEqual(['3']));
    expect(asked).toEqual(['/api/v0/audit?limit=50', '/api/v0/audit?cursor=100-3&limit=50', '/api/v0/audit?limit=50']);
  });

  it('verifies the chain: rows checked, or the first bad row with its id and why', async () => {
    serve({
      '/api/v0/audit?': { rows: [], next: null },
      '/api/v0/audit/verify': {
        ok: false, rows_checked: 2, checkpoint: true, seconds: 0.001,
        first_bad: { id: 17, team_id: 'red', seq: 2, reason: 'hash_mismatch', message: 'row 17 does not match its hash' },
      },
    });
    render(<AuditPage />);
    await act(async () => fireEvent.click(screen.getByTestId('verify-chain')));
    const text = (await screen.findByTestId('verify-result')).textContent;
    expect(text).toContain('row 17 (team red, sequence 2), hash_mismatch: row 17 does not match its hash');
  });

  it('says how many rows a whole chain has', async () => {
    serve({ '/api/v0/audit?': { rows: [], next: null }, '/api/v0/audit/verify': { ok: true, rows_checked: 1204, checkpoint: false, first_bad: null } });
    render(<AuditPage />);
    fireEvent.click(screen.getByTestId('verify-chain'));
    expect((await screen.findByTestId('verify-result')).textContent).toBe('Every chain verifies: 1,204 rows checked.');
  });
});
