// examples.test.mjs - every JSON example in docs/api/heartbeat-examples.md and
// docs/api/trace-examples.md is valid against openapi.yaml's schemas and is accepted by a real
// server on both stores.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it, test } from 'node:test';
import { REPO, describeEachStore } from './lib/harness.mjs';
import { validator } from './lib/openapi.mjs';

/* The ```json blocks of a Markdown file, each with the heading it sits under. */
function examples(file) {
    const text = readFileSync(join(REPO, 'docs', 'api', file), 'utf8');
    const out = [];
    let heading = '(top)';
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
        if (lines[i].startsWith('## ')) heading = lines[i].slice(3);
        if (lines[i] !== '```json') continue;
        const start = ++i;
        while (i < lines.length && lines[i] !== '```') i++;
        const body = lines.slice(start, i).join('\n');
        out.push({ heading, body, value: JSON.parse(body) });
    }
    return out;
}

const heartbeats = examples('heartbeat-examples.md');
const traces = examples('trace-examples.md');

test('the example files hold what docs promise', () => {
    const hbHeadings = new Set(heartbeats.map((e) => e.heading));
    for (const h of ['Idle agent', 'Busy agent', 'Agent with an error', 'Parent and children', 'Cost roll-up'])
        assert.ok(hbHeadings.has(h), `heartbeat-examples.md lacks "${h}"`);
    assert.ok(heartbeats.length >= 5);
    const trHeadings = new Set(traces.map((e) => e.heading));
    for (const h of ['An LLM decision', 'A tool selection', 'A refinement loop'])
        assert.ok(trHeadings.has(h), `trace-examples.md lacks "${h}"`);
});

test('every example matches its schema in openapi.yaml', () => {
    const hb = validator('Heartbeat');
    assert.ok(hb, 'openapi.yaml has components.schemas.Heartbeat');
    for (const e of heartbeats)
        assert.ok(hb(e.value), `heartbeat "${e.heading}": ${JSON.stringify(hb.errors)}`);
    const d = validator('Decision');
    assert.ok(d, 'openapi.yaml has components.schemas.Decision');
    for (const e of traces) {
        for (const one of [].concat(e.value))
            assert.ok(d(one), `decision in "${e.heading}": ${JSON.stringify(d.errors)}`);
    }
    // The validators do catch mistakes.
    assert.equal(hb({ agent_id: 'x', status: 'sleeping' }), false);
    assert.equal(d({ execution_id: 'x', agent_id: 'y', confidence_score: 101 }), false);
});

describeEachStore('docs/api examples against a real server', (srv) => {
    it('every heartbeat example is accepted', async () => {
        for (const e of heartbeats) {
            const r = await srv.api('/api/v0/heartbeats', { body: e.value });
            assert.equal(r.status, 200, `"${e.heading}": ${r.text}`);
            assert.equal(r.json.agent_id, e.value.agent_id);
        }
        const worker = await srv.api('/api/v0/agents/worker-1');
        assert.equal(worker.json.parent_agent_id, 'orchestrator-1');
    });

    it('every trace example is stored, and again is a duplicate', async () => {
        for (const e of traces) {
            const n = [].concat(e.value).length;
            const r = await srv.api('/api/v0/traces', { body: e.value });
            assert.equal(r.status, 200, `"${e.heading}": ${r.text}`);
            assert.equal(r.json.stored, n, `"${e.heading}": ${r.text}`);
            const again = await srv.api('/api/v0/traces', { body: e.value });
            assert.equal(again.json.duplicates, n, `"${e.heading}" posted twice: ${again.text}`);
        }
        const tree = await srv.api('/api/v0/executions/run-2026-11-24-002/decisions');
        assert.deepEqual(tree.json.decisions.map((d) => d.depth), [0, 1, 2]);
        const end = await srv.api('/api/v0/executions/run-2026-11-24-002', {
            method: 'PATCH', body: { status: 'completed' } });
        assert.equal(end.status, 200, end.text);
    });
});
