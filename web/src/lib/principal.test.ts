import { afterEach, describe, expect, it, vi } from 'vitest';
import { ApiError } from './api';
import { clearToken, setToken } from './auth';
import { canAct, fetchPrincipal, getPrincipal, isAdmin, setPrincipal } from './principal';
import type { Principal } from './types';

function answer(status: number, body: unknown) {
  const calls: { url: string; auth: string | undefined }[] = [];
  vi.stubGlobal('fetch', vi.fn(async (url: string, init: RequestInit) => {
    calls.push({ url, auth: (init.headers as Record<string, string>).Authorization });
    return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
  }));
  return calls;
}

const viewer: Principal = { id: 'vera', kind: 'user', team: 'blue', role: 'viewer' };

afterEach(() => {
  vi.unstubAllGlobals();
  sessionStorage.clear();
  setPrincipal(null);
});

describe('principal', () => {
  it('asks GET /api/v0/me with the token being signed in', async () => {
    const calls = answer(200, viewer);
    expect(await fetchPrincipal('tok-1')).toEqual(viewer);
    expect(calls).toEqual([{ url: '/api/v0/me', auth: 'Bearer tok-1' }]);
  });

  it('passes a refused token on as the 401 it is', async () => {
    answer(401, { error: { code: 'invalid_token', message: 'the bearer token is not valid' } });
    await expect(fetchPrincipal('bad')).rejects.toMatchObject({ status: 401, code: 'invalid_token' });
    await expect(fetchPrincipal('bad')).rejects.toBeInstanceOf(ApiError);
  });

  it('is kept in session storage and forgotten with the token', () => {
    setToken('t');
    setPrincipal(viewer);
    expect(JSON.parse(sessionStorage.getItem('aei.principal')!)).toEqual(viewer);
    expect(getPrincipal()).toEqual(viewer);
    clearToken();
    expect(getPrincipal()).toBeNull();
    expect(sessionStorage.getItem('aei.principal')).toBeNull();
  });

  it('says what each role may see and do', () => {
    const as = (role: Principal['role']) => ({ ...viewer, role });
    expect([isAdmin(as('admin')), canAct(as('admin'))]).toEqual([true, true]);
    expect([isAdmin(as('operator')), canAct(as('operator'))]).toEqual([false, true]);
    expect([isAdmin(as('viewer')), canAct(as('viewer'))]).toEqual([false, false]);
    expect([isAdmin(as('agent')), canAct(as('agent'))]).toEqual([false, false]);
    expect([isAdmin(null), canAct(null)]).toEqual([false, false]);
  });
});
