// DecisionDetail.tsx - one decision in full: its context, what it chose, and each alternative
// with why it was rejected.
import { clockTime, confidence, count, fullText, usd } from '../../lib/format';
import type { Decision } from '../../lib/types';

export function DecisionDetail({ d, onClose }: { d: Decision; onClose: () => void }) {
  return (
    <aside className="detail" data-testid="decision-detail" aria-label={`decision ${d.decision_id}`}>
      <div className="detail-head">
        <h2>
          {d.kind ?? 'decision'} <span className="id muted">{d.decision_id}</span>
        </h2>
        <button type="button" onClick={onClose} aria-label="close details">✕</button>
      </div>
      <dl className="facts">
        <dt>confidence</dt><dd>{confidence(d.confidence_score)}</dd>
        <dt>time</dt><dd>{clockTime(d.timestamp)}</dd>
        {d.agent_ts && (<><dt>agent time</dt><dd>{clockTime(d.agent_ts)}</dd></>)}
        <dt>agent</dt><dd>{d.agent_id}</dd>
        <dt>duration</dt><dd>{d.duration_ms === null ? '—' : `${d.duration_ms} ms`}</dd>
        <dt>tokens</dt><dd>{count(d.tokens)}</dd>
        <dt>cost</dt><dd>{usd(d.cost_usd)}</dd>
        <dt>parent</dt><dd>{d.parent_decision_id ?? '— (root)'}</dd>
      </dl>
      <h3>Reasoning context</h3>
      <pre className="context" data-testid="decision-context">{fullText(d.reasoning_context)}</pre>
      <h3>Selected</h3>
      <pre className="context">{fullText(d.selected_outcome)}</pre>
      <h3>Alternatives considered ({d.alternatives_considered.length})</h3>
      {d.alternatives_considered.length === 0 ? (
        <p className="muted">None recorded.</p>
      ) : (
        <table className="plain alternatives" data-testid="alternatives">
          <thead>
            <tr><th>Option</th><th>Why rejected</th><th className="num">Score</th></tr>
          </thead>
          <tbody>
            {d.alternatives_considered.map((a, i) => (
              <tr key={i}>
                <td>{a.option}</td>
                <td>{a.reason_rejected ?? <span className="muted">no reason given</span>}</td>
                <td className="num">{a.score ?? '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {Object.keys(d.labels).length > 0 && (
        <>
          <h3>Labels</h3>
          <p>{Object.entries(d.labels).map(([k, v]) => <span key={k} className="label">{k}={v}</span>)}</p>
        </>
      )}
    </aside>
  );
}
