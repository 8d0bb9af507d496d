// retention.test.mjs - daily rollups and retention against the real aeid on both stores. The
// server's retention clock is moved forward with the test-only AEI_TEST_RETENTION_CLOCK_OFFSET
// and a restart, so that today's heartbeats and traces look days old to retention.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import {
    assertError, describeEachStore, freePort, makeHeartbeat, randomToken, runAeid, sleep,
    tempDir, uniqueId,
} from './lib/harness.mjs';
import path from 'node:path';

const DAY_S = 86400;

/* Polls until fn() returns a truthy value, or fails after ms. */
async function until(fn, ms, what) {
    const end = Date.now() + ms;
    for (;;) {
        const v = await fn();
        if (v) return v;
        if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
        await sleep(100);
    }
}

function metric(text, name) {
    const m = text.match(new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\d+)`, 'm'));
    return m ? Number(m[1]) : null;
}

describeEachStore('retention and rollups', (srv, store) => {
    const agent = uniqueId('spender');
    const exec = uniqueId('run');
    let day; // the UTC day the heartbeats were stamped on, YYYY-MM-DD

    it('heartbeats of today have no rollup yet', async () => {
        const sent = [
            { cpu_pct: 10, mem_pct: 40, tokens_per_min: 100, cost_usd: 1.0 },
            { cpu_pct: 20, mem_pct: 50, tokens_per_min: 300, cost_usd: 1.5 },
            // The cumulative cost went down: a reset, so this heartbeat adds its whole 0.25.
            { cpu_pct: 30, tokens_per_min: 200, cost_usd: 0.25 },
        ];
        for (const metrics of sent) {
            const r = await srv.api('/api/v0/heartbeats', { body: makeHeartbeat(agent, { metrics }) });
            assert.equal(r.status, 200, r.text);
            day = r.json.server_ts.slice(0, 10);
        }
        const t = await srv.api('/api/v0/traces', {
            body: { execution_id: exec, agent_id: agent, confidence_score: 80, selected_outcome: 'x' },
        });
        assert.equal(t.status, 200, t.text);
        const r = await srv.api(`/api/v0/agents/${agent}/rollups`);
        assert.equal(r.status, 200, r.text);
        assert.deepEqual(r.json, { agent_id: agent, rollups: [], next: null });
    });

    it('bad parameters get 400 naming them; an unknown agent 404', async () => {
        const bad = [
            ['from=yesterday', 'from'],
            ['from=2026-02-30', 'from'],
            ['to=2026-11-24T00:00:00Z', 'to'],
            ['from=2026-11-24&to=2026-11-23', 'to'],
            ['limit=0', 'limit'],
            ['limit=1001', 'limit'],
            ['cursor=abc', 'cursor'],
            ['since=2026-11-24', 'since'],
        ];
        for (const [q, field] of bad) {
            const r = await srv.api(`/api/v0/agents/${agent}/rollups?${q}`);
            assertError(r, 400, 'invalid_parameter', { field, mentions: [field] });
        }
        assertError(await srv.api(`/api/v0/agents/${uniqueId('nobody')}/rollups`), 404, 'not_found');
    });

    it('three days later: the rollup holds the day, raw heartbeats and old traces are gone', async () => {
        srv.env = { ...srv.env, AEI_TEST_RETENTION_CLOCK_OFFSET: String(3 * DAY_S) };
        await srv.restart();
        const r = await until(async () => {
            const x = await srv.api(`/api/v0/agents/${agent}/rollups`);
            assert.equal(x.status, 200, x.text);
            return x.json.rollups.length ? x : null;
        }, 15000, 'the rollup');
        assert.deepEqual(r.json, {
            agent_id: agent,
            rollups: [{
                day,
                heartbeats: 3,
                cpu_pct: { mean: 20, max: 30 },
                mem_pct: { mean: 45, max: 50 },
                tokens_per_min_max: 300,
                cost_usd_added: 1.75,
            }],
            next: null,
        });
        // Raw heartbeats go once their day is more than --heartbeat-retention-days (1) old.
        await until(async () => {
            const h = await srv.api(`/api/v0/agents/${agent}/heartbeats`);
            assert.equal(h.status, 200, h.text);
            return h.json.heartbeats.length === 0;
        }, 15000, 'raw heartbeats to go');
        // The agent itself stays, with its latest state.
        assert.equal((await srv.api(`/api/v0/agents/${agent}`)).status, 200);
        await until(async () => (await srv.api(`/api/v0/executions/${exec}`)).status === 404,
            15000, 'the execution to go');

        // Day ranges and pages.
        const some = await srv.api(`/api/v0/agents/${agent}/rollups?from=${day}&to=${day}&limit=1`);
        assert.equal(some.json.rollups.length, 1, some.text);
        const none = await srv.api(`/api/v0/agents/${agent}/rollups?cursor=${day}`);
        assert.deepEqual(none.json.rollups, []);

        // A run is counted when it ends, which may be a moment after its work shows.
        const m = await until(async () => {
            const text = (await srv.api('/metrics')).text;
            return metric(text, 'aei_retention_runs_total{outcome="ok"}') >= 1 ? text : null;
        }, 15000, 'a finished retention run in /metrics');
        assert.ok(metric(m, 'aei_retention_heartbeats_rolled_up_total') >= 3, m);
        assert.ok(metric(m, 'aei_retention_rows_deleted_total{kind="executions"}') >= 1, m);
        if (store === 'postgres') {
            // Today's partition is dropped whole rather than emptied row by row.
            assert.ok(metric(m, 'aei_retention_partitions_dropped_total') >= 1, m);
        } else {
            assert.ok(metric(m, 'aei_retention_rows_deleted_total{kind="heartbeats"}') >= 3, m);
        }
    });

    it('running again changes nothing', async () => {
        await srv.restart();
        await sleep(2500); // two more runs at one a second
        const r = await srv.api(`/api/v0/agents/${agent}/rollups`);
        assert.equal(r.json.rollups.length, 1);
        assert.equal(r.json.rollups[0].heartbeats, 3);
        assert.equal(r.json.rollups[0].cost_usd_added, 1.75);
    });
}, {
    args: ['--retention-interval', '1', '--heartbeat-retention-days', '1',
        '--trace-retention-days', '1'],
});

describe('retention options', () => {
    let ports;
    before(async () => {
        ports = ['--http', `127.0.0.1:${await freePort()}`, '--ws', `127.0.0.1:${await freePort()}`,
            '--db', 'sqlite:' + path.join(tempDir(), 'aei.db')];
    });
    const bad = [
        [['--heartbeat-retention-days', '0'], {}, /--heartbeat-retention-days.*"0"/],
        [['--heartbeat-retention-days', '1.5'], {}, /--heartbeat-retention-days/],
        [['--trace-retention-days', 'month'], {}, /--trace-retention-days.*month/],
        [['--retention-interval', '0'], {}, /--retention-interval/],
        [['--retention-batch', '0'], {}, /--retention-batch.*"0"/],
        [[], { AEI_RETENTION_BATCH: '1e9' }, /--retention-batch/],
        [[], { AEI_RETENTION_INTERVAL: 'often' }, /--retention-interval.*often/],
        [[], { AEI_TEST_RETENTION_CLOCK_OFFSET: 'x' }, /AEI_TEST_RETENTION_CLOCK_OFFSET/],
    ];
    for (const [args, env, re] of bad) {
        it(`refuses ${args.join(' ') || JSON.stringify(env)} with exit 2`, async () => {
            const r = await runAeid([...ports, ...args], { env: { AEI_TOKEN: randomToken(), ...env } });
            assert.equal(r.code, 2, r.stderr);
            assert.match(r.stderr, re);
        });
    }
    it('--help names the retention options', async () => {
        const r = await runAeid(['--help']);
        for (const o of ['--heartbeat-retention-days', '--trace-retention-days',
            '--retention-interval', '--retention-batch', 'AEI_TEST_RETENTION_CLOCK_OFFSET']) {
            assert.ok(r.stdout.includes(o), o);
        }
    });
});
