// export.test.mjs - GET /api/v0/executions/{id}/export and `aei trace export|import`: the JSON
// export in tree pre-order with the waiting decisions after the tree, re-imported into a fresh
// server and exported again unchanged but for server times; the Markdown export against
// tests/e2e/golden/export.md; streaming over many pages, HEAD, errors, clients that leave and
// a server that stops mid-export.
//
// The golden Markdown is made deterministic by fixed decision ids and agent-side values; the
// only server times in it (the execution's start and end) are replaced by <server time> before
// comparing. Set AEI_UPDATE_GOLDEN=1 to rewrite the file after a deliberate format change.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
    AEID, assertError, describeEachStore, sleep, startAeid, tempDir, uniqueId,
} from './lib/harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const GOLDEN = path.join(HERE, 'golden', 'export.md');
const AEI = process.env.AEI ?? path.join(path.dirname(AEID), 'aei');
const SERVER_TIME = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z/g;

function decision(execution, id, parent = null, extra = {}) {
    return {
        decision_id: id,
        execution_id: execution,
        agent_id: 'planner-1',
        parent_decision_id: parent,
        reasoning_context: `why ${id}`,
        confidence_score: 70,
        alternatives_considered: [{ option: 'wait', reason_rejected: 'too slow', score: 0.2 }],
        selected_outcome: `did ${id}`,
        kind: 'tool_selection',
        cost_usd: 0.01,
        ...extra,
    };
}

async function postAll(srv, decisions) {
    for (let i = 0; i < decisions.length; i += 1000) {
        const r = await srv.api('/api/v0/traces', { body: decisions.slice(i, i + 1000) });
        assert.equal(r.status, 200, r.text);
    }
}

/* A tree of n decisions, branching three ways with short chains here and there (a few dozen
 * levels deep at most); ids sort nowhere near pre-order. */
function bigTree(execution, n, { reasoningBytes = 40 } = {}) {
    const out = [];
    for (let i = 0; i < n; i++) {
        const p = i % 50 < 5 ? i - 1 : Math.floor((i - 1) / 3);
        const parent = i === 0 ? null : `${execution}-n${p}`;
        out.push(decision(execution, `${execution}-n${i}`, parent,
            { reasoning_context: 'r'.repeat(reasoningBytes) + ` ${i}` }));
    }
    return out;
}

function exportOf(srv, execution, format) {
    const q = format ? `?format=${format}` : '';
    return srv.api(`/api/v0/executions/${execution}/export${q}`, { timeoutMs: 60000 });
}

function runAei(args, { env = {} } = {}) {
    return new Promise((resolve) => {
        execFile(AEI, args, { env: { ...process.env, AEI_TOKEN: '', ...env }, maxBuffer: 1 << 28 },
            (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr }));
    });
}

/* The decisions of a JSON export without the server's times of record. */
function withoutServerTimes(list) {
    return list.map(({ timestamp, ...rest }) => rest);
}

/* GET over a raw socket: resolves with everything received until the server closed. `onData`
 * sees each piece and the socket. */
function rawGet(srv, target, onData = () => {}) {
    return new Promise((resolve) => {
        const sock = net.connect(srv.port, '127.0.0.1');
        const pieces = [];
        sock.on('connect', () => sock.write(`GET ${target} HTTP/1.1\r\nHost: x\r\n` +
            `Authorization: Bearer ${srv.token}\r\nConnection: close\r\n\r\n`));
        sock.on('data', (d) => {
            pieces.push(d);
            onData(d, sock);
        });
        sock.on('error', () => {});
        sock.on('close', () => resolve(Buffer.concat(pieces)));
    });
}

describeEachStore('trace export', (srv, store) => {
    it('JSON: the tree in pre-order with depth, then the decisions waiting for their parent', async () => {
        const ex = uniqueId('run');
        // a ─ b ─ d, a ─ c; "w" names a parent that never comes; "v" is w's child
        // One at a time, so that siblings are in a known arrival order (b before c).
        for (const [id, parent] of [['w', 'gone'], ['d', 'b'], ['a', null], ['b', 'a'], ['c', 'a'], ['v', 'w']]) {
            await postAll(srv, [decision(ex, `${ex}-${id}`, parent && `${ex}-${parent}`)]);
        }
        const r = await exportOf(srv, ex);
        assert.equal(r.status, 200, r.text);
        assert.match(r.headers.get('content-type'), /^application\/json/);
        assert.equal(r.headers.get('transfer-encoding'), 'chunked');
        assert.equal(r.headers.get('content-length'), null);
        const names = r.json.map((d) => d.decision_id.slice(ex.length + 1));
        assert.deepEqual(names, ['a', 'b', 'd', 'c', 'w', 'v']);
        assert.deepEqual(r.json.map((d) => d.depth), [0, 1, 2, 1, null, null]);
        const same = await exportOf(srv, ex, 'json');
        assert.equal(same.text, r.text, 'format=json is the default');
    });

    it('an execution that ended with a failure exports in both formats (and leaks nothing at shutdown)', async () => {
        const ex = uniqueId('run');
        await postAll(srv, [decision(ex, `${ex}-a`), decision(ex, `${ex}-b`, `${ex}-a`)]);
        const end = await srv.api(`/api/v0/executions/${ex}`, { method: 'PATCH', body: { status: 'failed', failure: { error: 'tool timed out' } } });
        assert.equal(end.status, 200, end.text);
        for (const format of ['json', 'markdown']) {
            const r = await exportOf(srv, ex, format);
            assert.equal(r.status, 200, r.text);
            assert.match(r.text, new RegExp(`${ex}-b`));
        }
        assert.match((await exportOf(srv, ex, 'markdown')).text, /failed/);
    });

    it('JSON round trip: export, import into a fresh server with aei trace import, export again', async () => {
        const ex = uniqueId('run');
        const ds = bigTree(ex, 1234);
        ds[5].timestamp = '2026-01-02T03:04:05.678Z'; // the agent's clock survives the trip
        ds[6].reasoning_context = { plan: ['x', 'y'], note: 'an object' };
        ds[7] = { ...ds[7], labels: { team: 'blue' }, duration_ms: 12.5, tokens: 300, kind: null };
        ds.push(decision(ex, `${ex}-orphan`, `${ex}-missing`));
        await postAll(srv, ds);
        const first = await exportOf(srv, ex);
        assert.equal(first.status, 200);
        assert.equal(first.json.length, 1235);
        assert.equal(first.json[first.json.length - 1].decision_id, `${ex}-orphan`);

        const dir = tempDir('aei-export-');
        const file = path.join(dir, 'export.json');
        const out = await runAei(['trace', 'export', ex, '--server', `127.0.0.1:${srv.port}`,
            '-o', file], { env: { AEI_TOKEN: srv.token } });
        assert.equal(out.code, 0, out.stderr);
        assert.equal(readFileSync(file, 'utf8'), first.text, 'the CLI writes what the server sent');

        const fresh = await startAeid({ store });
        try {
            const imp = await runAei(['trace', 'import', file, '--server', `127.0.0.1:${fresh.port}`],
                { env: { AEI_TOKEN: fresh.token } });
            assert.equal(imp.code, 0, imp.stderr);
            assert.match(imp.stdout, /imported 1235 decisions in 2 requests: 1235 stored, 0 already there/);
            const second = await exportOf(fresh, ex);
            assert.equal(second.status, 200);
            assert.deepEqual(withoutServerTimes(second.json), withoutServerTimes(first.json));
            assert.notEqual(second.json[0].timestamp, first.json[0].timestamp, 'server times are new');
            assert.equal(second.json.find((d) => d.decision_id === ds[5].decision_id).agent_ts,
                '2026-01-02T03:04:05.678000Z');
            // Importing again stores nothing twice.
            const again = await runAei(['trace', 'import', file, '--server', `127.0.0.1:${fresh.port}`],
                { env: { AEI_TOKEN: fresh.token } });
            assert.match(again.stdout, /1235 decisions in 2 requests: 0 stored, 1235 already there/);
            // A small export posts back as it is, in one request.
            const small = uniqueId('run');
            await postAll(srv, [decision(small, `${small}-r`), decision(small, `${small}-k`, `${small}-r`)]);
            const smallExport = await exportOf(srv, small);
            const post = await fresh.api('/api/v0/traces', { rawBody: smallExport.text });
            assert.equal(post.status, 200, post.text);
            assert.equal(post.json.stored, 2);
            const back = await exportOf(fresh, small);
            assert.deepEqual(withoutServerTimes(back.json), withoutServerTimes(smallExport.json));
        } finally {
            await fresh.close();
        }
    });

    it('Markdown matches tests/e2e/golden/export.md (server times normalized)', async () => {
        const ex = 'golden-run';
        const deep = [];
        for (let i = 1; i <= 10; i++) {
            deep.push({ decision_id: `deep-${i}`, execution_id: ex, agent_id: 'planner-1',
                parent_decision_id: i === 1 ? 'plan' : `deep-${i - 1}`, kind: 'refinement',
                selected_outcome: `refine ${i}`, confidence_score: 50 + i });
        }
        await postAll(srv, [
            { decision_id: 'plan', execution_id: ex, agent_id: 'planner-1', kind: 'llm_call',
              reasoning_context: 'The user asked for a | pipe, `code`, <b>bold</b> and <script>x</script>.\n' +
                  'Second line with ``` fences ``` and a trailing backslash \\\n\n' + 'long '.repeat(120) +
                  '\n- not a list\n1. not a list either\n    not code\n===\n# not a heading',
              confidence_score: 87.5,
              alternatives_considered: [
                  { option: 'search | web', reason_rejected: 'slow\nand costly', score: 0.25 },
                  { option: '*guess*', reason_rejected: '<i>unreliable</i> `really`' },
                  { option: 'ask [the user](http://x)' },
              ],
              selected_outcome: 'call the **tool** <now>', cost_usd: 0.0123, duration_ms: 850,
              tokens: 1200, timestamp: '2026-11-24T15:00:00Z' },
            { decision_id: 'tool', execution_id: ex, agent_id: 'planner-1', parent_decision_id: 'plan',
              kind: 'tool_selection', reasoning_context: { tool: 'search', args: { q: 'a|b' } },
              selected_outcome: 'search', confidence_score: 91 },
            { decision_id: 'answer', execution_id: ex, agent_id: 'planner-1', parent_decision_id: 'plan',
              selected_outcome: null },
            ...deep,
            { decision_id: 'stray', execution_id: ex, agent_id: 'planner-1',
              parent_decision_id: 'never-sent', kind: 'llm_call', selected_outcome: 'lost # heading?' },
        ]);
        const r = await exportOf(srv, ex, 'markdown');
        assert.equal(r.status, 200, r.text);
        assert.equal(r.headers.get('content-type'), 'text/markdown; charset=utf-8');
        const got = r.text.replace(SERVER_TIME, '<server time>');
        if (process.env.AEI_UPDATE_GOLDEN === '1' && store === 'sqlite') writeFileSync(GOLDEN, got);
        assert.ok(existsSync(GOLDEN), `no ${GOLDEN}; run with AEI_UPDATE_GOLDEN=1 to write it`);
        assert.equal(got, readFileSync(GOLDEN, 'utf8'));
    });

    it('many pages: 2,600 decisions in both formats, each decision once and in order', async () => {
        const ex = uniqueId('run');
        const ds = bigTree(ex, 2600);
        await postAll(srv, ds);
        const all = await srv.api(`/api/v0/executions/${ex}/decisions?limit=1000`);
        const tree = [];
        let next = null;
        do {
            const q = next ? `&cursor=${next}` : '';
            const page = await srv.api(`/api/v0/executions/${ex}/decisions?limit=1000${q}`);
            tree.push(...page.json.decisions.map((d) => d.decision_id));
            next = page.json.next;
        } while (next);
        assert.equal(all.status, 200);
        const j = await exportOf(srv, ex);
        assert.deepEqual(j.json.map((d) => d.decision_id), tree);
        const md = await exportOf(srv, ex, 'markdown');
        const ids = [...md.text.matchAll(/ · `([^`]+)`\n/g)].map((m) => m[1]);
        assert.deepEqual(ids, tree);
        assert.match(md.text, /_2600 decisions exported from aeid\._\n$/);
    });

    it('HEAD answers the headers alone; errors: 404, 400 naming format, unknown parameter, 401, 405', async () => {
        const ex = uniqueId('run');
        await postAll(srv, [decision(ex, `${ex}-a`)]);
        const head = await srv.api(`/api/v0/executions/${ex}/export?format=markdown`, { method: 'HEAD' });
        assert.equal(head.status, 200);
        assert.equal(head.text, '');
        assert.match(head.headers.get('content-type'), /^text\/markdown/);
        const headMissing = await srv.api('/api/v0/executions/nope/export', { method: 'HEAD' });
        assert.equal(headMissing.status, 404);

        assertError(await exportOf(srv, 'no-such-run'), 404, 'not_found', { mentions: ['no-such-run'] });
        assertError(await exportOf(srv, ex, 'xml'), 400, 'invalid_parameter',
            { field: 'format', mentions: ['json or markdown', 'xml'] });
        assertError(await srv.api(`/api/v0/executions/${ex}/export?fmt=json`), 400,
            'invalid_parameter', { field: 'fmt' });
        assertError(await srv.api(`/api/v0/executions/${ex}/export`, { token: null }), 401, 'unauthorized');
        const post = await srv.api(`/api/v0/executions/${ex}/export`, { body: {} });
        assertError(post, 405, 'method_not_allowed');
        assert.equal(post.headers.get('allow'), 'GET, HEAD');
    });

    it('keeps the connection: a request after an export on the same keep-alive socket', async () => {
        const ex = uniqueId('run');
        await postAll(srv, bigTree(ex, 700));
        const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
        const get = (p) => new Promise((resolve, reject) => {
            const req = http.get({ host: '127.0.0.1', port: srv.port, path: p, agent,
                headers: { authorization: `Bearer ${srv.token}` } }, (res) => {
                let body = '';
                res.setEncoding('utf8');
                res.on('data', (d) => (body += d));
                res.on('end', () => resolve({ status: res.statusCode, body, reused: req.reusedSocket }));
            });
            req.on('error', reject);
        });
        try {
            const a = await get(`/api/v0/executions/${ex}/export`);
            assert.equal(a.status, 200);
            assert.equal(JSON.parse(a.body).length, 700);
            const b = await get(`/api/v0/executions/${ex}`);
            assert.equal(b.status, 200);
            assert.equal(b.reused, true, 'the second request went on the same connection');
        } finally {
            agent.destroy();
        }
    });

    it('a client that leaves mid-export costs nothing: the server goes on answering', async () => {
        const ex = uniqueId('run');
        await postAll(srv, bigTree(ex, 3000, { reasoningBytes: 2000 }));
        for (let i = 0; i < 3; i++) {
            const got = await rawGet(srv, `/api/v0/executions/${ex}/export?format=${i % 2 ? 'markdown' : 'json'}`,
                (d, sock) => sock.destroy());
            assert.match(got.toString('latin1'), /^HTTP\/1\.1 200/);
        }
        await sleep(300);
        const r = await exportOf(srv, ex);
        assert.equal(r.json.length, 3000);
    });

    it('exports are measured: aei_trace_export_seconds and aei_trace_exported_decisions_total', async () => {
        const before = await srv.api('/metrics');
        const count = (text, name) => Number((text.match(new RegExp(`^${name} (\\d+)`, 'm')) ?? [])[1]);
        const ex = uniqueId('run');
        await postAll(srv, bigTree(ex, 10));
        await exportOf(srv, ex);
        const after = await srv.api('/metrics');
        assert.match(after.text, /# TYPE aei_trace_export_seconds histogram/);
        assert.equal(count(after.text, 'aei_trace_export_seconds_count'),
            count(before.text, 'aei_trace_export_seconds_count') + 1);
        assert.equal(count(after.text, 'aei_trace_exported_decisions_total'),
            count(before.text, 'aei_trace_exported_decisions_total') + 10);
        assert.match(after.text,
            /aei_http_requests_total\{method="GET",route="\/api\/v0\/executions\/\{execution_id\}\/export",code="200"\}/);
    });

    it('aei trace export: stdout, markdown, and clear failures (404, 401, no server, bad id, --help)', async () => {
        const ex = uniqueId('run');
        await postAll(srv, [decision(ex, `${ex}-a`)]);
        const server = ['--server', `127.0.0.1:${srv.port}`];
        const ok = await runAei(['trace', 'export', ex, ...server, '--format', 'markdown'],
            { env: { AEI_TOKEN: srv.token } });
        assert.equal(ok.code, 0, ok.stderr);
        assert.match(ok.stdout, new RegExp(`^# Execution \`${ex}\``));
        const withFlag = await runAei(['trace', 'export', ex, ...server, '--token', srv.token]);
        assert.equal(withFlag.code, 0, withFlag.stderr);
        assert.equal(JSON.parse(withFlag.stdout).length, 1);

        const missing = await runAei(['trace', 'export', 'no-such', ...server], { env: { AEI_TOKEN: srv.token } });
        assert.equal(missing.code, 1);
        assert.match(missing.stderr, /answered 404: no execution "no-such"/);
        const dir = tempDir('aei-export-');
        const file = path.join(dir, 'out.md');
        const unauth = await runAei(['trace', 'export', ex, ...server, '-o', file]);
        assert.equal(unauth.code, 1);
        assert.match(unauth.stderr, /answered 401/);
        assert.match(unauth.stderr, /--token or AEI_TOKEN/);
        assert.equal(existsSync(file), false, 'no file for a failed export');
        const down = await runAei(['trace', 'export', ex, '--server', '127.0.0.1:1']);
        assert.equal(down.code, 1);
        assert.match(down.stderr, /cannot connect to 127\.0\.0\.1:1/);
        const bad = await runAei(['trace', 'export', 'a/b']);
        assert.equal(bad.code, 2);
        assert.match(bad.stderr, /execution id/);
        const fmt = await runAei(['trace', 'export', ex, '--format', 'xml']);
        assert.equal(fmt.code, 2);
        assert.match(fmt.stderr, /--format: expected json or markdown/);
        const help = await runAei(['trace', 'export', '--help']);
        assert.equal(help.code, 0);
        assert.match(help.stdout, /Usage: aei trace export <execution_id>/);
    });

    it('aei trace import: refuses what is not an export and names the bad decision by file index', async () => {
        const dir = tempDir('aei-import-');
        const server = ['--server', `127.0.0.1:${srv.port}`];
        const env = { env: { AEI_TOKEN: srv.token } };
        const notArray = path.join(dir, 'obj.json');
        writeFileSync(notArray, '{"decision_id": "x"}');
        const r1 = await runAei(['trace', 'import', notArray, ...server], env);
        assert.equal(r1.code, 1);
        assert.match(r1.stderr, /not a JSON array of decisions/);
        const ex = uniqueId('run');
        const list = [decision(ex, `${ex}-1`), decision(ex, `${ex}-2`), decision(ex, `${ex}-3`, null, { confidence_score: 400 })];
        const badFile = path.join(dir, 'bad.json');
        writeFileSync(badFile, JSON.stringify(list));
        const r2 = await runAei(['trace', 'import', badFile, ...server, '--batch', '2'], env);
        assert.equal(r2.code, 1);
        assert.match(r2.stderr, /decision 2 of the file/);
        assert.match(r2.stderr, /the 2 decisions before it were imported/);
        const r3 = await runAei(['trace', 'import', path.join(dir, 'none.json'), ...server], env);
        assert.equal(r3.code, 1);
        assert.match(r3.stderr, /cannot read/);
        const r4 = await runAei(['trace', 'import', badFile, '--batch', '1001']);
        assert.equal(r4.code, 2);
    });
});

describeEachStore('trace export while stopping', (srv) => {
    it('a server stopping mid-export cuts it short (no last chunk) and exits cleanly', async () => {
        const ex = uniqueId('run');
        await postAll(srv, bigTree(ex, 6000, { reasoningBytes: 3000 }));
        let stopping = null;
        const got = await rawGet(srv, `/api/v0/executions/${ex}/export`, (d, sock) => {
            if (stopping) return;
            // Hold the socket so that the export is surely still running when SIGTERM comes.
            sock.pause();
            stopping = srv.stop();
            setTimeout(() => sock.resume(), 300);
        });
        const r = await stopping;
        assert.equal(r.code, 0);
        const text = got.toString('latin1');
        assert.match(text, /^HTTP\/1\.1 200/);
        assert.ok(!text.endsWith('\r\n0\r\n\r\n'), 'the export must not look complete');
        assert.ok(text.length < 6000 * 3000, `cut short: ${text.length} bytes`);
    });
});
