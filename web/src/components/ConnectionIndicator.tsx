// ConnectionIndicator.tsx - whether the live feed is live, and nothing more hopeful than that.
import { useConnectionState } from '../lib/session';

const LABELS = {
  connecting: 'connecting',
  connected: 'connected',
  reconnecting: 'reconnecting',
  disconnected: 'disconnected',
} as const;

export function ConnectionIndicator() {
  const { state, failures } = useConnectionState();
  const title =
    state === 'reconnecting'
      ? `The live feed was lost; retrying (attempt ${failures}). What you see may be out of date.`
      : state === 'connected'
        ? 'The live feed is connected: changes appear as they happen.'
        : state === 'disconnected'
          ? 'Not connected to the live feed.'
          : 'Opening the live feed.';
  return (
    <span className={`connection conn-${state}`} data-testid="connection" data-state={state} title={title}>
      <span className="dot" aria-hidden="true" />
      {LABELS[state]}
    </span>
  );
}
