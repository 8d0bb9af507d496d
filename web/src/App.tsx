// App.tsx - the frame: sign-in when there is no token, otherwise the header (navigation, fleet
// totals, connection, who is signed in) and the routes. A new view is one more entry in ROUTES;
// one only some roles may see says which.
import { useEffect, useSyncExternalStore, type ReactNode } from 'react';
import { BrowserRouter, NavLink, Route, Routes } from 'react-router';
import { ConnectionIndicator } from './components/ConnectionIndicator';
import { FleetTotals } from './components/FleetTotals';
import { clearToken, getToken, onTokenChange } from './lib/auth';
import { fetchPrincipal, isAdmin, setPrincipal, usePrincipal } from './lib/principal';
import { startSession, stopSession } from './lib/session';
import type { Principal } from './lib/types';
import { AgentsPage } from './features/agents/AgentsPage';
import { AuditPage } from './features/audit/AuditPage';
import { SignIn } from './features/auth/SignIn';
import { ExecutionsPage } from './features/executions/ExecutionsPage';
import { HealthPage } from './features/health/HealthPage';
import { TracePage } from './features/traces/TracePage';

interface AppRoute {
  path: string;
  element: ReactNode;
  /** Shown in the navigation under this label. */
  nav?: string;
  /** Only for these principals; the page itself says so to anyone else who follows a link. */
  shownTo?: (p: Principal | null) => boolean;
}

const ROUTES: AppRoute[] = [
  { path: '/', element: <AgentsPage />, nav: 'Agents' },
  { path: '/executions', element: <ExecutionsPage />, nav: 'Executions' },
  { path: '/agents/:agentId/executions', element: <ExecutionsPage /> },
  { path: '/traces/:executionId', element: <TracePage /> },
  { path: '/audit', element: <AuditPage />, nav: 'Audit' },
  { path: '/debug/health', element: <HealthPage />, nav: 'Health', shownTo: isAdmin },
];

function WhoAmI() {
  const p = usePrincipal();
  if (!p) return null;
  return (
    <span className="who" data-testid="principal" title={`${p.kind} ${p.id} of team ${p.team}`}>
      <span className="id">{p.id}</span> <span className="muted">{p.role} · {p.team}</span>
    </span>
  );
}

function NotFound() {
  return (
    <section className="page">
      <h1>Nothing here</h1>
      <p>
        This address is not a page of the dashboard. <NavLink to="/">Go to the agents.</NavLink>
      </p>
    </section>
  );
}

function Shell() {
  const principal = usePrincipal();
  useEffect(() => {
    startSession();
    // The role may have changed since sign-in; a refused token signs the tab out (api.ts).
    fetchPrincipal().then(setPrincipal, () => {});
    return () => stopSession();
  }, []);
  return (
    <div className="shell">
      <header className="top">
        <span className="brand">AEI</span>
        <nav>
          {ROUTES.filter((r) => r.nav && (!r.shownTo || r.shownTo(principal))).map((r) => (
            <NavLink key={r.path} to={r.path} end>
              {r.nav}
            </NavLink>
          ))}
        </nav>
        <FleetTotals />
        <span className="spacer" />
        <ConnectionIndicator />
        <WhoAmI />
        <button type="button" className="link" onClick={() => clearToken()}>
          Sign out
        </button>
      </header>
      <main>
        <Routes>
          {ROUTES.map((r) => (
            <Route key={r.path} path={r.path} element={r.element} />
          ))}
          <Route path="*" element={<NotFound />} />
        </Routes>
      </main>
    </div>
  );
}

export function App() {
  const token = useSyncExternalStore(onTokenChange, getToken);
  return <BrowserRouter>{token ? <Shell key={token} /> : <SignIn />}</BrowserRouter>;
}
