// What aeid and aei refuse at start-up rather than misplace or split a store: a second aeid on
// one SQLite file, a mistyped SQLite path given to aei, a hub address that is the HTTP one; and
// listening addresses given by host name.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import {
    AEID, failOnSanitizerReport, freePort, randomToken, runAeid, sleep, startAeid, tempDir,
} from './lib/harness.mjs';

const execFileP = promisify(execFile);
const AEI = path.join(path.dirname(AEID), 'aei');

/* Runs aei to completion; resolves {code, stdout, stderr} whatever the exit status. */
async function aei(args, env = {}) {
    try {
        return { code: 0, ...(await execFileP(AEI, args, { env: { ...process.env, ...env }, timeout: 30000 })) };
    } catch (e) {
        return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
}

const lines = (s) => s.trim().split('\n').filter((l) => l.trim() !== '');

describe('a SQLite file serves one aeid', () => {
    let srv;
    before(async () => {
        srv = await startAeid({ store: 'sqlite' });
    });
    after(async () => {
        await srv?.close();
    });
    failOnSanitizerReport(() => srv);

    it('a second aeid on the same file is refused, and the first serves on', async () => {
        const r = await runAeid(['--http', `127.0.0.1:${await freePort()}`, '--ws', `127.0.0.1:${await freePort()}`,
            '--db', srv.dbUrl], { env: { AEI_TOKEN: randomToken() } });
        assert.equal(r.code, 1, `exit ${r.code}; stderr:\n${r.stderr}`);
        assert.equal(lines(r.stderr).length, 1, r.stderr);
        assert.match(r.stderr, /SQLite database .*aei\.db is in use by another aeid/);
        assert.equal((await fetch(`${srv.baseUrl}/healthz`)).status, 200);
    });

    it('aei works on the file while aeid runs (an agent token is listed with the role agent)', async () => {
        const key = srv.dbUrl.slice('sqlite:'.length) + '.audit-key';
        const made = await aei(['token', 'create', '--db', srv.dbUrl, '--key', key, '--team', 'red',
            '--agent', 'scout-1']);
        assert.equal(made.code, 0, made.stderr);
        const id = made.stdout.match(/token_id: (tk_[0-9a-f]+)/)[1];
        const r = await aei(['token', 'list', '--db', srv.dbUrl]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, new RegExp(`${id} +agent +red +scout-1 +agent `));
    });

    it('aeid starts on the file again once the first has stopped', async () => {
        await srv.stop();
        await srv.start();
        assert.equal((await fetch(`${srv.baseUrl}/healthz`)).status, 200);
    });
});

describe('aei refuses a SQLite path with no database behind it', () => {
    const missing = path.join(tempDir(), 'typo.db');
    for (const args of [
        ['token', 'list', '--db', `sqlite:${missing}`],
        ['token', 'create', '--db', `sqlite:${missing}`, '--team', 'red', '--user', 'al', '--role', 'viewer'],
        ['audit', 'verify', '--db', `sqlite:${missing}`],
    ]) {
        it(`aei ${args.slice(0, 2).join(' ')} names the path and creates nothing`, async () => {
            const r = await aei(args);
            assert.notEqual(r.code, 0, r.stdout);
            assert.match(r.stderr, new RegExp(missing.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')));
            assert.ok(!existsSync(missing), `${missing} was created`);
        });
    }
});

describe('aeid listening addresses', () => {
    const db = () => ['--db', 'sqlite:' + path.join(tempDir(), 'aei.db')];
    const env = { AEI_TOKEN: randomToken() };

    it('a host name is resolved: --http localhost:PORT answers on 127.0.0.1', async () => {
        const port = await freePort();
        const proc = spawn(AEID, ['--http', `localhost:${port}`, '--ws', `localhost:${await freePort()}`, ...db()],
            { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
        let stderr = '';
        proc.stderr.on('data', (d) => (stderr += d));
        const exited = new Promise((resolve) => proc.on('close', (code) => resolve(code)));
        try {
            const until = Date.now() + 10000;
            let status = 0;
            while (status !== 200 && Date.now() < until) {
                status = await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.status, () => 0);
                if (status !== 200) await sleep(100);
            }
            assert.equal(status, 200, `no answer on 127.0.0.1:${port}; stderr:\n${stderr}`);
            assert.match(stderr, new RegExp(`listening on http://127\\.0\\.0\\.1:${port} `));
        } finally {
            proc.kill('SIGTERM');
        }
        assert.equal(await exited, 0, stderr);
    });

    it('a host that does not resolve is refused, exit 2, naming it', async () => {
        const r = await runAeid(['--http', 'no-such-host.invalid:3000', ...db()], { env });
        assert.equal(r.code, 2, r.stderr);
        assert.equal(lines(r.stderr).length, 1, r.stderr);
        assert.match(r.stderr, /--http: .*resolves, got "no-such-host\.invalid:3000"/);
    });

    for (const [http, ws] of [['127.0.0.1', '127.0.0.1'], ['0.0.0.0', '127.0.0.1']]) {
        it(`--ws on the --http port (${http} and ${ws}) is refused, exit 2`, async () => {
            const port = await freePort();
            const r = await runAeid(['--http', `${http}:${port}`, '--ws', `${ws}:${port}`, ...db()], { env });
            assert.equal(r.code, 2, r.stderr);
            assert.equal(lines(r.stderr).length, 1, r.stderr);
            assert.match(r.stderr, /is also the --http address: give the hub a port of its own/);
        });
    }

    for (const bad of ['notaurl', 'http://dash.example, http://ops.example', 'http://dash.example/', 'http://']) {
        it(`--ws-origins "${bad}" is refused, exit 2`, async () => {
            const r = await runAeid([...db(), '--ws-origins', bad], { env });
            assert.equal(r.code, 2, r.stderr);
            assert.match(r.stderr, /^aeid: --ws-origins: expected origins such as http:\/\/localhost:5173/);
        });
    }

    it('an option given without its value says so', async () => {
        const r = await runAeid([...db(), '--http'], { env });
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stderr, /^aeid: --http needs a value/);
    });

    it('a bad value from the environment is named by its variable', async () => {
        const r = await runAeid(db(), { env: { ...env, AEI_REQUEST_TIMEOUT: 'soon' } });
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stderr, /^aeid: AEI_REQUEST_TIMEOUT \(read as --request-timeout\): expected .*, got "soon"/);
    });
});
