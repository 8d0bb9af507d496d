// AgentRow.tsx - one agent's row; it reads its own agent from the store, so a delta re-renders
// this row alone. A cell whose value just changed remounts with a flash.
import { memo, useSyncExternalStore } from 'react';
import { fleet } from '../../lib/session';
import { COLUMNS, GRID_TEMPLATE } from './columns';

/** How long after a change a freshly drawn cell still flashes (scrolling into view). */
const FLASH_MS = 1000;

export const ROW_HEIGHT = 36;

export const AgentRow = memo(function AgentRow({ id, top }: { id: string; top: number }) {
  const row = useSyncExternalStore(
    (l) => fleet.subscribeRow(id, l),
    () => fleet.get(id),
  );
  if (!row) return null;
  const { agent, changedAt } = row;
  const now = Date.now();
  return (
    <div className="row body" role="row" data-agent-id={id} style={{ height: ROW_HEIGHT, transform: `translateY(${top}px)`, gridTemplateColumns: GRID_TEMPLATE }}>
      {COLUMNS.map((c) => {
        const t = Math.max(0, ...c.fields.map((f) => changedAt[f] ?? 0));
        const flash = t > 0 && now - t < FLASH_MS;
        return (
          <div key={`${c.key}:${t}`} role="cell" data-col={c.key} className={`cell${c.numeric ? ' num' : ''}${flash ? ' flash' : ''}`}>
            {c.cell(agent)}
          </div>
        );
      })}
    </div>
  );
});
