// heartbeats.test.mjs - heartbeat ingest, agent state and heartbeat history.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import {
    assertError, assertNowish, describeEachStore, makeHeartbeat, parseMicros, uniqueId,
} from './lib/harness.mjs';

const AGENT_KEYS = [
    'agent_id', 'name', 'status', 'metrics', 'parent_agent_id', 'child_agent_ids', 'labels',
    'schema_version', 'first_seen', 'last_heartbeat', 'agent_ts',
];
const HB_KEYS = [
    'agent_id', 'server_ts', 'agent_ts', 'status', 'metrics', 'parent_agent_id', 'child_agent_ids',
    'name', 'labels',
];
const METRIC_KEYS = ['cpu_pct', 'mem_pct', 'tokens_per_min', 'cost_usd', 'confidence'];
const NULL_METRICS = Object.fromEntries(METRIC_KEYS.map((k) => [k, null]));

function assertKeys(obj, keys, what) {
    for (const k of keys) assert.ok(k in obj, `${what} should have "${k}": ${JSON.stringify(obj)}`);
}

/* Fetch every page of an agent's history; returns {items, pages}. */
async function allPages(srv, id, query = '') {
    const items = [];
    const pages = [];
    let cursor = null;
    for (let i = 0; i < 1000; i++) {
        let q = query;
        if (cursor !== null) q += `${q ? '&' : ''}cursor=${encodeURIComponent(cursor)}`;
        const r = await srv.api(`/api/v0/agents/${id}/heartbeats${q ? '?' + q : ''}`);
        assert.equal(r.status, 200, `GET history ?${q} -> ${r.status} ${r.text}`);
        assert.ok(Array.isArray(r.json.heartbeats), r.text);
        assert.ok('next' in r.json, `history page needs "next": ${r.text}`);
        pages.push(r.json);
        items.push(...r.json.heartbeats);
        if (r.json.next === null) return { items, pages };
        assert.equal(typeof r.json.next, 'string', `next should be a string or null: ${r.text}`);
        assert.ok(r.json.heartbeats.length > 0, `a page with a next cursor should not be empty: ${r.text}`);
        cursor = r.json.next;
    }
    assert.fail('history pagination did not end after 1000 pages');
}

describeEachStore('heartbeats', (srv) => {
    it('round trip: POST then GET the agent, the list and the history', async () => {
        const id = uniqueId('researcher');
        const hb = makeHeartbeat(id, {
            parent_agent_id: 'boss-1',
            child_agent_ids: ['worker-1', 'worker-2'],
            labels: { team: 'search', region: 'eu-west' },
            timestamp: '2026-11-24T15:00:00.123Z',
        });
        const r = await srv.api('/api/v0/heartbeats', { body: hb });
        assert.equal(r.status, 200, r.text);
        assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
        assert.equal(r.json.agent_id, id);
        assert.deepEqual(r.json.commands, []);
        assertNowish(r.json.server_ts, 'server_ts');

        const a = await srv.api(`/api/v0/agents/${id}`);
        assert.equal(a.status, 200, a.text);
        const agent = a.json;
        assertKeys(agent, AGENT_KEYS, 'agent');
        assert.equal(agent.agent_id, id);
        assert.equal(agent.name, 'Researcher');
        assert.equal(agent.status, 'processing');
        assert.deepEqual(agent.metrics, hb.metrics);
        assert.equal(agent.parent_agent_id, 'boss-1');
        assert.deepEqual(agent.child_agent_ids, ['worker-1', 'worker-2']);
        assert.deepEqual(agent.labels, { team: 'search', region: 'eu-west' });
        assert.equal(agent.schema_version, '0');
        assert.equal(agent.last_heartbeat, r.json.server_ts, 'last_heartbeat is the server_ts');
        assert.equal(agent.first_seen, r.json.server_ts, 'first_seen of a new agent');
        assert.equal(agent.agent_ts, '2026-11-24T15:00:00.123000Z');

        const l = await srv.api('/api/v0/agents');
        assert.equal(l.status, 200, l.text);
        const listed = l.json.agents.find((x) => x.agent_id === id);
        assert.deepEqual(listed, agent, 'the list shows the same agent object');

        const h = await srv.api(`/api/v0/agents/${id}/heartbeats`);
        assert.equal(h.status, 200, h.text);
        assert.equal(h.json.heartbeats.length, 1);
        assert.equal(h.json.next, null);
        const stored = h.json.heartbeats[0];
        assertKeys(stored, HB_KEYS, 'heartbeat');
        assert.equal(stored.agent_id, id);
        assert.equal(stored.server_ts, r.json.server_ts);
        assert.equal(stored.agent_ts, '2026-11-24T15:00:00.123000Z');
        assert.equal(stored.status, 'processing');
        assert.deepEqual(stored.metrics, hb.metrics);
        assert.equal(stored.parent_agent_id, 'boss-1');
        assert.deepEqual(stored.child_agent_ids, ['worker-1', 'worker-2']);
        assert.equal(stored.name, 'Researcher');
        assert.deepEqual(stored.labels, { team: 'search', region: 'eu-west' });
    });

    it('a minimal heartbeat (agent_id and status only) is accepted; unknowns are null', async () => {
        const id = uniqueId('minimal');
        const r = await srv.api('/api/v0/heartbeats', { body: { agent_id: id, status: 'idle' } });
        assert.equal(r.status, 200, r.text);
        const a = (await srv.api(`/api/v0/agents/${id}`)).json;
        assert.equal(a.status, 'idle');
        assert.deepEqual(a.metrics, NULL_METRICS);
        assert.equal(a.parent_agent_id, null);
        assert.deepEqual(a.child_agent_ids, []);
        assert.deepEqual(a.labels, {});
        assert.equal(a.agent_ts, null);
        assert.equal(a.schema_version, '0');
    });

    it('partial metrics: absent and null members are unknown (null)', async () => {
        const id = uniqueId('partial');
        await srv.heartbeat({
            agent_id: id,
            status: 'waiting',
            metrics: { cpu_pct: 0, mem_pct: null, confidence: 100 },
        });
        const a = (await srv.api(`/api/v0/agents/${id}`)).json;
        assert.deepEqual(a.metrics, {
            cpu_pct: 0, mem_pct: null, tokens_per_min: null, cost_usd: null, confidence: 100,
        });
    });

    it('server time wins: an agent timestamp from 2001 is kept only as agent_ts', async () => {
        const id = uniqueId('old-clock');
        const r = await srv.api('/api/v0/heartbeats', {
            body: makeHeartbeat(id, { timestamp: '2001-02-03T04:05:06.789Z' }),
        });
        assert.equal(r.status, 200, r.text);
        assertNowish(r.json.server_ts, 'server_ts');
        const a = (await srv.api(`/api/v0/agents/${id}`)).json;
        assertNowish(a.last_heartbeat, 'last_heartbeat');
        assertNowish(a.first_seen, 'first_seen');
        assert.equal(a.agent_ts, '2001-02-03T04:05:06.789000Z');
        const h = (await srv.api(`/api/v0/agents/${id}/heartbeats`)).json;
        assertNowish(h.heartbeats[0].server_ts, 'history server_ts');
        assert.equal(h.heartbeats[0].agent_ts, '2001-02-03T04:05:06.789000Z');
    });

    it('agent timestamps with an offset are kept as the same instant in UTC', async () => {
        const id = uniqueId('offset');
        await srv.heartbeat(makeHeartbeat(id, { timestamp: '2001-02-03T06:05:06.5+02:00' }));
        const a = (await srv.api(`/api/v0/agents/${id}`)).json;
        assert.equal(a.agent_ts, '2001-02-03T04:05:06.500000Z');
    });

    it('history is ordered by server time, not by agent time', async () => {
        const id = uniqueId('skew');
        const first = await srv.heartbeat(makeHeartbeat(id, { timestamp: '2099-01-01T00:00:00Z', status: 'idle' }));
        const second = await srv.heartbeat(makeHeartbeat(id, { timestamp: '2001-01-01T00:00:00Z', status: 'complete' }));
        assert.ok(parseMicros(second.server_ts) > parseMicros(first.server_ts), 'server_ts increases');
        const h = (await srv.api(`/api/v0/agents/${id}/heartbeats`)).json;
        assert.deepEqual(h.heartbeats.map((x) => x.status), ['idle', 'complete']);
        const a = (await srv.api(`/api/v0/agents/${id}`)).json;
        assert.equal(a.status, 'complete', 'latest by server time is the state');
        assert.equal(a.agent_ts, '2001-01-01T00:00:00.000000Z');
        assertNowish(a.last_heartbeat, 'last_heartbeat');
    });

    it('first heartbeat registers the agent; later ones keep first_seen', async () => {
        const id = uniqueId('newcomer');
        const before404 = await srv.api(`/api/v0/agents/${id}`);
        assertError(before404, 404, 'not_found');
        const one = await srv.heartbeat(makeHeartbeat(id, { status: 'idle' }));
        const a1 = (await srv.api(`/api/v0/agents/${id}`)).json;
        assert.equal(a1.first_seen, one.server_ts);
        const two = await srv.heartbeat(makeHeartbeat(id, { status: 'processing' }));
        const a2 = (await srv.api(`/api/v0/agents/${id}`)).json;
        assert.equal(a2.first_seen, one.server_ts, 'first_seen does not move');
        assert.equal(a2.last_heartbeat, two.server_ts);
        assert.ok(parseMicros(a2.last_heartbeat) > parseMicros(a2.first_seen));
    });

    it('the agent shows its latest state; the list is ordered by agent_id', async () => {
        const prefix = uniqueId('order');
        const ids = [`${prefix}-c`, `${prefix}-a`, `${prefix}-b`, `${prefix}-A`, `${prefix}-0`];
        const statuses = ['idle', 'processing', 'waiting', 'error', 'complete'];
        for (const id of ids) {
            for (let i = 0; i < statuses.length; i++) {
                await srv.heartbeat(makeHeartbeat(id, {
                    status: statuses[(i + ids.indexOf(id)) % statuses.length],
                    metrics: { cpu_pct: i * 10, mem_pct: 1, tokens_per_min: i, cost_usd: i / 10, confidence: 50 },
                    name: `${id} v${i}`,
                    labels: { round: String(i) },
                }));
            }
        }
        const l = await srv.api('/api/v0/agents');
        assert.equal(l.status, 200, l.text);
        const all = l.json.agents.map((a) => a.agent_id);
        const sorted = [...all].sort((x, y) => (Buffer.compare(Buffer.from(x), Buffer.from(y))));
        assert.deepEqual(all, sorted, 'agents ordered by agent_id');
        assert.equal(new Set(all).size, all.length, 'no agent listed twice');
        for (const id of ids) {
            const a = l.json.agents.find((x) => x.agent_id === id);
            assert.ok(a, `${id} is listed`);
            const last = statuses.length - 1;
            assert.equal(a.status, statuses[(last + ids.indexOf(id)) % statuses.length], `${id} status`);
            assert.equal(a.metrics.cpu_pct, last * 10);
            assert.equal(a.metrics.tokens_per_min, last);
            assert.equal(a.name, `${id} v${last}`);
            assert.deepEqual(a.labels, { round: String(last) });
        }
    });

    it('/api/... resolves to /api/v0/...', async () => {
        const id = uniqueId('unversioned');
        const r = await srv.api('/api/heartbeats', { body: makeHeartbeat(id) });
        assert.equal(r.status, 200, `POST /api/heartbeats -> ${r.status} ${r.text}`);
        const v = await srv.api('/api/v0/agents');
        const u = await srv.api('/api/agents');
        assert.equal(u.status, 200, u.text);
        assert.deepEqual(u.json, v.json);
        const a0 = await srv.api(`/api/v0/agents/${id}`);
        const a = await srv.api(`/api/agents/${id}`);
        assert.equal(a.status, 200, a.text);
        assert.deepEqual(a.json, a0.json);
        const h0 = await srv.api(`/api/v0/agents/${id}/heartbeats`);
        const h = await srv.api(`/api/agents/${id}/heartbeats`);
        assert.equal(h.status, 200, h.text);
        assert.deepEqual(h.json, h0.json);
        assertError(await srv.api('/api/agents/no-such-agent-xyz'), 404, 'not_found');
    });

    it('agent ids with every allowed character and the maximum length round trip', async () => {
        for (const id of [`a.b_c:d-E9-${uniqueId('x')}`, 'L'.repeat(120) + uniqueId('').slice(1, 9)]) {
            assert.ok(id.length <= 128);
            await srv.heartbeat(makeHeartbeat(id));
            const a = await srv.api(`/api/v0/agents/${id}`);
            assert.equal(a.status, 200, `${id}: ${a.text}`);
            assert.equal(a.json.agent_id, id);
        }
        const id128 = 'm'.repeat(120) + uniqueId('').slice(1, 9);
        assert.equal(id128.length, 128);
        await srv.heartbeat(makeHeartbeat(id128));
        assert.equal((await srv.api(`/api/v0/agents/${id128}`)).json.agent_id, id128);
    });

    it('percent-encoded agent ids in the path are decoded', async () => {
        const id = `enc:${uniqueId('x')}`;
        await srv.heartbeat(makeHeartbeat(id));
        const a = await srv.api(`/api/v0/agents/${encodeURIComponent(id)}`);
        assert.equal(a.status, 200, `GET /api/v0/agents/${encodeURIComponent(id)}: ${a.text}`);
        assert.equal(a.json.agent_id, id);
        const h = await srv.api(`/api/v0/agents/${encodeURIComponent(id)}/heartbeats`);
        assert.equal(h.status, 200, h.text);
    });

    it('UTF-8 names and labels round trip exactly', async () => {
        const id = uniqueId('unicode');
        const name = 'Forscher ü — 研究员 🚀 "quoted" \\ back\tslash';
        const labels = { 'équipe': 'recherche ✓', emoji: '🧪🔬', esc: 'a"b\\c\nd' };
        await srv.heartbeat(makeHeartbeat(id, { name, labels }));
        const a = (await srv.api(`/api/v0/agents/${id}`)).json;
        assert.equal(a.name, name);
        assert.deepEqual(a.labels, labels);
        const raw = `{"agent_id":"${id}","status":"idle","name":"caf\\u00e9 \\ud83d\\ude80"}`;
        const r = await srv.api('/api/v0/heartbeats', { rawBody: raw });
        assert.equal(r.status, 200, r.text);
        assert.equal((await srv.api(`/api/v0/agents/${id}`)).json.name, 'café 🚀');
    });

    it('Content-Type with parameters is accepted', async () => {
        const r = await srv.api('/api/v0/heartbeats', {
            body: makeHeartbeat(uniqueId('charset')),
            headers: { 'content-type': 'application/json; charset=utf-8' },
        });
        assert.equal(r.status, 200, r.text);
    });

    it('boundary metric values are accepted', async () => {
        const id = uniqueId('edges');
        for (const m of [
            { cpu_pct: 0, mem_pct: 0, tokens_per_min: 0, cost_usd: 0, confidence: 0 },
            { cpu_pct: 100, mem_pct: 100, tokens_per_min: 1e9, cost_usd: 123456.789, confidence: 100 },
            { cpu_pct: 99.999, mem_pct: 0.001, tokens_per_min: 0.5, cost_usd: 1e-6, confidence: 0.5 },
        ]) {
            await srv.heartbeat(makeHeartbeat(id, { metrics: m }));
            const a = (await srv.api(`/api/v0/agents/${id}`)).json;
            assert.deepEqual(a.metrics, m);
        }
    });

    it('history pagination: limit, next cursor, no duplicates, no gaps, ascending', async () => {
        const id = uniqueId('paged');
        const N = 23;
        const sent = [];
        for (let i = 0; i < N; i++) {
            const r = await srv.heartbeat(makeHeartbeat(id, {
                metrics: { cpu_pct: 1, mem_pct: 1, tokens_per_min: i, cost_usd: 0, confidence: 1 },
            }));
            sent.push(r.server_ts);
        }
        for (const limit of [1, 5, 7, 22, 23, 100]) {
            const { items, pages } = await allPages(srv, id, `limit=${limit}`);
            assert.equal(items.length, N, `limit=${limit}: ${N} heartbeats over all pages`);
            assert.deepEqual(items.map((x) => x.metrics.tokens_per_min), [...Array(N).keys()],
                `limit=${limit}: every heartbeat once, in order`);
            assert.deepEqual(items.map((x) => x.server_ts), sent);
            for (let i = 1; i < items.length; i++) {
                assert.ok(parseMicros(items[i].server_ts) > parseMicros(items[i - 1].server_ts),
                    'ascending server time');
            }
            assert.equal(pages.length, Math.ceil(N / limit),
                `limit=${limit}: next is null on the page holding the last heartbeat`);
            for (const p of pages.slice(0, -1)) assert.equal(p.heartbeats.length, limit);
            assert.ok(pages.at(-1).heartbeats.length <= limit);
        }
        const dflt = (await srv.api(`/api/v0/agents/${id}/heartbeats`)).json;
        assert.equal(dflt.heartbeats.length, N, 'default limit (100) returns all 23');
        assert.equal(dflt.next, null);
    });

    it('history from (inclusive) and to (exclusive), also with pages', async () => {
        const id = uniqueId('window');
        const ts = [];
        for (let i = 0; i < 12; i++) {
            ts.push((await srv.heartbeat(makeHeartbeat(id, {
                metrics: { cpu_pct: i, mem_pct: null, tokens_per_min: null, cost_usd: null, confidence: null },
            }))).server_ts);
        }
        const cpu = (items) => items.map((x) => x.metrics.cpu_pct);
        const q = (from, to) => `from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`;
        let { items } = await allPages(srv, id, q(ts[3], ts[9]));
        assert.deepEqual(cpu(items), [3, 4, 5, 6, 7, 8]);
        ({ items } = await allPages(srv, id, `${q(ts[3], ts[9])}&limit=4`));
        assert.deepEqual(cpu(items), [3, 4, 5, 6, 7, 8], 'from/to across pages');
        ({ items } = await allPages(srv, id, `from=${encodeURIComponent(ts[10])}`));
        assert.deepEqual(cpu(items), [10, 11]);
        ({ items } = await allPages(srv, id, `to=${encodeURIComponent(ts[2])}`));
        assert.deepEqual(cpu(items), [0, 1]);
        ({ items } = await allPages(srv, id, q(ts[5], ts[5])));
        assert.deepEqual(cpu(items), [], 'empty window');
        ({ items } = await allPages(srv, id, q('2000-01-01T00:00:00Z', '2000-01-02T00:00:00Z')));
        assert.deepEqual(cpu(items), []);
        // A time with an offset means the same instant.
        const t3 = new Date(parseMicros(ts[3]) / 1000);
        const plusTwo = new Date(t3.getTime() + 2 * 3600e3).toISOString().slice(0, 19) +
            '.' + ts[3].slice(20, 26) + '+02:00';
        ({ items } = await allPages(srv, id, `from=${encodeURIComponent(plusTwo)}&limit=3`));
        assert.deepEqual(cpu(items), [3, 4, 5, 6, 7, 8, 9, 10, 11]);
    });

    it('heartbeats posted during pagination do not cause duplicates or gaps', async () => {
        const id = uniqueId('moving');
        for (let i = 0; i < 6; i++) {
            await srv.heartbeat(makeHeartbeat(id, { metrics: { tokens_per_min: i } }));
        }
        const seen = [];
        let r = (await srv.api(`/api/v0/agents/${id}/heartbeats?limit=4`)).json;
        seen.push(...r.heartbeats);
        for (let i = 6; i < 9; i++) {
            await srv.heartbeat(makeHeartbeat(id, { metrics: { tokens_per_min: i } }));
        }
        while (r.next !== null) {
            r = (await srv.api(`/api/v0/agents/${id}/heartbeats?limit=4&cursor=${encodeURIComponent(r.next)}`)).json;
            seen.push(...r.heartbeats);
        }
        assert.deepEqual(seen.map((x) => x.metrics.tokens_per_min), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
    });

    it('the agent list pages by agent id with limit and cursor; without limit it is whole', async () => {
        const prefix = uniqueId('fleet');
        const ids = [0, 1, 2, 3, 4].map((i) => `${prefix}-${i}`);
        for (const id of ids) await srv.heartbeat(makeHeartbeat(id));
        const whole = (await srv.api('/api/v0/agents')).json;
        assert.equal(whole.next, null, 'no limit: one answer, next is null');
        const all = whole.agents.map((a) => a.agent_id);
        for (const id of ids) assert.ok(all.includes(id), `${id} listed`);
        const paged = [];
        let cursor = null;
        for (let pages = 0; pages < 1000; pages++) {
            const q = `/api/v0/agents?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
            const r = (await srv.api(q)).json;
            assert.ok(r.agents.length <= 2);
            paged.push(...r.agents.map((a) => a.agent_id));
            if (r.next === null) break;
            cursor = r.next;
        }
        assert.deepEqual(paged, all, 'the pages put together are the whole list, in order');
        assertError(await srv.api('/api/v0/agents?limit=0'), 400, 'invalid_parameter', { field: 'limit' });
        assertError(await srv.api('/api/v0/agents?cursor=a%20b'), 400, 'invalid_parameter', { field: 'cursor' });
        assertError(await srv.api('/api/v0/agents?page=2'), 400, 'invalid_parameter', { field: 'page' });
    });

    it('404 not_found for an unknown agent and its history', async () => {
        const id = uniqueId('ghost');
        assertError(await srv.api(`/api/v0/agents/${id}`), 404, 'not_found');
        assertError(await srv.api(`/api/v0/agents/${id}/heartbeats`), 404, 'not_found');
        assertError(await srv.api(`/api/v0/agents/${id}/heartbeats?limit=5`), 404, 'not_found');
    });
});
