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

export function clearToken(): void {
  sessionStorage.removeItem(KEY);
  listeners.forEach((l) => l());
}

export function onTokenChange(l: Listener): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}
