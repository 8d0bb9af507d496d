// audit.test.mjs - the audit log end to end on both stores: tokens made and revoked with the
// aei tool, GET /api/v0/audit (filters, pages, verified on read), GET /api/v0/audit/verify,
// aei audit verify, the checkpoint file, tampering seen by all three, and the key file checks.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
    Aeid, STORES, assertError, failOnSanitizerReport, psql, randomToken, runAeid, sleep,
    tempDir, uniqueId,
} from './lib/harness.mjs';
import { aei } from './lib/teams.mjs';
import { WsClient, closeAll } from './lib/ws.mjs';

/* Changes audit rows behind aeid's back, past the triggers (as an attacker with the database
 * files or a superuser would). */
async function tamper(srv, sql) {
    if (srv.store === 'sqlite') {
        const file = srv.dbUrl.slice('sqlite:'.length);
        execFileSync('sqlite3', [file, 'DROP TRIGGER IF EXISTS audit_logs_no_update; ' + sql]);
    } else {
        await psql(srv.dbUrl, 'SET session_replication_role = replica; ' + sql);
    }
}

for (const store of STORES) {
    describe(`audit (${store})`, () => {
        const dir = tempDir('aei-e2e-audit-');
        const key = path.join(dir, 'audit.key');
        const checkpoint = path.join(dir, 'checkpoint');
        const team = uniqueId('team');
        const srv = new Aeid({
            store,
            args: ['--audit-key', key, '--audit-checkpoint', checkpoint,
                '--audit-checkpoint-interval', '0.2'],
        });
        let tokenId, token;

        before(async () => {
            await srv.start();
        });
        after(async () => {
            await srv.close();
        });
        failOnSanitizerReport(() => srv);

        it('aeid creates the key file, 32 bytes of mode 0600', () => {
            assert.ok(existsSync(key));
            assert.equal(readFileSync(key).length, 32);
            assert.equal(statSync(key).mode & 0o777, 0o600);
        });

        it('aei token create prints the token last, and the creation is audited', async () => {
            const r = await aei(['token', 'create', '--db', srv.dbUrl, '--key', key,
                '--team', team, '--user', 'alice', '--role', 'operator']);
            assert.equal(r.code, 0, r.stderr);
            const lines = r.stdout.trim().split('\n');
            assert.match(lines.at(-1), /^aei_user_[0-9A-Za-z]{36}$/);
            token = lines.at(-1);
            tokenId = lines.find((l) => l.startsWith('token_id: ')).slice(10);
            assert.match(tokenId, /^tk_[0-9a-f]{12}$/);
            const agent = await aei(['token', 'create', '--db', srv.dbUrl, '--key', key,
                '--team', team, '--agent', 'bot-1']);
            assert.equal(agent.code, 0, agent.stderr);
            assert.match(agent.stdout.trim().split('\n').at(-1), /^aei_agent_[0-9A-Za-z]{36}$/);
            const bad = await aei(['token', 'create', '--db', srv.dbUrl, '--key', key,
                '--team', team, '--user', 'alice', '--role', 'boss']);
            assert.equal(bad.code, 2);
            assert.match(bad.stderr, /--role 'boss': use admin, operator or viewer/);
            const list = await aei(['token', 'list', '--db', srv.dbUrl, '--team', team]);
            assert.equal(list.code, 0, list.stderr);
            assert.match(list.stdout, new RegExp(`${tokenId} user +${team} +alice +operator`));
        });

        it('GET /api/v0/audit lists the rows newest first, each verified', async () => {
            const r = await srv.api('/api/v0/audit');
            assert.equal(r.status, 200, r.text);
            const mine = r.json.rows.filter((row) => row.team_id === team);
            assert.deepEqual(mine.map((row) => row.action_type),
                ['token_create', 'token_create', 'user_create', 'team_create']);
            assert.deepEqual(mine.map((row) => row.seq), [4, 3, 2, 1]);
            for (const row of mine) {
                assert.equal(row.verified, true);
                assert.equal(row.actor_type, 'service');
                assert.match(row.immutable_hash, /^[0-9a-f]{64}$/);
            }
            assert.equal(mine[3].prev_hash, '0'.repeat(64));
            assert.equal(mine[2].prev_hash, mine[3].immutable_hash);
            assert.deepEqual(mine[1].context.after,
                { kind: 'user', role: 'operator', team_id: team, token_id: tokenId, user_id: 'alice' });
        });

        it('filters and a keyset cursor page through the rows', async () => {
            const f = await srv.api(`/api/v0/audit?action_type=user_create&resource_id=alice`);
            assert.equal(f.status, 200, f.text);
            assert.equal(f.json.rows.filter((row) => row.team_id === team).length, 1);
            const seen = [];
            let url = '/api/v0/audit?action_type=token_create&limit=1';
            for (let i = 0; i < 10 && url; i++) {
                const p = await srv.api(url);
                assert.equal(p.status, 200, p.text);
                assert.ok(p.json.rows.length <= 1);
                seen.push(...p.json.rows.map((row) => row.id));
                url = p.json.next ? `/api/v0/audit?action_type=token_create&limit=1&cursor=${p.json.next}` : null;
            }
            assert.equal(new Set(seen).size, seen.length, 'a row came twice');
            assert.ok(seen.length >= 2);
            const none = await srv.api('/api/v0/audit?from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z');
            assert.deepEqual(none.json, { rows: [], next: null });
        });

        it('bad parameters answer 400 naming the parameter; no token answers 401', async () => {
            for (const [q, field] of [['limit=0', 'limit'], ['limit=1001', 'limit'], ['cursor=abc', 'cursor'],
                ['from=yesterday', 'from'], ['to=1', 'to'], ['actor=', 'actor'], ['colour=red', 'colour'],
                [`resource_id=${'x'.repeat(300)}`, 'resource_id']]) {
                const r = await srv.api(`/api/v0/audit?${q}`);
                assertError(r, 400, 'invalid_parameter', { field });
            }
            assertError(await srv.api('/api/v0/audit/verify?x=1'), 400, 'invalid_parameter');
            assertError(await srv.api('/api/v0/audit', { token: null }), 401, 'unauthorized');
            assertError(await srv.api('/api/v0/audit/verify', { token: randomToken() }), 401, 'invalid_token');
            const post = await srv.api('/api/v0/audit', { method: 'POST', body: {} });
            assert.equal(post.status, 405);
        });

        it('revoking is audited; verify and the checkpoint agree the chain is whole', async () => {
            // Open WebSockets of the token are closed by the revocation; others stay.
            const doomed = await WsClient.connect(srv, { token });
            const kept = await WsClient.connect(srv, {});
            await doomed.ping();
            const r = await aei(['token', 'revoke', '--db', srv.dbUrl, '--key', key, tokenId]);
            assert.equal(r.code, 0, r.stderr);
            try {
                // Looked at again every 5 s, answers cached 2 s: closed within 7 s.
                const { code, reason } = await doomed.waitClose(10000);
                assert.equal(code, 4401, `close code ${code} reason "${reason}"`);
                assert.equal(reason, 'token revoked');
                await kept.ping();
                assert.equal((await srv.api('/api/v0/me', { token })).status, 401);
            } finally {
                await closeAll(doomed, kept);
            }
            const again = await aei(['token', 'revoke', '--db', srv.dbUrl, '--key', key, tokenId]);
            assert.equal(again.code, 1);
            assert.match(again.stderr, /revoked already/);
            const typo = await aei(['token', 'revoke', '--db', srv.dbUrl, 'aei_user_0000']);
            assert.equal(typo.code, 2);
            const v = await srv.api('/api/v0/audit/verify');
            assert.equal(v.status, 200, v.text);
            assert.equal(v.json.ok, true, v.text);
            assert.ok(v.json.rows_checked >= 5);
            assert.equal(v.json.first_bad, null);
            // The server appends the moved head within its interval.
            let text = '';
            for (let i = 0; i < 50 && !text.includes(`v1 ${team} 5 `); i++) {
                await sleep(100);
                text = existsSync(checkpoint) ? readFileSync(checkpoint, 'utf8') : '';
            }
            assert.match(text, new RegExp(`^v1 ${team} 5 [0-9a-f]{64} \\d+$`, 'm'));
            const cli = await aei(['audit', 'verify', '--db', srv.dbUrl, '--key', key,
                '--checkpoint', checkpoint]);
            assert.equal(cli.code, 0, cli.stdout + cli.stderr);
            assert.match(cli.stdout, /every chain verifies/);
        });

        it('a missing key is not made for a store with rows: aeid and aei token refuse', async () => {
            const before = (await srv.api('/api/v0/audit/verify')).json.rows_checked;
            assert.ok(before >= 5);
            const fresh = path.join(dir, 'fresh.key');
            // Stopped first: a SQLite file serves one aeid, and that refusal would come first.
            await srv.stop();
            const r = await runAeid(['--db', srv.dbUrl, '--audit-key', fresh,
                '--http', '127.0.0.1:1', '--ws', '127.0.0.1:2'], { env: { AEI_TOKEN: randomToken() } });
            await srv.start();
            assert.equal(r.code, 1, r.stderr);
            const said = r.stderr.split('\n').filter((l) => l.startsWith('aeid:'));
            assert.equal(said.length, 1, r.stderr);
            assert.match(said[0], new RegExp(`^aeid: the audit key ${fresh} does not exist, but the ` +
                `store already has ${before} audit rows signed with another key: point --audit-key ` +
                'at the key file that signed them'));
            assert.ok(!existsSync(fresh), 'aeid made a key for a store with rows');
            const typo = path.join(dir, 'typo.key');
            const t = await aei(['token', 'create', '--db', srv.dbUrl, '--key', typo,
                '--team', team, '--user', 'mallory', '--role', 'viewer']);
            assert.equal(t.code, 1, t.stderr);
            assert.equal(t.stdout, '');
            assert.match(t.stderr, new RegExp(`^aei token create: the audit key ${typo} does not ` +
                `exist, but the store already has ${before} audit rows signed with another key: ` +
                'point --key at the key file that signed them[^\n]*\n$'));
            assert.ok(!existsSync(typo), 'aei token made a key for a store with rows');
            const v = await srv.api('/api/v0/audit/verify');
            assert.equal(v.json.ok, true, v.text);
            assert.equal(v.json.rows_checked, before, 'a row was appended');
        });

        it('aei audit verify refuses a checkpoint file or a team that is not there', async () => {
            const missing = path.join(dir, 'no-such-checkpoint');
            const r = await aei(['audit', 'verify', '--db', srv.dbUrl, '--key', key,
                '--checkpoint', missing]);
            assert.equal(r.code, 2, r.stdout + r.stderr);
            assert.equal(r.stdout, '');
            assert.match(r.stderr, new RegExp(`the audit checkpoint ${missing} does not exist`));
            const nosuch = await aei(['audit', 'verify', '--db', srv.dbUrl, '--key', key,
                '--team', 'nosuch-team']);
            assert.equal(nosuch.code, 2, nosuch.stdout + nosuch.stderr);
            assert.equal(nosuch.stdout, '');
            assert.match(nosuch.stderr, /team nosuch-team has no audit rows, so nothing was verified/);
            // Like the API's answer, the report says whether a checkpoint was read.
            const js = await aei(['audit', 'verify', '--db', srv.dbUrl, '--key', key,
                '--checkpoint', checkpoint, '--json']);
            assert.equal(js.code, 0, js.stderr);
            const rep = JSON.parse(js.stdout);
            assert.equal(rep.checkpoint, true);
            assert.equal(rep.first_bad, null);
            const api = await srv.api('/api/v0/audit/verify');
            assert.equal(api.json.checkpoint, true);
            const none = JSON.parse((await aei(['audit', 'verify', '--db', srv.dbUrl, '--key', key,
                '--json'])).stdout);
            assert.equal(none.checkpoint, false);
        });

        it('a changed row is caught by the page, the route and the tool', async () => {
            await tamper(srv, `UPDATE audit_logs SET context = '{"after":{"role":"admin"}}' ` +
                `WHERE team_id = '${team}' AND seq = 2`);
            const page = await srv.api('/api/v0/audit?action_type=user_create&resource_id=alice');
            const row = page.json.rows.find((x) => x.team_id === team);
            assert.equal(row.verified, false);
            const v = await srv.api('/api/v0/audit/verify');
            assert.equal(v.json.ok, false);
            assert.equal(v.json.first_bad.reason, 'hash_mismatch');
            assert.equal(v.json.first_bad.id, row.id);
            assert.equal(v.json.first_bad.team_id, team);
            const cli = await aei(['audit', 'verify', '--db', srv.dbUrl, '--key', key, '--json']);
            assert.equal(cli.code, 1);
            const rep = JSON.parse(cli.stdout);
            assert.equal(rep.ok, false);
            assert.equal(rep.first_bad.reason, 'hash_mismatch');
            assert.equal(rep.first_bad.id, row.id);
            // With the wrong key every row fails: the key, not the database, vouches for them.
            const other = path.join(dir, 'other.key');
            writeFileSync(other, Buffer.alloc(32, 1), { mode: 0o600 });
            const wrong = await aei(['audit', 'verify', '--db', srv.dbUrl, '--key', other, '--team', team]);
            assert.equal(wrong.code, 1);
            assert.match(wrong.stdout, /seq 1\): hash_mismatch/);
        });
    });
}

describe('audit key file', () => {
    it('aeid refuses a key others may read, or one of the wrong size, naming the fix', async () => {
        const dir = tempDir('aei-e2e-key-');
        const key = path.join(dir, 'k');
        writeFileSync(key, Buffer.alloc(32, 3));
        chmodSync(key, 0o644);
        const db = `sqlite:${path.join(dir, 'aei.db')}`;
        const env = { AEI_TOKEN: randomToken() };
        let r = await runAeid(['--db', db, '--audit-key', key, '--http', '127.0.0.1:1'], { env });
        assert.equal(r.code, 1);
        assert.match(r.stderr, /mode 0644: others may read it; run chmod 600/);
        chmodSync(key, 0o600);
        writeFileSync(key, Buffer.alloc(16, 3));
        r = await runAeid(['--db', db, '--audit-key', key, '--http', '127.0.0.1:1'], { env });
        assert.equal(r.code, 1);
        assert.match(r.stderr, /is 16 bytes; it must be exactly 32/);
        r = await runAeid(['--db', db, '--audit-checkpoint-interval', 'soon'], { env });
        assert.equal(r.code, 2);
        assert.match(r.stderr, /--audit-checkpoint-interval/);
    });
});

describe('audit paths that are not there', () => {
    const env = { AEI_TOKEN: randomToken() };

    it('aeid creates no directory for a SQLite path whose directory is missing', async () => {
        const dir = tempDir('aei-e2e-nodir-');
        const missing = path.join(dir, 'missing');
        const r = await runAeid(['--db', `sqlite:${path.join(missing, 'sub', 'a.db')}`,
            '--http', '127.0.0.1:1', '--ws', '127.0.0.1:2'], { env });
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, new RegExp(`^aeid: cannot open SQLite database .*: the directory ` +
            `${path.join(missing, 'sub')} does not exist`, 'm'));
        assert.ok(!existsSync(missing), 'aeid created the directory');
    });

    it('aeid creates no directory for a key named in a missing one', async () => {
        const dir = tempDir('aei-e2e-nodir-');
        const missing = path.join(dir, 'keys');
        const r = await runAeid(['--db', `sqlite:${path.join(dir, 'aei.db')}`,
            '--audit-key', path.join(missing, 'audit.key'),
            '--http', '127.0.0.1:1', '--ws', '127.0.0.1:2'], { env });
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, new RegExp(`^aeid: cannot create the audit key .*: the directory ` +
            `${missing} does not exist`, 'm'));
        assert.ok(!existsSync(missing), 'aeid created the directory');
    });

    it('aeid refuses to start with a checkpoint file it cannot write', async () => {
        const dir = tempDir('aei-e2e-nodir-');
        const db = `sqlite:${path.join(dir, 'aei.db')}`;
        const ports = ['--http', '127.0.0.1:1', '--ws', '127.0.0.1:2'];
        let r = await runAeid(['--db', db, '--audit-checkpoint', dir, ...ports], { env });
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, new RegExp(`^aeid: cannot write the audit checkpoint ${dir}: ` +
            'Is a directory$', 'm'));
        const missing = path.join(dir, 'cp');
        r = await runAeid(['--db', db, '--audit-checkpoint', path.join(missing, 'checkpoint'),
            ...ports], { env });
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, new RegExp(`the directory ${missing} does not exist`));
        assert.ok(!existsSync(missing));
    });
});

for (const store of STORES) {
    describe(`audit checkpoint at shutdown (${store})`, () => {
        const dir = tempDir('aei-e2e-audit-stop-');
        const key = path.join(dir, 'audit.key');
        const checkpoint = path.join(dir, 'checkpoint');
        const team = uniqueId('team');
        // An interval far longer than the test: only the start and the stop write the file.
        const srv = new Aeid({
            store,
            args: ['--audit-key', key, '--audit-checkpoint', checkpoint,
                '--audit-checkpoint-interval', '86400'],
        });
        after(async () => {
            await srv.close();
        });

        it('aeid makes its checkpoint file at start and writes the heads when it stops', async () => {
            await srv.start();
            assert.ok(existsSync(checkpoint), 'no checkpoint file after start');
            const r = await aei(['token', 'create', '--db', srv.dbUrl, '--key', key,
                '--team', team, '--agent', 'bot-1']);
            assert.equal(r.code, 0, r.stderr);
            await srv.stop();
            assert.match(readFileSync(checkpoint, 'utf8'),
                new RegExp(`^v1 ${team} 2 [0-9a-f]{64} \\d+$`, 'm'));
            const v = await aei(['audit', 'verify', '--db', srv.dbUrl, '--key', key,
                '--checkpoint', checkpoint]);
            assert.equal(v.code, 0, v.stdout + v.stderr);
        });
    });
}
