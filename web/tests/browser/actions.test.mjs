// actions.test.mjs - agent actions and roles in Debian's Chromium against the real aeid: an
// admin executes an agent from the dashboard (the agent gets the command in its next heartbeat
// answer, and the trace link opens what it then records), pauses it, is refused a second pause,
// resumes it, and finds each action in the audit log; a viewer of another team sees none of the
// agents, no actions and no health page; an operator of the agent's team may act but sees no
// health page.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { AEID, makeHeartbeat, tempDir } from '../../../tests/e2e/lib/harness.mjs';
import { launchBrowser, screenshot, signedInPage, startServer, until } from './lib.mjs';

const execFileP = promisify(execFile);
const AEI = path.join(path.dirname(AEID), 'aei');
const AGENT = 'act-1';

describe('agent actions and roles in Chromium', () => {
  const key = path.join(tempDir('aei-browser-actions-'), 'audit.key');
  let srv, browser, page, timer;
  const commands = []; // what the agent's heartbeat answers carried

  /** The agent: a heartbeat every 300 ms, keeping the commands it is handed. */
  async function beat() {
    const r = await srv.api('/api/v0/heartbeats', { body: makeHeartbeat(AGENT, { status: 'idle', name: 'Actor' }), timeoutMs: 3000 }).catch(() => null);
    if (r?.status === 200) commands.push(...r.json.commands);
    if (timer !== null) timer = setTimeout(beat, 300);
  }

  async function tokenFor(team, user, role) {
    const { stdout } = await execFileP(AEI, ['token', 'create', '--db', srv.dbUrl, '--key', key, '--team', team, '--user', user, '--role', role]);
    return stdout.trim().split('\n').at(-1);
  }

  /** Opens the agent's panel and confirms an action; returns the outcome's text. */
  async function act(label, { prompt, reason } = {}) {
    await page.getByRole('button', { name: `${label}…` }).click();
    const dialog = page.getByRole('dialog', { name: `${label} ${AGENT}` });
    if (prompt) await dialog.getByLabel('Prompt').fill(prompt);
    if (reason) await dialog.getByLabel(/^Reason/).fill(reason);
    await dialog.getByRole('button', { name: label, exact: true }).click();
    await dialog.waitFor({ state: 'detached' });
    return page.getByTestId('action-outcome').textContent();
  }

  before(async () => {
    srv = await startServer(['--audit-key', key]);
    timer = setTimeout(beat, 0);
    browser = await launchBrowser();
  });
  after(async () => {
    clearTimeout(timer);
    timer = null;
    await browser?.close();
    await srv?.close();
  });

  it('execute from the dashboard: the agent receives the prompt, the trace link opens its decisions', async () => {
    page = await signedInPage(browser, srv);
    assert.match(await page.getByTestId('principal').textContent(), /^bootstrap admin · default$/);
    await page.getByRole('button', { name: `actions for ${AGENT}` }).click();
    const outcome = await act('Execute', { prompt: 'Summarise the open incidents', reason: 'morning report' });
    assert.match(outcome, /^Execute sent: command [0-9a-f-]{36} is pending\./);
    const link = page.getByRole('link', { name: /^Open the trace of / });
    const executionId = (await link.textContent()).replace('Open the trace of ', '');
    await screenshot(page, 'actions-executed');
    const cmd = await until('the command in a heartbeat answer', async () => commands.find((c) => c.action === 'execute'));
    assert.equal(cmd.params.prompt, 'Summarise the open incidents');
    assert.equal(cmd.params.execution_id, executionId);
    // The agent runs it: two decisions of that execution.
    const r = await srv.api('/api/v0/traces', {
      body: [
        { decision_id: 'd-root', execution_id: executionId, agent_id: AGENT, reasoning_context: 'read the incidents', confidence_score: 80 },
        { decision_id: 'd-child', execution_id: executionId, agent_id: AGENT, parent_decision_id: 'd-root', reasoning_context: 'write the summary', confidence_score: 70 },
      ],
    });
    assert.equal(r.status, 200, r.text);
    await link.click();
    await page.getByRole('heading', { name: `Trace ${executionId}` }).waitFor();
    await until('the two decisions', async () => (await page.getByTestId('decision-count').textContent()) === '2');
  });

  it('pause, a second pause refused with the reason, resume; each in the audit log', async () => {
    await page.getByRole('link', { name: 'Agents' }).click();
    await page.getByRole('button', { name: `actions for ${AGENT}` }).click();
    assert.match(await act('Pause', { reason: 'maintenance window' }), /^Pause sent: command .* is pending\.$/);
    await until('the panel says paused', async () => (await page.getByTestId('agent-control').textContent()) === 'paused');
    assert.equal(await act('Pause'), 'Not now: the agent is paused: resume it first');
    await screenshot(page, 'actions-refused');
    assert.match(await act('Resume'), /^Resume sent: command .* is pending\.$/);
    await until('the panel no longer says paused', async () => (await page.getByTestId('agent-control').count()) === 0);
    await until('pause and resume reach the agent', async () => ['pause', 'resume'].every((a) => commands.some((c) => c.action === a)));
    await page.getByRole('link', { name: 'Audit' }).click();
    await page.getByPlaceholder('token, user or agent id').fill(AGENT);
    await page.getByRole('button', { name: 'Apply' }).click();
    await until('execute, pause and resume rows', async () => {
      const actions = await page.locator('[data-testid="audit-rows"] tbody tr td:nth-child(4)').allTextContents();
      return JSON.stringify(actions) === JSON.stringify(['resume', 'pause', 'execute']);
    });
    assert.equal(await page.locator('[data-testid="audit-rows"] .badge.good').count(), 3);
  });

  it('a viewer of another team sees none of these agents, no actions and no health page', async () => {
    const p = await signedInPage(browser, srv, '/', await tokenFor('ops', 'vic', 'viewer'));
    await p.getByRole('heading', { name: 'Agents' }).waitFor();
    assert.equal(await p.getByTestId('principal').textContent(), 'vic viewer · ops');
    await p.getByText('No agents yet.', { exact: false }).waitFor();
    assert.equal(await p.locator(`[data-agent-id="${AGENT}"]`).count(), 0);
    assert.equal(await p.getByRole('link', { name: 'Health' }).count(), 0);
    assert.equal(await p.getByRole('button', { name: /^actions for/ }).count(), 0);
    await p.goto(srv.baseUrl + '/debug/health');
    await p.getByRole('alert').filter({ hasText: "Only admins see the server's health." }).waitFor();
    await screenshot(p, 'viewer-other-team');
    await p.context().close();
  });

  it('an operator of the agent\'s team sees its actions but no health page', async () => {
    const p = await signedInPage(browser, srv, '/', await tokenFor('default', 'olga', 'operator'));
    await p.getByRole('button', { name: `actions for ${AGENT}` }).waitFor();
    assert.equal(await p.getByTestId('principal').textContent(), 'olga operator · default');
    assert.equal(await p.getByRole('link', { name: 'Health' }).count(), 0);
    await p.context().close();
  });
});
