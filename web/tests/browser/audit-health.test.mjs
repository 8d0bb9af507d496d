// audit-health.test.mjs - the audit log and the health page in Debian's Chromium against the
// real aeid: rows made by `aei token create`, filters that narrow them, keyset pages forward and
// back, the context opened, "verify chain" before and after a row is tampered with behind
// aeid's back; and the health page with the connections, errors and audit rows it reports.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { AEID, tempDir } from '../../../tests/e2e/lib/harness.mjs';
import { launchBrowser, screenshot, signedInPage, startServer, until } from './lib.mjs';

const execFileP = promisify(execFile);
const AEI = path.join(path.dirname(AEID), 'aei');
const USERS = 13; // with their tokens and the team: 27 rows, two pages of 25

describe('audit log and health in Chromium', () => {
  const key = path.join(tempDir('aei-browser-audit-'), 'audit.key');
  let srv, browser, page;
  const rowIds = async () => page.locator('[data-testid="audit-rows"] tbody tr').evaluateAll((trs) => trs.map((t) => t.dataset.auditId));

  before(async () => {
    srv = await startServer(['--audit-key', key]);
    for (let i = 0; i < USERS; i++)
      await execFileP(AEI, ['token', 'create', '--db', srv.dbUrl, '--key', key, '--team', 'ops', '--user', `user${i}`, '--role', 'viewer']);
    browser = await launchBrowser();
    page = await signedInPage(browser, srv);
  });
  after(async () => {
    await browser?.close();
    await srv?.close();
  });

  it('lists the rows newest first, verified, a page at a time forward and back', async () => {
    await page.getByRole('link', { name: 'Audit' }).click();
    await page.getByRole('heading', { name: 'Audit log' }).waitFor();
    await page.getByLabel('rows per page').selectOption('25');
    await until('25 rows', async () => (await rowIds()).length === 25);
    const first = await rowIds();
    assert.equal(await page.locator('[data-testid="audit-rows"] .badge.good').count(), 25);
    const ids = first.map(Number);
    assert.deepEqual(ids, [...ids].sort((a, b) => b - a), 'newest first');
    await page.getByRole('button', { name: 'Older →' }).click();
    await until('page 2 with the last 2 rows', async () => (await rowIds()).length === 2);
    assert.equal(await page.getByTestId('audit-page').textContent(), 'page 2');
    assert.ok(Number((await rowIds())[0]) < ids.at(-1), 'page 2 follows page 1');
    assert.ok(await page.getByRole('button', { name: 'Older →' }).isDisabled());
    await page.getByRole('button', { name: '← Newer' }).click();
    await until('page 1 again', async () => JSON.stringify(await rowIds()) === JSON.stringify(first));
  });

  it('filters narrow the rows: action, resource and days', async () => {
    await page.getByPlaceholder('any').fill('user_create');
    await page.getByRole('button', { name: 'Apply' }).click();
    await until(`${USERS} user_create rows`, async () => (await rowIds()).length === USERS);
    const actions = await page.locator('[data-testid="audit-rows"] tbody tr td:nth-child(4)').allTextContents();
    assert.deepEqual([...new Set(actions)], ['user_create']);
    await page.getByPlaceholder('token, user or agent id').fill('user7');
    await page.getByRole('button', { name: 'Apply' }).click();
    await until('one row for user7', async () => (await rowIds()).length === 1);
    // Open its context: the row's before/after, readable.
    await page.locator('[data-testid="audit-rows"] details summary').click();
    const ctx = JSON.parse(await page.locator('[data-testid="audit-rows"] details pre').textContent());
    assert.deepEqual(ctx, { after: { role: 'viewer', team_id: 'ops', user_id: 'user7' } });
    await screenshot(page, 'audit-filtered');
    // Tomorrow (UTC) holds no rows yet; today holds them all.
    const day = (offset) => new Date(Date.now() + offset * 86400000).toISOString().slice(0, 10);
    await page.getByRole('button', { name: 'Clear' }).click();
    await page.getByLabel('from day (UTC)').fill(day(1));
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.getByText('No audit rows match these filters.').waitFor();
    await page.getByLabel('from day (UTC)').fill(day(0));
    await page.getByLabel('to day (UTC, included)').fill(day(0));
    await page.getByRole('button', { name: 'Apply' }).click();
    await until('today: every row', async () => (await rowIds()).length === 25);
    // A range that ends before it starts is refused in the form.
    await page.getByLabel('from day (UTC)').fill(day(1));
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.getByRole('alert').filter({ hasText: 'To: pick a day on or after From.' }).waitFor();
    await page.getByRole('button', { name: 'Clear' }).click();
  });

  it('verify chain: every row checked; after tampering, the row, its badge and why', async () => {
    await page.getByTestId('verify-chain').click();
    await until('verified', async () => (await page.getByTestId('verify-result').textContent()).startsWith(`Every chain verifies: ${2 * USERS + 1} rows checked`));
    // Change one row's context behind aeid's back, past the trigger that forbids it.
    const file = srv.dbUrl.slice('sqlite:'.length);
    const victim = Number(execFileSync('sqlite3', [file, "SELECT id FROM audit_logs WHERE resource_id = 'user3' AND action_type = 'user_create'"], { encoding: 'utf8' }).trim());
    execFileSync('sqlite3', [file, `DROP TRIGGER IF EXISTS audit_logs_no_update; UPDATE audit_logs SET context = '{"after":{"role":"admin"}}' WHERE id = ${victim}`]);
    await page.getByLabel('rows per page').selectOption('100');
    await until('the tampered badge on the changed row', async () =>
      (await page.locator(`[data-audit-id="${victim}"] .badge`).textContent()) === 'tampered');
    assert.equal(await page.locator('[data-testid="audit-rows"] .badge.bad').count(), 1);
    await page.getByTestId('verify-chain').click();
    await until('the first bad row named', async () => {
      const t = await page.getByTestId('verify-result').textContent();
      return t.includes(`row ${victim} (team ops`) && t.includes('hash_mismatch');
    });
    await screenshot(page, 'audit-tampered');
  });

  it('the health page: store, connections, a recent error and the newest audit rows', async () => {
    const r = await srv.api('/api/v0/agents/no-such-agent');
    assert.equal(r.status, 404);
    await page.getByRole('link', { name: 'Health' }).click();
    await page.getByRole('heading', { name: 'Health' }).waitFor();
    await until('the store answering', async () => (await page.getByTestId('store-probe').textContent()).startsWith('sqlite · answering'));
    // This page's own live connection holds agents:all.
    assert.match(await page.getByTestId('ws-connections').textContent(), /^[1-9]\d* connections, [1-9]\d* subscribed \([1-9]\d* to agents:all/);
    const errors = await page.getByTestId('health-errors').textContent();
    assert.match(errors, /GET \/api\/v0\/agents\/\{agent_id\}404not_foundno agent "no-such-agent"/);
    assert.equal(await page.locator('[data-testid="health-audit"] tbody tr').count(), 10);
    assert.equal(await page.locator('[data-testid="health-audit"] .badge').first().textContent(), 'verified');
    await screenshot(page, 'health');
  });
});
