// dashboard.mjs - the dashboard's benchmark in headless Chromium (Debian's): agents send real
// heartbeats to a real aeid while the agents view is open, and the browser's own measurements
// say what it cost. Per scenario:
//   * heartbeat-to-paint: the sender notes when it posts a heartbeat whose tokens_per_min is a
//     unique number; in the page a MutationObserver sees the cell with that number appear, and
//     the time after the next frame (requestAnimationFrame, then a message) counts as painted.
//     Both clocks are performance.timeOrigin + performance.now() on the same machine.
//   * main-thread busy time: Chrome's own TaskDuration (DevTools protocol Performance.getMetrics)
//     over the measured window, as a share of the window.
//   * frames per second: requestAnimationFrame callbacks over a second, shorter window (a
//     requestAnimationFrame loop makes the browser draw every frame, so it would inflate the busy
//     time of the first).
// Prints one JSON document on stdout; scripts/bench-dashboard.sh writes the results files.
//
// Environment: AEID (the aeid binary), AEI_CHROMIUM (/usr/bin/chromium), BENCH_DASHBOARD_SCENARIOS
// ("100x5000x60 1000x1000x30": agents x milliseconds between an agent's heartbeats x seconds),
// BENCH_DASHBOARD_VIEWPORT (1600x900), BENCH_DASHBOARD_TRACE (a file: a Chrome trace of the
// first scenario's window, for chrome://tracing or Perfetto).
import { chromium } from 'playwright-core';
import { CHROMIUM, framesPerSecond, now, percentile, signIn, sleep, startAeid, stopAeid } from './lib.mjs';

const SCENARIOS = (process.env.BENCH_DASHBOARD_SCENARIOS ?? '100x5000x60 1000x1000x30')
  .split(/\s+/).filter(Boolean).map((s) => {
    const [agents, everyMs, seconds] = s.split('x').map(Number);
    return { agents, everyMs, seconds };
  });
const WARMUP_MS = 3000;
const FPS_SECONDS = 10;
const [VW, VH] = (process.env.BENCH_DASHBOARD_VIEWPORT ?? '1600x900').split('x').map(Number);
const MARK = 1_000_000; // tokens_per_min values from here on are markers

/** Agents posting heartbeats, each every everyMs, spread evenly; marked ones remember when. */
function sender(srv, agents, everyMs) {
  const sent = new Map();
  let next = MARK;
  let errors = 0;
  let posted = 0;
  let stopped = false;
  const ids = Array.from({ length: agents }, (_, i) => `bench-${String(i).padStart(4, '0')}`);
  const one = async (id, i) => {
    const value = next++;
    const body = JSON.stringify({
      agent_id: id, status: 'processing', schema_version: '0',
      metrics: { cpu_pct: (value % 97) + 1, mem_pct: 40, tokens_per_min: value, cost_usd: 0.01 * i, confidence: 80 },
    });
    const t = now();
    try {
      const r = await fetch(`http://127.0.0.1:${srv.port}/api/v0/heartbeats`, {
        method: 'POST', body, headers: { 'content-type': 'application/json', authorization: `Bearer ${srv.token}` },
      });
      await r.arrayBuffer();
      if (r.ok) {
        sent.set(value, t);
        posted++;
      } else errors++;
    } catch {
      errors++;
    }
  };
  const timers = ids.map((id, i) => {
    const loop = () => {
      if (stopped) return;
      void one(id, i);
    };
    const start = setTimeout(() => {
      loop();
      timers[i] = setInterval(loop, everyMs);
    }, (i * everyMs) / agents);
    return start;
  });
  return {
    sent,
    stats: () => ({ posted, errors }),
    stop() {
      stopped = true;
      timers.forEach((t) => { clearTimeout(t); clearInterval(t); });
    },
  };
}

/** Installed in the page: records when each marker value was painted, and frames. */
function instrument(MARK) {
  const w = window;
  w.__painted = [];
  const ch = new MessageChannel();
  let pending = [];
  ch.port1.onmessage = () => {
    const t = performance.timeOrigin + performance.now();
    for (const v of pending) w.__painted.push([v, t]);
    pending = [];
  };
  const root = document.querySelector('[data-testid="agents-scroll"]');
  new MutationObserver((records) => {
    const found = [];
    const seen = new Set();
    for (const r of records) {
      // A new row, or new text in a cell: look at the tokens/min cell it is in or holds.
      const el = r.target.nodeType === Node.TEXT_NODE ? r.target.parentElement : r.target;
      const cells = el?.closest('[data-col="tpm"]') ? [el.closest('[data-col="tpm"]')] : [...(el?.querySelectorAll?.('[data-col="tpm"]') ?? [])];
      for (const c of cells) {
        if (seen.has(c)) continue;
        seen.add(c);
        const v = Number(c.textContent.replace(/,/g, ''));
        if (v >= MARK) found.push(v);
      }
    }
    if (!found.length) return;
    const first = pending.length === 0;
    pending.push(...found);
    // After this task the frame is drawn; the message after the next animation frame runs once
    // it has been.
    if (first) requestAnimationFrame(() => ch.port2.postMessage(0));
  }).observe(root, { childList: true, characterData: true, subtree: true });
}

async function runScenario(browser, { agents, everyMs, seconds }, first) {
  const srv = await startAeid('dashboard');
  const context = await browser.newContext({ viewport: { width: VW, height: VH } });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Performance.enable');
  const metrics = async () => Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.map((m) => [m.name, m.value]));
  try {
    await signIn(page, srv);
    const hb = sender(srv, agents, everyMs);
    await page.locator('[data-agent-id]').first().waitFor();
    await page.evaluate(instrument, MARK);
    // The pointer rests on the page header, not on a row (as when a person watches).
    await page.mouse.move(5, 5);
    await sleep(WARMUP_MS + everyMs); // every agent has a row before measuring
    const visible = await page.locator('[data-agent-id]').count();
    const t0 = now();
    const m0 = await metrics();
    const painted0 = await page.evaluate(() => window.__painted.length);
    const trace = first && process.env.BENCH_DASHBOARD_TRACE;
    if (trace) await browser.startTracing(page, { path: trace, categories: ['devtools.timeline', 'disabled-by-default-devtools.timeline', 'v8', 'blink', 'cc', 'toplevel'] });
    await sleep(seconds * 1000);
    if (trace) await browser.stopTracing();
    const m1 = await metrics();
    const t1 = now();
    // Frames per second, with a requestAnimationFrame loop, while the heartbeats go on.
    const fps = await framesPerSecond(page, FPS_SECONDS * 1000);
    hb.stop();
    await sleep(1000); // let the last ones arrive
    const painted = (await page.evaluate(() => window.__painted)).slice(painted0);
    const lat = [];
    for (const [v, t] of painted) {
      const s = hb.sent.get(v);
      if (s !== undefined && s >= t0 && s <= t1) lat.push(t - s);
    }
    lat.sort((a, b) => a - b);
    const windowS = (t1 - t0) / 1000;
    return {
      agents, heartbeat_every_ms: everyMs, seconds: Math.round(windowS),
      heartbeats_per_s: Math.round((agents * 1000) / everyMs), rows_in_view: visible,
      ...hb.stats(),
      samples: lat.length,
      paint_ms: { p50: percentile(lat, 50), p95: percentile(lat, 95), p99: percentile(lat, 99), max: lat[lat.length - 1] ?? null },
      // TaskDuration: wall time of the main thread's tasks; ThreadTime: its CPU time.
      main_thread_busy_pct: (100 * (m1.TaskDuration - m0.TaskDuration)) / windowS,
      main_thread_cpu_pct: (100 * (m1.ThreadTime - m0.ThreadTime)) / windowS,
      script_pct: (100 * (m1.ScriptDuration - m0.ScriptDuration)) / windowS,
      style_layout_pct: (100 * (m1.RecalcStyleDuration - m0.RecalcStyleDuration + m1.LayoutDuration - m0.LayoutDuration)) / windowS,
      fps,
    };
  } finally {
    await context.close();
    await stopAeid(srv);
  }
}

const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
const results = [];
try {
  for (const s of SCENARIOS) {
    process.stderr.write(`dashboard bench: ${s.agents} agents, one heartbeat each ${s.everyMs} ms, ${s.seconds} s\n`);
    results.push(await runScenario(browser, s, results.length === 0));
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify({ chromium: browser.version(), viewport: `${VW}x${VH}`, scenarios: results }, null, 2));
