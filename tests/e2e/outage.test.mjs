// outage.test.mjs - the store goes away under a running aeid: 503 with Retry-After, no crash,
// and service resumes once the store is back.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';

import {
    PG_SH, STORES, Aeid, assertError, failOnSanitizerReport, itShutsDownCleanly, makeHeartbeat,
    ownClusterAeid, sleep, uniqueId,
} from './lib/harness.mjs';

/* Post until the answer's status is `want` or the time is up; returns the last answer. */
async function postUntil(srv, body, want, ms) {
    const end = Date.now() + ms;
    let r;
    do {
        r = await srv.api('/api/v0/heartbeats', { body, timeoutMs: 20000 });
        if (r.status === want) return r;
        await sleep(200);
    } while (Date.now() < end);
    return r;
}

if (STORES.includes('postgres')) {
    describe('store outage (postgres, own cluster)', () => {
        const own = ownClusterAeid('aei-e2e-outage-');
        const dir = own.dir;

        it('PostgreSQL stops: heartbeats and reads answer 503 with Retry-After; it returns: 200', async () => {
            const srv = own.srv;
            const id = uniqueId('outage');
            assert.equal((await srv.api('/api/v0/heartbeats', { body: makeHeartbeat(id) })).status, 200);

            execFileSync(PG_SH, ['halt', dir]);
            const down = await srv.api('/api/v0/heartbeats', { body: makeHeartbeat(id) });
            assertError(down, 503, 'store_unavailable');
            assert.match(down.headers.get('retry-after') ?? '', /^\d+$/, 'Retry-After');
            assertError(await srv.api(`/api/v0/agents/${id}`), 503, 'store_unavailable');
            assert.equal((await srv.api('/healthz')).status, 200, 'the server itself stays up');

            execFileSync(PG_SH, ['start', dir]);
            const back = await postUntil(srv, makeHeartbeat(id, { status: 'idle' }), 200, 15000);
            assert.equal(back.status, 200, `after the store came back: ${back.text}`);
            const agent = await srv.api(`/api/v0/agents/${id}`);
            assert.equal(agent.status, 200, agent.text);
            assert.equal(agent.json.status, 'idle');
        });
        itShutsDownCleanly(() => own.srv);
    });
}

if (STORES.includes('sqlite')) {
    describe('store outage (sqlite, locked by another process)', () => {
        let srv;
        before(async () => {
            srv = new Aeid({ store: 'sqlite' });
            await srv.start();
        });
        after(async () => {
            await srv?.close();
        });
        failOnSanitizerReport(() => srv);

        it('another writer holds the lock past the busy timeout: 503, then 200 once it lets go', async () => {
            const id = uniqueId('locked');
            assert.equal((await srv.api('/api/v0/heartbeats', { body: makeHeartbeat(id) })).status, 200);

            const file = srv.dbUrl.slice('sqlite:'.length);
            const holder = spawn('sqlite3', [file], { stdio: ['pipe', 'ignore', 'pipe'] });
            holder.stdin.write('PRAGMA busy_timeout=10000; BEGIN IMMEDIATE; SELECT 1;\n');
            await sleep(300);
            try {
                const r = await srv.api('/api/v0/heartbeats', { body: makeHeartbeat(id), timeoutMs: 20000 });
                assertError(r, 503, 'store_unavailable');
                assert.match(r.headers.get('retry-after') ?? '', /^\d+$/, 'Retry-After');
            } finally {
                holder.stdin.end('ROLLBACK;\n');
                await new Promise((resolve) => holder.on('close', resolve));
            }
            const back = await srv.api('/api/v0/heartbeats', { body: makeHeartbeat(id, { status: 'idle' }) });
            assert.equal(back.status, 200, back.text);
        });
        itShutsDownCleanly(() => srv);
    });
}
