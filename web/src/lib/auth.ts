// auth.ts - the bearer token of this browser tab, kept in session storage so that it goes with
// the tab and is never written to disk by us.

const KEY = 'aei.token';

type Listener = () => void;
const listeners = new Set<Listener>();

export function getToken(): string | null {
  return sessionStorage.getItem(KEY);
}

export function setToken(token: string): void {
  sessionStorage.setItem(KEY, token);
  listeners.forEach((l) => l());
}

let signedOutBecause: string | null = null;

/** Signs the tab out; `reason`, when given, is shown on the sign-in page that follows. */
export function clearToken(reason?: string): void {
  signedOutBecause = reason ?? null;
  sessionStorage.removeItem(KEY);
  listeners.forEach((l) => l());
}

/** Why the tab was signed out, once (the sign-in page reads it as it opens). */
export function takeSignOutReason(): string | null {
  const r = signedOutBecause;
  signedOutBecause = null;
  return r;
}

export function onTokenChange(l: Listener): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}
