// ws-subscribe.test.mjs - the live hub's subscriptions and deltas: agents:all and agent:<id> in
// their JSON and plain text forms, snapshots, full state for a new agent, only the changed fields
// after that, one delta per heartbeat with increasing seqs, unsubscribing, and the ws metrics.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { it } from 'node:test';
import {
    assertNowish, describeEachStore, makeHeartbeat, openSocket, sleep, uniqueId,
} from './lib/harness.mjs';
import {
    EPOCH_RE, WsClient, assertSeqsIncrease, closeAll, isUpdate, metricSum, scrape, subscribed,
} from './lib/ws.mjs';

const PROMTOOL = process.env.PROMTOOL ?? '/usr/bin/promtool';

const FULL_STATE_KEYS = [
    'agent_id', 'name', 'status', 'metrics', 'parent_agent_id', 'child_agent_ids', 'labels',
    'agent_ts', 'last_heartbeat', 'first_seen', 'schema_version', 'liveness', 'estimated_cost_usd',
    'team_id', 'control',
].sort();
const METRIC_KEYS = ['confidence', 'cost_usd', 'cpu_pct', 'mem_pct', 'tokens_per_min'];
const TOTALS_KEYS = ['cost_usd', 'estimated_cost_usd', 'tokens_per_min', 'agents', 'agents_by_status',
    'agents_by_liveness'];

/* The REST document of an agent. */
async function restAgent(srv, id) {
    const r = await srv.api(`/api/v0/agents/${id}`);
    assert.equal(r.status, 200, `GET /api/v0/agents/${id} -> ${r.status} ${r.text}`);
    return r.json;
}

/* A full agent state (a snapshot entry, or the `changed` of a first delta) against REST. */
function assertFullState(state, rest, what) {
    assert.deepEqual(Object.keys(state).sort(), FULL_STATE_KEYS, `${what}: the keys of a full agent state`);
    assert.deepEqual(Object.keys(state.metrics).sort(), METRIC_KEYS, `${what}: every metric`);
    for (const k of Object.keys(rest)) {
        assert.deepEqual(state[k], rest[k], `${what}: "${k}" should equal the REST document's`);
    }
    assert.equal(state.liveness, 'online', `${what}: liveness`);
}

function assertTotalsShape(t, what) {
    for (const k of TOTALS_KEYS) assert.ok(k in t, `${what}: totals need "${k}": ${JSON.stringify(t)}`);
    assert.deepEqual(Object.keys(t.agents_by_status).sort(), ['complete', 'error', 'idle', 'processing', 'waiting']);
    assert.deepEqual(Object.keys(t.agents_by_liveness).sort(), ['dead', 'online', 'stale']);
}

/* The index in c.log of a message object. */
const indexOf = (c, m) => c.log.findIndex((e) => e.msg === m);

describeEachStore('ws subscriptions and deltas', (srv) => {
    it('subscribe agents:all: subscribed (epoch, seq, recovered:false), then a snapshot of every agent', async () => {
        const ids = [uniqueId('snap'), uniqueId('snap')];
        for (const id of ids) await srv.heartbeat(makeHeartbeat(id, { status: 'waiting' }));
        const c = await WsClient.connect(srv);
        try {
            const { subscribed: s, snapshot } = await c.subscribe('agents:all');
            assert.match(s.epoch, EPOCH_RE, 'epoch: 16 hex characters');
            assert.ok(Number.isInteger(s.seq) && s.seq >= 2, `seq counts the two updates at least: ${s.seq}`);
            assert.equal(s.recovered, false);
            assert.ok(snapshot, 'a snapshot follows');
            assert.equal(snapshot.epoch, s.epoch);
            assert.equal(snapshot.seq, s.seq, 'the snapshot is at the subscription seq');
            const between = c.log.slice(indexOf(c, s) + 1, indexOf(c, snapshot)).map((e) => e.msg);
            assert.deepEqual(between.filter(isUpdate), [], 'no update between subscribed and snapshot');
            assert.ok(Array.isArray(snapshot.agents));
            for (const id of ids) {
                const a = snapshot.agents.find((x) => x.agent_id === id);
                assert.ok(a, `snapshot.agents has ${id}`);
                assertFullState(a, await restAgent(srv, id), `snapshot entry ${id}`);
                assert.equal(a.estimated_cost_usd, null, 'an agent that reports cost_usd has no estimate');
            }
            assertTotalsShape(snapshot.totals, 'snapshot');
            assert.ok(snapshot.totals.agents >= 2, `totals.agents ${snapshot.totals.agents}`);
            c.assertWellFormed();
        } finally {
            await c.close();
        }
    });

    it('subscribe agent:<id>: a snapshot of that agent alone; of an unknown agent, an empty one', async () => {
        const id = uniqueId('one');
        const other = uniqueId('other');
        await srv.heartbeat(makeHeartbeat(id));
        await srv.heartbeat(makeHeartbeat(other));
        const c = await WsClient.connect(srv);
        try {
            const { subscribed: s, snapshot } = await c.subscribe(`agent:${id}`);
            assert.equal(s.topic, `agent:${id}`);
            assert.equal(s.recovered, false);
            assert.equal(snapshot.topic, `agent:${id}`);
            assert.equal(snapshot.seq, s.seq);
            assert.equal(snapshot.agents.length, 1, `one agent: ${JSON.stringify(snapshot.agents)}`);
            assertFullState(snapshot.agents[0], await restAgent(srv, id), 'snapshot of agent:<id>');

            const ghost = uniqueId('ghost');
            const g = await c.subscribe(`agent:${ghost}`);
            assert.equal(g.subscribed.recovered, false);
            assert.deepEqual(g.snapshot.agents, [], 'an unknown agent: no agents');
            // The unknown agent's first heartbeat then comes as a full delta.
            await srv.heartbeat(makeHeartbeat(ghost));
            const d = await c.next({ type: 'delta', agent_id: ghost });
            assertFullState(d.changed, await restAgent(srv, ghost), 'first delta of a subscribed unknown agent');
            assert.ok(d.seq > g.subscribed.seq);
        } finally {
            await c.close();
        }
    });

    it('a heartbeat without a name keeps the agent\'s name: no name in its delta, the same in a snapshot as over HTTP', async () => {
        const id = uniqueId('named');
        await srv.heartbeat(makeHeartbeat(id, { name: 'Planner' }));
        const c = await WsClient.connect(srv);
        const fresh = await WsClient.connect(srv);
        try {
            await c.subscribe(`agent:${id}`);
            await srv.heartbeat(makeHeartbeat(id, { name: undefined, status: 'waiting' }));
            const d = await c.next({ type: 'delta', agent_id: id });
            assert.equal(d.changed.status, 'waiting');
            assert.ok(!('name' in d.changed), `the name did not change: ${JSON.stringify(d.changed)}`);
            const rest = await restAgent(srv, id);
            assert.equal(rest.name, 'Planner', 'GET /agents/{id} keeps the name');
            const { snapshot } = await fresh.subscribe(`agent:${id}`);
            assertFullState(snapshot.agents[0], rest, 'snapshot after a heartbeat without a name');
        } finally {
            await closeAll(c, fresh);
        }
    });

    it('the plain text forms subscribe:agents:all and subscribe:agent:<id> work like the JSON ones', async () => {
        const id = uniqueId('plain');
        const c = await WsClient.connect(srv);
        try {
            const all = await c.subscribe('agents:all', { text: true });
            assert.equal(all.subscribed.topic, 'agents:all');
            assert.ok(all.snapshot, 'snapshot after subscribe:agents:all');
            const one = await c.subscribe(`agent:${id}`, { text: true });
            assert.equal(one.subscribed.topic, `agent:${id}`);
            assert.deepEqual(one.snapshot.agents, []);
            const pong = await c.ping({ text: true });
            assertNowish(pong.server_ts, 'pong server_ts');
            const hb = await srv.heartbeat(makeHeartbeat(id));
            const d = await c.next({ type: 'delta', agent_id: id });
            assert.equal(d.changed.last_heartbeat, hb.server_ts);

            // Plain text unsubscribe of both.
            c.sendText(`unsubscribe:agent:${id}`);
            await c.next({ type: 'unsubscribed', topic: `agent:${id}` });
            c.sendText('unsubscribe:agents:all');
            await c.next({ type: 'unsubscribed', topic: 'agents:all' });
        } finally {
            await c.close();
        }
    });

    it("an agent's first heartbeat gives a delta whose changed is the full state", async () => {
        const id = uniqueId('fresh');
        const c = await subscribed(srv, 'agents:all');
        try {
            const hb = await srv.heartbeat(makeHeartbeat(id, {
                parent_agent_id: 'boss-1', labels: { team: 'search', tier: 'gold' },
                timestamp: '2026-01-02T03:04:05.678Z',
            }));
            const d = await c.next({ type: 'delta', agent_id: id });
            assert.equal(d.epoch, c.subs['agents:all'].subscribed.epoch);
            assert.ok(d.seq > c.subs['agents:all'].subscribed.seq, 'after the subscription seq');
            assertNowish(d.server_ts, 'delta server_ts');
            const rest = await restAgent(srv, id);
            assertFullState(d.changed, rest, 'first delta');
            assert.equal(d.changed.last_heartbeat, hb.server_ts);
            assert.equal(d.changed.first_seen, hb.server_ts);
            assert.equal(d.changed.agent_ts, '2026-01-02T03:04:05.678000Z');
            assert.equal(d.changed.estimated_cost_usd, null);
            assert.equal(rest.liveness, 'online', 'REST agents carry liveness');
        } finally {
            await c.close();
        }
    });

    it('later deltas carry only the changed fields (metrics: only the changed metrics)', async () => {
        const id = uniqueId('diff');
        const c = await subscribed(srv, `agent:${id}`);
        try {
            const base = makeHeartbeat(id, { timestamp: '2026-01-02T03:04:05.000Z' });
            await srv.heartbeat(base);
            await c.next({ type: 'delta', agent_id: id }, undefined, 'the first delta');

            // Only cpu_pct and the agent's timestamp change.
            const hb2 = await srv.heartbeat({
                ...base, metrics: { ...base.metrics, cpu_pct: 7.25 }, timestamp: '2026-01-02T03:04:06.000Z',
            });
            const d2 = await c.next({ type: 'delta', agent_id: id });
            assert.deepEqual(d2.changed, {
                metrics: { cpu_pct: 7.25 },
                last_heartbeat: hb2.server_ts,
                agent_ts: '2026-01-02T03:04:06.000000Z',
            }, 'cpu_pct, last_heartbeat and agent_ts; not status, name, labels, ...');

            // The same heartbeat again: only last_heartbeat changes.
            const hb3 = await srv.heartbeat({
                ...base, metrics: { ...base.metrics, cpu_pct: 7.25 }, timestamp: '2026-01-02T03:04:06.000Z',
            });
            const d3 = await c.next({ type: 'delta', agent_id: id });
            assert.deepEqual(d3.changed, { last_heartbeat: hb3.server_ts }, 'an identical heartbeat');

            // Status, a label and a metric dropped to unknown (absent -> null).
            const { cpu_pct: _dropped, ...noCpu } = base.metrics;
            const hb4 = await srv.heartbeat({
                ...base, status: 'waiting', metrics: noCpu, labels: { team: 'ops' },
                timestamp: '2026-01-02T03:04:06.000Z',
            });
            const d4 = await c.next({ type: 'delta', agent_id: id });
            assert.deepEqual(d4.changed, {
                status: 'waiting', metrics: { cpu_pct: null }, labels: { team: 'ops' },
                last_heartbeat: hb4.server_ts,
            }, 'status, labels, a metric gone unknown');

            // Name, children and parent; no agent timestamp any more.
            const hb5 = await srv.heartbeat({
                ...base, status: 'waiting', metrics: noCpu, labels: { team: 'ops' }, timestamp: undefined,
                name: 'Renamed', child_agent_ids: [], parent_agent_id: 'boss-2',
            });
            const d5 = await c.next({ type: 'delta', agent_id: id });
            assert.deepEqual(d5.changed, {
                name: 'Renamed', child_agent_ids: [], parent_agent_id: 'boss-2', agent_ts: null,
                last_heartbeat: hb5.server_ts,
            }, 'name, children, parent, agent_ts gone');
            assertSeqsIncrease(c.messages, `agent:${id}`);
            const rest = await restAgent(srv, id);
            assert.equal(rest.name, 'Renamed');
            assert.equal(rest.metrics.cpu_pct, null);
        } finally {
            await c.close();
        }
    });

    it('every accepted heartbeat gives exactly one delta, in order, with strictly increasing seqs', async () => {
        const ids = [uniqueId('seq'), uniqueId('seq')];
        const c = await subscribed(srv, 'agents:all');
        try {
            const posted = [];
            for (let i = 0; i < 20; i++) {
                const id = ids[i % 2];
                const r = await srv.heartbeat(makeHeartbeat(id, { metrics: { cpu_pct: i } }));
                posted.push({ id, server_ts: r.server_ts });
            }
            // A rejected heartbeat gives no delta.
            const bad = await srv.api('/api/v0/heartbeats', { body: { agent_id: ids[0], status: 'bogus' } });
            assert.equal(bad.status, 400, bad.text);
            const mine = (m) => m.type === 'delta' && ids.includes(m.agent_id);
            const got = await c.take(mine, 20, 20000, 'deltas of the two agents');
            assert.deepEqual(got.map((d) => [d.agent_id, d.changed.last_heartbeat]),
                posted.map((p) => [p.id, p.server_ts]), 'one delta per heartbeat, in the order posted');
            await c.ping();
            await sleep(200);
            await c.ping();
            assert.deepEqual(c.pending(mine), [], 'no extra delta');
            assertSeqsIncrease(c.messages, 'agents:all');
            const first = c.subs['agents:all'].subscribed.seq;
            for (const m of c.messages.filter(isUpdate)) assert.ok(m.seq > first, `seq ${m.seq} > ${first}`);
            // Packed frames: a frame may hold an array of messages; every message is one object.
            for (const m of c.messages) assert.equal(typeof m.type, 'string', JSON.stringify(m));
            c.assertWellFormed();
        } finally {
            await c.close();
        }
    });

    it('a heartbeat committed after its client hung up still gives its delta', async (t) => {
        const id = uniqueId('hangup');
        const c = await subscribed(srv, `agent:${id}`);
        try {
            const body = JSON.stringify(makeHeartbeat(id));
            const sock = await openSocket(srv.port);
            sock.write(`POST /api/v0/heartbeats HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\n` +
                `Authorization: Bearer ${srv.token}\r\nContent-Type: application/json\r\n` +
                `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
            sock.end();
            sock.destroy();
            let stored = false;
            for (let i = 0; i < 50 && !stored; i++) {
                stored = (await srv.api(`/api/v0/agents/${id}`)).status === 200;
                if (!stored) await sleep(100);
            }
            if (!stored) return t.skip('the heartbeat was not committed (the server may drop it)');
            const d = await c.next({ type: 'delta', agent_id: id }, 10000, 'the delta of the committed heartbeat');
            assert.equal(d.changed.agent_id, id);
        } finally {
            await c.close();
        }
    });

    it("an agent:<id> subscriber gets that agent's updates and no other agent's", async () => {
        const x = uniqueId('mine');
        const y = uniqueId('theirs');
        const c = await subscribed(srv, `agent:${x}`);
        const all = await subscribed(srv, 'agents:all');
        try {
            await srv.heartbeat(makeHeartbeat(y));
            await srv.heartbeat(makeHeartbeat(x));
            await srv.heartbeat(makeHeartbeat(y, { status: 'idle' }));
            const last = await srv.heartbeat(makeHeartbeat(x, { status: 'idle' }));
            await all.take({ type: 'delta', agent_id: y }, 2);
            const got = await c.take({ type: 'delta' }, 2, undefined, `deltas on agent:${x}`);
            assert.equal(got[1].changed.last_heartbeat, last.server_ts);
            await c.ping();
            const foreign = c.messages.filter((m) => 'agent_id' in m && m.agent_id !== x);
            assert.deepEqual(foreign, [], `agent:${x} got other agents' updates`);
            // Seqs leave gaps for the other agent's updates, and still increase.
            assertSeqsIncrease(c.messages);
            assert.ok(got[1].seq - got[0].seq >= 2, 'the other agent\'s update took a seq in between');
        } finally {
            await closeAll(c, all);
        }
    });

    it('unsubscribe stops the updates; unsubscribing a topic not held -> not_subscribed', async () => {
        const id = uniqueId('unsub');
        const watch = await subscribed(srv, `agent:${id}`);
        const c = await subscribed(srv, ['agents:all', `agent:${id}`]);
        try {
            c.send({ op: 'unsubscribe', topic: 'agents:all' });
            await c.next({ type: 'unsubscribed', topic: 'agents:all' });
            c.send({ op: 'unsubscribe', topic: `agent:${id}` });
            await c.next({ type: 'unsubscribed', topic: `agent:${id}` });
            await srv.heartbeat(makeHeartbeat(id));
            await watch.next({ type: 'delta', agent_id: id });
            await c.ping();
            assert.deepEqual(c.pending(isUpdate), [], 'no update after unsubscribing');

            c.send({ op: 'unsubscribe', topic: 'agents:all' });
            const e = await c.next({ type: 'error' });
            assert.equal(e.code, 'not_subscribed', JSON.stringify(e));
            c.sendText(`unsubscribe:agent:${id}`);
            const e2 = await c.next({ type: 'error' });
            assert.equal(e2.code, 'not_subscribed', JSON.stringify(e2));
            await c.ping();
        } finally {
            await closeAll(c, watch);
        }
    });

    it('/metrics has the ws series, and they move', async () => {
        const before = await scrape(srv);
        for (const [n, t] of [['aei_ws_connections', 'gauge'], ['aei_ws_messages_sent_total', 'counter'],
            ['aei_ws_frames_sent_total', 'counter'], ['aei_ws_bytes_sent_total', 'counter'],
            ['aei_ws_slow_consumer_closes_total', 'counter'], ['aei_ws_snapshots_sent_total', 'counter'],
            ['aei_ws_resumes_total', 'counter'], ['aei_ws_push_latency_seconds', 'histogram'],
            ['aei_agents_by_liveness', 'gauge'], ['aei_agent_deaths_total', 'counter']]) {
            assert.equal(before.types[n], t, `# TYPE ${n} ${t}`);
        }
        const conns0 = metricSum(before, 'aei_ws_connections');
        const a = await subscribed(srv, 'agents:all');
        const b = await subscribed(srv, 'agents:all', { endpoint: 'http' });
        try {
            const mid = await scrape(srv);
            assert.equal(metricSum(mid, 'aei_ws_connections'), conns0 + 2, 'two more connections');
            const id = uniqueId('metered');
            await srv.heartbeat(makeHeartbeat(id));
            await a.next({ type: 'delta', agent_id: id });
            await b.next({ type: 'delta', agent_id: id });
            const after = await scrape(srv);
            const grew = (n, l) => metricSum(after, n, l) - metricSum(before, n, l);
            assert.ok(grew('aei_ws_messages_sent_total') >= 6, 'messages: 2 x (subscribed, snapshot, delta)');
            assert.ok(grew('aei_ws_frames_sent_total') >= 2, 'frames');
            assert.ok(grew('aei_ws_bytes_sent_total') > 100, 'bytes');
            assert.ok(grew('aei_ws_push_latency_seconds_count') >= 1, 'push latency observed');
            assert.ok(grew('aei_ws_snapshots_sent_total') >= 2, 'two snapshots sent');
            assert.ok(metricSum(after, 'aei_ws_push_latency_seconds_bucket', { le: '+Inf' }) >= 1);
            assert.ok(metricSum(after, 'aei_agents_by_liveness', { liveness: 'online' }) >= 1);
        } finally {
            await closeAll(a, b);
        }
        // The gauge comes back down once the server has seen the closes.
        let now;
        for (let i = 0; i < 50; i++) {
            now = metricSum(await scrape(srv), 'aei_ws_connections');
            if (now === conns0) break;
            await sleep(100);
        }
        assert.equal(now, conns0, 'aei_ws_connections back down after the closes');
    });

    const noPromtool = !existsSync(PROMTOOL) && `no ${PROMTOOL}`;
    it('promtool check metrics passes with the ws series', { skip: noPromtool }, async () => {
        const c = await subscribed(srv, 'agents:all');
        try {
            await srv.heartbeat(makeHeartbeat(uniqueId('prom')));
            await c.next({ type: 'delta' });
            const r = await srv.api('/metrics');
            const res = await new Promise((resolve, reject) => {
                const p = spawn(PROMTOOL, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
                let out = '';
                p.stdout.on('data', (d) => (out += d));
                p.stderr.on('data', (d) => (out += d));
                p.on('error', reject);
                p.on('close', (code) => resolve({ code, out }));
                p.stdin.end(r.text);
            });
            assert.equal(res.code, 0, `promtool check metrics:\n${res.out}\n--- metrics ---\n${r.text}`);
        } finally {
            await c.close();
        }
    });
});
