// crash.test.mjs - kill -9 of aeid during a stream of audited actions, on both stores. Several
// clients of two teams pause, resume and execute on several agents at once while each agent
// listens on its WebSocket topic commands:<id> and records every command it receives; aeid is
// killed with SIGKILL mid-stream and started again on the same store. Then the chains verify
// (aei audit verify and GET /api/v0/audit/verify), every command an agent received has its
// audit row, every 202 a client got is in the store, and each team's sequence is contiguous.
// Also: 50 concurrent actions across two teams make one contiguous chain per team.
import assert from 'node:assert/strict';
import path from 'node:path';
import { it } from 'node:test';
import { describeEachStore, makeHeartbeat, sleep, tempDir, uniqueId } from './lib/harness.mjs';
import { aei, auditKey, createToken, makeTeam } from './lib/teams.mjs';
import { WsClient, closeAll } from './lib/ws.mjs';

/* Every audit row the bootstrap token sees (every team's), page by page. */
async function allAuditRows(srv) {
    const rows = [];
    let cursor = null;
    for (;;) {
        const q = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
        const r = await srv.api(`/api/v0/audit?limit=1000${q}`);
        assert.equal(r.status, 200, r.text);
        rows.push(...r.json.rows);
        if (!r.json.next) return rows;
        cursor = r.json.next;
    }
}

/* Every command of an agent, page by page, by command_id. */
async function allCommands(srv, agent) {
    const out = new Map();
    let cursor = null;
    for (;;) {
        const q = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
        const r = await srv.api(`/api/v0/agents/${agent}/commands?limit=1000${q}`);
        assert.equal(r.status, 200, r.text);
        for (const c of r.json.commands) out.set(c.command_id, c);
        if (!r.json.next) return out;
        cursor = r.json.next;
    }
}

/* Each team's rows have sequence numbers 1..n with no gap and no repeat. */
function assertContiguous(rows) {
    const byTeam = new Map();
    for (const r of rows) {
        if (!byTeam.has(r.team_id)) byTeam.set(r.team_id, []);
        byTeam.get(r.team_id).push(r.seq);
    }
    for (const [team, seqs] of byTeam) {
        seqs.sort((a, b) => a - b);
        seqs.forEach((s, i) => assert.equal(s, i + 1, `team ${team}: sequence ${seqs.join(',')}`));
    }
    return byTeam;
}

describeEachStore('kill -9 during a stream of actions', (srv) => {
    const key = auditKey();
    const checkpoint = path.join(tempDir('aei-e2e-crash-'), 'checkpoint');
    srv.args.push('--audit-key', key, '--audit-checkpoint', checkpoint, '--audit-checkpoint-interval', '0.1');
    const teams = [];

    async function verifies() {
        const cli = await aei(['audit', 'verify', '--db', srv.dbUrl, '--key', key, '--checkpoint', checkpoint]);
        assert.equal(cli.code, 0, `aei audit verify: ${cli.stdout}${cli.stderr}`);
        const v = await srv.api('/api/v0/audit/verify');
        assert.equal(v.status, 200, v.text);
        assert.equal(v.json.ok, true, v.text);
        return v.json;
    }

    it('after kill -9 mid-stream: the chains verify, no command reached an agent without its audit row, no 202 was lost', async (t) => {
        for (const label of ['A', 'B']) {
            const t = await makeTeam(srv, key, `crash${label}`);
            t.agents = [t.agent];
            t.agentTokens = { [t.agent]: t.tokens.agent };
            for (let k = 0; k < 2; k++) {
                const id = uniqueId(`crash${label}-bot`);
                t.agentTokens[id] = await createToken(srv, key, t.name, ['--agent', id]);
                const hb = await srv.api('/api/v0/heartbeats', { body: makeHeartbeat(id), token: t.agentTokens[id] });
                assert.equal(hb.status, 200, hb.text);
                t.agents.push(id);
            }
            teams.push(t);
        }

        // Each agent listens for its commands with its own token.
        const received = new Map(); // command_id -> {agent, command}
        const listeners = [];
        for (const t of teams) {
            for (const id of t.agents) {
                const c = await WsClient.connect(srv, { token: t.agentTokens[id] });
                await c.subscribe(`commands:${id}`);
                c.ws.on('message', (data) => {
                    let m;
                    try {
                        m = JSON.parse(data.toString());
                    } catch {
                        return;
                    }
                    if (m.type === 'command') received.set(m.command.command_id, { agent: id, command: m.command });
                });
                listeners.push(c);
            }
        }

        // Clients of both teams act at once until aeid dies under them.
        const accepted = []; // {agent, team, body} of every 202
        const statuses = {};
        let stop = false;
        const client = async (token, agents, seed) => {
            let n = seed;
            while (!stop) {
                const agent = agents[n % agents.length];
                const action = ['pause', 'execute', 'resume', 'execute'][Math.floor(n / agents.length) % 4];
                n++;
                let r;
                try {
                    r = await srv.api(`/api/v0/agents/${agent}/${action}`, {
                        method: 'POST',
                        body: action === 'execute' ? { prompt: `step ${n}` } : { reason: `step ${n}` },
                        token, timeoutMs: 5000,
                    });
                } catch {
                    if (stop) return;
                    await sleep(5); // the server is gone: keep trying until the test stops us
                    continue;
                }
                statuses[r.status] = (statuses[r.status] ?? 0) + 1;
                assert.ok([202, 409].includes(r.status), `${action} ${agent}: ${r.status} ${r.text}`);
                if (r.status === 202) accepted.push({ agent, body: r.json });
            }
        };
        const running = [];
        for (const t of teams) {
            running.push(client(t.tokens.operator, t.agents, 0));
            running.push(client(t.tokens.admin, [...t.agents].reverse(), 1));
        }
        running.push(client(srv.token, teams.flatMap((t) => t.agents), 2));
        await sleep(1500);
        const before = accepted.length;
        await srv.kill();
        await sleep(300);
        stop = true;
        await Promise.all(running);
        await closeAll(listeners);
        assert.ok(before >= 20, `only ${before} actions were accepted before the kill: ${JSON.stringify(statuses)}`);
        assert.ok(received.size >= 20, `the agents received only ${received.size} commands`);

        t.diagnostic(`${before} actions accepted before the kill (statuses ${JSON.stringify(statuses)}), ` +
            `${received.size} commands received over WebSocket`);
        await srv.start({ samePorts: true });
        const verify = await verifies();
        const rows = await allAuditRows(srv);
        assert.equal(verify.rows_checked, rows.length);
        const byCommand = new Map(rows.filter((r) => r.context?.command_id).map((r) => [r.context.command_id, r]));
        assertContiguous(rows);

        const stored = new Map();
        for (const t of teams) {
            for (const id of t.agents) for (const [cid, c] of await allCommands(srv, id)) stored.set(cid, c);
        }
        // Every command an agent received was committed with its audit row.
        for (const [cid, { agent, command }] of received) {
            const c = stored.get(cid);
            assert.ok(c, `agent ${agent} received command ${cid}, which the store does not have`);
            const row = byCommand.get(cid);
            assert.ok(row, `command ${cid} (${command.action}) reached agent ${agent} without an audit row`);
            assert.equal(row.id, c.audit_id);
            assert.equal(row.action_type, command.action);
            assert.equal(row.resource_id, agent);
            assert.equal(row.verified, true);
        }
        // Every 202 a client got is in the store, with its audit row.
        for (const { agent, body } of accepted) {
            const cid = body.command.command_id;
            assert.ok(stored.has(cid), `202 for command ${cid} of ${agent}, which the store lost`);
            assert.equal(stored.get(cid).audit_id, body.command.audit_id);
            assert.ok(byCommand.has(cid), `202 for command ${cid} of ${agent} without an audit row`);
        }
        // The agents' control state after the restart is what their last audited change says.
        for (const t of teams) {
            for (const id of t.agents) {
                const last = rows.filter((r) => r.resource_id === id && r.context?.after).sort((a, b) => b.seq - a.seq)[0];
                const a = await srv.api(`/api/v0/agents/${id}`);
                assert.equal(a.json.control, last ? last.context.after.control : 'active', `${id} after the restart`);
            }
        }
    });

    it('50 concurrent actions across two teams make one contiguous chain per team', async () => {
        const agents = [];
        for (const t of teams) {
            const id = uniqueId('burst');
            const hb = await srv.api('/api/v0/heartbeats', { body: makeHeartbeat(id), token: t.tokens.operator });
            assert.equal(hb.status, 200, hb.text);
            agents.push({ id, t });
        }
        const before = assertContiguous(await allAuditRows(srv));
        const rs = await Promise.all(Array.from({ length: 50 }, (_, i) => {
            const { id, t } = agents[i % 2];
            return srv.api(`/api/v0/agents/${id}/execute`, {
                body: { prompt: `burst ${i}` }, token: i % 4 < 2 ? t.tokens.operator : t.tokens.admin,
            });
        }));
        for (const r of rs) assert.equal(r.status, 202, r.text);
        const after = assertContiguous(await allAuditRows(srv));
        for (const t of teams) {
            assert.equal(after.get(t.name).length - before.get(t.name).length, 25, `team ${t.name}`);
        }
        const ids = new Set(rs.map((r) => r.json.command.audit_id));
        assert.equal(ids.size, 50);
        await verifies();
    });
});
