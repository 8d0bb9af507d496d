// ws-health.test.mjs - agent liveness with short thresholds (--stale-after 1 --dead-after 2):
// online -> stale -> dead -> online as deltas and events, the "is dead" warning, the REST
// documents' liveness, the metrics, and server time (not the agent's clock) deciding.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { describeEachStore, escapeRe, makeHeartbeat, parseMicros, sleep, uniqueId } from './lib/harness.mjs';
import { WsClient, assertSeqsIncrease, closeAll, metricSum, scrape, subscribed } from './lib/ws.mjs';

const STALE_S = 1;
const DEAD_S = 2;
// The hub checks at least 4 times a second; under a sanitizer on a busy machine allow much more.
const LATE_S = 4;

async function liveness(srv, id) {
    const r = await srv.api(`/api/v0/agents/${id}`);
    assert.equal(r.status, 200, r.text);
    assert.ok('liveness' in r.json, `REST agent documents carry liveness: ${r.text}`);
    return r.json.liveness;
}

/* The liveness delta and then the event of one transition; returns {delta, event}. */
async function transition(c, id, liveness, eventName) {
    const delta = await c.next((m) => m.type === 'delta' && m.agent_id === id && m.changed.liveness === liveness,
        (DEAD_S + LATE_S) * 1000 + 5000, `a delta with liveness ${liveness}`);
    const event = await c.next({ type: 'event', agent_id: id, event: eventName }, 10000, `the event ${eventName}`);
    assert.equal(event.liveness, liveness, JSON.stringify(event));
    assert.equal(event.epoch, delta.epoch);
    assert.ok(event.seq > delta.seq, `the event (seq ${event.seq}) comes after its delta (seq ${delta.seq})`);
    const log = c.messages;
    assert.ok(log.indexOf(delta) < log.indexOf(event), 'the delta is sent before the event');
    assert.equal(typeof event.server_ts, 'string');
    return { delta, event };
}

describeEachStore('ws agent liveness', (srv) => {
    it('no heartbeat: stale after 1 s, dead after 2 s; a heartbeat brings it back online', async () => {
        const id = uniqueId('fading');
        const c = await subscribed(srv, `agent:${id}`);
        const all = await subscribed(srv, 'agents:all');
        const m0 = await scrape(srv);
        try {
            const hb = await srv.heartbeat(makeHeartbeat(id));
            const s0 = parseMicros(hb.server_ts);
            const first = await c.next({ type: 'delta', agent_id: id });
            assert.equal(first.changed.liveness, 'online');

            // stale
            const stale = await transition(c, id, 'stale', 'agent.stale');
            assert.deepEqual(stale.delta.changed, { liveness: 'stale' }, 'only liveness changed');
            assert.equal(stale.event.last_heartbeat, hb.server_ts, 'the event names the last heartbeat');
            const staleAfter = (parseMicros(stale.event.server_ts) - s0) / 1e6;
            assert.ok(staleAfter >= STALE_S, `stale after ${staleAfter} s, not before ${STALE_S} s`);
            assert.ok(staleAfter < STALE_S + LATE_S, `stale after ${staleAfter} s: too late`);
            const restStale = await liveness(srv, id);
            if (!c.pending({ type: 'event', event: 'agent.dead' }).length) {
                assert.equal(restStale, 'stale', 'REST shows stale');
            }

            // dead
            const dead = await transition(c, id, 'dead', 'agent.dead');
            assert.deepEqual(dead.delta.changed, { liveness: 'dead' }, 'only liveness changed');
            assert.equal(dead.event.last_heartbeat, hb.server_ts);
            const deadAfter = (parseMicros(dead.event.server_ts) - s0) / 1e6;
            assert.ok(deadAfter >= DEAD_S, `dead after ${deadAfter} s, not before ${DEAD_S} s`);
            assert.ok(deadAfter < DEAD_S + LATE_S, `dead after ${deadAfter} s: too late`);
            assert.equal(await liveness(srv, id), 'dead', 'REST shows dead');
            const line = new RegExp(`agent ${escapeRe(id)} is dead: no heartbeat for [0-9.]+ ?s`);
            for (let i = 0; i < 40 && !line.test(srv.stderr); i++) await sleep(50);
            assert.match(srv.stderr, line, 'the warning "agent X is dead: no heartbeat for N s" in stderr');

            const m1 = await scrape(srv);
            const deaths0 = metricSum(m0, 'aei_agent_deaths_total') ?? 0;
            assert.ok(metricSum(m1, 'aei_agent_deaths_total') >= deaths0 + 1, 'aei_agent_deaths_total counts the death');
            assert.ok(metricSum(m1, 'aei_agents_by_liveness', { liveness: 'dead' }) >= 1,
                'aei_agents_by_liveness{liveness="dead"}');

            // agents:all saw the same, and its totals count the dead agent.
            await all.next({ type: 'event', agent_id: id, event: 'agent.dead' });
            const t = await all.next((m) => m.type === 'totals' && m.agents_by_liveness.dead >= 1, 5000,
                'totals counting a dead agent');
            const l = t.agents_by_liveness;
            assert.equal(l.online + l.stale + l.dead, t.agents, `liveness counts add up: ${JSON.stringify(t)}`);

            // A new subscriber's snapshot shows it dead.
            const late = await subscribed(srv, `agent:${id}`);
            try {
                assert.equal(late.subs[`agent:${id}`].snapshot.agents[0].liveness, 'dead');
            } finally {
                await late.close();
            }

            // back online, with the heartbeat's other changes in the same delta
            const metrics = { ...makeHeartbeat(id).metrics, cpu_pct: 1.5 };
            const hb2 = await srv.heartbeat(makeHeartbeat(id, { metrics }));
            const online = await transition(c, id, 'online', 'agent.online');
            assert.equal(online.delta.changed.last_heartbeat, hb2.server_ts);
            assert.deepEqual(online.delta.changed.metrics, { cpu_pct: 1.5 });
            assert.equal(online.event.last_heartbeat, hb2.server_ts);
            assert.equal(await liveness(srv, id), 'online', 'REST shows online again');

            // One event per transition, in order.
            const events = c.messages.filter((m) => m.type === 'event').map((m) => m.event);
            assert.deepEqual(events.slice(0, 3), ['agent.stale', 'agent.dead', 'agent.online']);
            assertSeqsIncrease(c.messages, `agent:${id}`);
        } finally {
            await closeAll(c, all);
        }
    });

    it('server time decides: an agent whose clock is years behind stays online while it posts', async () => {
        const alive = uniqueId('old-clock');
        const quiet = uniqueId('quiet');
        const c = await WsClient.connect(srv);
        try {
            await c.subscribe(`agent:${alive}`);
            await c.subscribe(`agent:${quiet}`);
            await srv.heartbeat(makeHeartbeat(quiet));
            const t0 = Date.now();
            while (Date.now() - t0 < (STALE_S + 1.5) * 1000) {
                await srv.heartbeat(makeHeartbeat(alive, { timestamp: '2001-02-03T04:05:06Z' }));
                await sleep(150);
            }
            // The quiet one went stale in that time (so liveness was being checked) ...
            await c.next({ type: 'event', agent_id: quiet, event: 'agent.stale' }, 5000);
            // ... and the posting one did not.
            assert.equal(await liveness(srv, alive), 'online');
            const bad = c.messages.filter((m) => m.agent_id === alive &&
                ((m.type === 'event') || (m.type === 'delta' && m.changed.liveness && m.changed.liveness !== 'online')));
            assert.deepEqual(bad, [], 'no liveness change for an agent that keeps posting');
        } finally {
            await c.close();
        }
    });
}, { args: ['--stale-after', String(STALE_S), '--dead-after', String(DEAD_S)] });
