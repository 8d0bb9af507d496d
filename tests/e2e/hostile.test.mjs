// hostile.test.mjs - clients that pipeline, trickle, oversize or time their requests badly, and
// shutdown with a commit pending. Each case once made aeid hang, drop an answer or misreport.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';

import {
    assertError, describeEachStore, makeHeartbeat, openSocket, rawRequest, sleep, uniqueId,
} from './lib/harness.mjs';

const post = (token, body) => {
    const b = JSON.stringify(body);
    return 'POST /api/v0/heartbeats HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
        (token ? `Authorization: Bearer ${token}\r\n` : '') +
        `Content-Length: ${Buffer.byteLength(b)}\r\n\r\n${b}`;
};

// Every case on both of aeid's event loops (--event-loop, decision 0013): with epoll, a close that
// lws schedules as a timeout could be pushed back by a trickling client.
for (const loop of ['poll', 'epoll']) describeEachStore(`hostile clients (${loop})`, (srv) => {
    // libwebsockets 4.1 spins on a request with a body pipelined behind another; aeid closes such
    // a connection (docs/decisions/0003). The answers that are ready go out first; one still
    // waiting for the store is lost with the connection. What must hold: no hang, no crash.
    it('pipelined requests with bodies never hang the server', async () => {
        const hb = makeHeartbeat(uniqueId('pipe'));
        for (const [what, data, mustAnswer] of [
            ['two without a token', post(null, hb) + post(null, hb), true],
            ['GET then POST', 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' + post(srv.token, hb), true],
            ['two heartbeats', post(srv.token, hb) + post(srv.token, hb), false],
        ]) {
            const r = await rawRequest(srv.port, data, { timeoutMs: 3000 });
            assert.notEqual(r.how, 'timeout', `${what}: the connection neither answered nor closed`);
            if (mustAnswer) {
                assert.match(r.text, /^HTTP\/1\.1 (200|401)/, `${what}: ${r.text.slice(0, 200)}`);
            }
            const h = await srv.api('/healthz', { timeoutMs: 3000 });
            assert.equal(h.status, 200, `${what}: the server still answers after a pipelining client`);
        }
    });

    for (const who of ['with a token', 'without a token']) {
        it(`a body trickled byte by byte is cut off at --request-timeout (${who})`, async () => {
            const sock = await openSocket(srv.port);
            let closed = false;
            sock.on('close', () => { closed = true; });
            sock.on('error', () => {});
            sock.write('POST /api/v0/heartbeats HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
                (who === 'with a token' ? `Authorization: Bearer ${srv.token}\r\n` : '') +
                'Content-Length: 1000\r\n\r\n');
            const t0 = Date.now();
            while (!closed && Date.now() - t0 < 8000) {
                sock.write(' ');
                await sleep(500);
            }
            sock.destroy();
            assert.ok(closed, 'the connection was still open after 8 s of trickling (timeout is 2 s)');
            assert.equal((await srv.api('/healthz')).status, 200);
        });
    }

    it('overlong query parameters and Authorization headers are refused, not ignored', async () => {
        const id = uniqueId('long');
        assert.equal((await srv.api('/api/v0/heartbeats', { body: makeHeartbeat(id) })).status, 200);
        const long = 'a'.repeat(600);
        assertError(await srv.api(`/api/v0/agents/${id}/heartbeats?x=${long}&limit=abc`),
            400, 'invalid_parameter');
        assertError(await srv.api(`/api/v0/agents/${id}/heartbeats?limit=1&cursor=${'9'.repeat(600)}`),
            400, 'invalid_parameter');
        const r = await srv.api('/api/v0/agents', { token: 'x'.repeat(2000) });
        assertError(r, 401, 'invalid_token');
    });

    it('agent timestamps that leave years 0000-9999 in UTC are refused', async () => {
        for (const ts of ['0000-01-01T00:00:00+00:01', '9999-12-31T23:59:59-01:00']) {
            const r = await srv.api('/api/v0/heartbeats',
                { body: makeHeartbeat(uniqueId('ts'), { timestamp: ts }) });
            assertError(r, 400, 'invalid_field', { field: 'timestamp' });
        }
    });
}, { args: ['--request-timeout', '2', '--event-loop', loop] });

describeEachStore('shutdown with a commit pending', (srv, store) => {
    it('SIGTERM while a heartbeat waits for the store: it is answered 200, then aeid exits 0', async (t) => {
        if (store !== 'sqlite') {
            t.skip('holds the SQLite write lock from another process');
            return;
        }
        const file = srv.dbUrl.slice('sqlite:'.length);
        const holder = spawn('sqlite3', [file], { stdio: ['pipe', 'ignore', 'ignore'] });
        holder.stdin.write('BEGIN IMMEDIATE; SELECT 1;\n');
        await sleep(300);
        const id = uniqueId('pending');
        const answer = srv.api('/api/v0/heartbeats', { body: makeHeartbeat(id), timeoutMs: 20000 });
        await sleep(300);
        const stopped = srv.signal('SIGTERM');
        await sleep(500);
        holder.stdin.end('ROLLBACK;\n');
        const r = await answer;
        assert.equal(r.status, 200, `the heartbeat accepted before SIGTERM: ${r.status} ${r.text}`);
        const exit = await stopped;
        assert.equal(exit.code, 0, `exit code ${exit.code}, signal ${exit.signal}:\n${exit.stderr}`);
        await srv.start();
        const agent = await srv.api(`/api/v0/agents/${id}`);
        assert.equal(agent.status, 200, 'the heartbeat answered 200 is stored');
    });
});
