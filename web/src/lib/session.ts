// session.ts - what lives as long as the tab is signed in: the one hub connection and the
// fleet it keeps up to date.
import { useSyncExternalStore } from 'react';
import { ApiError, checkToken } from './api';
import { getToken } from './auth';
import { LiveClient, type ConnectionState } from './live';
import { AgentStore } from '../features/agents/agentStore';

function hubUrl(): string {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  // Browsers cannot set headers on a WebSocket: the token goes in the query (asyncapi.yaml).
  return `${scheme}://${location.host}/ws?token=${encodeURIComponent(getToken() ?? '')}`;
}

/** False only when the server says the token is wrong; a server that is down says nothing. */
async function tokenAccepted(): Promise<boolean> {
  const token = getToken();
  if (!token) return false;
  try {
    await checkToken(token);
    return true;
  } catch (e) {
    return !(e instanceof ApiError && e.status === 401);
  }
}

export const live = new LiveClient(hubUrl, { tokenAccepted });
export const fleet = new AgentStore();
let unsubscribeFleet: (() => void) | null = null;

export function startSession(): void {
  if (!unsubscribeFleet) unsubscribeFleet = live.subscribe('agents:all', fleet);
  live.start();
}

export function stopSession(): void {
  live.stop();
}

export function useConnectionState(): { state: ConnectionState; failures: number } {
  const state = useSyncExternalStore(
    (l) => live.onState(l),
    () => live.state,
  );
  return { state, failures: live.failures };
}
