// AuditPage.tsx - the audit log: filters (actor, action, resource, a range of days), keyset
// pages newest first with a way back, a verified or tampered badge per row, its context as
// readable JSON, and a check of every chain on demand.
import { useEffect, useState, type FormEvent } from 'react';
import { listAudit, verifyAudit, type AuditQuery } from '../../lib/api';
import type { AuditPage as Page, AuditVerification } from '../../lib/types';
import { AuditHead, AuditRowView } from './AuditRows';
import {
  FIRST_PAGE, KNOWN_ACTIONS, NO_FILTERS, currentCursor, newer, older, toAuditQuery, type AuditFilters,
} from './auditQuery';

const PAGE_SIZES = [25, 50, 100];

function VerifyResult({ v }: { v: AuditVerification }) {
  if (v.ok)
    return (
      <p className="good" role="status" data-testid="verify-result">
        Every chain verifies: {v.rows_checked.toLocaleString('en-US')} rows checked
        {v.checkpoint ? ', and each reaches its checkpointed head' : ''}.
      </p>
    );
  const bad = v.first_bad;
  return (
    <p className="error" role="status" data-testid="verify-result">
      Verification failed after {v.rows_checked.toLocaleString('en-US')} rows
      {bad ? (
        <>: row <strong>{bad.id}</strong> (team {bad.team_id}, sequence {bad.seq}), <strong>{bad.reason}</strong>: {bad.message}</>
      ) : (
        <>: {v.error}</>
      )}
    </p>
  );
}

export function AuditPage() {
  const [form, setForm] = useState<AuditFilters>(NO_FILTERS);
  const [query, setQuery] = useState<AuditQuery>({});
  const [formError, setFormError] = useState('');
  const [pager, setPager] = useState(FIRST_PAGE);
  const [limit, setLimit] = useState(50);
  const [page, setPage] = useState<Page | null>(null);
  const [loadError, setLoadError] = useState('');
  const [verify, setVerify] = useState<AuditVerification | null>(null);
  const [verifying, setVerifying] = useState(false);
  const [verifyError, setVerifyError] = useState('');

  const cursor = currentCursor(pager);
  useEffect(() => {
    let current = true;
    setLoadError('');
    listAudit({ ...query, cursor, limit }).then(
      (p) => current && setPage(p),
      (e) => current && setLoadError((e as Error).message),
    );
    return () => {
      current = false;
    };
  }, [query, cursor, limit]);

  const apply = (e: FormEvent) => {
    e.preventDefault();
    const r = toAuditQuery(form);
    if ('error' in r) {
      setFormError(r.error);
      return;
    }
    setFormError('');
    setQuery(r.query);
    setPager(FIRST_PAGE);
  };
  const clear = () => {
    setForm(NO_FILTERS);
    setFormError('');
    setQuery({});
    setPager(FIRST_PAGE);
  };
  const runVerify = async () => {
    setVerifying(true);
    setVerifyError('');
    try {
      setVerify(await verifyAudit());
    } catch (e) {
      setVerify(null);
      setVerifyError((e as Error).message);
    } finally {
      setVerifying(false);
    }
  };
  const field = (k: keyof AuditFilters) => ({
    value: form[k],
    onChange: (e: { target: { value: string } }) => setForm({ ...form, [k]: e.target.value }),
  });

  return (
    <section className="page audit-page">
      <div className="toolbar">
        <h1>Audit log</h1>
        <span className="spacer" />
        <button type="button" onClick={runVerify} disabled={verifying} data-testid="verify-chain">
          {verifying ? 'Verifying…' : 'Verify chain'}
        </button>
      </div>
      {verify && <VerifyResult v={verify} />}
      {verifyError && <p className="error" role="alert">Could not verify: {verifyError}</p>}
      <form className="toolbar filters" role="search" aria-label="audit filters" onSubmit={apply}>
        <label>actor <input name="actor" placeholder="actor id" {...field('actor')} /></label>
        <label>
          action <input name="action_type" list="audit-actions" placeholder="any" {...field('action_type')} />
        </label>
        <datalist id="audit-actions">
          {KNOWN_ACTIONS.map((a) => <option key={a} value={a} />)}
        </datalist>
        <label>resource <input name="resource_id" placeholder="token, user or agent id" {...field('resource_id')} /></label>
        <label>from <input type="date" name="from" aria-label="from day (UTC)" {...field('fromDay')} /></label>
        <label>to <input type="date" name="to" aria-label="to day (UTC, included)" {...field('toDay')} /></label>
        <button type="submit">Apply</button>
        <button type="button" className="link" onClick={clear}>Clear</button>
      </form>
      {formError && <p className="error" role="alert">{formError}</p>}
      {loadError && <p className="error" role="alert">Could not list the audit log: {loadError}</p>}
      <table className="plain audit" data-testid="audit-rows">
        <AuditHead />
        <tbody>
          {page?.rows.map((r) => <AuditRowView key={r.id} r={r} />)}
        </tbody>
      </table>
      {page && page.rows.length === 0 && (
        <p className="empty">No audit rows{Object.keys(query).length ? ' match these filters' : ' yet'}.</p>
      )}
      <div className="toolbar pager">
        <button type="button" onClick={() => setPager(newer(pager))} disabled={pager.page === 0}>← Newer</button>
        <span className="muted" data-testid="audit-page">page {pager.page + 1}</span>
        <label className="muted">
          rows per page{' '}
          <select
            aria-label="rows per page"
            value={limit}
            onChange={(e) => {
              setLimit(Number(e.target.value));
              setPager(FIRST_PAGE);
            }}
          >
            {PAGE_SIZES.map((n) => <option key={n} value={n}>{n}</option>)}
          </select>
        </label>
        <button type="button" onClick={() => page?.next && setPager(older(pager, page.next))} disabled={!page?.next}>
          Older →
        </button>
      </div>
    </section>
  );
}
