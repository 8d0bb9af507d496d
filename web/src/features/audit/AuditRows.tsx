// AuditRows.tsx - audit rows as table rows, shared by the audit log and the health page's sample:
// time, team and sequence, actor, action, resource, the context as readable JSON, and a verified
// or tampered badge.
import { clockTime, excerpt } from '../../lib/format';
import type { AuditRow } from '../../lib/types';

export function VerifiedBadge({ ok }: { ok: boolean }) {
  return ok ? (
    <span className="badge good" title="Its hash matches its content under the audit key">verified</span>
  ) : (
    <span className="badge bad" title="Its content, hash or link does not match: changed or forged">tampered</span>
  );
}

function Context({ value }: { value: unknown }) {
  if (value === null || value === undefined || (typeof value === 'object' && Object.keys(value).length === 0))
    return <span className="muted">—</span>;
  return (
    <details className="json">
      <summary>{excerpt(value, 60)}</summary>
      <pre className="context">{typeof value === 'string' ? value : JSON.stringify(value, null, 2)}</pre>
    </details>
  );
}

export function AuditRowView({ r }: { r: AuditRow }) {
  return (
    <tr data-audit-id={r.id} className={r.verified ? undefined : 'tampered'}>
      <td title={r.ts}>{clockTime(r.ts)}</td>
      <td><span className="id">{r.team_id}</span> <span className="muted">#{r.seq}</span></td>
      <td><span className="muted">{r.actor_type}</span> <span className="id">{r.actor_id}</span></td>
      <td>{r.action_type}</td>
      <td className="id">{r.resource_id}</td>
      <td><Context value={r.context} /></td>
      <td><VerifiedBadge ok={r.verified} /></td>
    </tr>
  );
}

export function AuditHead() {
  return (
    <thead>
      <tr>
        <th>Time</th><th>Team · seq</th><th>Actor</th><th>Action</th><th>Resource</th><th>Context</th><th>Check</th>
      </tr>
    </thead>
  );
}
