// ws-auth.test.mjs - the live hub's handshake: both endpoints, tokens in the query or the
// Authorization header, refusals before the upgrade (401, 403, 404), allowed origins, and tokens
// kept out of the logs.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { describeEachStore, makeHeartbeat, randomToken, uniqueId } from './lib/harness.mjs';
import { EPOCH_RE, WsClient, closeAll, subscribed } from './lib/ws.mjs';

const ENDPOINTS = ['ws', 'http'];

/* Assert a refusal: status, JSON error code and, for 401, the WWW-Authenticate header. */
function assertRefused(r, status, code, what) {
    const ctx = `${what}: HTTP ${r.status} ${r.text.slice(0, 300)}`;
    assert.equal(r.status, status, ctx);
    assert.ok(r.json?.error, `${ctx}: the body should be {"error":{...}}`);
    assert.equal(r.json.error.code, code, ctx);
    assert.equal(typeof r.json.error.message, 'string', ctx);
    assert.ok(r.json.error.message.length > 0, ctx);
    assert.match(r.headers['content-type'] ?? '', /^application\/json/, ctx);
}

describeEachStore('ws handshake', (srv) => {
    const usedTokens = [];

    it('both endpoints, the --ws address at "/" and the HTTP address at "/ws", serve the same hub', async () => {
        const a = await subscribed(srv, 'agents:all', { endpoint: 'ws' });
        const b = await subscribed(srv, 'agents:all', { endpoint: 'http' });
        try {
            assert.equal(a.subs['agents:all'].subscribed.epoch, b.subs['agents:all'].subscribed.epoch,
                'one hub: one epoch');
            assert.match(a.subs['agents:all'].subscribed.epoch, EPOCH_RE);
            const id = uniqueId('both');
            const hb = await srv.heartbeat(makeHeartbeat(id));
            const da = await a.next({ type: 'delta', agent_id: id });
            const db = await b.next({ type: 'delta', agent_id: id });
            assert.deepEqual(da, db, 'both endpoints get the same delta');
            assert.equal(da.changed.last_heartbeat, hb.server_ts);
            await a.ping();
            await b.ping();
        } finally {
            await closeAll(a, b);
        }
    });

    it('the token is accepted in ?token= and in the Authorization header, on both endpoints', async () => {
        for (const endpoint of ENDPOINTS) {
            for (const via of ['query', 'header']) {
                const c = await WsClient.connect(srv, { endpoint, via });
                try {
                    const pong = await c.ping();
                    assert.equal(typeof pong.server_ts, 'string', `${endpoint}/${via}: pong has server_ts`);
                } finally {
                    await c.close();
                }
            }
        }
    });

    it('no token -> 401 unauthorized with WWW-Authenticate, and no upgrade', async () => {
        for (const endpoint of ENDPOINTS) {
            const r = await WsClient.refused(srv, { endpoint, token: null });
            assertRefused(r, 401, 'unauthorized', `${endpoint} without a token`);
            assert.equal(r.headers['www-authenticate'], 'Bearer realm="aei"', `${endpoint} without a token`);
        }
        // A header that is not a bearer token is no token either.
        const r = await WsClient.refused(srv, {
            token: null,
            headers: { Authorization: `Basic ${Buffer.from('admin:' + srv.token).toString('base64')}` },
        });
        assert.equal(r.status, 401, `Basic credentials: HTTP ${r.status} ${r.text}`);
        assert.match(r.headers['www-authenticate'] ?? '', /^Bearer realm="aei"/);
    });

    it('wrong token -> 401 invalid_token with error="invalid_token", via the query and the header', async () => {
        for (const endpoint of ENDPOINTS) {
            for (const via of ['query', 'header']) {
                const bad = randomToken();
                usedTokens.push(bad);
                const r = await WsClient.refused(srv, { endpoint, via, token: bad });
                assertRefused(r, 401, 'invalid_token', `${endpoint} with a wrong token in the ${via}`);
                assert.equal(r.headers['www-authenticate'], 'Bearer realm="aei", error="invalid_token"',
                    `${endpoint} with a wrong token in the ${via}`);
            }
        }
        // A prefix of the right token is wrong too.
        const r = await WsClient.refused(srv, { via: 'query', token: srv.token.slice(0, -1) });
        assertRefused(r, 401, 'invalid_token', 'a prefix of the token');
        // Wrong tokens in both places.
        const both = await WsClient.refused(srv, {
            via: 'query', token: randomToken(), headers: { Authorization: `Bearer ${randomToken()}` },
        });
        assert.equal(both.status, 401, `two wrong tokens: HTTP ${both.status} ${both.text}`);
    });

    it('other paths -> 404 on both addresses', async () => {
        for (const [endpoint, path] of [['ws', '/ws'], ['ws', '/nope'], ['ws', '/api/v0/ws'],
            ['http', '/wss'], ['http', '/ws/x'], ['http', '/nope']]) {
            const r = await WsClient.refused(srv, { endpoint, path });
            assert.equal(r.status, 404, `${endpoint} address, path ${path}: HTTP ${r.status} ${r.text.slice(0, 200)}`);
        }
    });

    it('an Origin other than the own one -> 403 origin_not_allowed', async () => {
        const cases = [
            ['ws', 'http://evil.example'],
            ['ws', `http://127.0.0.1:${srv.port}`], // the HTTP address is another origin
            ['ws', `http://localhost:${srv.wsPort}`],
            ['ws', 'null'],
            ['http', `http://127.0.0.1:${srv.wsPort}`],
            ['http', 'http://evil.example:' + srv.port],
        ];
        for (const [endpoint, origin] of cases) {
            const r = await WsClient.refused(srv, { endpoint, origin });
            assertRefused(r, 403, 'origin_not_allowed', `${endpoint} address, Origin ${origin}`);
        }
    });

    it('the same origin is allowed, and no Origin header (a non-browser client) is fine', async () => {
        for (const [endpoint, origin] of [['ws', `http://127.0.0.1:${srv.wsPort}`],
            ['http', `http://127.0.0.1:${srv.port}`], ['ws', undefined], ['http', undefined]]) {
            const c = await WsClient.connect(srv, { endpoint, origin });
            try {
                await c.ping();
            } finally {
                await c.close();
            }
        }
    });

    it('tokens given in ?token= never appear in stderr', async () => {
        // Right and wrong tokens in the query once more, then look at everything aeid printed.
        const bad = randomToken();
        usedTokens.push(bad);
        const c = await WsClient.connect(srv, { via: 'query' });
        await c.ping();
        await c.close();
        await WsClient.refused(srv, { via: 'query', token: bad });
        await WsClient.refused(srv, { endpoint: 'http', via: 'query', token: bad });
        for (const t of [srv.token, ...usedTokens]) {
            assert.ok(!srv.stderr.includes(t), `a token appears in aeid stderr:\n${srv.stderr}`);
            assert.ok(!srv.stderr.includes(t.slice(9, 30)), `part of a token appears in aeid stderr:\n${srv.stderr}`);
        }
    });
});

describeEachStore('ws handshake with --ws-origins', (srv) => {
    it('listed origins are allowed', async () => {
        for (const endpoint of ENDPOINTS) {
            for (const origin of ['http://dash.example:8443', 'https://ops.example']) {
                const c = await WsClient.connect(srv, { endpoint, origin });
                try {
                    await c.ping();
                } finally {
                    await c.close();
                }
            }
        }
    });

    it('origins not listed -> 403 origin_not_allowed', async () => {
        for (const origin of ['http://evil.example', 'http://dash.example:8444', 'http://dash.example',
            'https://dash.example:8443', 'http://ops.example', 'https://ops.example.evil.example']) {
            const r = await WsClient.refused(srv, { origin });
            assertRefused(r, 403, 'origin_not_allowed', `Origin ${origin}`);
        }
    });

    it('a refused origin with a wrong token still gets no upgrade', async () => {
        const r = await WsClient.refused(srv, { origin: 'http://evil.example', token: randomToken() });
        assert.ok([401, 403].includes(r.status), `HTTP ${r.status} ${r.text}`);
    });
}, { args: ['--ws-origins', 'http://dash.example:8443,https://ops.example'] });
