// errors.test.mjs - every error the API answers, and hostile clients that must not hurt it.
import assert from 'node:assert/strict';
import { before, beforeEach, describe, it } from 'node:test';
import {
    assertError, describeEachStore, makeHeartbeat, openSocket, rawRequest, sleep, startAeid, uniqueId,
} from './lib/harness.mjs';

const HB = '/api/v0/heartbeats';
const DEFAULT_MAX_BODY = 65536;

/* A valid heartbeat of exactly `size` bytes, padded with JSON whitespace. */
function bodyOfSize(size, id = uniqueId('padded')) {
    const head = `{"agent_id":"${id}","status":"idle"`;
    const n = size - Buffer.byteLength(head) - 1;
    assert.ok(n >= 0);
    return head + ' '.repeat(n) + '}';
}

/* Assert the server still serves: /healthz and an authenticated round trip. */
async function assertAlive(srv) {
    const h = await srv.api('/healthz', { token: null, timeoutMs: 5000 });
    assert.equal(h.status, 200, `server should still answer /healthz: ${h.status} ${h.text}`);
    const id = uniqueId('alive');
    await srv.heartbeat(makeHeartbeat(id));
    assert.equal((await srv.api(`/api/v0/agents/${id}`, { timeoutMs: 5000 })).status, 200);
}

describeEachStore('errors', (srv) => {
    let agent;
    before(async () => {
        agent = uniqueId('known');
        await srv.heartbeat(makeHeartbeat(agent));
    });
    // A crash fails the test that caused it and close(); start again so the rest still run.
    beforeEach(async () => {
        await srv.ensureRunning();
    });

    const post = (rawBody, opts = {}) => srv.api(HB, { rawBody, ...opts });
    const postObj = (body) => srv.api(HB, { body });

    describe('malformed JSON', () => {
        it('reports line and column', async () => {
            const body = '{\n  "agent_id": "a",\n  "status": ?\n}';
            const r = await post(body);
            const e = assertError(r, 400, 'malformed_json', { mentions: ['line 3', 'column'] });
            assert.equal(e.line, 3, `error.line: ${r.text}`);
            assert.equal(typeof e.column, 'number', `error.column: ${r.text}`);
            assert.ok(e.column >= 12 && e.column <= 14, `error.column near 13: ${r.text}`);
            assert.match(e.message, new RegExp(`column ${e.column}\\b`), 'message and column agree');
        });

        it('line and column on the first line', async () => {
            const r = await post('{"agent_id" "a"}');
            const e = assertError(r, 400, 'malformed_json', { mentions: ['line 1'] });
            assert.equal(e.line, 1);
            // The unexpected token "a" spans columns 13 to 15.
            assert.ok(e.column >= 12 && e.column <= 16, `column at the token "a" (13-15): ${r.text}`);
        });

        for (const [what, body] of [
            ['truncated object', '{"agent_id":"a","status":"idle"'],
            ['truncated string', '{"agent_id":"a","status":"id'],
            ['truncated after key', '{"agent_id"'],
            ['trailing garbage', '{"agent_id":"a","status":"idle"} x'],
            ['two documents', '{"agent_id":"a","status":"idle"}{"agent_id":"b","status":"idle"}'],
            ['single quotes', "{'agent_id':'a','status':'idle'}"],
            ['trailing comma', '{"agent_id":"a","status":"idle",}'],
            ['NaN literal', '{"agent_id":"a","status":"idle","metrics":{"cpu_pct":NaN}}'],
            ['Infinity literal', '{"agent_id":"a","status":"idle","metrics":{"cpu_pct":Infinity}}'],
            ['control character in string', '{"agent_id":"a","status":"idle","name":"a\u0001b"}'],
            ['bad escape', '{"agent_id":"a","status":"idle","name":"\\q"}'],
            ['lone surrogate escape', '{"agent_id":"a","status":"idle","name":"\\ud800"}'],
            ['just a brace', '{'],
            ['plain text', 'hello'],
        ]) {
            it(what, async () => {
                const e = assertError(await post(body), 400, 'malformed_json');
                assert.equal(typeof e.line, 'number', `${what}: error.line`);
                assert.equal(typeof e.column, 'number', `${what}: error.column`);
            });
        }

        it('duplicate keys are rejected, naming the key', async () => {
            let e = assertError(
                await post('{"agent_id":"a","agent_id":"b","status":"idle"}'),
                400, 'malformed_json', { mentions: [/duplicate/i] },
            );
            assert.match(e.message, /agent_id/);
            e = assertError(
                await post('{"agent_id":"a","status":"idle","metrics":{"cpu_pct":1,"cpu_pct":2}}'),
                400, 'malformed_json', { mentions: [/duplicate/i] },
            );
            assert.match(e.message, /cpu_pct/);
        });
    });

    it('empty body -> 400 empty_body', async () => {
        assertError(await post(''), 400, 'empty_body');
        assertError(await post('', { headers: { 'content-type': 'application/json; charset=utf-8' } }),
            400, 'empty_body');
    });

    it('a URL libwebsockets cannot decode gets its 403, as the API documents, and aeid serves on', async () => {
        // The library refuses it before aeid sees the request (docs/api/openapi.yaml, Errors).
        const r = await srv.api('/api/v0/agents?cursor=%%%', { timeoutMs: 5000 });
        assert.equal(r.status, 403, r.text);
        assert.equal((await srv.api('/api/v0/agents', { timeoutMs: 5000 })).status, 200);
    });

    it('deep nesting: 60,000 [ -> 400, no crash', async () => {
        const r = await post('['.repeat(60000));
        assert.equal(r.status, 400, r.text.slice(0, 300));
        assert.ok(['malformed_json', 'invalid_field'].includes(r.json?.error?.code), r.text.slice(0, 300));
        assert.match(r.json.error.message, /depth|nest/i);
    });

    it('deep nesting inside a heartbeat -> 400, no crash', async () => {
        const deep = '{"a":'.repeat(10000) + '1' + '}'.repeat(10000);
        const r = await post(`{"agent_id":"a","status":"idle","labels":${deep}}`);
        assert.equal(r.status, 400, r.text.slice(0, 300));
        assert.ok(['malformed_json', 'invalid_field'].includes(r.json?.error?.code), r.text.slice(0, 300));
        const r2 = await post(`{"agent_id":"a","status":"idle","x":${'['.repeat(30000)}${']'.repeat(30000)}}`);
        assert.equal(r2.status, 400, r2.text.slice(0, 300));
    });

    it('invalid UTF-8 -> 400 malformed_json', async () => {
        for (const bad of [[0xff, 0xfe], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0x80]]) {
            const body = Buffer.concat([
                Buffer.from('{"agent_id":"a","status":"idle","name":"x'),
                Buffer.from(bad),
                Buffer.from('y"}'),
            ]);
            const r = await post(body);
            assertError(r, 400, 'malformed_json', { mentions: [/utf-?8|unicode|decode|byte/i] });
        }
        const inKey = Buffer.concat([Buffer.from('{"agent_id":"a","status":"idle","'),
            Buffer.from([0xff]), Buffer.from('":1}')]);
        assertError(await post(inKey), 400, 'malformed_json');
    });

    it('a NUL character escape is either rejected or kept whole', async () => {
        const id = uniqueId('nul');
        const r = await post(`{"agent_id":"${id}","status":"idle","name":"ab\\u0000cd"}`);
        if (r.status === 200) {
            const a = await srv.api(`/api/v0/agents/${id}`);
            assert.equal(a.json.name, 'ab\u0000cd', 'a name with NUL must not be truncated');
        } else {
            assert.equal(r.status, 400, r.text);
            assert.ok(['malformed_json', 'invalid_field'].includes(r.json?.error?.code), r.text);
        }
        const r2 = await post('{"agent_id":"a\\u0000b","status":"idle"}');
        assert.equal(r2.status, 400, `agent_id with NUL: ${r2.text}`);
    });

    describe('huge numbers', () => {
        for (const [what, field, num] of [
            ['1e400 (overflow)', 'cpu_pct', '1e400'],
            ['-1e400', 'cost_usd', '-1e400'],
            ['1e400 (overflow)', 'tokens_per_min', '1e400'],
            ['the largest double (past 1e15)', 'cost_usd', '1.7976931348623157e308'],
            ['1e15 + 1', 'tokens_per_min', '1000000000000001'],
            ['30-digit integer', 'cpu_pct', '123456789012345678901234567890'],
            ['30-digit integer', 'confidence', '-123456789012345678901234567890'],
        ]) {
            it(`${field}: ${what} -> 400`, async () => {
                const r = await post(`{"agent_id":"a","status":"idle","metrics":{"${field}":${num}}}`);
                assert.equal(r.status, 400, r.text);
                const code = r.json?.error?.code;
                assert.ok(['malformed_json', 'invalid_field'].includes(code), r.text);
                if (code === 'invalid_field') assert.equal(r.json.error.field, `metrics.${field}`);
                if (code === 'malformed_json') assert.equal(typeof r.json.error.line, 'number');
            });
        }
        it('1e15, the largest amount, is stored and read back as the same number', async () => {
            const id = uniqueId('bignum');
            const r = await post(`{"agent_id":"${id}","status":"idle","metrics":{"tokens_per_min":1e15,"cost_usd":999999999999999.9}}`);
            assert.equal(r.status, 200, r.text);
            const a = await srv.api(`/api/v0/agents/${id}`);
            assert.equal(a.json.metrics.tokens_per_min, 1e15, a.text);
            assert.ok(Math.abs(a.json.metrics.cost_usd / 999999999999999.9 - 1) < 1e-14, a.text);
        });
    });

    describe('wrong types name the field', () => {
        const cases = [
            ['agent_id', { agent_id: 123 }],
            ['agent_id', { agent_id: null }],
            ['agent_id', { agent_id: ['a'] }],
            ['status', { status: 5 }],
            ['status', { status: null }],
            ['metrics', { metrics: 'fast' }],
            ['metrics', { metrics: [1, 2] }],
            ['metrics.cpu_pct', { metrics: { cpu_pct: 'high' } }, 'high'],
            ['metrics.mem_pct', { metrics: { mem_pct: true } }],
            ['metrics.tokens_per_min', { metrics: { tokens_per_min: [] } }],
            ['metrics.cost_usd', { metrics: { cost_usd: {} } }],
            ['metrics.confidence', { metrics: { confidence: '87' } }],
            ['parent_agent_id', { parent_agent_id: 5 }],
            ['parent_agent_id', { parent_agent_id: { id: 'x' } }],
            ['child_agent_ids', { child_agent_ids: 'worker-1' }],
            ['child_agent_ids', { child_agent_ids: { a: 1 } }],
            ['timestamp', { timestamp: 1732460400 }],
            ['timestamp', { timestamp: 'yesterday' }],
            ['timestamp', { timestamp: '2026-13-45T25:61:00Z' }],
            ['timestamp', { timestamp: '2026-11-24 15:00:00' }],
            ['timestamp', { timestamp: '2026-02-30T00:00:00Z' }],
            ['name', { name: 5 }],
            ['name', { name: ['a'] }],
            ['labels', { labels: ['a', 'b'] }],
            ['labels', { labels: 'team=search' }],
            ['schema_version', { schema_version: 0 }],
        ];
        for (const [field, override, mention] of cases) {
            it(`${field} = ${JSON.stringify(Object.values(override)[0])}`, async () => {
                const r = await postObj(makeHeartbeat(uniqueId('typed'), override));
                const mentions = [field];
                if (mention) mentions.push(mention);
                assertError(r, 400, 'invalid_field', { field, mentions });
            });
        }
        for (const [what, body, prefix] of [
            ['child_agent_ids element', { child_agent_ids: ['ok', 7] }, 'child_agent_ids'],
            ['labels value', { labels: { team: 1 } }, 'labels'],
            ['labels value null', { labels: { team: null } }, 'labels'],
        ]) {
            it(`${what} names the path`, async () => {
                const r = await postObj(makeHeartbeat(uniqueId('typed'), body));
                const e = assertError(r, 400, 'invalid_field', { mentions: [prefix] });
                assert.ok(e.field?.startsWith(prefix), `field ${e.field} should start with ${prefix}`);
            });
        }
    });

    it('missing required members name them', async () => {
        assertError(await postObj({ status: 'idle' }), 400, 'invalid_field',
            { field: 'agent_id', mentions: ['agent_id'] });
        assertError(await postObj({ agent_id: uniqueId() }), 400, 'invalid_field',
            { field: 'status', mentions: ['status'] });
        assertError(await postObj({}), 400, 'invalid_field');
    });

    it('a body that is not an object -> 400', async () => {
        for (const body of ['[]', '"heartbeat"', '42', 'null', 'true', '[{"agent_id":"a","status":"idle"}]']) {
            const r = await post(body);
            assert.equal(r.status, 400, `${body}: ${r.text}`);
            assert.ok(['invalid_field', 'malformed_json'].includes(r.json?.error?.code), `${body}: ${r.text}`);
            assert.ok(r.json.error.message.length > 0);
        }
    });

    describe('out of range metrics', () => {
        for (const [field, v] of [
            ['cpu_pct', 100.01], ['cpu_pct', -0.1], ['cpu_pct', 1000],
            ['mem_pct', 101], ['mem_pct', -1],
            ['tokens_per_min', -1],
            ['cost_usd', -0.01],
            ['confidence', 100.5], ['confidence', -1],
        ]) {
            it(`${field} = ${v}`, async () => {
                const r = await postObj(makeHeartbeat(uniqueId('range'), { metrics: { [field]: v } }));
                assertError(r, 400, 'invalid_field', { field: `metrics.${field}`, mentions: [`metrics.${field}`] });
            });
        }
    });

    describe('bad agent ids', () => {
        for (const [what, id] of [
            ['empty', ''],
            ['space', 'a b'],
            ['slash', 'a/b'],
            ['question mark', 'a?b'],
            ['percent', 'a%2Fb'],
            ['newline', 'a\nb'],
            ['non-ASCII', 'agent-ü'],
            ['emoji', 'agent-🚀'],
            ['129 characters', 'a'.repeat(129)],
            ['4096 characters', 'a'.repeat(4096)],
        ]) {
            it(`agent_id ${what}`, async () => {
                const r = await postObj(makeHeartbeat(id));
                assertError(r, 400, 'invalid_field', { field: 'agent_id', mentions: ['agent_id'] });
            });
        }
        it('parent_agent_id with a bad character', async () => {
            assertError(await postObj(makeHeartbeat(uniqueId(), { parent_agent_id: 'boss 1' })),
                400, 'invalid_field', { field: 'parent_agent_id', mentions: ['parent_agent_id'] });
            assertError(await postObj(makeHeartbeat(uniqueId(), { parent_agent_id: '' })),
                400, 'invalid_field', { field: 'parent_agent_id' });
        });
        it('child_agent_ids with a bad id or over 1000 entries', async () => {
            let e = assertError(await postObj(makeHeartbeat(uniqueId(), { child_agent_ids: ['ok', 'not ok'] })),
                400, 'invalid_field', { mentions: ['child_agent_ids'] });
            assert.ok(e.field?.startsWith('child_agent_ids'), `field: ${e.field}`);
            const many = Array.from({ length: 1001 }, (_, i) => `w${i}`);
            e = assertError(await postObj(makeHeartbeat(uniqueId(), { child_agent_ids: many })),
                400, 'invalid_field', { field: 'child_agent_ids', mentions: ['child_agent_ids'] });
            const ok = Array.from({ length: 1000 }, (_, i) => `w${i}`);
            const id = uniqueId('kids');
            await srv.heartbeat(makeHeartbeat(id, { child_agent_ids: ok }));
            const a = await srv.api(`/api/v0/agents/${id}`);
            assert.deepEqual(a.json.child_agent_ids, ok, '1000 children are accepted and kept');
        });
    });

    describe('string and label limits', () => {
        it('name over 256 characters', async () => {
            assertError(await postObj(makeHeartbeat(uniqueId(), { name: 'n'.repeat(257) })),
                400, 'invalid_field', { field: 'name', mentions: ['name'] });
            await srv.heartbeat(makeHeartbeat(uniqueId(), { name: 'n'.repeat(256) }));
        });
        it('labels: 65 entries, long key, long value', async () => {
            const many = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v']));
            let e = assertError(await postObj(makeHeartbeat(uniqueId(), { labels: many })),
                400, 'invalid_field', { mentions: ['labels'] });
            assert.ok(e.field?.startsWith('labels'), `field: ${e.field}`);
            e = assertError(await postObj(makeHeartbeat(uniqueId(), { labels: { ['k'.repeat(65)]: 'v' } })),
                400, 'invalid_field', { mentions: ['labels'] });
            assert.ok(e.field?.startsWith('labels'), `field: ${e.field}`);
            e = assertError(await postObj(makeHeartbeat(uniqueId(), { labels: { k: 'v'.repeat(257) } })),
                400, 'invalid_field', { mentions: ['labels'] });
            assert.ok(e.field?.startsWith('labels'), `field: ${e.field}`);
            const okMany = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`k${i}`, 'v'.repeat(256)]));
            okMany['k'.repeat(64)] = 'v';
            delete okMany.k0;
            await srv.heartbeat(makeHeartbeat(uniqueId(), { labels: okMany }));
        });
    });

    it('unknown members are rejected by name', async () => {
        assertError(await postObj(makeHeartbeat(uniqueId(), { colour: 'red' })),
            400, 'invalid_field', { field: 'colour', mentions: ['colour'] });
        assertError(await postObj(makeHeartbeat(uniqueId(), { metrics: { cpu_pct: 1, gpu_pct: 2 } })),
            400, 'invalid_field', { field: 'metrics.gpu_pct', mentions: ['metrics.gpu_pct'] });
        assertError(await postObj(makeHeartbeat(uniqueId(), { Agent_ID: 'x' })),
            400, 'invalid_field', { field: 'Agent_ID', mentions: ['Agent_ID'] });
    });

    it('bad status', async () => {
        for (const s of ['running', 'IDLE', '', 'idle ']) {
            assertError(await postObj(makeHeartbeat(uniqueId(), { status: s })),
                400, 'invalid_field', { field: 'status', mentions: ['status'] });
        }
    });

    it('bad schema_version', async () => {
        for (const v of ['1', '0.1', '', 'v0']) {
            assertError(await postObj(makeHeartbeat(uniqueId(), { schema_version: v })),
                400, 'invalid_field', { field: 'schema_version', mentions: ['schema_version'] });
        }
    });

    it('a body over the default limit -> 413; at the limit it is not', async () => {
        const over = bodyOfSize(DEFAULT_MAX_BODY + 1);
        assertError(await post(over), 413, 'payload_too_large');
        assertError(await post('x'.repeat(1024 * 1024)), 413, 'payload_too_large');
        const at = await post(bodyOfSize(DEFAULT_MAX_BODY));
        assert.equal(at.status, 200, `a body of exactly --max-body bytes is allowed: ${at.text}`);
    });

    it('a small chunked heartbeat -> 200 (or 411 Length Required), quickly', async () => {
        const id = uniqueId('chunked');
        const body = JSON.stringify(makeHeartbeat(id));
        const req = `POST ${HB} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${srv.token}\r\n` +
            'Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n' +
            `${Buffer.byteLength(body).toString(16)}\r\n${body}\r\n0\r\n\r\n`;
        const r = await rawRequest(srv.port, req, { timeoutMs: 5000 });
        assert.ok(r.status === 200 || r.status === 411,
            `chunked POST: expected 200 or 411 within 5 s, got ${r.status ?? 'nothing'} (${r.how}): ` +
            r.text.slice(0, 300));
        await assertAlive(srv);
    });

    it('a chunked body over the limit -> 413 (or 411), never accepted', async () => {
        const payload = bodyOfSize(DEFAULT_MAX_BODY + 5000);
        const chunks = [];
        for (let i = 0; i < payload.length; i += 8000) {
            const c = payload.slice(i, i + 8000);
            chunks.push(`${c.length.toString(16)}\r\n${c}\r\n`);
        }
        const req = `POST ${HB} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${srv.token}\r\n` +
            'Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n' +
            chunks.join('') + '0\r\n\r\n';
        const r = await rawRequest(srv.port, req, { timeoutMs: 5000 });
        assert.ok([413, 411, 400].includes(r.status) || r.status === null,
            `chunked oversize body: ${r.text.slice(0, 300)}`);
        assert.ok(r.status !== null || r.how !== 'timeout', 'server neither answered nor closed');
        await assertAlive(srv);
    });

    it('wrong content type -> 415', async () => {
        const hb = JSON.stringify(makeHeartbeat(uniqueId('ctype')));
        for (const ct of ['text/plain', 'application/x-www-form-urlencoded', 'application/jsonx',
            'multipart/form-data; boundary=x', 'application/xml']) {
            assertError(await post(hb, { headers: { 'content-type': ct } }), 415, 'unsupported_media_type',
                { mentions: ['application/json'] });
        }
        // A Buffer body so that fetch adds no Content-Type of its own.
        assertError(await post(Buffer.from(hb), { headers: { 'content-type': null } }), 415,
            'unsupported_media_type');
    });

    it('bytes that are not UTF-8 in the path -> 4xx JSON error, no crash', async () => {
        for (const p of ['/api/v0/agents/%FF%FE', '/api/v0/agents/%C0%AF/heartbeats', '/api/v0/%FF']) {
            const r = await srv.api(p);
            assert.ok(r.status === 404 || r.status === 400, `GET ${p} -> ${r.status} ${r.text}`);
            assert.ok(['not_found', 'invalid_parameter'].includes(r.json?.error?.code), `GET ${p}: ${r.text}`);
        }
        await assertAlive(srv);
    });

    it('%00 in the path or query -> 400 or the connection is closed, no crash', async () => {
        for (const p of ['/api/v0/agents/a%00b', `/api/v0/agents/${agent}/heartbeats?cursor=%00abc`]) {
            const r = await rawRequest(srv.port,
                `GET ${p} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${srv.token}\r\nConnection: close\r\n\r\n`,
                { timeoutMs: 5000 });
            assert.ok(r.status === 400 || r.status === 404 || (r.status === null && r.how !== 'timeout'),
                `GET ${p} -> ${r.status ?? r.how}: ${r.text.slice(0, 200)}`);
        }
        await assertAlive(srv);
    });

    it('unknown route -> 404 not_found', async () => {
        // Other paths belong to the dashboard (static.test.mjs).
        for (const p of ['/api/v0/nope', '/api/v1/agents', '/api/v0', '/api/v0/agents/a/b/c',
            `/api/v0/agents/${agent}/nope`]) {
            assertError(await srv.api(p), 404, 'not_found');
        }
    });

    it('wrong method -> 405 with Allow', async () => {
        const cases = [
            ['DELETE', '/api/v0/agents', 'GET'],
            ['POST', '/api/v0/agents', 'GET'],
            ['GET', HB, 'POST'],
            ['PUT', HB, 'POST'],
            ['DELETE', `/api/v0/agents/${agent}`, 'GET'],
            ['PATCH', `/api/v0/agents/${agent}/heartbeats`, 'GET'],
        ];
        for (const [method, p, allow] of cases) {
            const r = await srv.api(p, {
                method,
                ...(method === 'GET' || method === 'DELETE' ? {} : { rawBody: '{}' }),
            });
            assertError(r, 405, 'method_not_allowed');
            const got = (r.headers.get('allow') ?? '').split(',').map((s) => s.trim());
            assert.ok(got.includes(allow), `${method} ${p}: Allow "${r.headers.get('allow')}" should list ${allow}`);
            assert.ok(!got.includes(method), `${method} ${p}: Allow should not list ${method}`);
        }
    });

    it('HEAD on a GET route answers the GET headers without a body (RFC 9110)', async () => {
        for (const p of ['/healthz', '/api/v0/agents', `/api/v0/agents/${agent}`]) {
            const get = await srv.api(p);
            const head = await srv.api(p, { method: 'HEAD' });
            assert.equal(head.status, get.status, `HEAD ${p}`);
            assert.equal(head.text, '', `HEAD ${p} has no body`);
            assert.equal(head.headers.get('content-type'), get.headers.get('content-type'));
        }
        const r = await srv.api('/api/v0/agents', { method: 'DELETE' });
        assert.deepEqual((r.headers.get('allow') ?? '').split(',').map((s) => s.trim()), ['GET', 'HEAD']);
    });

    describe('bad query parameters -> 400 invalid_parameter', () => {
        for (const [q, field] of [
            ['limit=0', 'limit'],
            ['limit=1001', 'limit'],
            ['limit=-1', 'limit'],
            ['limit=abc', 'limit'],
            ['limit=10abc', 'limit'],
            ['limit=', 'limit'],
            ['limit=1.5', 'limit'],
            ['limit=99999999999999999999', 'limit'],
            ['from=notatime', 'from'],
            ['from=2026-13-01T00:00:00Z', 'from'],
            ['to=yesterday', 'to'],
            ['to=1732460400', 'to'],
            ['cursor=garbage', 'cursor'],
            ['cursor=%FF%FE', 'cursor'],
        ]) {
            it(q, async () => {
                const r = await srv.api(`/api/v0/agents/${agent}/heartbeats?${q}`);
                assertError(r, 400, 'invalid_parameter', { field, mentions: [field] });
            });
        }
        for (const q of ['limit=%FF', 'from=%FF%FE', 'to=%C0%AF', 'cursor=%ED%A0%80']) {
            it(`${q} (not UTF-8) -> 400, no crash`, async () => {
                const r = await srv.api(`/api/v0/agents/${agent}/heartbeats?${q}`);
                assertError(r, 400, 'invalid_parameter', { field: q.split('=')[0] });
            });
        }
        it('limit 1 and 1000 are accepted', async () => {
            for (const l of [1, 1000]) {
                const r = await srv.api(`/api/v0/agents/${agent}/heartbeats?limit=${l}`);
                assert.equal(r.status, 200, `limit=${l}: ${r.text}`);
            }
        });
    });

    it('after all that the server still answers', async () => {
        await assertAlive(srv);
    });

    describe('hostile clients (raw sockets)', () => {
        it('garbage request line -> 400 or close, quickly', async () => {
            // (An API path: / is the dashboard, which answers an HTTP/9.9 GET that lws lets through.)
            for (const data of ['GARBAGE\r\n\r\n', 'GET\r\n\r\n', 'GET /api/v0/agents HTTP/9.9\r\n\r\n',
                '\x00\x01\x02\x03\r\n\r\n']) {
                const r = await rawRequest(srv.port, data, { timeoutMs: 5000 });
                assert.ok(r.how !== 'timeout' || r.status !== null,
                    `${JSON.stringify(data)}: no answer and no close within 5 s`);
                if (r.status !== null) assert.ok(r.status >= 400 && r.status <= 505,
                    `${JSON.stringify(data)} -> ${r.status}`);
            }
            await assertAlive(srv);
        });

        it('random binary garbage does not hurt', async () => {
            const junk = Buffer.alloc(16384);
            for (let i = 0; i < junk.length; i++) junk[i] = (i * 7919 + 13) & 0xff;
            await rawRequest(srv.port, junk, { timeoutMs: 2000 });
            await assertAlive(srv);
        });

        it('a huge header -> 4xx or close, no crash', async () => {
            const req = `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(200000)}\r\n\r\n`;
            const r = await rawRequest(srv.port, req, { timeoutMs: 5000 });
            if (r.status !== null) assert.ok(r.status === 431 || r.status === 400 || r.status === 413,
                `huge header -> ${r.status}`);
            await assertAlive(srv);
        });

        it('a body shorter than Content-Length, then the client goes away', async () => {
            const req = `POST ${HB} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${srv.token}\r\n` +
                'Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{"agent_id":"trunc","sta';
            await rawRequest(srv.port, req, { timeoutMs: 500, endAfterWrite: true });
            await assertAlive(srv);
            assertError(await srv.api('/api/v0/agents/trunc'), 404, 'not_found');
        });

        it('clients that send half a request and stall do not block others', async () => {
            const stalled = [];
            try {
                for (let i = 0; i < 20; i++) {
                    const s = await openSocket(srv.port);
                    s.on('error', () => {});
                    if (i % 2 === 0) {
                        s.write(`POST ${HB} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${srv.token}\r\n` +
                            'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"agent_id":"sl');
                    } else {
                        s.write('GET /api/v0/agents HTTP/1.1\r\nHost: x\r\nAuthor');
                    }
                    stalled.push(s);
                }
                await sleep(200);
                const t0 = performance.now();
                const ids = Array.from({ length: 10 }, () => uniqueId('busy'));
                await Promise.all(ids.map((id) => srv.heartbeat(makeHeartbeat(id))));
                for (const id of ids) {
                    assert.equal((await srv.api(`/api/v0/agents/${id}`, { timeoutMs: 3000 })).status, 200);
                }
                const h = await srv.api('/healthz', { token: null, timeoutMs: 3000 });
                assert.equal(h.status, 200);
                const ms = performance.now() - t0;
                assert.ok(ms < 3000, `other clients took ${ms.toFixed(0)} ms beside stalled ones`);
            } finally {
                for (const s of stalled) s.destroy();
            }
            await assertAlive(srv);
        });
    });
});

describeEachStore('errors with --max-body 1024', (srv, store) => {
    it('a body over the lowered limit -> 413, at the limit not', async () => {
        assertError(await srv.api(HB, { rawBody: bodyOfSize(1025) }), 413, 'payload_too_large');
        const at = await srv.api(HB, { rawBody: bodyOfSize(1024) });
        assert.equal(at.status, 200, `a 1024-byte heartbeat with --max-body 1024: ${at.text}`);
        await srv.heartbeat(makeHeartbeat(uniqueId('small')));
    });

    it('the limit also comes from AEI_MAX_BODY', async () => {
        const other = await startAeid({ store, env: { AEI_MAX_BODY: '512' } });
        try {
            assertError(await other.api(HB, { rawBody: bodyOfSize(513) }), 413, 'payload_too_large');
            assert.equal((await other.api(HB, { rawBody: bodyOfSize(512) })).status, 200);
        } finally {
            await other.close();
        }
    });
}, { args: ['--max-body', '1024'] });
