// ActionsButton.tsx - the agents table's actions cell: one small button that opens the side
// panel for roles that may act, and nothing for the others. The panel holds everything else,
// so that a row stays as light as it was.
import { canAct, usePrincipal } from '../../lib/principal';
import { panelTarget } from './agentActions';

export function ActionsButton({ agentId }: { agentId: string }) {
  if (!canAct(usePrincipal())) return null;
  return (
    <button type="button" className="row-actions" aria-label={`actions for ${agentId}`} onClick={() => panelTarget.set(agentId)}>
      actions
    </button>
  );
}
