// ws.mjs - a small WebSocket client for the live hub tests (the `ws` package).
//
// A WsClient keeps every message the server sent, in order (a frame holding a JSON array counts
// as its messages, one by one), and hands them out with next(predicate): the first message not
// yet taken that matches, waiting for it when needed. A timeout names what was awaited and lists
// what arrived instead, so a failing test says what the server did.

import assert from 'node:assert/strict';
import WebSocket from 'ws';

export const EPOCH_RE = /^[0-9a-f]{16}$/;
export const DEFAULT_WAIT_MS = 15000;

/* Messages that carry a sequence number of the hub's update stream. */
export function isUpdate(m) {
    return m.type === 'delta' || m.type === 'event' || m.type === 'decision' || m.type === 'execution';
}

/* A predicate from a function or an object whose members must all equal the message's
 * (shallow; a RegExp member must match, a function member must return true). */
export function matcher(pred) {
    if (typeof pred === 'function') return pred;
    if (pred === undefined || pred === null) return () => true;
    const entries = Object.entries(pred);
    return (m) => entries.every(([k, v]) => {
        if (v instanceof RegExp) return typeof m[k] === 'string' && v.test(m[k]);
        if (typeof v === 'function') return v(m[k]);
        return m[k] === v;
    });
}

function describePred(pred) {
    if (typeof pred === 'function') return pred.name ? `${pred.name}()` : 'a matching message';
    return JSON.stringify(pred, (k, v) => (v instanceof RegExp ? String(v) : v));
}

function short(m, n = 300) {
    const s = JSON.stringify(m);
    return s.length > n ? s.slice(0, n) + `... (${s.length} chars)` : s;
}

/**
 * The URL of a hub endpoint of `srv`.
 * endpoint: 'ws' (the --ws address, path "/") or 'http' (the HTTP address, path "/ws");
 * path: another path on that address; query: extra query parameters.
 */
export function hubUrl(srv, { endpoint = 'ws', path, query = {} } = {}) {
    const u = new URL(endpoint === 'http' ? srv.httpWsUrl : srv.wsUrl);
    if (path !== undefined) u.pathname = path;
    for (const [k, v] of Object.entries(query)) u.searchParams.set(k, v);
    return u.href;
}

/* The URL and headers of a handshake: token undefined -> the server's token, null -> none;
 * via 'header' (Authorization: Bearer) or 'query' (?token=). */
function handshake(srv, { endpoint, path, token, via = 'header', origin, headers = {}, query = {} }) {
    const tok = token === undefined ? srv.token : token;
    const h = { ...headers };
    const q = { ...query };
    if (tok !== null) {
        if (via === 'query') q.token = tok;
        else h.Authorization = `Bearer ${tok}`;
    }
    if (origin !== undefined) h.Origin = origin;
    return { url: hubUrl(srv, { endpoint, path, query: q }), headers: h };
}

export class WsClient {
    constructor(ws, url) {
        this.ws = ws;
        this.url = url;
        this.log = []; // {msg, at, frame}: every message in arrival order
        this.queue = []; // log entries not yet taken by next()
        this.frames = 0; // text frames received
        this.arrayFrames = 0; // of which held a JSON array
        this.binaryFrames = 0;
        this.unparseable = []; // text frames that were not JSON
        this.closeInfo = null; // {code, reason} once closed
        this.error = null;
        this.waiters = new Set();
        this.closed = new Promise((resolve) => {
            ws.on('close', (code, reason) => {
                this.closeInfo = { code, reason: reason.toString() };
                for (const w of this.waiters) w.check();
                resolve(this.closeInfo);
            });
        });
        ws.on('error', (e) => {
            this.error = e;
        });
        ws.on('message', (data, isBinary) => this.onFrame(data, isBinary));
    }

    /* Open a connection; rejects with the status and body when the server refuses the upgrade. */
    static connect(srv, opts = {}) {
        const { url, headers } = handshake(srv, opts);
        const timeoutMs = opts.timeoutMs ?? DEFAULT_WAIT_MS;
        return new Promise((resolve, reject) => {
            const ws = new WebSocket(url, { headers, handshakeTimeout: timeoutMs, ...opts.wsOptions });
            const client = new WsClient(ws, url);
            ws.once('open', () => resolve(client));
            ws.once('unexpected-response', (req, res) => {
                let body = '';
                res.on('data', (d) => (body += d));
                res.on('end', () => {
                    req.destroy();
                    reject(new Error(`WebSocket handshake to ${redact(url)} refused: HTTP ${res.statusCode} ${body}`));
                });
            });
            ws.once('error', (e) => reject(new Error(`WebSocket connect to ${redact(url)}: ${e.message}`)));
        });
    }

    /* Try a handshake that the server must refuse before the upgrade; returns {status, headers,
     * text, json} of the refusal, fails when the upgrade happens. */
    static refused(srv, opts = {}) {
        const { url, headers } = handshake(srv, opts);
        const timeoutMs = opts.timeoutMs ?? DEFAULT_WAIT_MS;
        return new Promise((resolve, reject) => {
            const ws = new WebSocket(url, { headers, handshakeTimeout: timeoutMs });
            ws.on('error', (e) => reject(new Error(`WebSocket handshake to ${redact(url)}: ${e.message}`)));
            ws.once('open', () => {
                ws.terminate();
                reject(new Error(`the server upgraded ${redact(url)} (headers ` +
                    `${JSON.stringify(Object.keys(headers))}) but should have refused it`));
            });
            ws.once('unexpected-response', (req, res) => {
                let text = '';
                res.setEncoding('utf8');
                res.on('data', (d) => (text += d));
                res.on('end', () => {
                    req.destroy();
                    let json;
                    try {
                        json = JSON.parse(text);
                    } catch {
                        json = undefined;
                    }
                    resolve({ status: res.statusCode, headers: res.headers, text, json });
                });
            });
        });
    }

    onFrame(data, isBinary) {
        const at = performance.now();
        const frame = ++this.frames;
        if (isBinary) {
            this.binaryFrames++;
            this.push({ type: '<binary frame>', bytes: data.length }, at, frame);
            return;
        }
        const text = data.toString('utf8');
        let v;
        try {
            v = JSON.parse(text);
        } catch {
            this.unparseable.push(text);
            this.push({ type: '<not JSON>', text: text.slice(0, 500) }, at, frame);
            return;
        }
        if (Array.isArray(v)) {
            this.arrayFrames++;
            for (const m of v) this.push(m, at, frame);
        } else {
            this.push(v, at, frame);
        }
    }

    push(msg, at, frame) {
        const e = { msg, at, frame };
        this.log.push(e);
        this.queue.push(e);
        for (const w of this.waiters) w.check();
    }

    /* Every message so far, in order. */
    get messages() {
        return this.log.map((e) => e.msg);
    }

    /* When a message arrived (performance.now()). */
    arrival(msg) {
        return this.log.find((e) => e.msg === msg)?.at;
    }

    get isOpen() {
        return this.ws.readyState === WebSocket.OPEN;
    }

    describeState(limit = 25) {
        const q = this.queue;
        const shown = q.slice(-limit).map((e) => `    ${short(e.msg)}`).join('\n');
        const conn = this.closeInfo
            ? `closed with code ${this.closeInfo.code} reason "${this.closeInfo.reason}"`
            : `open (${this.log.length} messages in ${this.frames} frames so far)`;
        return `connection ${conn}; ${q.length} message(s) not taken` +
            (q.length > limit ? ` (last ${limit} shown)` : '') + (q.length ? `:\n${shown}` : '');
    }

    /**
     * Take the first message not yet taken that matches `pred` (a function or an object of
     * members to match), waiting up to timeoutMs. Fails when the time is up or the connection
     * closes first; the error lists what arrived.
     */
    next(pred, timeoutMs = DEFAULT_WAIT_MS, what) {
        const match = matcher(pred);
        return this.wait(() => {
            const i = this.queue.findIndex((e) => match(e.msg));
            return i >= 0 ? { value: this.queue.splice(i, 1)[0].msg } : null;
        }, timeoutMs, what ?? describePred(pred), 'nothing matched');
    }

    /* Wait until cond() (looking at this.log, say) holds, checking at each message; takes nothing. */
    until(cond, timeoutMs = DEFAULT_WAIT_MS, what = 'a condition') {
        return this.wait(() => (cond() ? { value: undefined } : null), timeoutMs, what, 'not reached');
    }

    /* Resolve with the value of the first {value} that test() returns, checked now and at each
     * message; reject when the connection closes first or after timeoutMs (the error says
     * `missed` and lists what arrived). */
    wait(test, timeoutMs, what, missed) {
        return new Promise((resolve, reject) => {
            const w = {
                check: () => {
                    const hit = test();
                    if (hit) {
                        done();
                        resolve(hit.value);
                    } else if (this.closeInfo) {
                        done();
                        reject(new Error(`waiting for ${what} on ${redact(this.url)}: ` +
                            `the connection closed first; ${this.describeState()}`));
                    }
                },
            };
            const timer = setTimeout(() => {
                done();
                reject(new Error(`waiting for ${what} on ${redact(this.url)}: ` +
                    `${missed} within ${timeoutMs} ms; ${this.describeState()}`));
            }, timeoutMs);
            const done = () => {
                clearTimeout(timer);
                this.waiters.delete(w);
            };
            this.waiters.add(w);
            w.check();
        });
    }

    /* Take n matching messages, in order. */
    async take(pred, n, timeoutMs = DEFAULT_WAIT_MS, what) {
        const out = [];
        const end = Date.now() + timeoutMs;
        for (let i = 0; i < n; i++) {
            out.push(await this.next(pred, Math.max(1, end - Date.now()),
                `${what ?? describePred(pred)} (${i + 1} of ${n})`));
        }
        return out;
    }

    /* Take every message not yet taken that matches (default: all), without waiting. */
    drain(pred) {
        const match = matcher(pred);
        const out = [];
        this.queue = this.queue.filter((e) => {
            if (match(e.msg)) {
                out.push(e.msg);
                return false;
            }
            return true;
        });
        return out;
    }

    /* Messages not yet taken that match, without taking them. */
    pending(pred) {
        const match = matcher(pred);
        return this.queue.filter((e) => match(e.msg)).map((e) => e.msg);
    }

    send(obj) {
        this.ws.send(JSON.stringify(obj));
    }

    sendText(s) {
        this.ws.send(s);
    }

    sendBinary(buf) {
        this.ws.send(buf, { binary: true });
    }

    /* Send a ping (JSON, or the plain text form) and take its pong: the connection still works. */
    async ping({ text = false, timeoutMs = DEFAULT_WAIT_MS } = {}) {
        if (text) this.sendText('ping');
        else this.send({ op: 'ping' });
        return this.next({ type: 'pong' }, timeoutMs, 'a pong');
    }

    /**
     * Subscribe and take the `subscribed` message, and the snapshot when recovered is false (an
     * execution:<id> topic has none: its state is read over HTTP).
     * since: {epoch, seq}; text: use the plain text form. Returns {subscribed, snapshot}.
     */
    async subscribe(topic, { since, text = false, timeoutMs = DEFAULT_WAIT_MS } = {}) {
        if (text) this.sendText(`subscribe:${topic}`);
        else this.send(since === undefined ? { op: 'subscribe', topic } : { op: 'subscribe', topic, since });
        const subscribed = await this.next({ type: 'subscribed', topic }, timeoutMs, `subscribed to ${topic}`);
        let snapshot = null;
        if (subscribed.recovered === false && !topic.startsWith('execution:')) {
            snapshot = await this.next({ type: 'snapshot', topic }, timeoutMs, `the snapshot of ${topic}`);
        }
        return { subscribed, snapshot };
    }

    /* Wait for the close; returns {code, reason}. */
    async waitClose(timeoutMs = DEFAULT_WAIT_MS) {
        const r = await Promise.race([
            this.closed,
            new Promise((resolve) => setTimeout(resolve, timeoutMs).unref()).then(() => null),
        ]);
        assert.ok(r, `the server did not close ${redact(this.url)} within ${timeoutMs} ms; ${this.describeState()}`);
        return r;
    }

    /* Close from our side (normal closure) and wait for it; terminate if it takes too long. */
    async close(timeoutMs = 5000) {
        if (this.closeInfo) return this.closeInfo;
        try {
            this.ws.close(1000);
        } catch {
            /* closing already */
        }
        const r = await Promise.race([
            this.closed,
            new Promise((resolve) => setTimeout(resolve, timeoutMs).unref()).then(() => null),
        ]);
        if (!r) this.ws.terminate();
        return this.closed;
    }

    /* No frame was anything but a JSON text message. */
    assertWellFormed() {
        assert.equal(this.binaryFrames, 0, `the server sent ${this.binaryFrames} binary frame(s)`);
        assert.deepEqual(this.unparseable, [], 'the server sent text frames that are not JSON');
    }
}

/* A URL with its token parameter hidden, for messages. */
export function redact(url) {
    return url.replace(/token=[^&]*/, 'token=<redacted>');
}

/* Open a client and subscribe it to topics; returns the client with .subs[topic]. */
export async function subscribed(srv, topics, opts = {}) {
    const c = await WsClient.connect(srv, opts);
    c.subs = {};
    for (const t of [].concat(topics)) c.subs[t] = await c.subscribe(t);
    return c;
}

/* Close every client given, ignoring failures (for finally blocks). */
export async function closeAll(...clients) {
    await Promise.all(clients.flat().filter(Boolean).map((c) => c.close().catch(() => {})));
}

/* Seqs strictly increase over the update messages (delta, event) of a list. */
export function assertSeqsIncrease(msgs, what = 'updates') {
    let prev = -Infinity;
    for (const m of msgs.filter(isUpdate)) {
        assert.equal(typeof m.seq, 'number', `${what}: seq should be a number: ${short(m)}`);
        assert.ok(Number.isInteger(m.seq), `${what}: seq should be an integer: ${short(m)}`);
        assert.ok(m.seq > prev, `${what}: seq ${m.seq} after ${prev} does not increase: ${short(m)}`);
        prev = m.seq;
    }
}

// ---------------------------------------------------------------------------------------------
// /metrics

/* Parse the Prometheus text format into [{name, labels, value}]. */
export function parseMetrics(text) {
    const samples = [];
    const types = {};
    for (const line of text.split('\n')) {
        let m = line.match(/^# TYPE (\S+) (\S+)$/);
        if (m) types[m[1]] = m[2];
        if (line === '' || line.startsWith('#')) continue;
        m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( \d+)?$/);
        if (!m) continue;
        const labels = {};
        if (m[3]) {
            for (const lm of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[lm[1]] = lm[2];
        }
        samples.push({ name: m[1], labels, value: Number(m[4] === '+Inf' ? Infinity : m[4]) });
    }
    return { samples, types };
}

/* Sum of the samples of a metric whose labels include `labels`; null when there are none. */
export function metricSum(parsed, name, labels = {}) {
    const f = parsed.samples.filter((s) => s.name === name &&
        Object.entries(labels).every(([k, v]) => s.labels[k] === v));
    return f.length === 0 ? null : f.reduce((a, s) => a + s.value, 0);
}

export async function scrape(srv) {
    const r = await srv.api('/metrics');
    assert.equal(r.status, 200, `GET /metrics -> ${r.status} ${r.text}`);
    return parseMetrics(r.text);
}
