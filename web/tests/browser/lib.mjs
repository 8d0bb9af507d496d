// lib.mjs - what the browser tests share: the real aeid (tests/e2e's harness) serving the built
// dashboard, Debian's Chromium driven by playwright-core, and agents that send real heartbeats
// over HTTP.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { Aeid, makeHeartbeat } from '../../../tests/e2e/lib/harness.mjs';

export const WEB = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const DIST = path.join(WEB, 'dist');
export const CHROMIUM = process.env.AEI_CHROMIUM ?? '/usr/bin/chromium';
/** Screenshots of each view land here (git-ignored). */
export const ARTIFACTS = process.env.AEI_TEST_ARTIFACTS ?? path.join(WEB, 'tests', 'browser', 'artifacts');

/** aeid on a fresh SQLite store, serving web/dist, with liveness in seconds rather than minutes. */
export async function startServer(extraArgs = []) {
  if (!fs.existsSync(path.join(DIST, 'index.html')))
    throw new Error(`no built dashboard in ${DIST}: run npm run build in web/ first`);
  const srv = new Aeid({
    store: 'sqlite',
    args: ['--web-root', DIST, '--stale-after', '1', '--dead-after', '2', ...extraArgs],
  });
  await srv.start();
  return srv;
}

export async function launchBrowser() {
  if (!fs.existsSync(CHROMIUM))
    throw new Error(`no Chromium at ${CHROMIUM}: run scripts/bootstrap.sh (Debian's chromium)`);
  // --no-sandbox: the tests may run as root in a container, where Chromium's sandbox cannot start.
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
}

/** A page signed in with the server's token, or another; close it with page.context().close(). */
export async function signedInPage(browser, srv, path = '/', token = srv.token) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  await page.goto(srv.baseUrl + path);
  await page.getByLabel('Token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('connection').waitFor();
  return page;
}

/** Polls fn until it returns a truthy value or timeoutMs passes. */
export async function until(what, fn, timeoutMs = 10000) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e.message;
    }
    if (Date.now() > end) assert.fail(`${what}: not within ${timeoutMs} ms (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function screenshot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) });
}

/** Agents that send a heartbeat every `everyMs` until stopped, with metrics that change. */
export class Agents {
  constructor(srv, ids, everyMs = 300) {
    this.srv = srv;
    this.ids = ids;
    this.everyMs = everyMs;
    this.silenced = new Set();
    this.n = 0;
    this.last = new Map();
    this.timer = null;
    this.errors = [];
  }

  heartbeatOf(id, i) {
    const k = this.ids.indexOf(id);
    return makeHeartbeat(id, {
      name: `Agent ${k}`,
      status: i % 2 ? 'processing' : 'waiting',
      metrics: { cpu_pct: (i * 7 + k) % 100, mem_pct: 20 + k, tokens_per_min: 100 * (k + 1) + i, cost_usd: 0.5 * (k + 1), confidence: 50 + k },
      parent_agent_id: k === 0 ? null : this.ids[0],
      child_agent_ids: k === 0 ? this.ids.slice(1) : [],
    });
  }

  async sendAll() {
    const i = ++this.n;
    await Promise.all(
      this.ids.filter((id) => !this.silenced.has(id)).map(async (id) => {
        const hb = this.heartbeatOf(id, i);
        try {
          const r = await this.srv.api('/api/v0/heartbeats', { body: hb, timeoutMs: 3000 });
          if (r.status === 200) this.last.set(id, hb);
          else this.errors.push(`${id}: ${r.status} ${r.text}`);
        } catch (e) {
          this.errors.push(`${id}: ${e.message}`); // the server may be restarting
        }
      }),
    );
  }

  start() {
    const tick = async () => {
      await this.sendAll();
      if (this.timer !== null) this.timer = setTimeout(tick, this.everyMs);
    };
    this.timer = setTimeout(tick, 0);
  }

  stop() {
    clearTimeout(this.timer);
    this.timer = null;
  }
}
