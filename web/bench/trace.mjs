// trace.mjs - the trace viewer's benchmark in headless Chromium (Debian's): one execution of
// 10,000 decisions (a tree branching four ways, realistic reasoning and alternatives) stored
// in a real aeid, then the viewer opened on it RUNS times in a fresh page, measured by the
// browser's own clock:
//   * first paint: from the navigation's start (performance.timeOrigin) to the first animation
//     frame in which a decision row of the tree is in the document (a requestAnimationFrame
//     loop installed before the page's own scripts run);
//   * scrolling: the tree scrolled 120 px per frame for SCROLL_SECONDS (loading further pages
//     as it goes, as a person scrolling would), frames counted with requestAnimationFrame.
// Prints one JSON document on stdout; scripts/bench-trace-view.sh writes the results files.
//
// Environment: AEID, AEI_CHROMIUM (see lib.mjs), BENCH_TRACE_DECISIONS (10000),
// BENCH_TRACE_RUNS (3), BENCH_DASHBOARD_VIEWPORT (1600x900).
import { chromium } from 'playwright-core';
import { CHROMIUM, framesPerSecond, percentile, signIn, startAeid, stopAeid } from './lib.mjs';

const DECISIONS = Number(process.env.BENCH_TRACE_DECISIONS ?? 10000);
const RUNS = Number(process.env.BENCH_TRACE_RUNS ?? 3);
const SCROLL_SECONDS = 5;
const [VW, VH] = (process.env.BENCH_DASHBOARD_VIEWPORT ?? '1600x900').split('x').map(Number);
const EXECUTION = 'bench-trace-view';

const TOOLS = ['web search', 'the vector index', 'the SQL warehouse', 'ask the planner', 'read the docs'];

/** Decision i of the tree: its parent is (i - 1) / 4, so every parent comes before its children. */
function decision(i) {
  const pick = TOOLS[i % TOOLS.length];
  return {
    decision_id: `${EXECUTION}-${i}`,
    execution_id: EXECUTION,
    agent_id: 'bench-agent',
    parent_decision_id: i === 0 ? null : `${EXECUTION}-${Math.floor((i - 1) / 4)}`,
    kind: ['llm_call', 'tool_selection', 'refinement'][i % 3],
    confidence_score: 40 + ((i * 37) % 60),
    reasoning_context: `Step ${i}: the question needs recent figures, so ${pick} is the quickest ` +
      'source that can answer it with a citation. The previous step left two open points: ' +
      'whether the numbers are per quarter, and whether the source counts returns. '.repeat(2),
    alternatives_considered: TOOLS.filter((t) => t !== pick).slice(0, 3).map((t, k) => ({
      option: t, reason_rejected: `slower or less precise than ${pick} for this step`, score: 30 + k * 10,
    })),
    selected_outcome: `use ${pick}`,
    tokens: 200 + (i % 700),
    duration_ms: 50 + (i % 900),
  };
}

async function load(srv) {
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${srv.token}` };
  await fetch(`http://127.0.0.1:${srv.port}/api/v0/heartbeats`, {
    method: 'POST', headers, body: JSON.stringify({ agent_id: 'bench-agent', status: 'processing' }),
  });
  for (let start = 0; start < DECISIONS; start += 1000) {
    const batch = [];
    for (let i = start; i < Math.min(DECISIONS, start + 1000); i++) batch.push(decision(i));
    const r = await fetch(`http://127.0.0.1:${srv.port}/api/v0/traces`, {
      method: 'POST', headers, body: JSON.stringify(batch),
    });
    if (!r.ok) throw new Error(`storing decisions: ${r.status} ${await r.text()}`);
  }
  const e = await (await fetch(`http://127.0.0.1:${srv.port}/api/v0/executions/${EXECUTION}`, { headers })).json();
  if (e.decisions !== DECISIONS) throw new Error(`the execution holds ${e.decisions} decisions`);
}

/** Installed before the page's scripts: the time of the first frame showing a decision row. */
function watchFirstRow() {
  const tick = () => {
    if (document.querySelector('[role="treeitem"]')) window.__firstRow = performance.now();
    else requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}

async function run(browser, srv) {
  const context = await browser.newContext({ viewport: { width: VW, height: VH } });
  const page = await context.newPage();
  try {
    await signIn(page, srv);
    await page.addInitScript(watchFirstRow);
    await page.goto(`http://127.0.0.1:${srv.port}/traces/${EXECUTION}`);
    await page.waitForFunction(() => window.__firstRow !== undefined);
    const firstPaint = await page.evaluate(() => window.__firstRow);
    const fps = await framesPerSecond(page, SCROLL_SECONDS * 1000, '[data-testid="trace-tree"]');
    const rows = await page.locator('[role="treeitem"]').count();
    return { first_paint_ms: firstPaint, scroll_fps: fps, rows_in_document: rows };
  } finally {
    await context.close();
  }
}

const srv = await startAeid('trace-view');
const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
const runs = [];
try {
  await load(srv);
  for (let k = 0; k < RUNS; k++) runs.push(await run(browser, srv));
} finally {
  await browser.close();
  await stopAeid(srv);
}
const median = (xs) => percentile([...xs].sort((a, b) => a - b), 50);
console.log(JSON.stringify({
  chromium: browser.version(), viewport: `${VW}x${VH}`, decisions: DECISIONS, runs,
  first_paint_ms_median: median(runs.map((r) => r.first_paint_ms)),
  scroll_fps_median: median(runs.map((r) => r.scroll_fps)),
}, null, 2));
