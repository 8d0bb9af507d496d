// concurrency.test.mjs - many agents posting at once.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { describeEachStore, makeHeartbeat, uniqueId } from './lib/harness.mjs';

const AGENTS = 100;
const ROUNDS = 5;
const STATUSES = ['idle', 'processing', 'waiting', 'error', 'complete'];

function roundBeat(id, agentIndex, round) {
    return makeHeartbeat(id, {
        status: STATUSES[(agentIndex + round) % STATUSES.length],
        metrics: {
            cpu_pct: round * 10,
            mem_pct: agentIndex % 101,
            tokens_per_min: agentIndex * 1000 + round,
            cost_usd: round * 0.25,
            confidence: 50,
        },
        name: `agent ${agentIndex} round ${round}`,
        labels: { round: String(round) },
    });
}

function assertLatest(agent, agentIndex, round) {
    const want = roundBeat(agent.agent_id, agentIndex, round);
    assert.equal(agent.status, want.status, `${agent.agent_id} status`);
    assert.deepEqual(agent.metrics, want.metrics, `${agent.agent_id} metrics`);
    assert.equal(agent.name, want.name, `${agent.agent_id} name`);
    assert.deepEqual(agent.labels, want.labels, `${agent.agent_id} labels`);
}

describeEachStore('concurrency', (srv) => {
    it(`${AGENTS} agents post concurrently, ${ROUNDS} rounds: all 200, all listed, latest state`, async () => {
        const prefix = uniqueId('fleet');
        const ids = Array.from({ length: AGENTS }, (_, i) => `${prefix}-${String(i).padStart(3, '0')}`);
        for (let round = 0; round < ROUNDS; round++) {
            const results = await Promise.all(ids.map((id, i) =>
                srv.api('/api/v0/heartbeats', { body: roundBeat(id, i, round), timeoutMs: 30000 })));
            const bad = results.filter((r) => r.status !== 200);
            assert.equal(bad.length, 0,
                `round ${round}: ${bad.length} of ${AGENTS} not 200, e.g. ${bad[0]?.status} ${bad[0]?.text}`);
            results.forEach((r, i) => assert.equal(r.json.agent_id, ids[i]));
        }
        const l = await srv.api('/api/v0/agents');
        assert.equal(l.status, 200, l.text);
        const mine = l.json.agents.filter((a) => a.agent_id.startsWith(prefix + '-'));
        assert.deepEqual(mine.map((a) => a.agent_id), ids, 'every agent listed once, in agent_id order');
        mine.forEach((a, i) => assertLatest(a, i, ROUNDS - 1));
        for (const i of [0, 37, 99]) {
            const h = await srv.api(`/api/v0/agents/${ids[i]}/heartbeats`);
            assert.equal(h.status, 200, h.text);
            assert.deepEqual(h.json.heartbeats.map((x) => x.metrics.tokens_per_min),
                Array.from({ length: ROUNDS }, (_, r) => i * 1000 + r), `${ids[i]} history`);
        }
    });

    it('agents posting their own sequences concurrently keep per-agent order', async () => {
        const prefix = uniqueId('streams');
        const ids = Array.from({ length: AGENTS }, (_, i) => `${prefix}-${String(i).padStart(3, '0')}`);
        await Promise.all(ids.map(async (id, i) => {
            for (let round = 0; round < ROUNDS; round++) {
                const r = await srv.api('/api/v0/heartbeats', { body: roundBeat(id, i, round), timeoutMs: 30000 });
                assert.equal(r.status, 200, `${id} round ${round}: ${r.status} ${r.text}`);
            }
        }));
        const l = await srv.api('/api/v0/agents');
        const mine = l.json.agents.filter((a) => a.agent_id.startsWith(prefix + '-'));
        assert.equal(mine.length, AGENTS);
        mine.forEach((a, i) => assertLatest(a, i, ROUNDS - 1));
        const stats = await Promise.all(ids.map((id) => srv.api(`/api/v0/agents/${id}/heartbeats`)));
        stats.forEach((h, i) => {
            assert.equal(h.status, 200, h.text);
            assert.deepEqual(h.json.heartbeats.map((x) => x.metrics.tokens_per_min),
                Array.from({ length: ROUNDS }, (_, r) => i * 1000 + r), `${ids[i]} history in order`);
        });
    });

    it('reads run while writes are in flight', async () => {
        const prefix = uniqueId('mixed');
        const writes = Array.from({ length: AGENTS }, (_, i) =>
            srv.api('/api/v0/heartbeats', { body: roundBeat(`${prefix}-${i}`, i, 0), timeoutMs: 30000 }));
        const reads = Array.from({ length: 50 }, () => srv.api('/api/v0/agents', { timeoutMs: 30000 }));
        const [w, r] = await Promise.all([Promise.all(writes), Promise.all(reads)]);
        assert.equal(w.filter((x) => x.status !== 200).length, 0, 'all writes 200');
        assert.equal(r.filter((x) => x.status !== 200).length, 0, 'all reads 200');
        for (const x of r) assert.ok(Array.isArray(x.json.agents));
    });
});
