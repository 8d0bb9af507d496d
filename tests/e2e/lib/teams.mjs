// teams.mjs - teams, users and agents with their own tokens, made with the real aei tool
// (`aei token create --db`) on the store of a running aeid, for the RBAC, crash and
// dogfooding suites.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { AEID, makeHeartbeat, tempDir, uniqueId } from './harness.mjs';

const execFileP = promisify(execFile);
export const AEI = path.join(path.dirname(AEID), 'aei');

/* Runs the aei tool; resolves with its exit code, stdout and stderr whatever the code. */
export async function aei(args, { env } = {}) {
    try {
        const { stdout, stderr } = await execFileP(AEI, args, {
            timeout: 60000,
            env: env ? { ...process.env, ...env } : process.env,
        });
        return { code: 0, stdout, stderr };
    } catch (e) {
        if (typeof e.code !== 'number') throw e;
        return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
}

/* The audit key file aeid and aei share: pass keyArgs(dir) to aeid and the same --key to aei. */
export function auditKey() {
    return path.join(tempDir('aei-e2e-key-'), 'audit.key');
}

/* `aei token create` on srv's store; returns the token (the last line printed). `who` is
 * ['--user', U, '--role', R] or ['--agent', A]. */
export async function createToken(srv, key, team, who) {
    const r = await aei(['token', 'create', '--db', srv.dbUrl, '--key', key, '--team', team, ...who]);
    assert.equal(r.code, 0, `aei token create --team ${team} ${who.join(' ')}: ${r.stderr}`);
    const token = r.stdout.trim().split('\n').at(-1);
    assert.match(token, /^aei_(user|agent)_/, r.stdout);
    return token;
}

/**
 * A team with an admin, an operator, a viewer and an agent, each with its own token, the agent
 * registered (by a heartbeat with its own token, so it joins the team). Returns
 * {name, agent, tokens: {admin, operator, viewer, agent}}.
 */
export async function makeTeam(srv, key, label = 'team') {
    const name = uniqueId(label);
    const agent = uniqueId(`${label}-bot`);
    const tokens = {};
    for (const role of ['admin', 'operator', 'viewer']) {
        tokens[role] = await createToken(srv, key, name, ['--user', `${role}-${name}`, '--role', role]);
    }
    tokens.agent = await createToken(srv, key, name, ['--agent', agent]);
    const r = await srv.api('/api/v0/heartbeats', { body: makeHeartbeat(agent), token: tokens.agent });
    assert.equal(r.status, 200, `the first heartbeat of ${agent}: ${r.status} ${r.text}`);
    return { name, agent, tokens };
}
