// durability.test.mjs - a 200 means committed: kill -9 and SIGTERM lose nothing acknowledged.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { deadline, describeEachStore, makeHeartbeat, sleep, uniqueId } from './lib/harness.mjs';

/* POST heartbeat number `n` for `id`, carrying `n` in tokens_per_min; returns the status and, for a
 * 200, the {id, server_ts, n} that assertStored() looks for. Throws when the connection fails. */
async function postNumbered(srv, id, n) {
    const r = await srv.api('/api/v0/heartbeats', {
        body: makeHeartbeat(id, { metrics: { tokens_per_min: n } }),
        timeoutMs: 10000,
    });
    return { status: r.status, acked: r.status === 200 ? { id, server_ts: r.json.server_ts, n } : null };
}

/* Every heartbeat in `acked` ({id, server_ts, n}) must be in its agent's history. */
async function assertStored(srv, acked) {
    const byAgent = new Map();
    for (const a of acked) {
        if (!byAgent.has(a.id)) byAgent.set(a.id, []);
        byAgent.get(a.id).push(a);
    }
    for (const [id, list] of byAgent) {
        const h = await srv.api(`/api/v0/agents/${id}/heartbeats?limit=1000`);
        assert.equal(h.status, 200, `after restart GET history of ${id}: ${h.status} ${h.text}`);
        const have = new Set(h.json.heartbeats.map((x) => `${x.server_ts}/${x.metrics.tokens_per_min}`));
        for (const a of list) {
            assert.ok(have.has(`${a.server_ts}/${a.n}`),
                `acknowledged heartbeat ${id} #${a.n} (server_ts ${a.server_ts}) is missing after restart`);
        }
    }
}

describeEachStore('durability', (srv) => {
    it('kill -9 right after a 200: the heartbeat is there after restart', async () => {
        const id = uniqueId('survivor');
        const first = await srv.heartbeat(makeHeartbeat(id, { status: 'idle' }));
        const r = await srv.api('/api/v0/heartbeats', {
            body: makeHeartbeat(id, { status: 'error', metrics: { tokens_per_min: 4242 } }),
        });
        srv.expectExit = true;
        srv.proc.kill('SIGKILL'); // as soon as the 200 is in, before anything else
        assert.equal(r.status, 200, r.text);
        await srv.signal('SIGKILL');
        await srv.start();
        const a = await srv.api(`/api/v0/agents/${id}`);
        assert.equal(a.status, 200, `agent after kill -9 and restart: ${a.text}`);
        assert.equal(a.json.status, 'error');
        assert.equal(a.json.metrics.tokens_per_min, 4242);
        assert.equal(a.json.last_heartbeat, r.json.server_ts);
        assert.equal(a.json.first_seen, first.server_ts);
        const h = await srv.api(`/api/v0/agents/${id}/heartbeats`);
        assert.deepEqual(h.json.heartbeats.map((x) => x.status), ['idle', 'error']);
    });

    it('kill -9 during a burst: every heartbeat that got 200 is stored', async () => {
        const prefix = uniqueId('burst');
        const acked = [];
        let killed = false;
        const proc = srv.proc;
        const send = async (i) => {
            try {
                const r = await postNumbered(srv, `${prefix}-${i % 20}`, i);
                if (r.acked) {
                    acked.push(r.acked);
                    if (acked.length >= 60 && !killed) {
                        killed = true;
                        srv.expectExit = true;
                        proc.kill('SIGKILL');
                    }
                }
            } catch {
                /* connection reset by the kill */
            }
        };
        const all = [];
        for (let i = 0; i < 400; i++) {
            all.push(send(i));
            if (i % 25 === 24) await sleep(5);
        }
        await Promise.all(all);
        if (!killed) proc.kill('SIGKILL');
        await srv.signal('SIGKILL');
        assert.ok(acked.length >= 60, `only ${acked.length} heartbeats acknowledged before the kill`);
        await srv.start();
        await assertStored(srv, acked);
    });

    it('SIGTERM with requests in flight: exit 0 and every 200 is stored', async () => {
        const prefix = uniqueId('term');
        const acked = [];
        const statuses = [];
        const proc = srv.proc;
        const send = async (i) => {
            try {
                const r = await postNumbered(srv, `${prefix}-${i % 25}`, i);
                statuses.push(r.status);
                if (r.acked) acked.push(r.acked);
            } catch {
                statuses.push('error');
            }
        };
        const all = [];
        for (let i = 0; i < 300; i++) {
            all.push(send(i));
            if (i === 150) {
                srv.expectExit = true;
                proc.kill('SIGTERM');
            }
            if (i % 30 === 29) await sleep(2);
        }
        await Promise.all(all);
        const exit = await Promise.race([proc.exited, deadline(15000).then(() => null)]);
        if (exit === null) {
            proc.kill('SIGKILL');
            await proc.exited;
            srv.proc = null;
            assert.fail(`aeid did not exit within 15 s of SIGTERM; stderr:\n${srv.runStderr}`);
        }
        srv.proc = null;
        assert.equal(exit.code, 0,
            `aeid should exit 0 after SIGTERM, got ${exit.code} (${exit.signal}); stderr:\n${srv.runStderr}`);
        srv.assertNoSanitizerReport();
        for (const s of statuses) {
            assert.ok(s === 200 || s === 503 || s === 'error', `unexpected answer during shutdown: ${s}`);
        }
        assert.ok(acked.length > 0, 'some heartbeats were acknowledged before SIGTERM');
        await srv.start();
        await assertStored(srv, acked);
    });

    it('a clean restart keeps agents and history', async () => {
        const id = uniqueId('restart');
        const beats = [];
        for (let i = 0; i < 3; i++) beats.push(await srv.heartbeat(makeHeartbeat(id, { metrics: { tokens_per_min: i } })));
        const before = (await srv.api('/api/v0/agents')).json;
        await srv.restart();
        const afterList = (await srv.api('/api/v0/agents')).json;
        assert.deepEqual(afterList, before, 'the agent list is the same after a restart');
        const h = (await srv.api(`/api/v0/agents/${id}/heartbeats`)).json;
        assert.deepEqual(h.heartbeats.map((x) => x.server_ts), beats.map((b) => b.server_ts));
        const next = await srv.heartbeat(makeHeartbeat(id));
        const a = (await srv.api(`/api/v0/agents/${id}`)).json;
        assert.equal(a.first_seen, beats[0].server_ts);
        assert.equal(a.last_heartbeat, next.server_ts);
    });
});
