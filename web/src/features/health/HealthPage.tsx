// HealthPage.tsx - the server's health for admins (GET /api/v0/debug/health), refreshed every
// few seconds: uptime and version, the store's probe and latencies, WebSocket subscribers,
// heartbeat and decision rates, the recent errors and the newest audit rows.
import { useEffect, useState } from 'react';
import { getHealth } from '../../lib/api';
import { clockTime } from '../../lib/format';
import { isAdmin, usePrincipal } from '../../lib/principal';
import type { DebugHealth, LatencySummary, Rates } from '../../lib/types';
import { AuditHead, AuditRowView } from '../audit/AuditRows';

export const REFRESH_MS = 3000;

function ms(v: number | null): string {
  return v === null ? '—' : `${v < 1 ? v.toFixed(3) : v.toFixed(1)} ms`;
}

function rate(v: number): string {
  return `${v < 10 ? v.toFixed(1) : Math.round(v).toLocaleString('en-US')}/s`;
}

function uptime(s: number): string {
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  return d ? `${d} d ${h} h` : h ? `${h} h ${m} min` : m ? `${m} min ${Math.floor(s % 60)} s` : `${Math.floor(s)} s`;
}

function LatencyRow({ name, l }: { name: string; l: LatencySummary }) {
  return (
    <tr>
      <td>{name}</td>
      <td className="num">{l.count.toLocaleString('en-US')}</td>
      <td className="num">{ms(l.mean_ms)}</td>
      <td className="num">{l.p50_ms === null ? '—' : `≤ ${ms(l.p50_ms)}`}</td>
      <td className="num">{l.p99_ms === null ? '—' : `≤ ${ms(l.p99_ms)}`}</td>
    </tr>
  );
}

function RateRow({ name, r }: { name: string; r: Rates }) {
  return (
    <tr data-testid={`rate-${name}`}>
      <td>{name}</td>
      <td className="num">{rate(r.per_second_10s)}</td>
      <td className="num">{rate(r.per_second_60s)}</td>
    </tr>
  );
}

function Report({ h }: { h: DebugHealth }) {
  const probe = h.store.probe;
  const ws = h.websocket;
  return (
    <>
      <dl className="facts health-facts">
        <dt>version</dt><dd>aeid {h.version}</dd>
        <dt>up</dt><dd data-testid="uptime">{uptime(h.uptime_seconds)} (since {clockTime(h.started)})</dd>
        <dt>store</dt>
        <dd data-testid="store-probe">
          {h.store.backend} ·{' '}
          {probe.ok ? <span className="good">answering, probe {ms(probe.query_ms)}</span> : <span className="error">failing: {probe.error}</span>}
        </dd>
        <dt>WebSocket</dt>
        <dd data-testid="ws-connections">
          {ws.connections} connections, {ws.subscribed} subscribed ({ws.agents_all} to agents:all, {ws.agent_topics} agent topics,{' '}
          {ws.execution_topics} execution topics, {ws.command_topics} command topics)
        </dd>
      </dl>
      <div className="health-grid">
        <table className="plain">
          <thead><tr><th>Rate</th><th className="num">last 10 s</th><th className="num">last 60 s</th></tr></thead>
          <tbody>
            <RateRow name="heartbeats" r={h.rates.heartbeats} />
            <RateRow name="decisions" r={h.rates.decisions} />
          </tbody>
        </table>
        <table className="plain">
          <thead><tr><th>Latency</th><th className="num">count</th><th className="num">mean</th><th className="num">p50</th><th className="num">p99</th></tr></thead>
          <tbody>
            <LatencyRow name="store commit" l={h.store.latency.commit} />
            <LatencyRow name="store read" l={h.store.latency.read} />
            <LatencyRow name="heartbeat to push" l={ws.push_latency} />
          </tbody>
        </table>
      </div>
      <h2>Recent errors <span className="muted">({h.errors.total.toLocaleString('en-US')} since start, last {h.errors.recent.length} shown)</span></h2>
      {h.errors.recent.length === 0 ? (
        <p className="muted">None.</p>
      ) : (
        <table className="plain" data-testid="health-errors">
          <thead><tr><th>Time</th><th>Where</th><th>Status</th><th>Code</th><th>Message</th></tr></thead>
          <tbody>
            {h.errors.recent.map((e, i) => (
              <tr key={`${e.ts}-${i}`}>
                <td>{clockTime(e.ts)}</td>
                <td className="id">{e.where}</td>
                <td className={e.status !== null && e.status >= 500 ? 'error' : undefined}>{e.status ?? '—'}</td>
                <td>{e.code}</td>
                <td>{e.message}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h2>Newest audit rows</h2>
      {!h.audit_sample.ok ? (
        <p className="error">Could not read the audit log: {h.audit_sample.error}</p>
      ) : h.audit_sample.rows.length === 0 ? (
        <p className="muted">No audit rows yet.</p>
      ) : (
        <table className="plain audit" data-testid="health-audit">
          <AuditHead />
          <tbody>
            {h.audit_sample.rows.map((r) => <AuditRowView key={r.id} r={r} />)}
          </tbody>
        </table>
      )}
    </>
  );
}

export function HealthPage() {
  const admin = isAdmin(usePrincipal());
  const [health, setHealth] = useState<DebugHealth | null>(null);
  const [error, setError] = useState('');
  useEffect(() => {
    if (!admin) return;
    let current = true;
    const load = () =>
      getHealth().then(
        (h) => current && (setHealth(h), setError('')),
        (e) => current && setError((e as Error).message),
      );
    void load();
    const t = setInterval(load, REFRESH_MS);
    return () => {
      current = false;
      clearInterval(t);
    };
  }, [admin]);

  if (!admin)
    return (
      <section className="page">
        <h1>Health</h1>
        <p className="error" role="alert">Only admins see the server's health.</p>
      </section>
    );
  return (
    <section className="page health-page">
      <div className="toolbar">
        <h1>Health</h1>
        {health && <span className="muted">as of {clockTime(health.now)}, every {REFRESH_MS / 1000} s</span>}
      </div>
      {error && <p className="error" role="alert">Could not read the health: {error}</p>}
      {health ? <Report h={health} /> : !error && <p className="muted">Loading…</p>}
    </section>
  );
}
