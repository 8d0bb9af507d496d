// ws-totals.test.mjs - the totals message on agents:all: cost_usd sums each agent's latest cost,
// estimated_cost_usd for agents that report tokens_per_min but no cost (--price-per-1k-tokens),
// counts by status and liveness, and coalescing to at most 4 a second.
import assert from 'node:assert/strict';
import { after, it } from 'node:test';
import { describeEachStore, makeHeartbeat, parseMicros, sleep, uniqueId } from './lib/harness.mjs';
import { closeAll, isUpdate, subscribed } from './lib/ws.mjs';

const PRICE = 0.5; // USD per 1000 tokens
const STATUSES = ['complete', 'error', 'idle', 'processing', 'waiting'];

const close = (a, b, what) => assert.ok(Math.abs(a - b) < 1e-6, `${what}: ${a}, expected ${b}`);

function byStatus(counts) {
    return Object.fromEntries(STATUSES.map((s) => [s, counts[s] ?? 0]));
}

function assertTotals(t, want, what) {
    close(t.cost_usd, want.cost_usd, `${what}: cost_usd`);
    close(t.estimated_cost_usd, want.estimated_cost_usd, `${what}: estimated_cost_usd`);
    close(t.tokens_per_min, want.tokens_per_min, `${what}: tokens_per_min`);
    assert.equal(t.agents, want.agents, `${what}: agents`);
    assert.deepEqual(t.agents_by_status, byStatus(want.by_status), `${what}: agents_by_status`);
    assert.deepEqual(t.agents_by_liveness, { online: want.agents, stale: 0, dead: 0 }, `${what}: agents_by_liveness`);
}

const hbWith = (id, status, metrics) => makeHeartbeat(id, { status, metrics });

describeEachStore('ws totals', (srv) => {
    const A = uniqueId('tot-a');
    const B = uniqueId('tot-b');
    const D = uniqueId('tot-d');
    const E = uniqueId('tot-e');
    let client = null;
    after(() => closeAll(client));

    it('a fresh server: the snapshot carries zero totals', async () => {
        client = await subscribed(srv, 'agents:all');
        const { snapshot } = client.subs['agents:all'];
        assertTotals(snapshot.totals, { cost_usd: 0, estimated_cost_usd: 0, tokens_per_min: 0, agents: 0, by_status: {} },
            'snapshot totals');
    });

    it('cost_usd sums the latest cost of each agent; agents_by_status counts them', async () => {
        const c = client;
        await srv.heartbeat(hbWith(A, 'processing', { cost_usd: 1.25, tokens_per_min: 100 }));
        await srv.heartbeat(hbWith(B, 'idle', { cost_usd: 2.5, tokens_per_min: 200 }));
        await srv.heartbeat(hbWith(D, 'error', { cost_usd: 0.25, tokens_per_min: 0, cpu_pct: 5 }));
        const t1 = await c.next((m) => m.type === 'totals' && m.agents === 3, undefined, 'totals with 3 agents');
        assert.equal(typeof t1.epoch, 'string');
        assert.ok(Number.isInteger(t1.seq));
        assertTotals(t1, {
            cost_usd: 4.0, estimated_cost_usd: 0, tokens_per_min: 300, agents: 3,
            by_status: { processing: 1, idle: 1, error: 1 },
        }, 'after three agents');

        // A's newer cost replaces its older one; it is not added to it.
        await srv.heartbeat(hbWith(A, 'complete', { cost_usd: 2.0, tokens_per_min: 50 }));
        const dA = await c.next((m) => m.type === 'delta' && m.agent_id === A && m.changed.status === 'complete');
        const t2 = await c.next((m) => m.type === 'totals' && m.agents_by_status.complete === 1, undefined,
            'totals with A complete');
        assertTotals(t2, {
            cost_usd: 4.75, estimated_cost_usd: 0, tokens_per_min: 250, agents: 3,
            by_status: { complete: 1, idle: 1, error: 1 },
        }, 'after A reported a new cost');
        assert.equal(t2.seq, dA.seq, 'totals.seq is the seq of the last update it reflects');

        // A heartbeat that changes nothing the totals count gives no new totals.
        await sleep(600);
        c.drain({ type: 'totals' });
        const hb = await srv.heartbeat(hbWith(B, 'idle', { cost_usd: 2.5, tokens_per_min: 200 }));
        await c.next((m) => m.type === 'delta' && m.changed.last_heartbeat === hb.server_ts);
        await sleep(600);
        await c.ping();
        assert.deepEqual(c.pending({ type: 'totals' }), [], 'no totals when they did not change');
    });

    it('tokens_per_min without cost_usd: an estimated cost from the tokens over time x the price', async () => {
        const c = client;
        const hb1 = await srv.heartbeat(hbWith(E, 'processing', { tokens_per_min: 6000 }));
        const d1 = await c.next({ type: 'delta', agent_id: E });
        assert.equal(typeof d1.changed.estimated_cost_usd, 'number',
            `an agent with tokens_per_min and no cost_usd has a numeric estimate: ${JSON.stringify(d1.changed)}`);
        assert.ok(d1.changed.estimated_cost_usd >= 0);
        await sleep(1500);
        const hb2 = await srv.heartbeat(hbWith(E, 'processing', { tokens_per_min: 6000 }));
        const d2 = await c.next({ type: 'delta', agent_id: E });
        const est = d2.changed.estimated_cost_usd;
        assert.equal(typeof est, 'number',
            `the second delta carries the grown estimate: ${JSON.stringify(d2.changed)}`);
        const seconds = (parseMicros(hb2.server_ts) - parseMicros(hb1.server_ts)) / 1e6;
        const expected = 6000 * (seconds / 60) / 1000 * PRICE;
        assert.ok(est > 0, `estimate ${est} > 0`);
        assert.ok(Math.abs(est - expected) <= 0.25 * expected,
            `estimate ${est} USD for 6000 tokens/min over ${seconds} s at ${PRICE} USD/1k tokens: ` +
            `expected about ${expected}`);

        const t = await c.next((m) => m.type === 'totals' && m.seq >= d2.seq, undefined,
            'totals reflecting the estimate');
        assertTotals(t, {
            cost_usd: 4.75 + est, estimated_cost_usd: est, tokens_per_min: 6250, agents: 4,
            by_status: { complete: 1, idle: 1, error: 1, processing: 1 },
        }, 'with an estimated agent');

        // Once E reports its cost, that replaces the estimate.
        await srv.heartbeat(hbWith(E, 'processing', { tokens_per_min: 6000, cost_usd: 1.0 }));
        const d3 = await c.next({ type: 'delta', agent_id: E });
        assert.equal(d3.changed.estimated_cost_usd, null,
            `a reported cost ends the estimate: ${JSON.stringify(d3.changed)}`);
        assert.deepEqual(d3.changed.metrics, { cost_usd: 1.0 });
        const t3 = await c.next((m) => m.type === 'totals' && m.seq >= d3.seq, undefined,
            'totals after E reported a cost');
        assertTotals(t3, {
            cost_usd: 5.75, estimated_cost_usd: 0, tokens_per_min: 6250, agents: 4,
            by_status: { complete: 1, idle: 1, error: 1, processing: 1 },
        }, 'after E reported a cost');
    });

    it('totals are coalesced: at most about 4 a second while heartbeats pour in', async () => {
        const c = client;
        await sleep(500);
        c.drain();
        const ids = [A, B, D, E];
        // Heartbeats that each change the totals, as fast as they go, for 2.5 s.
        const t0 = performance.now();
        let k = 0;
        await Promise.all(Array.from({ length: 4 }, async () => {
            while (performance.now() - t0 < 2500) {
                const i = k++;
                const metrics = { cost_usd: (i * 7 + 1) / 100, tokens_per_min: 10 };
                await srv.heartbeat(hbWith(ids[i % 4], 'processing', metrics));
            }
        }));
        const n = k;
        assert.ok(n >= 20, `only ${n} heartbeats in 2.5 s`);
        const deltas = await c.take((m) => m.type === 'delta' && ids.includes(m.agent_id), n, 30000, 'the deltas');
        const maxSeq = Math.max(...deltas.map((d) => d.seq));
        const final = await c.next((m) => m.type === 'totals' && m.seq >= maxSeq, 5000, `totals at seq ${maxSeq}`);
        const arrivals = c.log.filter((e) => e.msg.type === 'totals' && e.at >= t0).map((e) => e.at);
        const seconds = (c.arrival(final) - t0) / 1000;
        assert.ok(arrivals.length >= 1);
        assert.ok(arrivals.length <= Math.ceil(4 * seconds) + 2,
            `${arrivals.length} totals in ${seconds.toFixed(2)} s for ${n} heartbeats: not coalesced to 4 a second`);
        for (const a of arrivals) {
            const inWindow = arrivals.filter((b) => b >= a && b < a + 1000).length;
            assert.ok(inWindow <= 6, `${inWindow} totals arrived within one second`);
        }
        // The last one reflects the final state: the latest cost of each agent.
        const state = {};
        for (const d of deltas.sort((x, y) => x.seq - y.seq)) {
            state[d.agent_id] = d.changed.metrics?.cost_usd ?? state[d.agent_id];
        }
        const want = ids.reduce((s, id) => s + state[id], 0);
        close(final.cost_usd, want, 'final cost_usd');
        assertSeqsMonotone(c.log.filter((e) => e.msg.type === 'totals' && e.at >= t0).map((e) => e.msg));
        assert.ok(c.messages.filter(isUpdate).length >= n);
    });

}, { args: ['--price-per-1k-tokens', String(PRICE)] });

function assertSeqsMonotone(totals) {
    for (let i = 1; i < totals.length; i++) {
        assert.ok(totals[i].seq >= totals[i - 1].seq, `totals seqs go back: ${totals[i - 1].seq} then ${totals[i].seq}`);
    }
}
