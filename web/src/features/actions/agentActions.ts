// agentActions.ts - what the agent actions need outside React: which agent the side panel is
// open for (set from a row's button without re-rendering the table), and the request body of
// an action, checked before it is sent.
import { useSyncExternalStore } from 'react';
import type { AgentAction } from '../../lib/types';

type Listener = () => void;

/** The agent whose actions panel is open, or null. */
class PanelTarget {
  private id: string | null = null;
  private listeners = new Set<Listener>();

  get = (): string | null => this.id;

  set(id: string | null): void {
    if (id === this.id) return;
    this.id = id;
    this.listeners.forEach((l) => l());
  }

  subscribe = (l: Listener): (() => void) => {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  };
}

export const panelTarget = new PanelTarget();

export function usePanelTarget(): string | null {
  return useSyncExternalStore(panelTarget.subscribe, panelTarget.get);
}

export interface ActionInfo {
  label: string;
  /** What confirming does, in the dialog. */
  explain: string;
  danger?: boolean;
}

export const ACTIONS: Record<AgentAction, ActionInfo> = {
  execute: { label: 'Execute', explain: 'The agent receives the prompt with its next heartbeat and starts a new execution.' },
  pause: { label: 'Pause', explain: 'The agent stops taking new work until it is resumed.' },
  resume: { label: 'Resume', explain: 'A paused agent goes back to work.' },
  terminate: { label: 'Terminate', explain: 'The agent is asked to stop for good. It cannot be resumed.', danger: true },
};

/** The longest prompt and reason sent; the server has its own limits and names them. */
export const PROMPT_MAX = 16384;
export const REASON_MAX = 1024;

/** The body of POST /api/v0/agents/{id}/{action}, or what is wrong with the form. */
export function actionBody(
  action: AgentAction,
  prompt: string,
  reason: string,
): { body: { prompt?: string; reason?: string } } | { error: string } {
  const body: { prompt?: string; reason?: string } = {};
  if (action === 'execute') {
    const p = prompt.trim();
    if (!p) return { error: 'Prompt: write what the agent should do.' };
    if (p.length > PROMPT_MAX) return { error: `Prompt: at most ${PROMPT_MAX} characters (it has ${p.length}).` };
    body.prompt = p;
  }
  const r = reason.trim();
  if (r.length > REASON_MAX) return { error: `Reason: at most ${REASON_MAX} characters (it has ${r.length}).` };
  if (r) body.reason = r;
  return { body };
}
