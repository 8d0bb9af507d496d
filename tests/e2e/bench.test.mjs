// bench.test.mjs - `aei bench`, the load generator, against the real aeid on both stores: a
// closed-loop and an open-loop run report what they sent and what came back, the heartbeats are
// stored, --cpu-pid measures the server's CPU beside the client's; bad command lines and an
// unreachable server are refused with a line that names the problem.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { AEID, describeEachStore, freePort, tempDir } from './lib/harness.mjs';

const execFileP = promisify(execFile);
const AEI = path.join(path.dirname(AEID), 'aei');

/* Runs aei bench; resolves {code, stdout, stderr, json} whatever the exit status. */
async function bench(args, token) {
    const file = path.join(tempDir('aei-bench-'), 'out.json');
    const env = { ...process.env };
    delete env.AEI_TOKEN;
    if (token) env.AEI_TOKEN = token;
    let r;
    try {
        r = { code: 0, ...(await execFileP(AEI, ['bench', '--json', file, ...args], { env, timeout: 60000 })) };
    } catch (e) {
        r = { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
    try {
        r.json = JSON.parse(readFileSync(file, 'utf8'));
    } catch {
        r.json = null;
    }
    return r;
}

function server(srv) {
    return ['--server', `127.0.0.1:${srv.port}`];
}

describeEachStore('aei bench', (srv) => {
    it('a closed-loop run reports every request answered and stores each agent', async () => {
        const r = await bench([...server(srv), '--agents', '8', '--duration', '1', '--warmup', '0.2',
            '--label', 'closed'], srv.token);
        assert.equal(r.code, 0, r.stderr);
        const j = r.json;
        assert.equal(j.label, 'closed');
        assert.equal(j.mode, 'closed');
        assert.equal(j.agents, 8);
        assert.ok(j.requests > 50, `only ${j.requests} requests`);
        assert.equal(j.ok, j.requests);
        assert.equal(j.errors.total, 0);
        assert.deepEqual(j.errors.http, {}, 'statuses other than 2xx');
        const l = j.latency_ms;
        assert.ok(l.p50 > 0 && l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.max, JSON.stringify(l));
        assert.match(r.stdout, /^throughput +[0-9.]+ req\/s$/m);
        const agents = (await srv.api('/api/v0/agents')).json.agents.map((a) => a.agent_id);
        for (let i = 0; i < 8; i++) assert.ok(agents.includes(`bench-${String(i).padStart(6, '0')}`), agents.join());
    });

    it('an open-loop run keeps its rate and measures from the scheduled send', async () => {
        const r = await bench([...server(srv), '--agents', '10', '--rate', '400', '--duration', '1.5',
            '--warmup', '0.3'], srv.token);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.json.mode, 'open');
        assert.equal(r.json.rate, 400);
        assert.ok(Math.abs(r.json.rps - 400) < 40, `rps ${r.json.rps}`);
        assert.equal(r.json.errors.total, 0);
        assert.match(r.stdout, /\(from scheduled send\)/);
    });

    it('--json - writes the JSON alone to stdout, to be piped, and the summary to stderr', async () => {
        const env = { ...process.env, AEI_TOKEN: srv.token };
        const { stdout, stderr } = await execFileP(AEI, ['bench', ...server(srv), '--agents', '2',
            '--duration', '0.5', '--warmup', '0', '--quiet', '--json', '-'], { env, timeout: 60000 });
        const j = JSON.parse(stdout);
        assert.equal(j.agents, 2);
        assert.ok(j.requests > 0 && j.ok === j.requests, JSON.stringify(j));
        assert.match(stderr, /^throughput +[0-9.]+ req\/s$/m);
    });

    it("--cpu-pid measures the server's CPU beside the client's, in cores and per request", async () => {
        const r = await bench([...server(srv), '--agents', '10', '--rate', '1000', '--duration', '1.5',
            '--warmup', '0.3', '--cpu-pid', String(srv.proc.pid)], srv.token);
        assert.equal(r.code, 0, r.stderr);
        const { client, processes } = r.json.cpu;
        assert.ok(client.cpu_s > 0 && client.cores > 0 && client.us_per_request > 0, JSON.stringify(client));
        assert.equal(processes.length, 1);
        const p = processes[0];
        assert.equal(p.pid, srv.proc.pid);
        assert.equal(p.name, 'aeid');
        assert.equal(p.processes, 1);
        assert.ok(p.cpu_s > 0 && p.cores > 0 && p.cores < 4, JSON.stringify(p));
        /* cores over the window and CPU per request agree through the request rate */
        assert.ok(Math.abs(p.us_per_request - (p.cores * 1e6) / r.json.rps) < 0.01 * p.us_per_request + 0.1,
            JSON.stringify({ p, rps: r.json.rps }));
        assert.match(r.stdout, new RegExp(`^cpu +client [0-9.]+ cores, [0-9.]+ us/request; pid ${p.pid} \\(aeid, 1 process\\) [0-9.]+ cores, [0-9.]+ us/request$`, 'm'));
    });
});

describe('aei bench: a process tree, a process that ends, and bad command lines', () => {
    it('--cpu-pid counts the descendants of the process given, and says when one ends', async () => {
        /* A shell whose child spins for the whole run, and a process that ends before the window
         * does, measured during a run against a plain HTTP server. */
        const port = await freePort();
        const http = await import('node:http');
        const s = http.createServer((req, res) => {
            req.resume();
            req.on('end', () => res.writeHead(204).end());
        });
        await new Promise((ok) => s.listen(port, '127.0.0.1', ok));
        const tree = spawn('sh', ['-c', 'while :; do :; done & wait'], { stdio: 'ignore', detached: true });
        const brief = spawn('sleep', ['0.5'], { stdio: 'ignore' });
        try {
            const r = await bench(['--server', `127.0.0.1:${port}`, '--agents', '2', '--rate', '50',
                '--duration', '1.5', '--warmup', '0.2', '--cpu-pid', String(tree.pid), '--cpu-pid',
                String(brief.pid)]);
            assert.equal(r.code, 0, r.stderr);
            const [t, b] = r.json.cpu.processes;
            assert.equal(t.pid, tree.pid);
            assert.equal(t.processes, 2, JSON.stringify(t));
            assert.ok(t.cores > 0.3, `the spinning child is counted: ${JSON.stringify(t)}`);
            assert.equal(b.pid, brief.pid);
            assert.equal(b.gone, true, JSON.stringify(b));
            assert.match(r.stdout, new RegExp(`pid ${brief.pid} \\(sleep\\) gone during the run`));
        } finally {
            process.kill(-tree.pid, 'SIGKILL');
            s.close();
        }
    });

    it('refuses bad command lines with exit status 2 and the option named', async () => {
        const ended = spawn('true');
        await new Promise((ok) => ended.on('exit', ok));
        const cases = [
            [['--agents', '0'], /--agents/],
            [['--agents', 'many'], /--agents/],
            [['--rate', '-5'], /--rate/],
            [['--rate', '0.001'], /--rate/],
            [['--duration', 'soon'], /--duration/],
            [['--warmup', '-1'], /--warmup/],
            [['--threads', '0'], /--threads/],
            [['--cpu-pid', 'aeid'], /--cpu-pid: expected a whole number/],
            [['--cpu-pid', '0'], /--cpu-pid/],
            [['--cpu-pid', String(ended.pid)], new RegExp(`--cpu-pid ${ended.pid}: cannot read /proc/${ended.pid}/stat`)],
            [['--cpu-pid', '1', '--cpu-pid', '1', '--cpu-pid', '1', '--cpu-pid', '1', '--cpu-pid', '1'], /--cpu-pid: at most 4/],
            [['--memory-pid', String(ended.pid)], /--memory-pid/],
            [['--scenario', 'chaos'], /--scenario/],
            [['--execution-size', '10'], /--execution-size applies only with --traces/],
            [['--bogus'], /unknown option '--bogus'/],
            [['--agents'], /needs a value/],
            [['extra'], /unexpected argument 'extra'/],
        ];
        for (const [args, re] of cases) {
            const r = await bench(['--server', '127.0.0.1:1', ...args]);
            assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}, ${r.stderr}`);
            assert.match(r.stderr, re, args.join(' '));
            assert.equal(r.stderr.trim().split('\n').length, 1, `one line for ${args.join(' ')}: ${r.stderr}`);
            assert.equal(r.json, null, `no JSON left behind for ${args.join(' ')}`);
        }
    });

    it('says so when nothing listens at --server, and leaves no results file', async () => {
        const port = await freePort();
        const r = await bench(['--server', `127.0.0.1:${port}`, '--duration', '1']);
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, new RegExp(`127\\.0\\.0\\.1:${port}`));
        assert.equal(r.json, null);
    });
});
