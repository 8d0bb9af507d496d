// AgentActionsPanel.tsx - the side panel of one agent's actions (execute with a prompt, pause,
// resume, terminate), each behind a confirmation dialog with an optional reason; it shows the
// command the server queued, or why it refused, and after an execute a link to its trace.
import { useState, useSyncExternalStore, type FormEvent } from 'react';
import { Link } from 'react-router';
import { LivenessBadge } from '../../components/LivenessBadge';
import { ApiError, actOnAgent } from '../../lib/api';
import { canAct, usePrincipal } from '../../lib/principal';
import { fleet } from '../../lib/session';
import type { AgentAction, CommandAccepted } from '../../lib/types';
import { ACTIONS, actionBody, panelTarget, usePanelTarget } from './agentActions';

type Outcome = { ok: CommandAccepted } | { error: string };

/** A refusal in words: 403 and 409 say what the person can do about it. */
function refusal(e: unknown): string {
  if (!(e instanceof ApiError)) return `Could not reach the server: ${(e as Error).message}`;
  if (e.status === 403) return `Not allowed: ${e.message}`;
  if (e.status === 409) return `Not now: ${e.message}`;
  if (e.status === 503) return `The store is unavailable; nothing was sent. Try again shortly. (${e.message})`;
  return e.message;
}

function ConfirmDialog({ agentId, action, onDone, onCancel }: {
  agentId: string;
  action: AgentAction;
  onDone: (o: Outcome) => void;
  onCancel: () => void;
}) {
  const info = ACTIONS[action];
  const [prompt, setPrompt] = useState('');
  const [reason, setReason] = useState('');
  const [problem, setProblem] = useState('');
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const r = actionBody(action, prompt, reason);
    if ('error' in r) {
      setProblem(r.error);
      return;
    }
    setBusy(true);
    try {
      onDone({ ok: await actOnAgent(agentId, action, r.body) });
    } catch (err) {
      onDone({ error: refusal(err) });
    }
  };

  return (
    <div className="modal-backdrop">
      <form className="modal" role="dialog" aria-modal="true" aria-label={`${info.label} ${agentId}`} onSubmit={submit}>
        <h2>{info.label} <span className="id">{agentId}</span>?</h2>
        <p className="muted">{info.explain}</p>
        {action === 'execute' && (
          <label>
            Prompt
            <textarea name="prompt" rows={5} autoFocus value={prompt} onChange={(e) => setPrompt(e.target.value)} />
          </label>
        )}
        <label>
          Reason <span className="muted">(optional, kept in the audit log)</span>
          <input name="reason" value={reason} onChange={(e) => setReason(e.target.value)} />
        </label>
        {problem && <p className="error" role="alert">{problem}</p>}
        <div className="modal-buttons">
          <button type="button" onClick={onCancel} disabled={busy}>Cancel</button>
          <button type="submit" className={info.danger ? 'danger' : 'primary'} disabled={busy}>
            {busy ? 'Sending…' : info.label}
          </button>
        </div>
      </form>
    </div>
  );
}

function OutcomeView({ o }: { o: Outcome }) {
  if ('error' in o)
    return <p className="error" role="alert" data-testid="action-outcome">{o.error}</p>;
  const c = o.ok.command;
  return (
    <div role="status" data-testid="action-outcome">
      <p className="good">
        {ACTIONS[c.action]?.label ?? c.action} sent: command <span className="id">{c.command_id}</span> is {c.status}.
      </p>
      {o.ok.execution_id && (
        <p>
          <Link to={`/traces/${encodeURIComponent(o.ok.execution_id)}`}>Open the trace of {o.ok.execution_id}</Link>
        </p>
      )}
    </div>
  );
}

function Panel({ agentId }: { agentId: string }) {
  const row = useSyncExternalStore((l) => fleet.subscribeRow(agentId, l), () => fleet.get(agentId));
  const [asking, setAsking] = useState<AgentAction | null>(null);
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const a = row?.agent;
  return (
    <aside className="detail actions-panel" aria-label={`actions for agent ${agentId}`} data-testid="actions-panel">
      <div className="detail-head">
        <h2><span className="id">{agentId}</span></h2>
        <button type="button" onClick={() => panelTarget.set(null)} aria-label="close actions">✕</button>
      </div>
      {a ? (
        <p>
          {a.name && <>{a.name} · </>}<span className={`status st-${a.status}`}>{a.status}</span> · <LivenessBadge liveness={a.liveness} />
          {a.control && a.control !== 'active' && <> · <strong className="error" data-testid="agent-control">{a.control}</strong></>}
        </p>
      ) : (
        <p className="muted">This agent is no longer in the fleet.</p>
      )}
      <div className="action-buttons">
        {(Object.keys(ACTIONS) as AgentAction[]).map((act) => (
          <button key={act} type="button" className={ACTIONS[act].danger ? 'danger' : undefined} onClick={() => { setOutcome(null); setAsking(act); }}>
            {ACTIONS[act].label}…
          </button>
        ))}
      </div>
      {outcome && <OutcomeView o={outcome} />}
      {asking && (
        <ConfirmDialog
          agentId={agentId}
          action={asking}
          onCancel={() => setAsking(null)}
          onDone={(o) => {
            setAsking(null);
            setOutcome(o);
          }}
        />
      )}
    </aside>
  );
}

/** The panel for the agent chosen in the table, for roles that may act; keyed by agent so that
 * a new agent starts with no dialog or outcome. */
export function AgentActionsPanel() {
  const id = usePanelTarget();
  if (!canAct(usePrincipal()) || !id) return null;
  return <Panel key={id} agentId={id} />;
}
