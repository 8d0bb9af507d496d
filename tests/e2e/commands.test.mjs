// commands.test.mjs - operators' commands to agents end to end on both stores: each action with
// its audit row, bad bodies, the state rules and their race, delivery in heartbeat answers and on
// the WebSocket topic commands:<agent_id>, acknowledgements, the paged list, a restart, and an
// action the store cannot commit (503, nothing dispatched).
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import {
    AEID, Aeid, STORES, assertError, assertNowish, failOnSanitizerReport, itShutsDownCleanly,
    makeHeartbeat, psql, sleep, tempDir, uniqueId,
} from './lib/harness.mjs';
import { validator } from './lib/openapi.mjs';
import { WsClient, closeAll } from './lib/ws.mjs';

const execFileP = promisify(execFile);
const AEI = process.env.AEI ?? path.join(path.dirname(AEID), 'aei');
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/* A valid body for each action. */
const BODIES = {
    execute: { prompt: 'Summarise the open incidents', options: { model: 'small', max_steps: 3 } },
    pause: { reason: 'maintenance window' },
    resume: {},
    terminate: { reason: 'runaway costs' },
    assign: { task: 'triage ticket 42', execution_id: 'exec-42' },
    override: { outcome: 'use the cached answer', decision_id: 'd-7' },
    reassign: null, // needs another agent of the team: made in the test
};

/* The request schema of each action in docs/api/openapi.yaml. */
const REQUEST_SCHEMAS = {
    execute: 'ExecuteRequest', pause: 'ControlRequest', resume: 'ControlRequest',
    terminate: 'ControlRequest', assign: 'AssignRequest', override: 'OverrideRequest',
    reassign: 'ReassignRequest',
};

/* Asserts that a value matches (or, with valid false, does not match) a component schema. */
function assertSchema(name, value, what, valid = true) {
    const v = validator(name);
    assert.ok(v, `openapi.yaml has components.schemas.${name}`);
    const ok = v(value);
    assert.equal(ok, valid, `${what} ${valid ? 'should match' : 'should not match'} ${name}: ` +
        `${JSON.stringify(v.errors)}; ${JSON.stringify(value)?.slice(0, 300)}`);
}

/* `aei token create` with the audit key aeid uses; returns the token (the last line). */
async function createToken(srv, key, args) {
    const { stdout } = await execFileP(AEI, ['token', 'create', '--db', srv.dbUrl, '--key', key, ...args],
        { timeout: 60000 });
    return stdout.trim().split('\n').at(-1);
}

/* Polls until cond() returns a truthy value (returned), or fails naming `what`. */
async function until(cond, what, timeoutMs = 10000) {
    const end = Date.now() + timeoutMs;
    for (;;) {
        const v = await cond();
        if (v) return v;
        assert.ok(Date.now() < end, `timed out waiting for ${what}`);
        await sleep(50);
    }
}

for (const store of STORES) {
    describe(`commands (${store})`, () => {
        const dir = tempDir('aei-e2e-commands-');
        const key = path.join(dir, 'audit.key');
        const srv = new Aeid({ store, args: ['--audit-key', key] });
        const team = uniqueId('team');
        const other = uniqueId('team');
        const tok = {}; // operator, viewer, stranger (an operator of another team)

        /* A new agent of `team`, registered by its own agent token; returns {id, token}. */
        async function newAgent(prefix = 'agent') {
            const id = uniqueId(prefix);
            const token = await createToken(srv, key, ['--team', team, '--agent', id]);
            const r = await srv.api('/api/v0/heartbeats', { body: makeHeartbeat(id), token });
            assert.equal(r.status, 200, r.text);
            assert.deepEqual(r.json.commands, []);
            return { id, token };
        }

        function act(agentId, action, body, token = tok.operator) {
            const opts = { method: 'POST', token };
            if (body !== undefined && body !== null) opts.body = body;
            return srv.api(`/api/v0/agents/${agentId}/${action}`, opts);
        }

        async function control(agentId) {
            const r = await srv.api(`/api/v0/agents/${agentId}`);
            assert.equal(r.status, 200, r.text);
            return r.json.control;
        }

        /* The agent's audit rows of one action type, oldest first. */
        async function auditRows(agentId, actionType) {
            const q = new URLSearchParams({ resource_id: agentId, limit: '1000' });
            if (actionType) q.set('action_type', actionType);
            const r = await srv.api(`/api/v0/audit?${q}`);
            assert.equal(r.status, 200, r.text);
            return r.json.rows.reverse();
        }

        async function commandsOf(agentId, token = tok.operator) {
            const r = await srv.api(`/api/v0/agents/${agentId}/commands?limit=1000`, { token });
            assert.equal(r.status, 200, r.text);
            return r.json.commands;
        }

        async function heartbeatAs(agent) {
            const r = await srv.api('/api/v0/heartbeats', { body: makeHeartbeat(agent.id), token: agent.token });
            assert.equal(r.status, 200, r.text);
            return r.json.commands;
        }

        function ack(agent, commandId, body, token = agent.token) {
            return srv.api(`/api/v0/agents/${agent.id}/commands/${commandId}/ack`, { body, token });
        }

        before(async () => {
            await srv.start();
            tok.operator = await createToken(srv, key, ['--team', team, '--user', 'olga', '--role', 'operator']);
            tok.viewer = await createToken(srv, key, ['--team', team, '--user', 'vic', '--role', 'viewer']);
            tok.stranger = await createToken(srv, key, ['--team', other, '--user', 'sam', '--role', 'operator']);
        });
        after(async () => {
            await srv.close();
        });
        failOnSanitizerReport(() => srv);

        it('each action answers 202 with the command, and its audit row records who, what and the control change', async () => {
            const a = await newAgent();
            const b = await newAgent();
            const bodies = { ...BODIES, reassign: { to_agent_id: b.id, execution_id: 'exec-9', reason: 'b is idle' } };
            // In an order the state rules allow: the three control actions last, then back.
            const steps = [
                ['execute', 'active', 'active'], ['assign', 'active', 'active'],
                ['override', 'active', 'active'], ['reassign', 'active', 'active'],
                ['pause', 'active', 'paused'], ['resume', 'paused', 'active'],
                ['terminate', 'active', 'terminated'], ['resume', 'terminated', 'active'],
            ];
            for (const [action, before, after] of steps) {
                const body = bodies[action];
                const r = await act(a.id, action, body);
                assert.equal(r.status, 202, `${action}: ${r.text}`);
                const c = r.json.command;
                assert.match(c.command_id, UUID_RE);
                assert.equal(c.agent_id, a.id);
                assert.equal(c.team_id, team);
                assert.equal(c.action, action);
                assert.equal(c.status, 'pending');
                assert.deepEqual(c.actor, { type: 'user', id: 'olga' });
                assert.equal(typeof c.audit_id, 'number');
                assertNowish(c.created, `${action} created`);
                assert.equal(c.delivered, null);
                assert.equal(c.acked, null);
                assert.equal(c.result, null);
                const { reason, ...params } = body;
                if (action === 'execute') {
                    assert.match(r.json.execution_id, UUID_RE);
                    assert.deepEqual(c.params, { ...params, execution_id: r.json.execution_id });
                } else {
                    assert.equal(r.json.execution_id, undefined, `${action} has no execution_id`);
                    assert.deepEqual(c.params, params);
                }
                assert.equal(await control(a.id), after, `control after ${action}`);

                const rows = (await auditRows(a.id, action)).filter((row) => row.id === c.audit_id);
                assert.equal(rows.length, 1, `the audit row ${c.audit_id} of ${action}`);
                const row = rows[0];
                assert.equal(row.actor_type, 'user');
                assert.equal(row.actor_id, 'olga');
                assert.equal(row.team_id, team);
                assert.equal(row.resource_id, a.id);
                assert.equal(row.verified, true);
                assert.equal(row.context.command_id, c.command_id);
                assert.deepEqual(row.context.params, c.params);
                assert.equal(row.context.reason, reason);
                if (['pause', 'resume', 'terminate'].includes(action)) {
                    assert.deepEqual(row.context.before, { control: before });
                    assert.deepEqual(row.context.after, { control: after });
                }
            }
            // The bootstrap admin acts too, as itself.
            const boot = await act(a.id, 'pause', undefined, srv.token);
            assert.equal(boot.status, 202, boot.text);
            assert.equal(boot.json.command.actor.id, 'bootstrap');
            const v = await srv.api('/api/v0/audit/verify');
            assert.equal(v.json.ok, true, v.text);
        });

        it('real answers and bodies match the schemas of docs/api/openapi.yaml', async () => {
            const a = await newAgent();
            const b = await newAgent();
            for (const [who, token] of [['bootstrap', srv.token], ['operator', tok.operator], ['agent', a.token]]) {
                const me = await srv.api('/api/v0/me', { token });
                assert.equal(me.status, 200, me.text);
                assertSchema('Principal', me.json, `GET /me as ${who}`);
            }
            const me = (await srv.api('/api/v0/me', { token: a.token })).json;
            assert.deepEqual({ ...me, token_id: typeof me.token_id },
                { id: a.id, kind: 'agent', team, role: 'agent', token_id: 'string' });
            const bodies = { ...BODIES, reassign: { to_agent_id: b.id } };
            for (const action of ['execute', 'assign', 'override', 'reassign', 'pause', 'resume', 'terminate']) {
                assertSchema(REQUEST_SCHEMAS[action], bodies[action], `the ${action} body`);
                const r = await act(a.id, action, bodies[action]);
                assert.equal(r.status, 202, r.text);
                assertSchema('ActionAnswer', r.json, `the answer to ${action}`);
            }
            const agent = await srv.api(`/api/v0/agents/${a.id}`);
            assertSchema('Agent', agent.json, 'GET /agents/{id}');
            assert.equal(agent.json.team_id, team);
            assert.equal(agent.json.control, 'terminated');
            const list = await srv.api('/api/v0/agents', { token: tok.viewer });
            assertSchema('AgentList', list.json, 'GET /agents');
            assert.ok(list.json.agents.every((x) => x.team_id === team), 'a viewer sees its team only');
            const hb = await srv.api('/api/v0/heartbeats', { body: makeHeartbeat(a.id), token: a.token });
            assertSchema('HeartbeatAck', hb.json, 'a heartbeat answer with commands');
            assert.equal(hb.json.commands.length, 7);
            const page = await srv.api(`/api/v0/agents/${a.id}/commands`, { token: a.token });
            assertSchema('CommandPage', page.json, 'GET /commands');
            const acked = await ack(a, hb.json.commands[0].command_id, { status: 'succeeded', result: [1, 'two'] });
            assertSchema('CommandAck', { status: 'succeeded', result: [1, 'two'] }, 'the ack body');
            assertSchema('CommandAnswer', acked.json, 'the answer to an ack');
            for (const r of [await act(a.id, 'pause', {}), await act(a.id, 'pause', {}, tok.viewer),
                await act(uniqueId('ghost'), 'pause', {}), await ack(a, 'nope', { status: 'failed' })]) {
                assertSchema('Error', r.json, `the ${r.status} answer`);
            }
        });

        it('pause, resume and terminate take no body at all, or an empty object', async () => {
            const a = await newAgent();
            const r1 = await srv.api(`/api/v0/agents/${a.id}/pause`, { method: 'POST', token: tok.operator });
            assert.equal(r1.status, 202, r1.text);
            assert.deepEqual(r1.json.command.params, {});
            const r2 = await act(a.id, 'resume', {});
            assert.equal(r2.status, 202, r2.text);
            const r3 = await act(a.id, 'terminate', { reason: null });
            assert.equal(r3.status, 202, r3.text);
            const row = (await auditRows(a.id, 'terminate')).at(-1);
            assert.equal(row.context.reason, undefined, 'a null reason is no reason');
        });

        it('bad bodies answer 400 naming the field, and record nothing', async () => {
            const a = await newAgent();
            const b = await newAgent();
            const big = (n) => 'x'.repeat(n);
            const cases = [
                ['execute', { prompt: 'p', colour: 'red' }, 'invalid_field', 'colour'],
                ['pause', { prompt: 'p' }, 'invalid_field', 'prompt'],
                ['execute', {}, 'invalid_field', 'prompt'],
                ['execute', undefined, 'invalid_field', 'prompt'],
                ['execute', { prompt: null }, 'invalid_field', 'prompt'],
                ['execute', { prompt: 42 }, 'invalid_field', 'prompt'],
                ['execute', { prompt: '' }, 'invalid_field', 'prompt'],
                ['execute', { prompt: big(16385) }, 'invalid_field', 'prompt'],
                ['execute', { prompt: 'p', options: [1] }, 'invalid_field', 'options'],
                ['execute', { prompt: 'p', options: { blob: big(8200) } }, 'invalid_field', 'options'],
                ['pause', { reason: big(1001) }, 'invalid_field', 'reason'],
                ['pause', { reason: 7 }, 'invalid_field', 'reason'],
                ['assign', { execution_id: 'e-1' }, 'invalid_field', 'task'],
                ['assign', { task: 't', execution_id: 'has space' }, 'invalid_field', 'execution_id'],
                ['override', { outcome: ['x'] }, 'invalid_field', 'outcome'],
                ['override', { outcome: 'o', decision_id: 12 }, 'invalid_field', 'decision_id'],
                ['reassign', {}, 'invalid_field', 'to_agent_id'],
                ['reassign', { to_agent_id: uniqueId('nobody') }, 'invalid_field', 'to_agent_id'],
                ['reassign', { to_agent_id: a.id }, 'invalid_field', 'to_agent_id'],
                ['pause', [1, 2], 'invalid_field', '(body)'],
                ['pause', 'stop', 'malformed_json', undefined], // a body is an object or an array
            ];
            for (const [action, body, code, field] of cases) {
                const r = await srv.api(`/api/v0/agents/${a.id}/${action}`,
                    body === undefined ? { method: 'POST', token: tok.operator } : { body, token: tok.operator });
                const what = `${action} ${JSON.stringify(body)?.slice(0, 60)}`;
                assert.equal(r.status, 400, `${what}: ${r.text.slice(0, 300)}`);
                assertSchema('Error', r.json, what);
                // What the server alone can judge: the team's agents, the size of options.
                const stateful = field === 'to_agent_id' && body.to_agent_id || field === 'options' && !Array.isArray(body.options);
                if (body !== undefined && !stateful) assertSchema(REQUEST_SCHEMAS[action], body, what, false);
                assertError(r, 400, code, field && { field, mentions: [field === '(body)' ? 'object' : field] });
            }
            const bad = await srv.api(`/api/v0/agents/${a.id}/pause`, { rawBody: '{"reason": "x"', token: tok.operator });
            assertError(bad, 400, 'malformed_json');
            const noType = await srv.api(`/api/v0/agents/${a.id}/pause`,
                { rawBody: '{}', headers: { 'content-type': 'text/plain' }, token: tok.operator });
            assertError(noType, 415, 'unsupported_media_type');
            const huge = await srv.api(`/api/v0/agents/${a.id}/execute`,
                { body: { prompt: big(70000) }, token: tok.operator });
            assertError(huge, 413, 'payload_too_large');
            // An agent of another team is not a target either.
            const theirs = uniqueId('theirs');
            const reg = await srv.api('/api/v0/heartbeats', { body: makeHeartbeat(theirs), token: tok.stranger });
            assert.equal(reg.status, 200, reg.text);
            const cross = await act(a.id, 'reassign', { to_agent_id: theirs });
            assertError(cross, 400, 'invalid_field', { field: 'to_agent_id' });
            // It says what came, not "nothing" (the id is the caller's own words, so nothing leaks).
            assert.match(cross.json.error.message, new RegExp(`got "${theirs}"`), cross.text);

            assert.deepEqual(await commandsOf(a.id), []);
            assert.deepEqual(await auditRows(a.id), []);
            assert.equal(await control(a.id), 'active');
            assert.deepEqual(await heartbeatAs(a), []);
            assert.deepEqual(await heartbeatAs(b), []);
        });

        it('unknown agents and other teams\' agents answer 404 alike; viewers and agents answer 403', async () => {
            const a = await newAgent();
            const ghost = uniqueId('ghost');
            const none = await act(ghost, 'pause', {});
            assertError(none, 404, 'not_found', { mentions: [ghost] });
            const hidden = await act(a.id, 'pause', {}, tok.stranger);
            assertError(hidden, 404, 'not_found', { mentions: [a.id] });
            assert.equal(hidden.json.error.message, none.json.error.message.replace(ghost, a.id));
            assertError(await srv.api(`/api/v0/agents/${a.id}/commands`, { token: tok.stranger }), 404, 'not_found');
            assertError(await srv.api(`/api/v0/agents/${a.id}/launch`, { body: {}, token: tok.operator }),
                404, 'not_found', { mentions: ['no such route'] });
            for (const [who, token] of [['viewer', tok.viewer], ['agent', a.token]]) {
                const r = await act(a.id, 'pause', {}, token);
                assertError(r, 403, 'forbidden', { mentions: [who] });
                assert.equal(r.headers.get('www-authenticate'),
                    'Bearer realm="aei", error="insufficient_scope"');
            }
            // A viewer reads its team's commands; nothing was recorded.
            assert.deepEqual(await commandsOf(a.id, tok.viewer), []);
            assert.equal(await control(a.id), 'active');
        });

        it('the state rules answer 409 conflict with why, and change nothing', async () => {
            const a = await newAgent();
            // [action, expected status] in order, starting from an active agent.
            const script = [
                ['resume', 409], ['pause', 202], ['pause', 409], ['execute', 409], ['assign', 409],
                ['override', 202], ['terminate', 202], ['terminate', 409], ['pause', 409],
                ['execute', 409], ['assign', 409], ['override', 409], ['resume', 202], ['resume', 409],
            ];
            let accepted = 0;
            for (const [action, status] of script) {
                const before = await control(a.id);
                const body = action === 'reassign' ? null : BODIES[action];
                const r = await act(a.id, action, body);
                assert.equal(r.status, status, `${action} when ${before}: ${r.text}`);
                if (status === 409) {
                    assertError(r, 409, 'conflict', { mentions: [/resume|nothing to resume/] });
                    assert.equal(await control(a.id), before, `a refused ${action} changed nothing`);
                } else {
                    accepted++;
                }
            }
            assert.equal((await commandsOf(a.id)).length, accepted);
            const rows = await auditRows(a.id);
            assert.equal(rows.length, accepted, 'one audit row per accepted action, none for refusals');
        });

        it('concurrent pause, resume and terminate of one agent leave one consistent history', async () => {
            const a = await newAgent();
            const same = await Promise.all(Array.from({ length: 12 }, () => act(a.id, 'pause', {})));
            const statuses = same.map((r) => r.status).sort();
            assert.deepEqual(statuses, [202, ...Array(11).fill(409)], 'exactly one pause wins');
            for (const r of same.filter((x) => x.status === 409)) assertError(r, 409, 'conflict');

            const mix = ['resume', 'terminate', 'pause', 'resume', 'terminate', 'resume', 'pause', 'terminate'];
            const rs = await Promise.all(mix.flatMap((m) => [act(a.id, m, {}), act(a.id, m, {})]));
            for (const r of rs) assert.ok(r.status === 202 || r.status === 409, r.text);
            const won = rs.filter((r) => r.status === 202).length;
            const rows = (await auditRows(a.id)).filter((row) =>
                ['pause', 'resume', 'terminate'].includes(row.action_type));
            assert.equal(rows.length, 1 + won, 'an audit row for each accepted control action');
            let state = 'active';
            for (const row of rows) {
                assert.deepEqual(row.context.before, { control: state },
                    `audit row ${row.seq} (${row.action_type}) starts where the last one ended`);
                state = row.context.after.control;
            }
            assert.equal(await control(a.id), state, 'the agent is where the last audit row left it');
        });

        it('actions racing a pause or terminate are judged on the state the agent will have', async () => {
            const a = await newAgent();
            const needs = { execute: ['active'], assign: ['active'], override: ['active', 'paused'] };
            for (let round = 0; round < 6; round++) {
                const control = round % 2 ? 'resume' : (round % 4 ? 'terminate' : 'pause');
                const rs = await Promise.all([act(a.id, control, {}),
                    ...['execute', 'assign', 'override'].map((x) => act(a.id, x, BODIES[x]))]);
                for (const r of rs) assert.ok(r.status === 202 || r.status === 409, r.text);
            }
            // Replay the agent's audit rows in chain order: every accepted action was allowed in
            // the state the rows before it had left.
            let state = 'active';
            for (const row of await auditRows(a.id)) {
                if (needs[row.action_type]) {
                    assert.ok(needs[row.action_type].includes(state),
                        `${row.action_type} (seq ${row.seq}) was accepted while the agent was ${state}`);
                }
                if (row.context.after) state = row.context.after.control;
            }
        });

        it('heartbeat answers carry the open commands oldest first until acknowledged, and mark them delivered', async () => {
            const a = await newAgent();
            const c1 = (await act(a.id, 'execute', BODIES.execute)).json.command;
            const c2 = (await act(a.id, 'assign', BODIES.assign)).json.command;
            const first = await heartbeatAs(a);
            assert.deepEqual(first.map((c) => c.command_id), [c1.command_id, c2.command_id]);
            assert.deepEqual(first[0], { command_id: c1.command_id, action: 'execute', params: c1.params, created: c1.created });
            assert.deepEqual(first[1], { command_id: c2.command_id, action: 'assign', params: c2.params, created: c2.created });
            const listed = await until(async () => {
                const cs = await commandsOf(a.id);
                return cs.every((c) => c.status === 'delivered') && cs;
            }, 'both commands marked delivered');
            for (const c of listed) assertNowish(c.delivered, 'delivered');
            const firstDelivered = listed.map((c) => c.delivered);
            // Repeated while unacknowledged; the delivery time stays the first one.
            assert.deepEqual((await heartbeatAs(a)).map((c) => c.command_id), [c1.command_id, c2.command_id]);
            await sleep(100);
            assert.deepEqual((await commandsOf(a.id)).map((c) => c.delivered), firstDelivered);

            const r = await ack(a, c1.command_id, { status: 'succeeded', result: { answer: 42, notes: ['ok'] } });
            assert.equal(r.status, 200, r.text);
            assert.equal(r.json.command.status, 'succeeded');
            assert.deepEqual(r.json.command.result, { answer: 42, notes: ['ok'] });
            assertNowish(r.json.command.acked, 'acked');
            assert.deepEqual((await heartbeatAs(a)).map((c) => c.command_id), [c2.command_id]);
            const rej = await ack(a, c2.command_id, { status: 'rejected', result: 'busy' });
            assert.equal(rej.status, 200, rej.text);
            assert.deepEqual(await heartbeatAs(a), []);

            const rows = await auditRows(a.id, 'command_ack');
            assert.equal(rows.length, 2);
            assert.equal(rows[0].actor_type, 'agent');
            assert.equal(rows[0].actor_id, a.id);
            assert.equal(rows[0].resource_id, a.id);
            assert.deepEqual(rows[0].context, {
                command_id: c1.command_id, action: 'execute', status: 'succeeded',
                result: { answer: 42, notes: ['ok'] },
            });
            assert.deepEqual(rows[1].context, { command_id: c2.command_id, action: 'assign', status: 'rejected', result: 'busy' });
        });

        it('an acknowledgement is idempotent for its status, 409 for another, 404 for an unknown command, 400 for bad bodies', async () => {
            const a = await newAgent();
            const b = await newAgent();
            const c = (await act(a.id, 'override', BODIES.override)).json.command;
            // Acknowledged before any heartbeat delivered it: allowed (it came over the WebSocket).
            const first = await ack(a, c.command_id, { status: 'failed', result: { error: 'tool crashed' } });
            assert.equal(first.status, 200, first.text);
            const again = await ack(a, c.command_id, { status: 'failed', result: { error: 'tool crashed' } });
            assert.equal(again.status, 200, again.text);
            assert.deepEqual(again.json.command, first.json.command, 'the same answer, nothing changed');
            const other = await ack(a, c.command_id, { status: 'succeeded' });
            assertError(other, 409, 'conflict', { mentions: [c.command_id, 'failed'] });
            assert.equal((await auditRows(a.id, 'command_ack')).length, 1, 'one audit row for one acknowledgement');

            const unknown = '00000000-0000-4000-8000-000000000000';
            assertError(await ack(a, unknown, { status: 'succeeded' }), 404, 'not_found', { mentions: [unknown] });
            // Another agent's command is unknown to this agent, even for an admin.
            const cb = (await act(b.id, 'override', BODIES.override)).json.command;
            assertError(await ack(a, cb.command_id, { status: 'succeeded' }, srv.token), 404, 'not_found');
            // An agent's token for another agent, an operator: refused.
            assertError(await ack(a, cb.command_id, { status: 'succeeded' }, b.token), 404, 'not_found');
            assertError(await ack(b, cb.command_id, { status: 'succeeded' }, tok.operator), 403, 'forbidden');

            const cases = [
                [{}, 'status'], [{ status: 'done' }, 'status'], [{ status: 'pending' }, 'status'],
                [{ status: 'delivered' }, 'status'], [{ status: 1 }, 'status'],
                [{ status: 'succeeded', extra: true }, 'extra'],
                [{ status: 'succeeded', result: 'x'.repeat(16400) }, 'result'],
                [[{ status: 'succeeded' }], '(body)'],
            ];
            for (const [body, field] of cases) {
                assertError(await ack(b, cb.command_id, body), 400, 'invalid_field', { field });
            }
            assertError(await ack(b, cb.command_id, 'succeeded'), 400, 'malformed_json');
            assertError(await srv.api(`/api/v0/agents/${b.id}/commands/${cb.command_id}/ack`,
                { rawBody: '{"status":', token: b.token }), 400, 'malformed_json');
            assertError(await srv.api(`/api/v0/agents/${b.id}/commands/${cb.command_id}/ack`,
                { method: 'POST', token: b.token }), 400, 'empty_body');
            const open = await commandsOf(b.id);
            assert.equal(open[0].status, 'pending', 'no bad body acknowledged it');
            // The admin may acknowledge for the agent.
            const admin = await ack(b, cb.command_id, { status: 'succeeded' }, srv.token);
            assert.equal(admin.status, 200, admin.text);
            assert.equal(admin.json.command.result, null);
            const row = (await auditRows(b.id, 'command_ack'))[0];
            assert.equal(row.actor_id, 'bootstrap');
        });

        it('GET commands pages newest first with a cursor; bad limits and cursors answer 400', async () => {
            const a = await newAgent();
            const made = [];
            for (let i = 0; i < 5; i++) {
                const r = await act(a.id, 'override', { outcome: `outcome ${i}` });
                assert.equal(r.status, 202, r.text);
                made.push(r.json.command.command_id);
            }
            const seen = [];
            let cursor = null;
            for (let page = 0; page < 5; page++) {
                const r = await srv.api(`/api/v0/agents/${a.id}/commands?limit=2${cursor ? `&cursor=${cursor}` : ''}`,
                    { token: tok.viewer });
                assert.equal(r.status, 200, r.text);
                assert.ok(r.json.commands.length <= 2);
                seen.push(...r.json.commands.map((c) => c.command_id));
                cursor = r.json.next;
                if (!cursor) break;
                assert.match(cursor, /^\d+-[0-9a-f-]{36}$/);
            }
            assert.equal(cursor, null, 'the last page has next: null');
            assert.deepEqual(seen, [...made].reverse(), 'every command once, newest first');
            for (const [q, field] of [['limit=0', 'limit'], ['limit=1001', 'limit'], ['limit=ten', 'limit'],
                ['cursor=abc', 'cursor'], ['cursor=12-has%20space', 'cursor'], ['cursor=x-y', 'cursor'],
                ['status=open', 'status']]) {
                assertError(await srv.api(`/api/v0/agents/${a.id}/commands?${q}`), 400, 'invalid_parameter', { field });
            }
        });

        it('WebSocket commands:<id>: a snapshot of the open commands, each new command at once, and resume with since', async () => {
            const a = await newAgent();
            const old = (await act(a.id, 'assign', BODIES.assign)).json.command;
            const ws = await WsClient.connect(srv, { token: a.token });
            let ws2;
            try {
                const topic = `commands:${a.id}`;
                const { subscribed: sub, snapshot } = await ws.subscribe(topic);
                assert.equal(sub.recovered, false);
                assert.deepEqual(snapshot.commands.map((c) => c.command_id), [old.command_id]);
                assert.deepEqual(snapshot.commands[0], { command_id: old.command_id, action: 'assign', params: old.params, created: old.created });
                assert.equal(typeof snapshot.seq, 'number');

                const c1 = (await act(a.id, 'execute', BODIES.execute)).json.command;
                const m1 = await ws.next({ type: 'command', topic }, undefined, 'the execute command');
                assert.deepEqual(m1.command, { command_id: c1.command_id, action: 'execute', params: c1.params, created: c1.created });
                assert.equal(m1.epoch, snapshot.epoch);
                for (const c of [...snapshot.commands, m1.command]) {
                    assertSchema('CommandDelivery', c, 'a command sent over the WebSocket');
                }
                assert.ok(m1.seq > snapshot.seq);

                // Another agent's topic is refused to this agent's token.
                const b = await newAgent();
                ws.send({ op: 'subscribe', topic: `commands:${b.id}` });
                const err = await ws.next({ type: 'error' }, undefined, 'the forbidden error');
                assert.equal(err.code, 'forbidden');
                await ws.close();

                // Missed while away: replayed on resume.
                const c2 = (await act(a.id, 'pause', BODIES.pause)).json.command;
                ws2 = await WsClient.connect(srv, { token: a.token });
                const since = { epoch: m1.epoch, seq: m1.seq };
                const { subscribed: again } = await ws2.subscribe(topic, { since });
                assert.equal(again.recovered, true, JSON.stringify(again));
                const m2 = await ws2.next({ type: 'command', topic }, undefined, 'the missed pause');
                assert.equal(m2.command.command_id, c2.command_id);
                assert.ok(m2.seq > m1.seq);
                await sleep(200);
                assert.equal(ws2.pending({ type: 'command' }).length, 0, 'nothing else replayed');
            } finally {
                await closeAll(ws, ws2);
            }
        });

        it('open commands and control states survive a restart; acknowledged ones stay closed', async () => {
            const a = await newAgent();
            const done = (await act(a.id, 'override', BODIES.override)).json.command;
            assert.equal((await ack(a, done.command_id, { status: 'succeeded' })).status, 200);
            const open1 = (await act(a.id, 'execute', BODIES.execute)).json.command;
            assert.deepEqual((await heartbeatAs(a)).map((c) => c.command_id), [open1.command_id]);
            const open2 = (await act(a.id, 'pause', BODIES.pause)).json.command;
            await until(async () => (await commandsOf(a.id)).find((c) => c.command_id === open1.command_id)
                .status === 'delivered', 'the delivery recorded');
            await srv.restart();
            assert.equal(await control(a.id), 'paused');
            const listed = await commandsOf(a.id);
            assert.deepEqual(listed.map((c) => [c.command_id, c.status]), [
                [open2.command_id, 'pending'], [open1.command_id, 'delivered'], [done.command_id, 'succeeded'],
            ]);
            assert.deepEqual((await heartbeatAs(a)).map((c) => c.command_id), [open1.command_id, open2.command_id]);
            const ws = await WsClient.connect(srv, { token: a.token });
            try {
                const { snapshot } = await ws.subscribe(`commands:${a.id}`);
                assert.deepEqual(snapshot.commands.map((c) => c.command_id), [open1.command_id, open2.command_id]);
            } finally {
                await closeAll(ws);
            }
            assert.equal((await act(a.id, 'pause', {})).status, 409, 'still paused after the restart');
        });

        it('an action the store cannot commit answers 503 with Retry-After, and nothing reaches the agent', async () => {
            const a = await newAgent();
            const ws = await WsClient.connect(srv, { token: a.token });
            const release = await refuseCommands(srv);
            let r;
            try {
                await ws.subscribe(`commands:${a.id}`);
                r = await act(a.id, 'pause', BODIES.pause, tok.operator);
            } finally {
                await release();
            }
            try {
                assertError(r, 503, 'store_unavailable', { mentions: ['nothing was sent'] });
                assert.equal(r.headers.get('retry-after'), '1');
                assert.equal(await control(a.id), 'active', 'the pause did not happen');
                assert.deepEqual(await heartbeatAs(a), [], 'no command in the heartbeat answer');
                assert.deepEqual(await commandsOf(a.id), []);
                assert.deepEqual(await auditRows(a.id), [], 'no audit row');
                await sleep(200);
                assert.deepEqual(ws.pending({ type: 'command' }), [], 'no command on the WebSocket');

                // The store is back: the same action goes through, and the chain is whole.
                const ok = await act(a.id, 'pause', BODIES.pause);
                assert.equal(ok.status, 202, ok.text);
                assert.deepEqual((await heartbeatAs(a)).map((c) => c.command_id), [ok.json.command.command_id]);
                const m = await ws.next({ type: 'command' }, undefined, 'the pause that committed');
                assert.equal(m.command.command_id, ok.json.command.command_id);
                const v = await srv.api('/api/v0/audit/verify');
                assert.equal(v.json.ok, true, v.text);
            } finally {
                await closeAll(ws);
            }
        });

        it('an acknowledgement the store cannot record answers 503, and the command stays open', async () => {
            const a = await newAgent();
            const c = (await act(a.id, 'assign', BODIES.assign)).json.command;
            const release = await lockCommands(srv);
            let r;
            try {
                r = await ack(a, c.command_id, { status: 'succeeded' });
            } finally {
                await release();
            }
            assertError(r, 503, 'store_unavailable');
            assert.equal(r.headers.get('retry-after'), '1');
            assert.deepEqual((await heartbeatAs(a)).map((x) => x.command_id), [c.command_id],
                'still delivered: the agent retries the acknowledgement');
            assert.deepEqual(await auditRows(a.id, 'command_ack'), []);
            const again = await ack(a, c.command_id, { status: 'succeeded' });
            assert.equal(again.status, 200, again.text);
            assert.deepEqual(await heartbeatAs(a), []);
            const v = await srv.api('/api/v0/audit/verify');
            assert.equal(v.json.ok, true, v.text);
        });

        itShutsDownCleanly(() => srv);
    });
}

/* Spawns a client (sqlite3 or psql) that runs `sql` and keeps its transaction open until the
 * returned function is called; resolves once the client has printed "locked". */
async function holdTransaction(command, args, sql, end) {
    const holder = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    holder.stdout.on('data', (d) => (out += d));
    holder.stderr.on('data', (d) => (out += d));
    holder.stdin.write(`${sql}\nSELECT 'locked';\n`);
    await until(() => out.includes('locked') || holder.exitCode !== null, `${command} to take the lock`, 15000);
    assert.match(out, /^locked$/m, `${command} could not take the lock: ${out}`);
    return async () => {
        holder.stdin.end(end);
        await new Promise((resolve) => (holder.exitCode !== null ? resolve() : holder.on('close', resolve)));
    };
}

/**
 * Holds a lock that keeps aeid from writing commands, longer than it waits: on SQLite the
 * database's write lock (aeid's busy timeout is 5 s), on PostgreSQL an exclusive lock on the
 * commands table (aeid gives up on a statement after 10 s).
 */
function lockCommands(srv) {
    if (srv.store === 'postgres') {
        return holdTransaction('psql', ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-d', srv.dbUrl],
            'BEGIN;\nLOCK TABLE commands IN ACCESS EXCLUSIVE MODE;', 'ROLLBACK;\n\\q\n');
    }
    // .timeout: wait for aeid's own writes (a delivery being marked, say) rather than fail at once.
    return holdTransaction('sqlite3', [srv.dbUrl.slice('sqlite:'.length)],
        '.timeout 10000\nBEGIN IMMEDIATE;', 'ROLLBACK;\n.quit\n');
}

/**
 * Makes the store refuse to record a command until the returned function is called.
 * SQLite: another connection holds the write lock. PostgreSQL: a trigger on the commands table
 * refuses every insert (an error answer, where lockCommands() gives a timeout).
 */
async function refuseCommands(srv) {
    if (srv.store !== 'postgres') return lockCommands(srv);
    await psql(srv.dbUrl, `CREATE FUNCTION e2e_refuse() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'e2e: the commands table refuses inserts'; END $$;
        CREATE TRIGGER e2e_refuse BEFORE INSERT ON commands FOR EACH ROW EXECUTE FUNCTION e2e_refuse();`);
    return async () => {
        await psql(srv.dbUrl, 'DROP TRIGGER e2e_refuse ON commands; DROP FUNCTION e2e_refuse();');
    };
}
