import { cleanup, render, screen } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import { clearToken, setToken } from '../../lib/auth';
import { SignIn } from './SignIn';

afterEach(cleanup);

describe('SignIn', () => {
  it('says why the tab was signed out, once', () => {
    setToken('aei_user_x');
    clearToken('You were signed out: the server no longer accepts this token (revoked).');
    render(<SignIn />);
    expect(screen.getByRole('alert').textContent).toMatch(/no longer accepts this token/);
    cleanup();
    render(<SignIn />);
    expect(screen.queryByRole('alert')).toBeNull();
  });

  it('a sign-out without a reason shows the plain form', () => {
    setToken('aei_user_x');
    clearToken();
    render(<SignIn />);
    expect(screen.queryByRole('alert')).toBeNull();
  });
});
