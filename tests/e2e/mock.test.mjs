// mock.test.mjs - `aei mock` and commands, on both stores: an execute command runs an execution
// under the command's execution_id (its decisions are stored and it is ended) before the agent
// acknowledges it as succeeded, so that the dashboard's link to the trace leads somewhere; while
// the agent is paused aeid refuses execute and the agent starts nothing; after the resume execute
// works again; every command is acknowledged and the mock exits cleanly.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { it } from 'node:test';
import { describeEachStore, until } from './lib/harness.mjs';
import { AEI } from './lib/teams.mjs';

describeEachStore('aei mock and commands', (srv) => {
    it('executes an execute command under its execution_id, refuses it while paused, and acknowledges every command', async (t) => {
        // --every 3600: after the first run of its own, each agent only runs what it is told.
        const proc = spawn(AEI, ['mock', '--agents', '2', '--duration', '120', '--heartbeat', '0.2',
            '--every', '3600', '--server', `127.0.0.1:${srv.port}`, '--token', srv.token],
        { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        proc.stdout.on('data', (d) => (out += d));
        proc.stderr.on('data', (d) => (out += d));
        const exited = new Promise((resolve) => proc.on('close', (code, signal) => resolve({ code, signal })));
        t.after(() => proc.kill('SIGKILL'));
        const more = () => `; aei mock printed:\n${out}`;
        const id = 'mock-001';
        await until(`${id} to register`, async () => (await srv.api(`/api/v0/agents/${id}`)).status === 200, { more });

        const post = (action, body) => srv.api(`/api/v0/agents/${id}/${action}`, { method: 'POST', body: body ?? {} });
        const acked = (commandId) => until(`command ${commandId} to be acknowledged`, async () => {
            const r = await srv.api(`/api/v0/agents/${id}/commands?limit=100`);
            return r.json.commands.find((c) => c.command_id === commandId && c.acked);
        }, { more });

        /* Executes a prompt and checks what the trace holds once the agent acknowledged it. */
        async function executes(prompt) {
            const r = await post('execute', { prompt });
            assert.equal(r.status, 202, r.text);
            const execution = r.json.execution_id;
            const cmd = await acked(r.json.command.command_id);
            assert.equal(cmd.status, 'succeeded', JSON.stringify(cmd));
            // Acknowledged only once the execution was ended: nothing to wait for here.
            const ex = await srv.api(`/api/v0/executions/${execution}`);
            assert.equal(ex.status, 200, `the execution of a succeeded execute: ${ex.text}`);
            assert.equal(ex.json.status, 'completed', ex.text);
            assert.equal(ex.json.agent_id, id);
            const ds = (await srv.api(`/api/v0/executions/${execution}/decisions?limit=1000`)).json.decisions;
            assert.ok(ds.length >= 4 && ds.length <= 8, `${ds.length} decisions`);
            assert.equal(ex.json.decisions, ds.length);
            assert.ok(ds.every((d) => d.agent_id === id && d.execution_id === execution));
            assert.ok(ds.every((d) => d.selected_outcome && d.alternatives_considered.length === 2), JSON.stringify(ds[0]));
            assert.ok(ds.some((d) => JSON.stringify(d.reasoning_context).includes(prompt)),
                'the first decision quotes the prompt');
            assert.deepEqual(cmd.result, { execution_id: execution, status: 'completed', decisions: ds.length });
        }

        await executes('Which of our regions grew fastest last quarter?');

        const pause = await post('pause');
        assert.equal(pause.status, 202, pause.text);
        assert.equal((await acked(pause.json.command.command_id)).status, 'succeeded');
        const refused = await post('execute', { prompt: 'Summarise the open incidents' });
        assert.equal(refused.status, 409, refused.text);
        assert.equal(refused.json.error.code, 'conflict');

        const resume = await post('resume');
        assert.equal(resume.status, 202, resume.text);
        assert.equal((await acked(resume.json.command.command_id)).status, 'succeeded');
        await executes('Summarise the open incidents');

        proc.kill('SIGINT');
        assert.deepEqual(await exited, { code: 0, signal: null }, out);
        assert.match(out, /commands +4 \(acknowledged 4, failed acks 0\)/, out);
    });
});
