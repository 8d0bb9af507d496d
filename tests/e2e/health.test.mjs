// health.test.mjs - GET /api/v0/debug/health on both stores: the document matches its schema,
// counts heartbeats and decisions per second, keeps the last 50 error answers, sees WebSocket
// subscribers, samples the newest audit rows, refuses bad input; and on a PostgreSQL that stops,
// still answers with the store's failure inside.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import {
    AEID, Aeid, PG_SH, STORES, assertError, failOnSanitizerReport, itShutsDownCleanly,
    makeHeartbeat, ownClusterAeid, randomToken, tempDir, uniqueId,
} from './lib/harness.mjs';
import { bundle } from './lib/openapi.mjs';
import { closeAll, subscribed } from './lib/ws.mjs';

const require = createRequire(import.meta.url);
const Ajv2020 = require('ajv/dist/2020').default;
const addFormats = require('ajv-formats');
const execFileP = promisify(execFile);
const AEI = path.join(path.dirname(AEID), 'aei');

/* The DebugHealth schema of openapi.yaml as a validator. */
function healthValidator() {
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats(ajv);
    ajv.addKeyword('example');
    ajv.addSchema({ $id: 'openapi', components: bundle().components });
    return ajv.getSchema('openapi#/components/schemas/DebugHealth');
}

async function health(srv) {
    const r = await srv.api('/api/v0/debug/health');
    assert.equal(r.status, 200, r.text);
    return r.json;
}

function decision(execution, agent, i) {
    return { execution_id: execution, agent_id: agent, reasoning_context: `step ${i}`, confidence_score: 50 };
}

for (const store of STORES) {
    describe(`debug health (${store})`, () => {
        const dir = tempDir('aei-e2e-health-');
        const key = path.join(dir, 'audit.key');
        const srv = new Aeid({ store, args: ['--audit-key', key] });
        const valid = healthValidator();

        before(async () => {
            await srv.start();
        });
        after(async () => {
            await srv.close();
        });
        failOnSanitizerReport(() => srv);

        it('answers a document that matches its schema, with the store backend and a probe', async () => {
            const h = await health(srv);
            assert.ok(valid(h), JSON.stringify(valid.errors));
            assert.equal(h.store.backend, store);
            assert.equal(h.store.probe.ok, true);
            assert.ok(h.store.probe.query_ms >= 0 && h.store.probe.query_ms < 5000);
            assert.ok(h.uptime_seconds > 0);
            assert.match(h.version, /^\d+\.\d+\.\d+/);
            assert.equal(h.audit_sample.ok, true);
            assert.deepEqual(h.audit_sample.rows, []);
            // The validator does catch a wrong document.
            assert.equal(valid({ ...h, store: { ...h.store, backend: 'mysql' } }), false);
        });

        it('counts heartbeats received and decisions stored over the last 10 and 60 seconds', async () => {
            const agent = uniqueId('health');
            for (let i = 0; i < 5; i++)
                assert.equal((await srv.api('/api/v0/heartbeats', { body: makeHeartbeat(agent) })).status, 200);
            const exec = uniqueId('run');
            const batch = [0, 1, 2].map((i) => decision(exec, agent, i));
            assert.equal((await srv.api('/api/v0/traces', { body: batch })).status, 200);
            // A retried batch stores nothing new, and is not counted again.
            const dup = await srv.api('/api/v0/traces', { body: [{ ...batch[0], decision_id: 'd-fixed' }] });
            assert.equal(dup.status, 200);
            assert.equal((await srv.api('/api/v0/traces', { body: [{ ...batch[0], decision_id: 'd-fixed' }] })).json.stored, 0);
            const h = await health(srv);
            assert.equal(Math.round(h.rates.heartbeats.per_second_60s * 60), 5);
            assert.equal(Math.round(h.rates.decisions.per_second_60s * 60), 4);
            assert.equal(Math.round(h.rates.heartbeats.per_second_10s * 10), 5);
            assert.ok(h.store.latency.commit.count >= 5);
        });

        it('lists error answers newest first, with route, status, code and message', async () => {
            assertError(await srv.api('/api/v0/agents/no-such-agent'), 404, 'not_found');
            const bad = await srv.api('/api/v0/heartbeats', { body: makeHeartbeat('x', { status: 'asleep' }) });
            assert.equal(bad.status, 400);
            const h = await health(srv);
            const [first, second] = h.errors.recent;
            assert.equal(first.where, 'POST /api/v0/heartbeats');
            assert.equal(first.status, 400);
            assert.equal(first.code, 'invalid_field');
            assert.match(first.message, /status/);
            assert.equal(second.where, 'GET /api/v0/agents/{agent_id}');
            assert.equal(second.status, 404);
            assert.match(second.message, /no-such-agent/);
            assert.ok(Date.parse(first.ts) >= Date.parse(second.ts));
        });

        it('keeps only the last 50 errors and counts them all', async () => {
            const before = (await health(srv)).errors.total;
            for (let i = 0; i < 60; i++)
                assertError(await srv.api(`/api/v0/nothing-${i}`), 404, 'not_found');
            const h = await health(srv);
            assert.equal(h.errors.total, before + 60);
            assert.equal(h.errors.recent.length, 50);
            assert.match(h.errors.recent[0].message, /nothing-59/);
            assert.match(h.errors.recent[49].message, /nothing-10\b/);
        });

        it('counts WebSocket connections and the topics they hold', async () => {
            const a = await subscribed(srv, ['agents:all']);
            const b = await subscribed(srv, ['agent:one', 'execution:two']);
            const c = await subscribed(srv, []);
            try {
                const ws = (await health(srv)).websocket;
                assert.deepEqual(
                    { ...ws, push_latency: undefined },
                    { connections: 3, subscribed: 2, agents_all: 1, agent_topics: 1, execution_topics: 1, command_topics: 0, push_latency: undefined },
                );
            } finally {
                await closeAll(a, b, c);
            }
        });

        it('samples the 10 newest audit rows, each verified, as GET /api/v0/audit lists them', async () => {
            const team = uniqueId('team');
            for (let i = 0; i < 5; i++) {
                const { stderr } = await execFileP(AEI, ['token', 'create', '--db', srv.dbUrl, '--key', key,
                    '--team', team, '--user', `user${i}`, '--role', 'viewer'], { timeout: 60000 });
                assert.doesNotMatch(stderr, /error/i);
            }
            const h = await health(srv);
            assert.equal(h.audit_sample.rows.length, 10);
            const page = await srv.api('/api/v0/audit?limit=10');
            assert.deepEqual(h.audit_sample.rows.map((r) => r.id), page.json.rows.map((r) => r.id));
            assert.ok(h.audit_sample.rows.every((r) => r.verified === true));
        });

        it("is for admins alone: an operator's or a viewer's token answers 403", async () => {
            const team = uniqueId('team');
            for (const role of ['operator', 'viewer', 'admin']) {
                const { stdout } = await execFileP(AEI, ['token', 'create', '--db', srv.dbUrl, '--key', key,
                    '--team', team, '--user', `${role}-1`, '--role', role], { timeout: 60000 });
                const token = stdout.trim().split('\n').at(-1);
                const r = await srv.api('/api/v0/debug/health', { token });
                if (role === 'admin') assert.equal(r.status, 200, r.text);
                else assertError(r, 403, 'forbidden', { mentions: [role] });
            }
        });

        it('refuses bad input: unknown parameters 400, no or wrong token 401, POST 405', async () => {
            assertError(await srv.api('/api/v0/debug/health?verbose=1'), 400, 'invalid_parameter', { field: 'verbose' });
            assertError(await srv.api('/api/v0/debug/health', { token: null }), 401, 'unauthorized');
            assertError(await srv.api('/api/v0/debug/health', { token: randomToken() }), 401, 'invalid_token');
            const post = await srv.api('/api/v0/debug/health', { method: 'POST', body: {} });
            assertError(post, 405, 'method_not_allowed');
            assert.equal(post.headers.get('allow'), 'GET, HEAD');
            assertError(await srv.api('/api/v0/debug/healthz'), 404, 'not_found');
        });
        itShutsDownCleanly(() => srv);
    });
}

if (STORES.includes('postgres')) {
    describe('debug health with the store down (postgres, own cluster)', () => {
        const own = ownClusterAeid('aei-e2e-health-pg-');

        it('answers 200 with the probe failed and the 503s listed; recovers when the store returns', async () => {
            const srv = own.srv;
            execFileSync(PG_SH, ['halt', own.dir]);
            try {
                assertError(await srv.api('/api/v0/heartbeats', { body: makeHeartbeat(uniqueId('down')) }), 503, 'store_unavailable');
                const h = await health(srv);
                assert.equal(h.store.probe.ok, false);
                assert.match(h.store.probe.error, /\w/);
                assert.equal(h.audit_sample.ok, false);
                assert.deepEqual(h.audit_sample.rows, []);
                const e = h.errors.recent[0];
                assert.deepEqual([e.where, e.status, e.code], ['POST /api/v0/heartbeats', 503, 'store_unavailable']);
            } finally {
                execFileSync(PG_SH, ['start', own.dir]);
            }
            let h;
            for (let i = 0; i < 50; i++) {
                h = await health(srv);
                if (h.store.probe.ok) break;
                await new Promise((r) => setTimeout(r, 200));
            }
            assert.equal(h.store.probe.ok, true, JSON.stringify(h.store.probe));
        });
        itShutsDownCleanly(() => own.srv);
    });
}
