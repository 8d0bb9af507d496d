// dashboard.test.mjs - the dashboard in Debian's Chromium against the real aeid: sign-in, agents
// live from heartbeats, liveness going stale and dead, the executions list, the decision tree
// with its details, live decisions, exports (downloads of JSON and Markdown), and the connection
// indicator across a restart.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { Agents, launchBrowser, screenshot, signedInPage, startServer, until } from './lib.mjs';

const AGENTS = ['alpha', 'bravo', 'charlie', 'delta', 'echo'].map((n) => `ui-${n}`);
const EXECUTION = 'run-ui-1';

function decision(id, parent, extra = {}) {
  return {
    decision_id: id,
    execution_id: EXECUTION,
    agent_id: AGENTS[0],
    parent_decision_id: parent,
    kind: parent ? 'tool_selection' : 'llm_call',
    reasoning_context: { question: `why ${id}?`, note: 'x'.repeat(300) },
    confidence_score: 70,
    alternatives_considered: [
      { option: `not-${id}`, reason_rejected: `rejected because ${id} fits better`, score: 0.2 },
      { option: 'ask the user', reason_rejected: 'the user is away' },
    ],
    selected_outcome: `chose ${id}`,
    cost_usd: 0.001,
    ...extra,
  };
}

/** 26 decisions: root r0 with 4 children of 3 children each, root r1 with 8 children. */
function tree() {
  const out = [decision('r0', null)];
  for (let i = 0; i < 4; i++) {
    out.push(decision(`r0.c${i}`, 'r0'));
    for (let j = 0; j < 3; j++) out.push(decision(`r0.c${i}.g${j}`, `r0.c${i}`));
  }
  out.push(decision('r1', null));
  for (let i = 0; i < 8; i++) out.push(decision(`r1.c${i}`, 'r1'));
  return out;
}

const cell = (page, agent, col) => page.locator(`[data-agent-id="${agent}"] [data-col="${col}"]`);

describe('dashboard in Chromium', () => {
  let srv, browser, page, agents;

  before(async () => {
    srv = await startServer();
    browser = await launchBrowser();
  });
  after(async () => {
    agents?.stop();
    await browser?.close();
    await srv?.close();
  });

  it('sign-in refuses a wrong token and keeps the right one for the tab', async () => {
    const context = await browser.newContext();
    const p = await context.newPage();
    await p.goto(srv.baseUrl + '/');
    await screenshot(p, 'sign-in');
    await p.getByLabel('Token').fill('not-the-token-1234567890');
    await p.getByRole('button', { name: 'Sign in' }).click();
    await p.getByRole('alert').filter({ hasText: 'does not accept this token' }).waitFor();
    await p.getByLabel('Token').fill(srv.token);
    await p.getByRole('button', { name: 'Sign in' }).click();
    await p.getByRole('heading', { name: 'Agents' }).waitFor();
    await p.reload();
    await p.getByRole('heading', { name: 'Agents' }).waitFor(); // session storage survives a reload
    await context.close();
  });

  it('five agents appear and update live, with the fleet totals', async () => {
    page = await signedInPage(browser, srv);
    await until('connected', async () => (await page.getByTestId('connection').getAttribute('data-state')) === 'connected');
    agents = new Agents(srv, AGENTS);
    agents.start();
    await until('five rows', async () => (await page.locator('[data-agent-id]').count()) === 5);
    // A value the table shows must follow the latest heartbeat, several times over.
    for (let round = 0; round < 3; round++) {
      const before = agents.n;
      await until('a newer heartbeat', async () => agents.n > before + 1);
      const want = agents.last.get(AGENTS[2]).metrics.tokens_per_min;
      await until(`tokens/min of ${AGENTS[2]} reaches ${want}`, async () => {
        const shown = Number((await cell(page, AGENTS[2], 'tpm').textContent()).replace(/,/g, ''));
        return shown >= want;
      });
    }
    assert.equal(await cell(page, AGENTS[0], 'liveness').textContent(), 'online');
    assert.match(await cell(page, AGENTS[0], 'children').textContent(), /ui-bravo, ui-charlie \+2/);
    assert.equal(await cell(page, AGENTS[1], 'parent').textContent(), AGENTS[0]);
    // Fleet cost: 0.5 + 1.0 + 1.5 + 2.0 + 2.5.
    await until('fleet cost $7.50', async () => (await page.getByTestId('fleet-cost').textContent()) === '$7.50');
    await until('fleet agents 5', async () => (await page.getByTestId('fleet-agents').textContent()) === '5');
    // A changed cell flashes.
    await until('a flashing cell', async () => (await page.locator('.cell.flash').count()) > 0);
    await screenshot(page, 'agents');
  });

  it('sorts and filters by status', async () => {
    await page.getByRole('button', { name: 'Agent' }).click(); // second click on the current sort: descending
    await until('descending order', async () => (await page.locator('[data-agent-id]').first().getAttribute('data-agent-id')) === AGENTS[4]);
    await page.getByLabel('search agents').fill('charlie');
    await until('one match', async () => (await page.locator('[data-agent-id]').count()) === 1);
    await page.getByLabel('search agents').fill('');
    await page.getByRole('button', { name: 'Agent' }).click();
  });

  it('an agent that stops sending goes stale, then dead; the liveness filter finds it', async () => {
    agents.silenced.add(AGENTS[4]);
    await until('stale', async () => (await cell(page, AGENTS[4], 'liveness').textContent()) === 'stale', 5000);
    await until('dead', async () => (await cell(page, AGENTS[4], 'liveness').textContent()) === 'dead', 5000);
    assert.equal(await cell(page, AGENTS[3], 'liveness').textContent(), 'online');
    await page.getByLabel('filter by liveness').selectOption('dead');
    await until('only the dead agent', async () => {
      const ids = await page.locator('[data-agent-id]').evaluateAll((els) => els.map((e) => e.dataset.agentId));
      return ids.length === 1 && ids[0] === AGENTS[4];
    });
    await screenshot(page, 'agents-dead-filter');
    await page.getByLabel('filter by liveness').selectOption('all');
    agents.silenced.delete(AGENTS[4]);
    await until('online again', async () => (await cell(page, AGENTS[4], 'liveness').textContent()) === 'online', 5000);
  });

  it('an execution of 26 decisions: from the agent to its executions to the tree', async () => {
    const r = await srv.api('/api/v0/traces', { body: tree() });
    assert.equal(r.status, 200, r.text);
    await cell(page, AGENTS[0], 'executions').getByRole('link').click();
    await page.locator(`[data-execution-id="${EXECUTION}"]`).waitFor();
    assert.match(await page.locator(`[data-execution-id="${EXECUTION}"]`).textContent(), /26/);
    await screenshot(page, 'executions');
    await page.getByRole('link', { name: EXECUTION }).click();
    await until('26 rows', async () => (await page.locator('[data-decision-id]').count()) === 26);
    assert.equal(await page.getByTestId('decision-count').textContent(), '26');
    // Indented by depth, in pre-order.
    const order = await page.locator('[data-decision-id]').evaluateAll((els) => els.map((e) => e.dataset.decisionId));
    assert.deepEqual(order.slice(0, 5), ['r0', 'r0.c0', 'r0.c0.g0', 'r0.c0.g1', 'r0.c0.g2']);
    assert.equal(await page.locator('[data-decision-id="r0.c0.g0"]').getAttribute('aria-level'), '3');
    // A row shows the first 200 characters of its reasoning.
    const text = await page.locator('[data-decision-id="r0"] .reasoning').textContent();
    assert.ok(text.length === 201 && text.endsWith('…'), `excerpt of ${text.length}: ${text}`);
    // Collapse and expand.
    await page.locator('[data-decision-id="r0"]').getByRole('button', { name: 'collapse' }).click();
    await until('r0 collapsed', async () => (await page.locator('[data-decision-id]').count()) === 10);
    await page.locator('[data-decision-id="r0"]').getByRole('button', { name: 'expand' }).click();
    await until('r0 expanded', async () => (await page.locator('[data-decision-id]').count()) === 26);
    // Opening a node: the full context and each alternative with why it was rejected.
    await page.locator('[data-decision-id="r0.c1"] .reasoning').click();
    const detail = page.getByTestId('decision-detail');
    await detail.waitFor();
    assert.match(await detail.getByTestId('decision-context').textContent(), /why r0\.c1\?[\s\S]*x{300}/);
    const alts = detail.getByTestId('alternatives');
    assert.match(await alts.textContent(), /not-r0\.c1\s*rejected because r0\.c1 fits better/);
    assert.match(await alts.textContent(), /ask the user\s*the user is away/);
    await screenshot(page, 'trace');
  });

  it('new decisions appear live, and the end of the execution', async () => {
    await until('the trace is live', async () => (await page.getByTestId('trace-live').textContent()) === 'live');
    const more = [decision('r1.c7.n0', 'r1.c7'), decision('r2', null)];
    const r = await srv.api('/api/v0/traces', { body: more });
    assert.equal(r.status, 200, r.text);
    await until('28 rows', async () => (await page.locator('[data-decision-id]').count()) === 28);
    await until('28 in the summary', async () => (await page.getByTestId('decision-count').textContent()) === '28');
    // The new child sits under its parent, one level deeper.
    assert.equal(await page.locator('[data-decision-id="r1.c7.n0"]').getAttribute('aria-level'), '3');
    const end = await srv.api(`/api/v0/executions/${EXECUTION}`, { method: 'PATCH', body: { status: 'failed', failure: 'the tool timed out' } });
    assert.equal(end.status, 200, end.text);
    await until('failed in the summary', async () => /failed/.test(await page.getByTestId('execution-summary').textContent()));
    assert.match(await page.getByTestId('execution-failure').textContent(), /the tool timed out/);
  });

  it('export buttons download the execution as JSON and as Markdown', async () => {
    const [json] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export-json').click()]);
    assert.equal(json.suggestedFilename(), `${EXECUTION}.json`);
    const doc = JSON.parse(fs.readFileSync(await json.path(), 'utf8'));
    assert.ok(Array.isArray(doc), 'the JSON export is an array of decisions');
    assert.equal(doc.length, 28);
    assert.deepEqual(doc.slice(0, 2).map((d) => d.decision_id), ['r0', 'r0.c0']);
    assert.equal(doc.find((d) => d.decision_id === 'r0.c1').alternatives_considered[0].reason_rejected, 'rejected because r0.c1 fits better');
    const [md] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export-markdown').click()]);
    assert.equal(md.suggestedFilename(), `${EXECUTION}.md`);
    const text = fs.readFileSync(await md.path(), 'utf8');
    assert.match(text, /run-ui-1/);
    assert.match(text, /r0\.c1/);
    assert.match(text, /rejected because r0\.c1 fits better/);
  });

  it('the connection indicator says reconnecting while aeid is down, connected after', async () => {
    await page.goto(srv.baseUrl + '/');
    await until('connected', async () => (await page.getByTestId('connection').getAttribute('data-state')) === 'connected');
    await srv.stop();
    await until('reconnecting', async () => (await page.getByTestId('connection').getAttribute('data-state')) === 'reconnecting', 5000);
    await screenshot(page, 'agents-reconnecting');
    await srv.start({ samePorts: true });
    await until('connected again', async () => (await page.getByTestId('connection').getAttribute('data-state')) === 'connected', 15000);
    // The table is live again: a heartbeat after the restart shows.
    const before = agents.n;
    await until('heartbeats flow again', async () => agents.n > before + 2 && agents.last.size === 5);
    const want = agents.last.get(AGENTS[1]).metrics.tokens_per_min;
    await until(`tokens/min of ${AGENTS[1]} after the restart`, async () => {
      const shown = Number((await cell(page, AGENTS[1], 'tpm').textContent()).replace(/,/g, ''));
      return shown >= want;
    });
  });
});
