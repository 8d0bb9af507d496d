// principal.ts - who is signed in (GET /api/v0/me), kept beside the token in session storage, and
// what that role may see and do. The views ask here, never the role strings themselves.
import { useSyncExternalStore } from 'react';
import { getMe } from './api';
import { getToken, onTokenChange } from './auth';
import type { Principal } from './types';

const KEY = 'aei.principal';

type Listener = () => void;
const listeners = new Set<Listener>();
let cached: Principal | null | undefined;

export function getPrincipal(): Principal | null {
  if (cached === undefined) {
    try {
      cached = JSON.parse(sessionStorage.getItem(KEY) ?? 'null') as Principal | null;
    } catch {
      cached = null;
    }
  }
  return cached;
}

export function setPrincipal(p: Principal | null): void {
  cached = p;
  if (p) sessionStorage.setItem(KEY, JSON.stringify(p));
  else sessionStorage.removeItem(KEY);
  listeners.forEach((l) => l());
}

// Signing out, or a token the server refuses, forgets the principal with the token.
onTokenChange(() => {
  if (!getToken()) setPrincipal(null);
});

export function onPrincipalChange(l: Listener): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}

export function usePrincipal(): Principal | null {
  return useSyncExternalStore(onPrincipalChange, getPrincipal);
}

/** Asks the server who `token` is (GET /api/v0/me); rejects with an ApiError, 401 for a token
 * the server refuses. */
export function fetchPrincipal(token?: string): Promise<Principal> {
  return getMe(token);
}

/** Admins see the server's health. */
export function isAdmin(p: Principal | null): boolean {
  return p?.role === 'admin';
}

/** Admins and operators act on agents; viewers (and agents) only read. */
export function canAct(p: Principal | null): boolean {
  return p?.role === 'admin' || p?.role === 'operator';
}
