// App.tsx - the frame: sign-in when there is no token, otherwise the header (navigation, fleet
// totals, connection) and the routes. New views (audit, health) are one more entry in ROUTES.
import { useEffect, useSyncExternalStore, type ReactNode } from 'react';
import { BrowserRouter, NavLink, Route, Routes } from 'react-router';
import { ConnectionIndicator } from './components/ConnectionIndicator';
import { FleetTotals } from './components/FleetTotals';
import { clearToken, getToken, onTokenChange } from './lib/auth';
import { startSession, stopSession } from './lib/session';
import { AgentsPage } from './features/agents/AgentsPage';
import { SignIn } from './features/auth/SignIn';
import { ExecutionsPage } from './features/executions/ExecutionsPage';
import { TracePage } from './features/traces/TracePage';

interface AppRoute {
  path: string;
  element: ReactNode;
  /** Shown in the navigation under this label. */
  nav?: string;
}

const ROUTES: AppRoute[] = [
  { path: '/', element: <AgentsPage />, nav: 'Agents' },
  { path: '/executions', element: <ExecutionsPage />, nav: 'Executions' },
  { path: '/agents/:agentId/executions', element: <ExecutionsPage /> },
  { path: '/traces/:executionId', element: <TracePage /> },
];

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
  useEffect(() => {
    startSession();
    return () => stopSession();
  }, []);
  return (
    <div className="shell">
      <header className="top">
        <span className="brand">AEI</span>
        <nav>
          {ROUTES.filter((r) => r.nav).map((r) => (
            <NavLink key={r.path} to={r.path} end>
              {r.nav}
            </NavLink>
          ))}
        </nav>
        <FleetTotals />
        <span className="spacer" />
        <ConnectionIndicator />
        <button type="button" className="link" onClick={clearToken}>
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
