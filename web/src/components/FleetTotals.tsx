// FleetTotals.tsx - the fleet's cost and tokens per minute, live from the hub's totals, drawn
// on the shared clock's ticks (at most two a second) rather than on each totals message.
import { useSyncExternalStore } from 'react';
import { onTick } from '../lib/clock';
import { count, usd } from '../lib/format';
import { fleet } from '../lib/session';

export function FleetTotals() {
  const totals = useSyncExternalStore(onTick, () => fleet.totals());
  return (
    <div className="totals" aria-label="fleet totals">
      <span title="Sum of each agent's latest cost (estimated where an agent reports none)">
        cost <strong data-testid="fleet-cost">{totals ? usd(totals.cost_usd) : '—'}</strong>
      </span>
      <span>
        tokens/min <strong data-testid="fleet-tpm">{totals ? count(totals.tokens_per_min) : '—'}</strong>
      </span>
      <span>
        agents <strong data-testid="fleet-agents">{totals ? totals.agents : '—'}</strong>
        {totals && (
          <span className="muted">
            {' '}
            ({totals.agents_by_liveness.online} online, {totals.agents_by_liveness.stale} stale,{' '}
            {totals.agents_by_liveness.dead} dead)
          </span>
        )}
      </span>
    </div>
  );
}
