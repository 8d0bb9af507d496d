// ws-resume.test.mjs - resuming a subscription with since {epoch, seq}: inside the buffer the
// missed updates exactly (compared with what a client that stayed connected saw), too far back,
// from another epoch or beyond the head a snapshot, and across a restart of aeid a new epoch.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { describeEachStore, makeHeartbeat, uniqueId } from './lib/harness.mjs';
import {
    EPOCH_RE, WsClient, assertSeqsIncrease, closeAll, isUpdate, metricSum, scrape, subscribed,
} from './lib/ws.mjs';

/* Post heartbeats with at most `width` in flight; returns the responses in completion order. */
async function postMany(srv, hbs, width = 8) {
    const out = [];
    let i = 0;
    await Promise.all(Array.from({ length: width }, async () => {
        while (i < hbs.length) out.push(await srv.heartbeat(hbs[i++]));
    }));
    return out;
}

/* Wait until `c` has received an update with seq >= seq. */
function seenUpTo(c, seq, what) {
    return c.next((m) => isUpdate(m) && m.seq >= seq, 20000, what ?? `an update with seq >= ${seq}`);
}

/**
 * Resume `topic` since {epoch, seq} on a new connection and check recovered:true and exactly the
 * updates `reference` (a client on agents:all that stayed connected) saw in (since.seq, head],
 * filtered by `keep`, before the first live update (a marker heartbeat of `markerId`).
 */
async function assertRecovers(srv, reference, topic, since, keep, markerId) {
    const c = await WsClient.connect(srv);
    try {
        const { subscribed: s, snapshot } = await c.subscribe(topic, { since });
        assert.equal(s.recovered, true, `resume ${topic} since ${JSON.stringify(since)}: ${JSON.stringify(s)}`);
        assert.equal(snapshot, null);
        assert.equal(s.epoch, since.epoch);
        assert.ok(s.seq >= since.seq, `head ${s.seq} >= since ${since.seq}`);
        await seenUpTo(reference, s.seq, `the reference client to reach seq ${s.seq}`);
        const expected = reference.messages.filter((m) =>
            isUpdate(m) && m.seq > since.seq && m.seq <= s.seq && keep(m));
        // The replay, then one live update: everything before it must be the replay exactly.
        await c.take(isUpdate, expected.length, 20000, `the ${expected.length} missed updates of ${topic}`);
        const hb = await srv.heartbeat(makeHeartbeat(markerId, {
            status: 'idle', metrics: { cpu_pct: Math.random() },
        }));
        const live = await c.next((m) => m.type === 'delta' && m.agent_id === markerId &&
            m.changed.last_heartbeat === hb.server_ts, 20000, 'the live delta after the replay');
        const got = c.messages.filter(isUpdate);
        const replay = got.slice(0, got.indexOf(live));
        assert.deepEqual(replay.map((m) => m.seq), expected.map((m) => m.seq),
            `the seqs replayed on ${topic} since ${since.seq} (head ${s.seq}) should be those the reference saw`);
        assert.deepEqual(replay, expected, 'replayed updates are the messages as first sent');
        assert.ok(live.seq > s.seq, `live seq ${live.seq} after the head ${s.seq}`);
        assertSeqsIncrease(c.messages, topic);
        assert.deepEqual(c.messages.filter((m) => m.type === 'snapshot'), [], 'no snapshot on a recovered resume');
        if (topic === 'agents:all') {
            // Totals are not replayed: at most the latest one comes before the live update.
            const log = c.messages;
            const totals = log.slice(0, log.indexOf(live)).filter((m) => m.type === 'totals');
            assert.equal(totals.length, 1, `totals are not replayed, the latest is sent: got ${totals.length}`);
            // The latest as of the resume, not as of the last tick before it (which may not
            // count agents the replay registers).
            const agents = (await srv.api('/api/v0/agents')).json.agents.length;
            assert.equal(totals[0].agents, agents, `totals after the replay: ${JSON.stringify(totals[0])}`);
        }
        return { subscribed: s, replay };
    } finally {
        await c.close();
    }
}

describeEachStore('ws resume', (srv) => {
    let epoch0 = null;
    const stored = {}; // agent id -> REST document, for the restart test

    it('resume inside the buffer (agents:all): recovered:true, exactly the missed updates in order', async () => {
        const ref = await subscribed(srv, 'agents:all');
        const b = await subscribed(srv, 'agents:all');
        const m0 = await scrape(srv);
        try {
            const ids = [uniqueId('res'), uniqueId('res'), uniqueId('res')];
            await srv.heartbeat(makeHeartbeat(ids[0]));
            await srv.heartbeat(makeHeartbeat(ids[1]));
            const seen = await b.take({ type: 'delta' }, 2);
            const since = { epoch: seen[1].epoch, seq: seen[1].seq };
            epoch0 = since.epoch;
            await b.close();
            // Missed: updates of known agents and a new one (full state), some concurrent.
            const hbs = [];
            for (let i = 0; i < 12; i++) {
                hbs.push(makeHeartbeat(ids[i % 3], {
                    metrics: { cpu_pct: i, cost_usd: i / 10 }, status: i % 2 ? 'idle' : 'waiting',
                }));
            }
            await postMany(srv, hbs.slice(0, 6), 1);
            await postMany(srv, hbs.slice(6), 4);
            const { replay } = await assertRecovers(srv, ref, 'agents:all', since, () => true, ids[2]);
            assert.ok(replay.length >= 12, `at least the 12 missed deltas: ${replay.length}`);
            const first = replay.find((m) => m.agent_id === ids[2]);
            assert.ok('name' in first.changed, 'the new agent\'s first delta (full state) is replayed as sent');
            const m1 = await scrape(srv);
            const rec = metricSum(m1, 'aei_ws_resumes_total', { outcome: 'recovered' }) -
                (metricSum(m0, 'aei_ws_resumes_total', { outcome: 'recovered' }) ?? 0);
            assert.equal(rec, 1, 'aei_ws_resumes_total{outcome="recovered"} +1');
            stored[ids[0]] = null;
            stored[ids[1]] = null;
        } finally {
            await closeAll(ref, b);
        }
    });

    it('resume from the head: recovered:true and nothing replayed', async () => {
        const id = uniqueId('head');
        const ref = await subscribed(srv, 'agents:all');
        try {
            await srv.heartbeat(makeHeartbeat(id));
            const d = await ref.next({ type: 'delta', agent_id: id });
            const c = await WsClient.connect(srv);
            try {
                const since = { epoch: d.epoch, seq: d.seq };
                const { subscribed: s, snapshot } = await c.subscribe('agents:all', { since });
                assert.equal(s.recovered, true, JSON.stringify(s));
                assert.equal(snapshot, null);
                assert.equal(s.seq, d.seq, 'nothing happened since');
                await c.ping();
                assert.deepEqual(c.messages.filter(isUpdate), [], 'nothing to replay');
            } finally {
                await c.close();
            }
        } finally {
            await ref.close();
        }
    });

    it('resume agent:<id> within its last 100 updates: recovered:true with only its missed updates', async () => {
        const x = uniqueId('hundred');
        const noise = uniqueId('noise');
        const ref = await subscribed(srv, 'agents:all');
        const b = await subscribed(srv, `agent:${x}`);
        try {
            await srv.heartbeat(makeHeartbeat(x));
            const d = await b.next({ type: 'delta', agent_id: x });
            await b.close();
            const since = { epoch: d.epoch, seq: d.seq };
            // 100 more updates of x (the most the per-agent buffer keeps), mixed with another agent's.
            const hbs = [];
            for (let i = 0; i < 100; i++) {
                hbs.push(makeHeartbeat(x, { metrics: { cpu_pct: i } }));
                if (i % 10 === 0) hbs.push(makeHeartbeat(noise, { metrics: { cpu_pct: i } }));
            }
            await postMany(srv, hbs, 8);
            const { replay } = await assertRecovers(srv, ref, `agent:${x}`, since, (m) => m.agent_id === x, x);
            assert.equal(replay.length, 100, 'the 100 missed updates of x');

            // The live update above was x's 101st since `since`, and one more: too far back for
            // x's buffer (though well inside the global one) -> a snapshot of x.
            const m0 = await scrape(srv);
            const last = await srv.heartbeat(makeHeartbeat(x, { status: 'complete' }));
            await ref.next((m) => m.type === 'delta' && m.agent_id === x && m.changed.last_heartbeat === last.server_ts);
            const c = await WsClient.connect(srv);
            try {
                const { subscribed: s, snapshot } = await c.subscribe(`agent:${x}`, { since });
                assert.equal(s.recovered, false, `101 updates back: ${JSON.stringify(s)}`);
                assert.equal(s.epoch, since.epoch, 'same epoch');
                assert.ok(snapshot, 'a snapshot instead');
                assert.equal(snapshot.seq, s.seq);
                assert.equal(snapshot.agents.length, 1);
                assert.equal(snapshot.agents[0].agent_id, x);
                assert.equal(snapshot.agents[0].status, 'complete');
                assert.equal(snapshot.agents[0].last_heartbeat, last.server_ts);
                await c.ping();
                assert.deepEqual(c.messages.filter(isUpdate), [], 'no replay with a snapshot');
            } finally {
                await c.close();
            }
            const m1 = await scrape(srv);
            const snap = metricSum(m1, 'aei_ws_resumes_total', { outcome: 'snapshot' }) -
                (metricSum(m0, 'aei_ws_resumes_total', { outcome: 'snapshot' }) ?? 0);
            assert.equal(snap, 1, 'aei_ws_resumes_total{outcome="snapshot"} +1');
        } finally {
            await closeAll(ref, b);
        }
    });

    it('since with another epoch, or a seq beyond the head -> recovered:false and a snapshot', async () => {
        const id = uniqueId('far');
        const ref = await subscribed(srv, 'agents:all');
        try {
            await srv.heartbeat(makeHeartbeat(id, { status: 'error' }));
            const d = await ref.next({ type: 'delta', agent_id: id });
            const other = (d.epoch[0] === '0' ? '1' : '0') + d.epoch.slice(1);
            for (const [topic, since] of [
                ['agents:all', { epoch: other, seq: d.seq }],
                ['agents:all', { epoch: other, seq: 0 }],
                ['agents:all', { epoch: d.epoch, seq: d.seq + 1000 }],
                [`agent:${id}`, { epoch: other, seq: d.seq - 1 }],
                [`agent:${id}`, { epoch: d.epoch, seq: d.seq + 1000 }],
            ]) {
                const c = await WsClient.connect(srv);
                try {
                    const { subscribed: s, snapshot } = await c.subscribe(topic, { since });
                    const what = `${topic} since ${JSON.stringify(since)} (head about ${d.seq})`;
                    assert.equal(s.recovered, false, `${what}: ${JSON.stringify(s)}`);
                    assert.equal(s.epoch, d.epoch, `${what}: the current epoch`);
                    assert.ok(snapshot, `${what}: a snapshot`);
                    const a = snapshot.agents.find((x) => x.agent_id === id);
                    assert.ok(a, `${what}: the snapshot has ${id}`);
                    assert.equal(a.status, 'error');
                    assert.equal(a.last_heartbeat, d.changed.last_heartbeat);
                    if (topic === 'agents:all') assert.equal(typeof snapshot.totals, 'object');
                    await c.ping();
                    assert.deepEqual(c.messages.filter(isUpdate), [], `${what}: no replay`);
                } finally {
                    await c.close();
                }
            }
        } finally {
            await ref.close();
        }
    });

    it('after a restart (same store): close 1001, a new epoch, and a snapshot with the stored agents', async () => {
        const ids = [uniqueId('durable'), uniqueId('durable')];
        const alpha = { name: 'Alpha', labels: { k: 'a', team: 'search' }, child_agent_ids: ['w-1', 'w-2'] };
        await srv.heartbeat(makeHeartbeat(ids[0], { ...alpha, status: 'waiting' }));
        await srv.heartbeat(makeHeartbeat(ids[1], { name: 'Beta', status: 'complete', metrics: { cpu_pct: 3 } }));
        for (const id of [...ids, ...Object.keys(stored)]) {
            stored[id] = (await srv.api(`/api/v0/agents/${id}`)).json;
        }
        const c = await subscribed(srv, ['agents:all', `agent:${ids[0]}`]);
        const h = await subscribed(srv, 'agents:all', { endpoint: 'http' });
        const head = c.subs['agents:all'].subscribed;
        assert.equal(head.epoch, epoch0 ?? head.epoch);
        await srv.stop();
        for (const [name, client] of [['--ws', c], ['/ws', h]]) {
            const { code } = await client.waitClose(10000);
            assert.equal(code, 1001, `${name} client: close code on shutdown`);
        }
        await srv.start();

        const n = await WsClient.connect(srv);
        try {
            const since = { epoch: head.epoch, seq: head.seq };
            const { subscribed: s, snapshot } = await n.subscribe('agents:all', { since });
            assert.match(s.epoch, EPOCH_RE);
            assert.notEqual(s.epoch, head.epoch, 'a restart starts a new epoch');
            assert.equal(s.recovered, false, `since an old epoch: ${JSON.stringify(s)}`);
            assert.equal(snapshot.epoch, s.epoch);
            for (const [id, doc] of Object.entries(stored)) {
                const a = snapshot.agents.find((x) => x.agent_id === id);
                assert.ok(a, `the snapshot after a restart has the stored agent ${id}`);
                for (const k of ['name', 'status', 'metrics', 'labels', 'child_agent_ids', 'parent_agent_id',
                    'first_seen', 'last_heartbeat', 'agent_ts', 'schema_version']) {
                    assert.deepEqual(a[k], doc[k], `${id}.${k} after a restart`);
                }
            }
            assert.ok(snapshot.totals.agents >= Object.keys(stored).length, 'totals count the stored agents');
            const one = await n.subscribe(`agent:${ids[0]}`, { since });
            assert.equal(one.subscribed.recovered, false);
            assert.equal(one.snapshot.agents.length, 1);
            assert.equal(one.snapshot.agents[0].name, 'Alpha');

            // A known agent's next heartbeat is a delta of what changed, in the new epoch.
            const hb = await srv.heartbeat(makeHeartbeat(ids[0], { ...alpha, status: 'idle' }));
            const d = await n.next({ type: 'delta', agent_id: ids[0] });
            assert.equal(d.epoch, s.epoch);
            assert.ok(d.seq > s.seq);
            assert.equal(d.changed.status, 'idle');
            assert.equal(d.changed.last_heartbeat, hb.server_ts);
            for (const k of ['name', 'first_seen', 'labels', 'child_agent_ids', 'metrics', 'parent_agent_id']) {
                assert.ok(!(k in d.changed),
                    `"${k}" did not change, yet it is in the first delta after a restart: ${JSON.stringify(d.changed)}`);
            }
        } finally {
            await n.close();
        }
    });
});
