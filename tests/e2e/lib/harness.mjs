// harness.mjs - start the real aeid binary on a chosen store and talk to it over HTTP.
//
// Environment:
//   AEID              path to the aeid binary (default build/aeid from the repository root)
//   AEI_TEST_STORES   comma list of stores to run every suite on (default sqlite,postgres)
//   AEI_TEST_PG_URL   admin URL of a PostgreSQL cluster to create test databases in; when unset
//                     a throwaway cluster is started with scripts/pg.sh and stopped at exit
//   AEI_TEST_PGBOUNCER_URL  pgbouncer (transaction mode) in front of the AEI_TEST_PG_URL cluster;
//                     when unset, pgbouncer.test.mjs starts its own cluster and pgbouncer
//   AEI_TEST_START_TIMEOUT_MS  how long to wait for /healthz after start (default 20000)
//   AEI_TEST_STOP_TIMEOUT_MS   how long aeid may take to exit after SIGTERM (default 15000)

import assert from 'node:assert/strict';
import { spawn, execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, existsSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const AEID = process.env.AEID
    ? path.resolve(process.env.AEID)
    : path.join(REPO, 'build', 'aeid');
export const PG_SH = path.join(REPO, 'scripts', 'pg.sh');
export const STORES = (process.env.AEI_TEST_STORES ?? 'sqlite,postgres')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
for (const s of STORES) {
    if (s !== 'sqlite' && s !== 'postgres') {
        throw new Error(`AEI_TEST_STORES: unknown store "${s}"; use sqlite and/or postgres`);
    }
}
const START_TIMEOUT_MS = Number(process.env.AEI_TEST_START_TIMEOUT_MS ?? 20000);
const STOP_TIMEOUT_MS = Number(process.env.AEI_TEST_STOP_TIMEOUT_MS ?? 15000);

// Lines that mean a sanitizer (ASan, UBSan, LSan) found a bug, even if the exit code is 0.
export const SANITIZER_RE =
    /(ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:|SUMMARY: \w+Sanitizer)/;

export function randomToken() {
    return 'aei_test_' + randomBytes(24).toString('hex');
}

export function sleep(ms) {
    return new Promise((r) => setTimeout(r, ms));
}

/* A sleep that does not keep the process alive: for time limits raced against other promises. */
export function deadline(ms) {
    return new Promise((r) => setTimeout(r, ms).unref());
}

/* Polls fn() until it returns something truthy and returns that; fails naming `what` (and
 * more()) after timeoutMs. */
export async function until(what, fn, { timeoutMs = 20000, more = () => '' } = {}) {
    const end = Date.now() + timeoutMs;
    for (;;) {
        const v = await fn();
        if (v) return v;
        if (Date.now() > end) assert.fail(`timed out waiting for ${what}${more()}`);
        await sleep(50);
    }
}

/* Ask the kernel for a free loopback port. Another process may take it before aeid binds it;
 * start() retries once on a new port when aeid exits early. */
export function freePort() {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.unref();
        srv.on('error', reject);
        srv.listen(0, '127.0.0.1', () => {
            const { port } = srv.address();
            srv.close(() => resolve(port));
        });
    });
}

// ---------------------------------------------------------------------------------------------
// Temporary directories and PostgreSQL databases, cleaned up at process exit.

const tempDirs = new Set();
let pgCluster = null; // { dir, url } when we started one ourselves
let pgClusterPromise = null;

export function tempDir(prefix = 'aei-e2e-') {
    const d = mkdtempSync(path.join(os.tmpdir(), prefix));
    tempDirs.add(d);
    return d;
}

const liveProcs = new Set();

function cleanupAtExit() {
    for (const p of liveProcs) {
        try {
            p.kill('SIGKILL');
        } catch {
            /* gone */
        }
    }
    liveProcs.clear();
    if (pgCluster) {
        try {
            execFileSync(PG_SH, ['stop', pgCluster.dir], { stdio: 'ignore', timeout: 30000 });
        } catch {
            /* best effort */
        }
        pgCluster = null;
    }
    for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
    tempDirs.clear();
}
process.on('exit', cleanupAtExit);
for (const sig of ['SIGINT', 'SIGTERM']) {
    process.once(sig, () => {
        cleanupAtExit();
        process.exit(130);
    });
}

/* A throwaway cluster started once per process with scripts/pg.sh: {dir, url}. */
export function ownPgCluster() {
    if (!pgClusterPromise) {
        pgClusterPromise = (async () => {
            const dir = mkdtempSync(path.join(os.tmpdir(), 'aei-e2e-pg-'));
            pgCluster = { dir, url: null };
            try {
                const { stdout } = await execFileP(PG_SH, ['start', dir], { timeout: 60000 });
                pgCluster.url = stdout.trim().split('\n').pop();
            } catch (e) {
                throw new Error(`scripts/pg.sh start failed: ${e.stderr || e.message}`);
            }
            return pgCluster;
        })();
    }
    return pgClusterPromise;
}

/* The admin URL of a PostgreSQL cluster: AEI_TEST_PG_URL, or our own throwaway one. */
export async function pgAdminUrl() {
    if (process.env.AEI_TEST_PG_URL) return process.env.AEI_TEST_PG_URL;
    return (await ownPgCluster()).url;
}

/* pgbouncer in transaction pooling mode in front of a cluster: {adminUrl, bouncerUrl}.
 * AEI_TEST_PGBOUNCER_URL (with AEI_TEST_PG_URL as the cluster behind it) when set, else
 * scripts/pg.sh pgbouncer on our own throwaway cluster. */
export async function pgBouncer() {
    if (process.env.AEI_TEST_PGBOUNCER_URL && process.env.AEI_TEST_PG_URL) {
        return {
            adminUrl: process.env.AEI_TEST_PG_URL,
            bouncerUrl: process.env.AEI_TEST_PGBOUNCER_URL,
        };
    }
    const cluster = await ownPgCluster();
    try {
        const { stdout } = await execFileP(PG_SH, ['pgbouncer', cluster.dir], { timeout: 60000 });
        return { adminUrl: cluster.url, bouncerUrl: stdout.trim().split('\n').pop() };
    } catch (e) {
        throw new Error(`scripts/pg.sh pgbouncer failed: ${e.stderr || e.message}`);
    }
}

export function withDatabase(url, db) {
    const u = new URL(url);
    u.pathname = '/' + db;
    return u.href;
}

export async function psql(url, sql) {
    const { stdout } = await execFileP(
        'psql',
        ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-d', url, '-c', sql],
        { timeout: 30000 },
    );
    return stdout;
}

/* Create a fresh database; returns its URL on the admin cluster (or on `via` when given). */
export async function createPgDatabase({ adminUrl, via } = {}) {
    adminUrl = adminUrl ?? (await pgAdminUrl());
    const db = 'aei_e2e_' + randomBytes(6).toString('hex');
    // A linguistic collation, as on a typical production cluster: an ORDER BY that depends on the
    // database collation then shows up as a difference from SQLite's byte order.
    try {
        await psql(adminUrl, `CREATE DATABASE "${db}" TEMPLATE template0 LOCALE_PROVIDER icu ` +
            `ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'`);
    } catch {
        await psql(adminUrl, `CREATE DATABASE "${db}"`);
    }
    return { db, adminUrl, url: withDatabase(via ?? adminUrl, db) };
}

export async function dropPgDatabase(adminUrl, db) {
    try {
        await psql(adminUrl, `DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
    } catch {
        /* the cluster may be gone already */
    }
}

// ---------------------------------------------------------------------------------------------
// aeid

/* Environment for aeid: ours without any AEI_* variable, so nothing leaks in by accident. */
function baseEnv(extra = {}) {
    const env = {};
    for (const [k, v] of Object.entries(process.env)) {
        if (!k.startsWith('AEI_')) env[k] = v;
    }
    env.ASAN_OPTIONS ??= 'detect_leaks=1:abort_on_error=0';
    env.UBSAN_OPTIONS ??= 'print_stacktrace=1';
    for (const [k, v] of Object.entries(extra)) {
        if (v === undefined || v === null) delete env[k];
        else env[k] = String(v);
    }
    return env;
}

export function aeidExists() {
    return existsSync(AEID);
}

/* Run aeid to completion (for --help, bad options, refusal to start). */
export function runAeid(args, { env = {}, timeoutMs = 15000 } = {}) {
    return new Promise((resolve, reject) => {
        const child = spawn(AEID, args, { env: baseEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d) => (stdout += d));
        child.stderr.on('data', (d) => (stderr += d));
        const timer = setTimeout(() => {
            child.kill('SIGKILL');
            reject(new Error(`aeid ${args.join(' ')} did not exit in ${timeoutMs} ms; stderr:\n${stderr}`));
        }, timeoutMs);
        child.on('error', (e) => {
            clearTimeout(timer);
            reject(new Error(`cannot run ${AEID}: ${e.message} (build it with make build or set AEID)`));
        });
        child.on('close', (code, signal) => {
            clearTimeout(timer);
            resolve({ code, signal, stdout, stderr });
        });
    });
}

export class Aeid {
    /**
     * @param {object} opts
     * @param {'sqlite'|'postgres'} opts.store
     * @param {string[]} [opts.args]   extra command line arguments
     * @param {object} [opts.env]      extra environment (null deletes a variable)
     * @param {string} [opts.token]    bootstrap token (random by default)
     * @param {string} [opts.dbUrl]    use this database URL instead of a fresh one
     */
    constructor({ store = 'sqlite', args = [], env = {}, token, dbUrl } = {}) {
        this.store = store;
        this.args = args;
        this.env = env;
        this.token = token ?? randomToken();
        this.dbUrl = dbUrl ?? null;
        this.pgDb = null;
        this.proc = null;
        this.port = null;
        this.wsPort = null;
        this.stderr = ''; // everything aeid wrote to stderr, over all runs
        this.runStderr = ''; // stderr of the current run
        this.exits = []; // {code, signal} of each finished run
        this.crashes = []; // runs that ended without being asked to: {code, signal, stderr}
        this.expectExit = false;
    }

    get baseUrl() {
        return `http://127.0.0.1:${this.port}`;
    }

    /* The WebSocket hub: the --ws address (path "/") and the HTTP address (path "/ws"). */
    get wsUrl() {
        return `ws://127.0.0.1:${this.wsPort}/`;
    }

    get httpWsUrl() {
        return `ws://127.0.0.1:${this.port}/ws`;
    }

    async prepareStore() {
        if (this.dbUrl) return;
        if (this.store === 'sqlite') {
            this.dbUrl = 'sqlite:' + path.join(tempDir('aei-e2e-sqlite-'), 'aei.db');
        } else if (this.store === 'postgres') {
            const { db, adminUrl, url } = await createPgDatabase();
            this.pgDb = { db, adminUrl };
            this.dbUrl = url;
        } else {
            throw new Error(`unknown store ${this.store}`);
        }
    }

    /* Start aeid (again, on the same store) and wait until GET /healthz answers 200; with
     * samePorts, on the ports of the last run (clients reconnect to the same address). */
    async start({ samePorts = false } = {}) {
        assert.ok(!this.proc, 'aeid is already running');
        if (!aeidExists()) {
            throw new Error(`no aeid binary at ${AEID}; build it (make build) or set AEID`);
        }
        await this.prepareStore();
        for (let attempt = 0; ; attempt++) {
            try {
                await this.spawnOnce(samePorts && attempt === 0);
                return this;
            } catch (e) {
                // A port race shows up as an early exit; try once more on new ports.
                if (attempt >= 1 || !e.earlyExit) throw e;
            }
        }
    }

    async spawnOnce(samePorts = false) {
        if (!samePorts || !this.port) {
            this.port = await freePort();
            this.wsPort = await freePort();
        }
        const argv = [
            '--http', `127.0.0.1:${this.port}`,
            '--ws', `127.0.0.1:${this.wsPort}`,
            '--db', this.dbUrl,
            ...this.args,
        ];
        this.runStderr = '';
        this.expectExit = false;
        const proc = spawn(AEID, argv, {
            env: baseEnv({ AEI_TOKEN: this.token, ...this.env }),
            stdio: ['ignore', 'pipe', 'pipe'],
        });
        this.proc = proc;
        liveProcs.add(proc);
        proc.stdout.on('data', (d) => {
            this.stderr += d;
            this.runStderr += d;
        });
        proc.stderr.on('data', (d) => {
            this.stderr += d;
            this.runStderr += d;
        });
        proc.exited = new Promise((resolve) => {
            proc.on('close', (code, signal) => {
                liveProcs.delete(proc);
                this.exits.push({ code, signal });
                if (!this.expectExit && this.proc === proc) {
                    this.crashes.push({ code, signal, stderr: this.runStderr });
                    this.proc = null;
                }
                resolve({ code, signal });
            });
            proc.on('error', (e) => resolve({ code: null, signal: null, error: e }));
        });
        const deadline = Date.now() + START_TIMEOUT_MS;
        let exited = null;
        proc.exited.then((r) => (exited = r));
        while (Date.now() < deadline) {
            if (exited) {
                this.crashes.pop();
                this.proc = null;
                const err = new Error(
                    `aeid exited during start (code ${exited.code}, signal ${exited.signal}` +
                        `${exited.error ? `, ${exited.error.message}` : ''}); ` +
                        `args: ${argv.join(' ')}; stderr:\n${this.runStderr}`,
                );
                err.earlyExit = true;
                throw err;
            }
            try {
                const res = await fetch(`${this.baseUrl}/healthz`, {
                    signal: AbortSignal.timeout(1000),
                });
                await res.arrayBuffer();
                if (res.status === 200) return;
            } catch {
                /* not listening yet */
            }
            await sleep(50);
        }
        this.expectExit = true;
        proc.kill('SIGKILL');
        await proc.exited;
        this.proc = null;
        throw new Error(
            `aeid did not answer GET /healthz with 200 within ${START_TIMEOUT_MS} ms; ` +
                `stderr:\n${this.runStderr}`,
        );
    }

    get running() {
        return this.proc !== null;
    }

    /* Send a signal and wait for the exit; returns {code, signal, stderr}. */
    async signal(sig, { timeoutMs = STOP_TIMEOUT_MS } = {}) {
        assert.ok(this.proc, `aeid is not running${this.crashDescription()}`);
        const proc = this.proc;
        this.expectExit = true;
        proc.kill(sig);
        const timeout = deadline(timeoutMs).then(() => 'timeout');
        const r = await Promise.race([proc.exited, timeout]);
        if (r === 'timeout') {
            proc.kill('SIGKILL');
            await proc.exited;
            this.proc = null;
            throw new Error(`aeid did not exit within ${timeoutMs} ms of ${sig}; stderr:\n${this.runStderr}`);
        }
        this.proc = null;
        return { ...r, stderr: this.runStderr };
    }

    /* SIGTERM, then assert a clean exit: code 0 and no sanitizer report. */
    async stop() {
        const r = await this.signal('SIGTERM');
        assert.equal(
            r.code,
            0,
            `aeid should exit 0 after SIGTERM, got code ${r.code} signal ${r.signal}; stderr:\n${r.stderr}`,
        );
        this.assertNoSanitizerReport();
        return r;
    }

    /* SIGKILL: no assertion on the exit. */
    async kill() {
        return this.signal('SIGKILL');
    }

    crashDescription() {
        if (this.crashes.length === 0) return '';
        return this.crashes.map((c) =>
            `\naeid exited unasked (code ${c.code}, signal ${c.signal}); stderr:\n${c.stderr}`).join('');
    }

    /* After a crash (an exit nobody asked for), start again on the same store so that later
     * tests still run; close() still fails on the crash. */
    async ensureRunning() {
        const proc = this.proc;
        if (proc) {
            try {
                const r = await fetch(`${this.baseUrl}/healthz`, { signal: AbortSignal.timeout(2000) });
                await r.arrayBuffer();
                return;
            } catch {
                // Dead or dying: give the exit a moment to be seen.
                await Promise.race([proc.exited, deadline(2000)]);
            }
        }
        if (!this.proc) await this.start();
    }

    async restart() {
        if (this.proc) await this.stop();
        return this.start();
    }

    assertNoSanitizerReport() {
        const m = this.stderr.match(SANITIZER_RE);
        assert.ok(!m, `sanitizer report in aeid stderr:\n${this.stderr}`);
    }

    /* Stop (asserting a clean exit when it is running) and drop the store. */
    async close() {
        if (this.closed) return;
        this.closed = true;
        try {
            const problems = [];
            if (this.crashes.length > 0) problems.push(`aeid crashed during the tests:${this.crashDescription()}`);
            try {
                if (this.proc) await this.stop();
                else this.assertNoSanitizerReport();
            } catch (e) {
                problems.push(e.message);
            }
            assert.equal(problems.length, 0, problems.join('\n\n'));
        } finally {
            if (this.proc) {
                this.proc.kill('SIGKILL');
                await this.proc.exited;
                this.proc = null;
            }
            if (this.pgDb) {
                await dropPgDatabase(this.pgDb.adminUrl, this.pgDb.db);
                this.pgDb = null;
            }
        }
    }

    /**
     * A tiny fetch wrapper.
     * token: undefined -> the server's token; null -> no Authorization header; string -> that.
     * body: a value sent as JSON with Content-Type application/json.
     * rawBody: a string or Buffer sent as is (Content-Type application/json unless headers say
     * otherwise; a header set to null is left out).
     * Returns {status, headers, text, json, ms}; json is undefined when the body is not JSON.
     */
    async api(p, { method, body, token, headers = {}, rawBody, timeoutMs = 15000 } = {}) {
        const h = {};
        const tok = token === undefined ? this.token : token;
        if (tok !== null) h.authorization = `Bearer ${tok}`;
        let payload;
        if (rawBody !== undefined) {
            payload = rawBody;
            h['content-type'] = 'application/json';
        } else if (body !== undefined) {
            payload = JSON.stringify(body);
            h['content-type'] = 'application/json';
        }
        for (const [k, v] of Object.entries(headers)) {
            if (v === null) delete h[k.toLowerCase()];
            else h[k.toLowerCase()] = v;
        }
        const t0 = performance.now();
        const res = await fetch(this.baseUrl + p, {
            method: method ?? (payload !== undefined ? 'POST' : 'GET'),
            headers: h,
            body: payload,
            signal: AbortSignal.timeout(timeoutMs),
        });
        const text = await res.text();
        const ms = performance.now() - t0;
        let json;
        try {
            json = JSON.parse(text);
        } catch {
            json = undefined;
        }
        return { status: res.status, headers: res.headers, text, json, ms };
    }

    /* POST one heartbeat and assert 200; returns the response JSON. */
    async heartbeat(hb) {
        const r = await this.api('/api/v0/heartbeats', { body: hb });
        assert.equal(r.status, 200, `POST /api/v0/heartbeats ${JSON.stringify(hb)} -> ${r.status} ${r.text}`);
        return r.json;
    }
}

/* Declare the last test of a suite: SIGTERM -> exit 0, no crash, no sanitizer report. A test (not
 * only an after hook) so that runners that count failed tests see it. `get` returns the server. */
export function itShutsDownCleanly(get) {
    it('shuts down cleanly: exit 0 after SIGTERM, no crash, no sanitizer report', async () => {
        const srv = get();
        assert.ok(srv, 'the server never started');
        await srv.close();
    });
}

/* Fail the very test during which aeid printed a sanitizer report (call inside a describe). */
export function failOnSanitizerReport(get) {
    let mark = 0;
    beforeEach(() => {
        mark = get()?.stderr.length ?? 0;
    });
    afterEach(async () => {
        const srv = get();
        if (!srv) return;
        await sleep(20); // stderr may trail the HTTP response a little
        const fresh = srv.stderr.slice(mark);
        const m = fresh.match(SANITIZER_RE);
        assert.ok(!m, `aeid printed a sanitizer report during this test:\n${fresh}`);
    });
}

/**
 * Declare the suite `${title} (${store})` once per store in STORES, each with its own aeid.
 * `body(srv, store)` declares the tests; `srv` is an Aeid made up front and started in a before
 * hook, so use it only inside hooks and tests. Every test fails on a sanitizer report printed
 * during it, and the suite ends with itShutsDownCleanly(); an after hook closes aeid regardless.
 * @param {string} title
 * @param {(srv: Aeid, store: string) => void} body
 * @param {object} [startOptions]  more options for the Aeid constructor (args, env, ...)
 */
export function describeEachStore(title, body, startOptions = {}) {
    for (const store of STORES) {
        describe(`${title} (${store})`, () => {
            const srv = new Aeid({ ...startOptions, store });
            before(async () => {
                await srv.start();
            });
            after(async () => {
                await srv.close();
            });
            failOnSanitizerReport(() => srv);
            body(srv, store);
            itShutsDownCleanly(() => srv);
        });
    }
}

/**
 * Inside a describe: aeid on a PostgreSQL cluster of its own (scripts/pg.sh in a fresh
 * directory), for tests that halt the store (`PG_SH halt <dir>`) and start it again. Returns
 * {dir, srv}: srv is set once the before hook has run; the after hook closes both. Every test
 * fails on a sanitizer report printed during it.
 */
export function ownClusterAeid(prefix) {
    const parent = tempDir(prefix);
    const own = { dir: path.join(parent, 'pg'), srv: null };
    before(async () => {
        chmodSync(parent, 0o755); // PostgreSQL runs as the postgres user
        const url = execFileSync(PG_SH, ['start', own.dir], { encoding: 'utf8' }).trim();
        own.srv = new Aeid({ store: 'postgres', dbUrl: url });
        await own.srv.start();
    });
    after(async () => {
        await own.srv?.close();
        execFileSync(PG_SH, ['stop', own.dir]);
    });
    failOnSanitizerReport(() => own.srv);
    return own;
}

/* Start aeid on a store; the caller closes it with srv.close(). */
export async function startAeid(opts = {}) {
    const srv = new Aeid(opts);
    await srv.start();
    return srv;
}

// ---------------------------------------------------------------------------------------------
// Payloads and assertions

export function uniqueId(prefix = 'agent') {
    return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/* A valid heartbeat with every field set; overrides replace members (undefined removes one). */
export function makeHeartbeat(agentId, overrides = {}) {
    const hb = {
        agent_id: agentId,
        status: 'processing',
        metrics: { cpu_pct: 42.5, mem_pct: 61, tokens_per_min: 1200, cost_usd: 0.84, confidence: 87 },
        parent_agent_id: null,
        child_agent_ids: ['worker-1'],
        timestamp: new Date().toISOString(),
        name: 'Researcher',
        labels: { team: 'search' },
        schema_version: '0',
    };
    for (const [k, v] of Object.entries(overrides)) {
        if (v === undefined) delete hb[k];
        else hb[k] = v;
    }
    return hb;
}

export const RFC3339_MICROS_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;

/* Microseconds since the epoch of an RFC 3339 UTC time with microseconds. */
export function parseMicros(ts) {
    assert.match(ts, RFC3339_MICROS_RE, `time ${ts} is not RFC 3339 UTC with microseconds`);
    const ms = Date.parse(ts.slice(0, 23) + 'Z');
    return ms * 1000 + Number(ts.slice(23, 26));
}

export function assertNowish(ts, what, slackMs = 120000) {
    const us = parseMicros(ts);
    const diff = Math.abs(us / 1000 - Date.now());
    assert.ok(diff < slackMs, `${what} ${ts} should be the server's current time (off by ${diff} ms)`);
}

/* Assert an error response: status, code, and that the message mentions each of `mentions`. */
export function assertError(r, status, code, { mentions = [], field } = {}) {
    const ctx = `response ${r.status} ${r.text.slice(0, 500)}`;
    assert.equal(r.status, status, `expected status ${status}; ${ctx}`);
    assert.ok(r.json && typeof r.json === 'object', `error body should be JSON; ${ctx}`);
    assert.ok(r.json.error && typeof r.json.error === 'object', `error body needs "error"; ${ctx}`);
    assert.equal(r.json.error.code, code, `expected error code ${code}; ${ctx}`);
    assert.equal(typeof r.json.error.message, 'string', `error.message should be a string; ${ctx}`);
    assert.ok(r.json.error.message.length > 0, `error.message should not be empty; ${ctx}`);
    const ct = r.headers.get('content-type') ?? '';
    assert.match(ct, /^application\/json/, `error content type should be JSON; ${ctx}`);
    for (const m of mentions) {
        const re = m instanceof RegExp ? m : new RegExp(escapeRe(String(m)), 'i');
        assert.match(r.json.error.message, re, `error.message should mention ${m}; ${ctx}`);
    }
    if (field !== undefined) {
        assert.equal(r.json.error.field, field, `error.field should be ${field}; ${ctx}`);
    }
    return r.json.error;
}

export function escapeRe(s) {
    return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// ---------------------------------------------------------------------------------------------
// Raw sockets

/* Send raw bytes, read until the server closes or `timeoutMs` passes; returns what came back. */
export function rawRequest(port, data, { timeoutMs = 5000, endAfterWrite = false } = {}) {
    return new Promise((resolve) => {
        const sock = net.connect(port, '127.0.0.1');
        const chunks = [];
        let done = false;
        const finish = (how) => {
            if (done) return;
            done = true;
            clearTimeout(timer);
            sock.destroy();
            const text = Buffer.concat(chunks).toString('latin1');
            const m = text.match(/^HTTP\/1\.[01] (\d{3})/);
            resolve({ text, status: m ? Number(m[1]) : null, how });
        };
        const timer = setTimeout(() => finish('timeout'), timeoutMs);
        sock.on('connect', () => {
            sock.write(data);
            if (endAfterWrite) sock.end();
        });
        sock.on('data', (d) => chunks.push(d));
        sock.on('end', () => finish('end'));
        sock.on('close', () => finish('close'));
        sock.on('error', () => finish('error'));
    });
}

/* Open a socket and keep it; the caller writes and destroys it. */
export function openSocket(port) {
    return new Promise((resolve, reject) => {
        const sock = net.connect(port, '127.0.0.1');
        sock.once('connect', () => resolve(sock));
        sock.once('error', reject);
    });
}
