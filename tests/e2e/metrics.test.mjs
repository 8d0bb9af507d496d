// metrics.test.mjs - GET /metrics: auth, the documented series, and promtool's verdict.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { it } from 'node:test';
import { assertError, describeEachStore, makeHeartbeat, uniqueId } from './lib/harness.mjs';

const PROMTOOL = process.env.PROMTOOL ?? '/usr/bin/promtool';
const STATUSES = ['idle', 'processing', 'waiting', 'error', 'complete'];

/* Parse the text format into [{name, labels, value}] plus {types, helps}. */
function parse(text) {
    const samples = [];
    const types = {};
    const helps = {};
    for (const line of text.split('\n')) {
        if (line === '') continue;
        let m = line.match(/^# TYPE (\S+) (\S+)$/);
        if (m) {
            types[m[1]] = m[2];
            continue;
        }
        m = line.match(/^# HELP (\S+) (.*)$/);
        if (m) {
            helps[m[1]] = m[2];
            continue;
        }
        if (line.startsWith('#')) continue;
        m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( \d+)?$/);
        assert.ok(m, `cannot parse metrics line: ${line}`);
        const labels = {};
        if (m[3]) {
            for (const lm of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[lm[1]] = lm[2];
        }
        samples.push({ name: m[1], labels, value: Number(m[4] === '+Inf' ? Infinity : m[4]) });
    }
    return { samples, types, helps };
}

function find(parsed, name, labels = {}) {
    return parsed.samples.filter((s) => s.name === name &&
        Object.entries(labels).every(([k, v]) => (v instanceof RegExp ? v.test(s.labels[k] ?? '') : s.labels[k] === v)));
}

function one(parsed, name, labels = {}) {
    const f = find(parsed, name, labels);
    assert.equal(f.length, 1, `expected one ${name}${JSON.stringify(labels)}, found ${f.length}`);
    return f[0].value;
}

function sum(parsed, name, labels = {}) {
    return find(parsed, name, labels).reduce((a, s) => a + s.value, 0);
}

function promtool(text) {
    return new Promise((resolve, reject) => {
        const p = spawn(PROMTOOL, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
        let out = '';
        p.stdout.on('data', (d) => (out += d));
        p.stderr.on('data', (d) => (out += d));
        p.on('error', reject);
        p.on('close', (code) => resolve({ code, out }));
        p.stdin.end(text);
    });
}

describeEachStore('metrics', (srv) => {
    const scrape = async () => {
        const r = await srv.api('/metrics');
        assert.equal(r.status, 200, r.text);
        return { r, parsed: parse(r.text) };
    };

    it('/metrics needs a token', async () => {
        assertError(await srv.api('/metrics', { token: null }), 401, 'unauthorized');
        assertError(await srv.api('/metrics', { token: 'wrong-token' }), 401, 'invalid_token');
    });

    it('text format 0.0.4 with the documented metric types', async () => {
        const { r, parsed } = await scrape();
        assert.match(r.headers.get('content-type') ?? '', /^text\/plain; ?version=0\.0\.4/);
        assert.equal(parsed.types.aei_heartbeats_received_total, 'counter');
        assert.equal(parsed.types.aei_heartbeat_commit_latency_seconds, 'histogram');
        assert.equal(parsed.types.aei_agents, 'gauge');
        assert.equal(parsed.types.aei_http_requests_total, 'counter');
        assert.equal(parsed.types.aei_store_batch_size, 'histogram');
        for (const n of Object.keys(parsed.types)) assert.ok(parsed.helps[n], `HELP for ${n}`);
    });

    it('counts heartbeats, latency, agents by status and requests by route and code', async () => {
        const before = (await scrape()).parsed;
        const ids = { processing: [uniqueId('m'), uniqueId('m')], error: [uniqueId('m')] };
        let n = 0;
        for (const [status, list] of Object.entries(ids)) {
            for (const id of list) {
                await srv.heartbeat(makeHeartbeat(id, { status: 'idle' }));
                await srv.heartbeat(makeHeartbeat(id, { status }));
                n += 2;
            }
        }
        // One rejected heartbeat and one unauthenticated request for the code labels.
        await srv.api('/api/v0/heartbeats', { body: { agent_id: 'x', status: 'bogus' } });
        await srv.api('/api/v0/agents', { token: null });
        const { parsed } = await scrape();

        const received = one(parsed, 'aei_heartbeats_received_total') - one(before, 'aei_heartbeats_received_total');
        assert.ok(received >= n, `aei_heartbeats_received_total grew by ${received}, expected at least ${n}`);

        const H = 'aei_heartbeat_commit_latency_seconds';
        const count = one(parsed, `${H}_count`) - one(before, `${H}_count`);
        assert.equal(count, n, `${H}_count grew by ${count}, expected ${n} (one per committed heartbeat)`);
        const buckets = find(parsed, `${H}_bucket`);
        assert.ok(buckets.length >= 2, 'latency histogram has buckets');
        const sorted = [...buckets].sort((a, b) => Number(a.labels.le === '+Inf' ? Infinity : a.labels.le) -
            Number(b.labels.le === '+Inf' ? Infinity : b.labels.le));
        for (let i = 1; i < sorted.length; i++) assert.ok(sorted[i].value >= sorted[i - 1].value, 'buckets cumulative');
        assert.equal(sorted.at(-1).labels.le, '+Inf');
        assert.equal(sorted.at(-1).value, one(parsed, `${H}_count`), '+Inf bucket equals _count');
        assert.ok(one(parsed, `${H}_sum`) > 0, `${H}_sum is positive`);

        const B = 'aei_store_batch_size';
        assert.ok(one(parsed, `${B}_count`) >= 1, `${B}_count counts batches`);
        assert.ok(one(parsed, `${B}_sum`) >= n, `${B}_sum counts rows (>= ${n})`);
        assert.ok(find(parsed, `${B}_bucket`, { le: '+Inf' }).length === 1);

        for (const s of STATUSES) one(parsed, 'aei_agents', { status: s });
        const delta = (s) => one(parsed, 'aei_agents', { status: s }) - one(before, 'aei_agents', { status: s });
        assert.equal(delta('processing'), 2, 'aei_agents{status="processing"} +2');
        assert.equal(delta('error'), 1, 'aei_agents{status="error"} +1');
        assert.equal(delta('idle'), 0, 'idle agents moved on');

        const R = 'aei_http_requests_total';
        const posted = sum(parsed, R, { method: 'POST', route: /heartbeats/, code: '200' }) -
            sum(before, R, { method: 'POST', route: /heartbeats/, code: '200' });
        assert.equal(posted, n, `${R}{method="POST",route=~"heartbeats",code="200"} grew by ${posted}`);
        assert.ok(sum(parsed, R, { method: 'POST', route: /heartbeats/, code: '400' }) >= 1, 'a 400 is counted');
        assert.ok(sum(parsed, R, { code: '401' }) >= 1, 'a 401 is counted');
        assert.ok(sum(parsed, R, { method: 'GET', route: /metrics/, code: '200' }) >= 1, 'scrapes are counted');
    });

    it('route labels are route patterns, not raw paths', async () => {
        const routes = () => scrape().then(({ parsed }) =>
            new Set(find(parsed, 'aei_http_requests_total').map((s) => s.labels.route)));
        const id = uniqueId('card');
        await srv.heartbeat(makeHeartbeat(id));
        await srv.api(`/api/v0/agents/${id}`);
        await srv.api('/api/v0/agents/nobody-1');
        await srv.api('/nope/1');
        const before = await routes();
        for (let i = 0; i < 15; i++) {
            await srv.api(`/api/v0/agents/${uniqueId('card')}`);
            await srv.api(`/api/v0/agents/${uniqueId('card')}/heartbeats`);
            await srv.api(`/no/such/route/${i}`);
        }
        const afterRoutes = await routes();
        const added = [...afterRoutes].filter((r) => !before.has(r));
        assert.ok(added.length <= 2, `distinct route labels grew by ${added.length}: ${added.join(', ')}`);
        for (const r of afterRoutes) assert.ok(!r.includes(id), `route label contains an agent id: ${r}`);
    });

    it('promtool check metrics passes', { skip: !existsSync(PROMTOOL) && `no ${PROMTOOL}` }, async () => {
        await srv.heartbeat(makeHeartbeat(uniqueId('prom')));
        const { r } = await scrape();
        const res = await promtool(r.text);
        assert.equal(res.code, 0, `promtool check metrics:\n${res.out}\n--- metrics ---\n${r.text}`);
    });
});
