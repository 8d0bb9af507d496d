// lib.mjs - what the dashboard benchmarks share: a real aeid serving web/dist on free ports,
// signing in, clocks and percentiles.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const WEB = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const AEID = process.env.AEID ?? path.join(WEB, '..', 'build', 'aeid');
export const CHROMIUM = process.env.AEI_CHROMIUM ?? '/usr/bin/chromium';
export const now = () => performance.timeOrigin + performance.now();
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** Starts aeid on SQLite in a scratch directory, serving the built dashboard. */
export async function startAeid(name) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `aei-bench-${name}-`));
  const port = await freePort();
  const wsPort = await freePort();
  const token = randomBytes(18).toString('base64url');
  const proc = spawn(AEID, ['--http', `127.0.0.1:${port}`, '--ws', `127.0.0.1:${wsPort}`,
    '--db', `sqlite:${path.join(dir, 'aei.db')}`, '--web-root', path.join(WEB, 'dist')], {
    env: { ...process.env, AEI_TOKEN: token }, stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  proc.stderr.on('data', (d) => (stderr += d));
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/healthz`)).ok) break;
    } catch {
      await sleep(100);
    }
  }
  return { proc, port, token, dir, stderr: () => stderr };
}

/** Stops what startAeid() started and removes its directory. */
export async function stopAeid(srv) {
  srv.proc.kill('SIGTERM');
  await new Promise((r) => srv.proc.once('close', r));
  fs.rmSync(srv.dir, { recursive: true, force: true });
}

/** Signs the page in with the server's token, from the sign-in screen at /. */
export async function signIn(page, srv) {
  await page.goto(`http://127.0.0.1:${srv.port}/`);
  await page.getByLabel('Token').fill(srv.token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('[data-testid="connection"][data-state="connected"]').waitFor();
}

export function percentile(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** Frames per second in the page over ms, counted with requestAnimationFrame; with scroll (a
 * selector), that element is also scrolled 120 px a frame, back to the top at the bottom. */
export function framesPerSecond(page, ms, scroll = null) {
  return page.evaluate(async ({ ms, scroll }) => {
    const el = scroll && document.querySelector(scroll);
    let frames = 0;
    let on = true;
    const frame = () => {
      frames++;
      if (el) el.scrollTop = el.scrollTop + 120 >= el.scrollHeight - el.clientHeight ? 0 : el.scrollTop + 120;
      if (on) requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
    const start = performance.now();
    await new Promise((r) => setTimeout(r, ms));
    on = false;
    return (frames * 1000) / (performance.now() - start);
  }, { ms, scroll });
}
