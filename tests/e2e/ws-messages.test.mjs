// ws-messages.test.mjs - what the live hub does with bad client messages: an error message with
// the documented code and a connection that keeps working; floods closed with 4029, frames over
// 64 KiB with 1009.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
    Aeid, describeEachStore, failOnSanitizerReport, itShutsDownCleanly, makeHeartbeat, sleep, uniqueId,
} from './lib/harness.mjs';
import { WsClient, closeAll, subscribed } from './lib/ws.mjs';

/* Send each raw text message on a fresh connection; expect one error with `code` for each, and a
 * pong for a ping after it. Every message is tried; the failure lists all that went wrong. */
async function expectErrors(srv, code, messages, { binary = false } = {}) {
    const c = await WsClient.connect(srv);
    const wrong = [];
    try {
        for (const m of messages) {
            if (binary) c.sendBinary(m);
            else c.sendText(m);
            const what = binary ? `a binary frame of ${m.length} bytes` : `the message ${JSON.stringify(m)}`;
            const e = await c.next({ type: 'error' }, undefined, `the error for ${what}`);
            if (e.code !== code || typeof e.message !== 'string' || e.message.length === 0) {
                wrong.push(`${what} -> ${JSON.stringify(e)}`);
            }
            await c.ping();
        }
        assert.deepEqual(wrong, [], `expected error code ${code} with a message for each`);
        assert.ok(c.isOpen, 'the connection stays open');
        assert.deepEqual(c.pending(), [], 'nothing else was sent');
    } finally {
        await c.close();
    }
}

describeEachStore('ws client messages', (srv) => {
    it('ping -> pong with the server time, as JSON and as plain text', async () => {
        const c = await WsClient.connect(srv);
        try {
            for (const text of [false, true]) {
                const p = await c.ping({ text });
                assert.equal(p.type, 'pong');
                assert.match(p.server_ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
            }
        } finally {
            await c.close();
        }
    });

    it('WebSocket ping control frames before anything else is sent: pongs, and the hub serves on', async () => {
        // A ping before the first message made lws ask for WRITEABLE with nothing to send; the
        // next one wrote the bytes reserved before an empty frame (heap overflow, aeid down).
        for (const endpoint of ['ws', 'http']) {
            const c = await WsClient.connect(srv, { endpoint });
            try {
                for (const payload of ['', 'abc', '']) {
                    const pong = new Promise((resolve) => c.ws.once('pong', (d) => resolve(String(d))));
                    c.ws.ping(payload);
                    assert.equal(await pong, payload);
                }
                assert.equal((await c.ping()).type, 'pong');
            } finally {
                await c.close();
            }
        }
        const s = await subscribed(srv, ['agents:all']);
        await closeAll(s);
        assert.equal((await srv.api('/healthz', { token: null })).status, 200);
    });

    it('invalid JSON -> invalid_json, saying where (line and column)', async () => {
        await expectErrors(srv, 'invalid_json', ['{"op":', '{"op":"ping",}', '{\n  "op": "ping"\n  "x": 1\n}',
            '', '{"op":"ping","op":"ping"}']);
        const c = await WsClient.connect(srv);
        try {
            // Told what is wrong: an empty message, a key given twice.
            c.sendText('');
            assert.match((await c.next({ type: 'error' })).message, /^an empty message/);
            c.sendText('{"op":"ping","op":"ping"}');
            assert.match((await c.next({ type: 'error' })).message, /duplicate object key/);
            c.sendText('{\n  "op": "ping"\n  "x": 1\n}');
            const e = await c.next({ type: 'error' });
            assert.match(e.message, /line\D*3/i, `the message names line 3: ${e.message}`);
            assert.match(e.message, /column\D*\d+/i, `the message names a column: ${e.message}`);
        } finally {
            await c.close();
        }
    });

    it('not an object, op missing or not a string, members of the wrong type -> invalid_message', async () => {
        await expectErrors(srv, 'invalid_message', [
            '[1,2]', '42', '"ping"', 'null', 'true', '[{"op":"ping"}]',
            '{}', '{"topic":"agents:all"}', '{"op":5}', '{"op":null}', '{"op":["ping"]}',
            '{"op":"subscribe","topic":5}', '{"op":"subscribe","topic":null}',
            '{"op":"unsubscribe","topic":{"a":1}}',
        ]);
    });

    it('an unknown op -> unknown_op', async () => {
        await expectErrors(srv, 'unknown_op', ['{"op":"dance"}', '{"op":""}', '{"op":"publish","topic":"agents:all"}']);
    });

    it('a bad topic -> invalid_topic, in the JSON and the plain text forms', async () => {
        const badTopics = ['agents:some', 'agents', 'agent:', 'agent:has space', 'agent:caf\u00e9',
            'agent:' + 'x'.repeat(129), 'nope', '', 'agent:a/b', 'Agents:all'];
        await expectErrors(srv, 'invalid_topic', [
            ...badTopics.map((topic) => JSON.stringify({ op: 'subscribe', topic })),
            JSON.stringify({ op: 'unsubscribe', topic: 'agents:some' }),
            'subscribe:nope', 'subscribe:agent:', 'subscribe:agent:has space', 'unsubscribe:agentz:all',
        ]);
        // The error names the topic in both forms, as the API documents.
        const c = await WsClient.connect(srv);
        try {
            c.send({ op: 'subscribe', topic: 'agents:some' });
            const e = await c.next({ type: 'error' });
            assert.equal(e.code, 'invalid_topic');
            assert.equal(e.topic, 'agents:some', JSON.stringify(e));
        } finally {
            await c.close();
        }
    });

    it('a malformed since -> invalid_since and no subscription', async () => {
        const id = uniqueId('since');
        const c = await WsClient.connect(srv);
        const watch = await subscribed(srv, `agent:${id}`);
        try {
            const { epoch } = watch.subs[`agent:${id}`].subscribed;
            const sinces = ['yesterday', 5, [], { seq: 1 }, { epoch }, { epoch, seq: -1 }, { epoch, seq: 1.5 },
                { epoch, seq: '3' }, { epoch: 7, seq: 1 }, { epoch: 'zz', seq: 1 },
                { epoch: 'ABCDEF0123456789', seq: 1 }, { epoch: epoch + '0', seq: 1 }];
            for (const since of sinces) {
                for (const topic of ['agents:all', `agent:${id}`]) {
                    c.send({ op: 'subscribe', topic, since });
                    const what = `since ${JSON.stringify(since)} on ${topic}`;
                    const e = await c.next({ type: 'error' }, undefined, `the error for ${what}`);
                    assert.equal(e.code, 'invalid_since', `${what}: ${JSON.stringify(e)}`);
                }
            }
            await c.ping();
            // No subscription came of it: a heartbeat reaches the watcher but not c.
            await srv.heartbeat(makeHeartbeat(id));
            await watch.next({ type: 'delta', agent_id: id });
            await c.ping();
            assert.deepEqual(c.messages.filter((m) => ['subscribed', 'snapshot', 'delta'].includes(m.type)), [],
                'no subscription after invalid_since');
            c.send({ op: 'unsubscribe', topic: 'agents:all' });
            assert.equal((await c.next({ type: 'error' })).code, 'not_subscribed');
        } finally {
            await closeAll(c, watch);
        }
    });

    it('a binary frame -> unsupported_frame', async () => {
        await expectErrors(srv, 'unsupported_frame',
            [Buffer.from('{"op":"ping"}'), Buffer.from([0, 1, 2, 255])], { binary: true });
    });

    it('after a run of errors the connection still subscribes and gets deltas', async () => {
        const id = uniqueId('after-errors');
        const c = await WsClient.connect(srv);
        try {
            for (const m of ['{"op":', '[]', '{"op":"dance"}', '{"op":"subscribe","topic":"nope"}']) {
                c.sendText(m);
                await c.next({ type: 'error' });
            }
            c.sendBinary(Buffer.from([1, 2, 3]));
            await c.next({ type: 'error', code: 'unsupported_frame' });
            await c.subscribe(`agent:${id}`);
            const hb = await srv.heartbeat(makeHeartbeat(id));
            const d = await c.next({ type: 'delta', agent_id: id });
            assert.equal(d.changed.last_heartbeat, hb.server_ts);
        } finally {
            await c.close();
        }
    });

    it('a burst of 80 messages is served, not cut off', async () => {
        const c = await WsClient.connect(srv);
        try {
            for (let i = 0; i < 80; i++) c.send({ op: 'ping' });
            await c.take({ type: 'pong' }, 80, 20000, 'pongs');
            assert.ok(c.isOpen, `still open: ${c.describeState()}`);
        } finally {
            await c.close();
        }
    });

    it('a flood of 1000 messages at once -> close 4029 "too many messages"', async () => {
        const c = await WsClient.connect(srv);
        const other = await subscribed(srv, 'agents:all');
        try {
            for (let i = 0; i < 1000; i++) c.send({ op: 'ping' });
            const { code, reason } = await c.waitClose(20000);
            assert.equal(code, 4029, `close code ${code} reason "${reason}"`);
            assert.equal(reason, 'too many messages');
            const pongs = c.messages.filter((m) => m.type === 'pong').length;
            assert.ok(pongs < 1000, `the flood was not served in full (${pongs} pongs)`);
            // Others are not affected.
            const id = uniqueId('after-flood');
            await srv.heartbeat(makeHeartbeat(id));
            await other.next({ type: 'delta', agent_id: id });
        } finally {
            await closeAll(c, other);
        }
    });

    it('a frame over 64 KiB -> close 1009', async () => {
        const c = await WsClient.connect(srv);
        try {
            c.sendText(JSON.stringify({ op: 'ping', pad: 'x'.repeat(70 * 1024) }));
            const { code, reason } = await c.waitClose(20000);
            assert.equal(code, 1009, `close code ${code} reason "${reason}"`);
        } finally {
            await c.close();
        }
        // Just under the limit is a message like any other (here: an unknown member is ignored
        // or refused, but the connection stays).
        const d = await WsClient.connect(srv);
        try {
            d.sendText(JSON.stringify({ op: 'ping', pad: 'x'.repeat(60 * 1024) }));
            await d.next((m) => m.type === 'pong' || m.type === 'error', undefined, 'a pong or an error');
            await d.ping();
        } finally {
            await d.close();
        }
    });
});

// The topic limit does not depend on the store, and reaching it takes 20 s at the rate a client
// may send: one store is enough.
describe('ws topic limit (sqlite)', () => {
    const srv = new Aeid({ store: 'sqlite' });
    before(() => srv.start());
    after(() => srv.close());
    failOnSanitizerReport(() => srv);

    it('a connection holds at most 1000 topics; the 1001st gets too_many_topics', async () => {
        const c = await WsClient.connect(srv);
        try {
            // A burst, then under 50 messages a second: the flood limit is not what is tested.
            let sent = 0;
            while (sent < 1000) {
                for (let k = 0; k < (sent === 0 ? 90 : 40) && sent < 1000; k++) {
                    c.sendText(`subscribe:agent:topic-${sent++}`);
                }
                await sleep(1000);
            }
            const confirmed = () => c.messages.filter((m) => m.type === 'subscribed');
            for (let waited = 0; confirmed().length < 1000 && waited < 30000; waited += 100) await sleep(100);
            const subs = confirmed();
            assert.equal(subs.length, 1000, `1000 subscriptions confirmed, got ${subs.length}`);
            c.send({ op: 'subscribe', topic: 'agent:topic-1000' });
            const e = await c.next({ type: 'error' });
            assert.equal(e.code, 'too_many_topics');
            assert.equal(e.topic, 'agent:topic-1000');
            // The held topics still work, and one freed makes room.
            const hb = await srv.heartbeat(makeHeartbeat('topic-999'));
            const d = await c.next({ type: 'delta', agent_id: 'topic-999' });
            assert.equal(d.changed.last_heartbeat, hb.server_ts);
            c.send({ op: 'unsubscribe', topic: 'agent:topic-0' });
            await c.next({ type: 'unsubscribed', topic: 'agent:topic-0' });
            c.send({ op: 'subscribe', topic: 'agent:topic-1000' });
            await c.next({ type: 'subscribed', topic: 'agent:topic-1000' });
        } finally {
            await c.close();
        }
    });

    itShutsDownCleanly(() => srv);
});
