// dogfood.test.mjs - the seed's dogfooding flow as a test, on both stores: aeid starts; an
// operator and an agent get tokens from `aei token create`; the mock researcher
// (scripts/mock-agents/agent1.py) runs as a real process with the agent's token and registers;
// the operator POSTs execute (what curl would send); the agent runs an execution of 10-30
// decisions under the command's execution_id and acknowledges; pause stops it mid-way and resume
// lets it finish; the audit log shows each step with its actor and verifies; paused while idle it
// reports waiting and, after the resume, idle again. A second agent is killed with SIGKILL
// mid-execution: once aeid finds it dead, the execution is abandoned with the failure context.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { it } from 'node:test';
import { REPO, describeEachStore, sleep, uniqueId, until } from './lib/harness.mjs';
import { aei, auditKey, createToken } from './lib/teams.mjs';

const AGENT1 = path.join(REPO, 'scripts', 'mock-agents', 'agent1.py');

/* A mock agent as a real process; .out holds what it printed. */
function startMock(srv, token, id) {
    const proc = spawn('python3', [AGENT1, '--server', `127.0.0.1:${srv.port}`, '--token', token,
        '--id', id, '--heartbeat', '0.2', '--think', '0.4'], { stdio: ['ignore', 'pipe', 'pipe'] });
    proc.out = '';
    proc.stdout.on('data', (d) => (proc.out += d));
    proc.stderr.on('data', (d) => (proc.out += d));
    proc.exited = new Promise((resolve) => proc.on('close', (code, signal) => resolve({ code, signal })));
    return proc;
}

describeEachStore('dogfooding', (srv) => {
    const key = auditKey();
    srv.args.push('--audit-key', key, '--stale-after', '1', '--dead-after', '2');
    const team = uniqueId('dogfood');
    const procs = [];
    let operator;

    async function decisions(token, execution) {
        const r = await srv.api(`/api/v0/executions/${execution}/decisions?limit=1000`, { token });
        return r.status === 200 ? r.json.decisions : [];
    }

    async function registered(agentToken, id) {
        const p = startMock(srv, agentToken, id);
        procs.push(p);
        const more = () => `; the agent printed:\n${p.out}`;
        await until(`${id} to register`, async () =>
            (await srv.api(`/api/v0/agents/${id}`, { token: operator })).status === 200, { more });
        return { p, more };
    }

    async function execute(id, prompt) {
        const r = await srv.api(`/api/v0/agents/${id}/execute`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            rawBody: JSON.stringify({ prompt, reason: 'dogfooding' }),
            token: operator,
        });
        assert.equal(r.status, 202, r.text);
        assert.equal(r.json.execution_id, r.json.command.params.execution_id);
        return r.json;
    }

    it('a mock agent registers, runs an execute command, pauses and resumes mid-way, acknowledges; the audit log shows it all', async (t) => {
        t.after(() => procs.forEach((p) => p.kill('SIGKILL')));
        operator = await createToken(srv, key, team, ['--user', 'olivia', '--role', 'operator']);
        const id = uniqueId('researcher');
        const agentToken = await createToken(srv, key, team, ['--agent', id]);
        const { p, more } = await registered(agentToken, id);
        const agent = (await srv.api(`/api/v0/agents/${id}`, { token: operator })).json;
        assert.equal(agent.team_id, team);
        assert.equal(agent.control, 'active');

        const prompt = 'Which of our regions grew fastest last quarter?';
        const { command: exec, execution_id: execution } = await execute(id, prompt);

        // Pause once a few decisions are in: the execution stops where it is.
        await until('two decisions', async () => (await decisions(operator, execution)).length >= 2, { more });
        const pause = await srv.api(`/api/v0/agents/${id}/pause`, {
            method: 'POST', body: { reason: 'look at the sources' }, token: operator,
        });
        assert.equal(pause.status, 202, pause.text);
        await until('the pause to be acknowledged', async () => {
            const r = await srv.api(`/api/v0/agents/${id}/commands?limit=100`, { token: operator });
            return r.json.commands.find((c) => c.command_id === pause.json.command.command_id)?.status === 'succeeded';
        }, { more });
        await sleep(600); // a decision being made when the pause came may still land
        assert.match(p.out, /paused after \d+ decisions/, 'the agent stopped mid-execution');
        const atPause = (await decisions(operator, execution)).length;
        const ex = (await srv.api(`/api/v0/executions/${execution}`, { token: operator })).json;
        assert.equal(ex.status, 'running', `the execution should still run when paused: ${JSON.stringify(ex)}`);
        assert.ok(atPause < 30, `${atPause} decisions at the pause`);
        await sleep(1500);
        assert.equal((await decisions(operator, execution)).length, atPause,
            `a paused agent emits no decisions${more()}`);
        assert.equal((await srv.api(`/api/v0/agents/${id}`, { token: operator })).json.control, 'paused');

        const resume = await srv.api(`/api/v0/agents/${id}/resume`, { method: 'POST', token: operator });
        assert.equal(resume.status, 202, resume.text);
        const done = await until('the execution to complete', async () => {
            const r = await srv.api(`/api/v0/executions/${execution}`, { token: operator });
            return r.json?.status === 'completed' && r.json;
        }, { timeoutMs: 30000, more });
        const all = await decisions(operator, execution);
        assert.ok(all.length >= 10 && all.length <= 30, `${all.length} decisions`);
        assert.ok(all.length > atPause, 'it went on after the resume');
        assert.equal(done.decisions, all.length);
        assert.ok(all.every((d) => d.agent_id === id && d.execution_id === execution));
        assert.ok(all.some((d) => JSON.stringify(d.reasoning_context).includes(prompt)),
            'the first decision quotes the prompt');
        // It prints this once its PATCH was answered, just after the store had it.
        await until('the agent to say it completed', () => p.out.includes(`execution ${execution} completed`), { more });

        // Every command acknowledged by the agent; execute's result names the execution.
        const cmds = await until('three acknowledged commands', async () => {
            const r = await srv.api(`/api/v0/agents/${id}/commands?limit=100`, { token: operator });
            return r.json.commands.every((c) => c.acked) && r.json.commands;
        }, { more });
        assert.deepEqual(cmds.map((c) => [c.action, c.status]).reverse(),
            [['execute', 'succeeded'], ['pause', 'succeeded'], ['resume', 'succeeded']]);
        assert.equal(cmds.at(-1).command_id, exec.command_id);
        assert.deepEqual(cmds.at(-1).result, { execution_id: execution, accepted: true });

        // The audit log, oldest first: the tokens, then each step with its actor.
        const rows = (await srv.api('/api/v0/audit?limit=1000', { token: operator })).json.rows.reverse();
        assert.ok(rows.every((r) => r.team_id === team && r.verified === true));
        const steps = rows.map((r) => [r.action_type, r.actor_type, r.actor_id, r.context?.command_id ?? null]);
        const at = (pred, what) => {
            const i = steps.findIndex(pred);
            assert.ok(i >= 0, `no audit row for ${what}: ${JSON.stringify(steps)}`);
            return i;
        };
        const tokenRow = at(([a, , , ]) => a === 'token_create', 'token creation');
        const execRow = at(([a, ty, actor]) => a === 'execute' && ty === 'user' && actor === 'olivia', 'execute by olivia');
        const ackExec = at(([a, ty, actor, c]) => a === 'command_ack' && ty === 'agent' && actor === id && c === exec.command_id, 'the execute ack');
        const pauseRow = at(([a, , actor]) => a === 'pause' && actor === 'olivia', 'pause');
        const resumeRow = at(([a, , actor]) => a === 'resume' && actor === 'olivia', 'resume');
        const ackResume = at(([a, , , c]) => a === 'command_ack' && c === resume.json.command.command_id, 'the resume ack');
        assert.ok(tokenRow < execRow && execRow < ackExec && ackExec < pauseRow && pauseRow < resumeRow &&
            resumeRow < ackResume, `the audit rows out of order: ${JSON.stringify(steps)}`);
        assert.equal(rows[execRow].context.params.execution_id, execution);
        assert.deepEqual(rows[pauseRow].context.before, { control: 'active' });
        assert.deepEqual(rows[pauseRow].context.after, { control: 'paused' });
        assert.equal(rows[pauseRow].context.reason, 'look at the sources');
        // Sequence numbers of the team's chain are contiguous.
        rows.forEach((r, i) => assert.equal(r.seq, rows[0].seq + i));

        const v = await srv.api('/api/v0/audit/verify', { token: operator });
        assert.equal(v.json.ok, true, v.text);
        assert.equal(v.json.rows_checked, rows.length);
        const cli = await aei(['audit', 'verify', '--db', srv.dbUrl, '--key', key, '--team', team]);
        assert.equal(cli.code, 0, cli.stdout + cli.stderr);

        // Paused while idle it reports waiting, and after the resume idle again (it used to stay
        // waiting for good: nothing running set its status back).
        const status = async () => (await srv.api(`/api/v0/agents/${id}`, { token: operator })).json;
        await until('the agent to report idle', async () => (await status()).status === 'idle', { more });
        const idlePause = await srv.api(`/api/v0/agents/${id}/pause`, { method: 'POST', token: operator });
        assert.equal(idlePause.status, 202, idlePause.text);
        await until('the agent to report waiting', async () => (await status()).status === 'waiting', { more });
        const idleResume = await srv.api(`/api/v0/agents/${id}/resume`, { method: 'POST', token: operator });
        assert.equal(idleResume.status, 202, idleResume.text);
        const back = await until('the agent to report idle after the resume', async () => {
            const a = await status();
            return a.status === 'idle' && a;
        }, { more });
        assert.equal(back.control, 'active');

        p.kill('SIGTERM');
        assert.deepEqual(await p.exited, { code: 0, signal: null }, p.out);
    });

    it('an agent killed with SIGKILL mid-execution leaves it abandoned once aeid finds it dead', async (t) => {
        t.after(() => procs.forEach((p) => p.kill('SIGKILL')));
        const id = uniqueId('researcher');
        const agentToken = await createToken(srv, key, team, ['--agent', id]);
        const { p, more } = await registered(agentToken, id);
        const { execution_id: execution } = await execute(id, 'Summarise the incident report');
        await until('two decisions', async () => (await decisions(operator, execution)).length >= 2, { more });
        p.kill('SIGKILL');
        assert.equal((await p.exited).signal, 'SIGKILL');
        const ex = await until('the execution to be abandoned', async () => {
            const r = await srv.api(`/api/v0/executions/${execution}`, { token: operator });
            return r.json?.status === 'abandoned' && r.json;
        }, { timeoutMs: 15000 });
        assert.equal(ex.failure.reason, 'agent_dead', JSON.stringify(ex));
        assert.match(ex.failure.message, /stopped sending heartbeats/);
        assert.ok(ex.failure.last_heartbeat, JSON.stringify(ex));
        assert.ok(ex.ended, JSON.stringify(ex));
        const a = (await srv.api(`/api/v0/agents/${id}`, { token: operator })).json;
        assert.equal(a.liveness, 'dead', JSON.stringify(a));
    });
});
