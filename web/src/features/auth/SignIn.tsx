// SignIn.tsx - asks for a token and keeps it for this tab once the server says whom it speaks
// for (GET /api/v0/me); that principal decides what the views show.
import { useState, type FormEvent } from 'react';
import { ApiError } from '../../lib/api';
import { setToken, takeSignOutReason } from '../../lib/auth';
import { fetchPrincipal, setPrincipal } from '../../lib/principal';

export function SignIn() {
  const [token, setValue] = useState('');
  const [error, setError] = useState(() => takeSignOutReason() ?? '');
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const t = token.trim();
    if (!t) {
      setError('Enter a token.');
      return;
    }
    setBusy(true);
    setError('');
    try {
      setPrincipal(await fetchPrincipal(t));
      setToken(t);
    } catch (err) {
      setError(
        err instanceof ApiError && err.status === 401
          ? 'The server does not accept this token. Check AEI_TOKEN (make run keeps it in .aei/token).'
          : `Could not reach the server: ${(err as Error).message}`,
      );
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="sign-in">
      <form onSubmit={submit} aria-label="sign in">
        <h1>AEI</h1>
        <p className="muted">Sign in with an API token. It is kept in this tab only.</p>
        <label htmlFor="token">Token</label>
        <input id="token" name="token" type="password" autoComplete="off" autoFocus value={token} onChange={(e) => setValue(e.target.value)} />
        {error && <p className="error" role="alert">{error}</p>}
        <button type="submit" disabled={busy}>{busy ? 'Checking…' : 'Sign in'}</button>
      </form>
    </main>
  );
}
