// pgbouncer.test.mjs - aeid on PostgreSQL through pgbouncer in transaction pooling mode.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
    Aeid, STORES, createPgDatabase, dropPgDatabase, makeHeartbeat, pgBouncer, uniqueId,
    itShutsDownCleanly, failOnSanitizerReport,
} from './lib/harness.mjs';

describe('pgbouncer (transaction mode)', { skip: !STORES.includes('postgres') && 'postgres not in AEI_TEST_STORES' }, () => {
    let srv;
    let db;
    before(async () => {
        const { adminUrl, bouncerUrl } = await pgBouncer();
        db = await createPgDatabase({ adminUrl, via: bouncerUrl });
        srv = new Aeid({ store: 'postgres', dbUrl: db.url });
        await srv.start();
    });
    after(async () => {
        try {
            await srv?.close();
        } finally {
            if (db) await dropPgDatabase(db.adminUrl, db.db);
        }
    });
    failOnSanitizerReport(() => srv);

    it('heartbeat round trip', async () => {
        const id = uniqueId('bounced');
        const hb = makeHeartbeat(id, { timestamp: '2001-02-03T04:05:06Z' });
        const r = await srv.heartbeat(hb);
        const a = await srv.api(`/api/v0/agents/${id}`);
        assert.equal(a.status, 200, a.text);
        assert.equal(a.json.last_heartbeat, r.server_ts);
        assert.deepEqual(a.json.metrics, hb.metrics);
        assert.equal(a.json.agent_ts, '2001-02-03T04:05:06.000000Z');
        const h = await srv.api(`/api/v0/agents/${id}/heartbeats?limit=1`);
        assert.equal(h.status, 200, h.text);
        assert.equal(h.json.heartbeats[0].server_ts, r.server_ts);
    });

    it('100 concurrent agents, 3 rounds', async () => {
        const prefix = uniqueId('pool');
        const ids = Array.from({ length: 100 }, (_, i) => `${prefix}-${String(i).padStart(3, '0')}`);
        for (let round = 0; round < 3; round++) {
            const res = await Promise.all(ids.map((id, i) => srv.api('/api/v0/heartbeats', {
                body: makeHeartbeat(id, { metrics: { tokens_per_min: i * 10 + round } }),
                timeoutMs: 30000,
            })));
            const bad = res.filter((x) => x.status !== 200);
            assert.equal(bad.length, 0, `round ${round}: ${bad.length} not 200, e.g. ${bad[0]?.status} ${bad[0]?.text}`);
        }
        const l = await srv.api('/api/v0/agents');
        const mine = l.json.agents.filter((a) => a.agent_id.startsWith(prefix + '-'));
        assert.deepEqual(mine.map((a) => a.agent_id), ids);
        mine.forEach((a, i) => assert.equal(a.metrics.tokens_per_min, i * 10 + 2, a.agent_id));
        const pages = [];
        let next = null;
        do {
            const q = `limit=2${next ? '&cursor=' + encodeURIComponent(next) : ''}`;
            const h = await srv.api(`/api/v0/agents/${ids[5]}/heartbeats?${q}`);
            assert.equal(h.status, 200, h.text);
            pages.push(...h.json.heartbeats);
            next = h.json.next;
        } while (next);
        assert.deepEqual(pages.map((x) => x.metrics.tokens_per_min), [50, 51, 52]);
    });

    it('a restart through pgbouncer keeps the data (migrations re-run cleanly)', async () => {
        const id = uniqueId('again');
        const r = await srv.heartbeat(makeHeartbeat(id));
        await srv.restart();
        const a = await srv.api(`/api/v0/agents/${id}`);
        assert.equal(a.status, 200, a.text);
        assert.equal(a.json.last_heartbeat, r.server_ts);
    });

    itShutsDownCleanly(() => srv);
});
