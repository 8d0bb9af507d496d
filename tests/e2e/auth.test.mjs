// auth.test.mjs - bearer-token authentication and the aeid command line.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import {
    REPO, assertError, describeEachStore, freePort, makeHeartbeat, randomToken, runAeid, tempDir, uniqueId,
} from './lib/harness.mjs';

const VERSION = readFileSync(path.join(REPO, 'meson.build'), 'utf8').match(/version\s*:\s*'([^']+)'/)[1];

describeEachStore('auth', (srv) => {
    const wrongTokens = [];

    it('GET /healthz needs no token', async () => {
        const r = await srv.api('/healthz', { token: null });
        assert.equal(r.status, 200, r.text);
        assert.deepEqual(r.json, { status: 'ok' });
    });

    it('no Authorization header -> 401 unauthorized with WWW-Authenticate Bearer realm', async () => {
        for (const p of ['/api/v0/agents', '/api/agents', '/metrics']) {
            const r = await srv.api(p, { token: null });
            assertError(r, 401, 'unauthorized');
            assert.equal(r.headers.get('www-authenticate'), 'Bearer realm="aei"', `GET ${p}`);
        }
    });

    it('POST without a token -> 401 before the body is looked at', async () => {
        const r = await srv.api('/api/v0/heartbeats', { token: null, rawBody: '{not json' });
        assertError(r, 401, 'unauthorized');
        const r2 = await srv.api('/api/v0/heartbeats', {
            token: null,
            body: makeHeartbeat(uniqueId('anon')),
        });
        assertError(r2, 401, 'unauthorized');
    });

    it('an Authorization header that is not Bearer -> 401 unauthorized', async () => {
        for (const value of [
            `Basic ${Buffer.from('admin:' + srv.token).toString('base64')}`,
            `Token ${srv.token}`,
            srv.token,
            'Bearer',
            'Bearer ',
        ]) {
            const r = await srv.api('/api/v0/agents', { token: null, headers: { authorization: value } });
            assert.equal(r.status, 401, `Authorization: ${value.slice(0, 20)}... -> ${r.status} ${r.text}`);
            assert.ok(
                ['unauthorized', 'invalid_token'].includes(r.json?.error?.code),
                `code for Authorization ${value.slice(0, 20)}: ${r.text}`,
            );
            assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer realm="aei"/);
        }
        const basic = await srv.api('/api/v0/agents', {
            token: null,
            headers: { authorization: 'Basic YWRtaW46YWRtaW4=' },
        });
        assertError(basic, 401, 'unauthorized');
        assert.equal(basic.headers.get('www-authenticate'), 'Bearer realm="aei"');
    });

    it('wrong token -> 401 invalid_token with error="invalid_token"', async () => {
        const bad = randomToken();
        wrongTokens.push(bad);
        for (const p of ['/api/v0/agents', '/metrics']) {
            const r = await srv.api(p, { token: bad });
            assertError(r, 401, 'invalid_token');
            assert.equal(
                r.headers.get('www-authenticate'),
                'Bearer realm="aei", error="invalid_token"',
                `GET ${p}`,
            );
        }
        const r = await srv.api('/api/v0/heartbeats', { token: bad, body: makeHeartbeat(uniqueId()) });
        assertError(r, 401, 'invalid_token');
    });

    it('a prefix or an extension of the right token is rejected', async () => {
        const variants = [
            srv.token.slice(0, -1),
            srv.token.slice(0, 8),
            srv.token + 'x',
            srv.token + srv.token,
            srv.token.toUpperCase(),
        ];
        wrongTokens.push(...variants);
        for (const t of variants) {
            const r = await srv.api('/api/v0/agents', { token: t });
            assertError(r, 401, 'invalid_token');
        }
    });

    it('right token -> 200', async () => {
        const id = uniqueId();
        const hb = await srv.heartbeat(makeHeartbeat(id));
        assert.equal(hb.agent_id, id);
        for (const p of ['/api/v0/agents', '/api/agents', `/api/v0/agents/${id}`, '/metrics']) {
            const r = await srv.api(p);
            assert.equal(r.status, 200, `GET ${p} -> ${r.status} ${r.text}`);
        }
    });

    it('tokens never appear in stderr', async () => {
        // Stop first so that everything aeid logs (including shutdown) is in.
        await srv.stop();
        for (const t of [srv.token, ...wrongTokens]) {
            assert.ok(!srv.stderr.includes(t), `a token appears in aeid stderr:\n${srv.stderr}`);
        }
        assert.ok(!srv.stderr.includes(srv.token.slice(9, 30)), 'part of the token appears in stderr');
    });
});

describe('aeid command line', () => {
    const dbArg = () => ['--db', 'sqlite:' + path.join(tempDir(), 'aei.db')];
    let ports;
    before(async () => {
        ports = ['--http', `127.0.0.1:${await freePort()}`, '--ws', `127.0.0.1:${await freePort()}`];
    });

    const oneLine = (s, what) => {
        const lines = s.trim().split('\n').filter((l) => l.trim() !== '');
        assert.equal(lines.length, 1, `${what}: expected one line on stderr, got:\n${s}`);
        return lines[0];
    };

    it('--help prints usage naming every option and exits 0', async () => {
        const r = await runAeid(['--help']);
        assert.equal(r.code, 0, r.stderr);
        const out = r.stdout + r.stderr;
        for (const opt of ['--http', '--ws', '--db', '--max-body', '--help', '--version', 'AEI_TOKEN']) {
            assert.ok(out.includes(opt), `--help should mention ${opt}:\n${out}`);
        }
        assert.ok(r.stdout.length > 0, 'usage goes to stdout');
    });

    it('--version prints the version and exits 0', async () => {
        const r = await runAeid(['--version']);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, new RegExp(`aeid.*${VERSION.replace(/\./g, '\\.')}`));
    });

    it('refuses to start without AEI_TOKEN, naming it', async () => {
        const r = await runAeid([...ports, ...dbArg()], { env: { AEI_TOKEN: null } });
        assert.equal(r.code, 1, `exit code ${r.code}; stderr:\n${r.stderr}`);
        const line = oneLine(r.stderr, 'no token');
        assert.match(line, /AEI_TOKEN/);
    });

    it('refuses to start with an empty AEI_TOKEN', async () => {
        const r = await runAeid([...ports, ...dbArg()], { env: { AEI_TOKEN: '' } });
        assert.equal(r.code, 1, `exit code ${r.code}; stderr:\n${r.stderr}`);
        assert.match(oneLine(r.stderr, 'empty token'), /AEI_TOKEN/);
    });

    const badOptions = [
        [['--bogus'], /--bogus/],
        [['--token', 'secret123'], /--token/],
        [['--http', 'not-an-address'], /http|not-an-address/i],
        [['--http', '127.0.0.1:99999'], /http|99999/i],
        [['--max-body', 'abc'], /max-body|abc/i],
        [['--max-body', '-5'], /max-body|-5/i],
        [['--event-loop', 'kqueue'], /--event-loop: expected poll or epoll, got "kqueue"/],
        [['--db'], /--db/],
    ];
    for (const [args, re] of badOptions) {
        it(`bad option ${args.join(' ')} -> exit 2 with one line`, async () => {
            // Option order: the bad one last so that a missing value is really missing.
            const r = await runAeid([...ports, ...dbArg(), ...args], { env: { AEI_TOKEN: randomToken() } });
            assert.equal(r.code, 2, `exit code ${r.code}; stderr:\n${r.stderr}`);
            assert.match(oneLine(r.stderr, args.join(' ')), re);
            assert.ok(!r.stderr.includes('secret123'), 'the value of --token must not be echoed');
        });
    }

    it('unreachable database -> exit 1 with one line', async () => {
        const r = await runAeid([...ports, '--db', 'postgresql://postgres@127.0.0.1:1/x'], {
            env: { AEI_TOKEN: randomToken() },
            timeoutMs: 30000,
        });
        assert.equal(r.code, 1, `exit code ${r.code}; stderr:\n${r.stderr}`);
        oneLine(r.stderr, 'unreachable database');
    });

    it('options come from the environment too (AEI_MAX_BODY)', async () => {
        const r = await runAeid([...ports, ...dbArg()], {
            env: { AEI_TOKEN: randomToken(), AEI_MAX_BODY: 'abc' },
        });
        assert.equal(r.code, 2, `AEI_MAX_BODY=abc should be a bad option; exit ${r.code}; stderr:\n${r.stderr}`);
        assert.match(oneLine(r.stderr, 'AEI_MAX_BODY=abc'), /MAX_BODY|max-body|abc/i);
    });
});
