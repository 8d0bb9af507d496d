// trace-owners.test.mjs - who may add decisions to an execution, on both stores: not another
// team (404, as for a missing execution), not another agent with an agent's token (404), not
// under another agent than the execution's (409, admins included); batches refused whole. And
// the team of an execution whose first decision comes before its agent's first heartbeat: the
// sender's, then the agent's once it registers.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { before, it } from 'node:test';
import { assertError, describeEachStore, makeHeartbeat, uniqueId } from './lib/harness.mjs';
import { auditKey, createToken, makeTeam } from './lib/teams.mjs';

function decision(agentId, executionId, extra = {}) {
    return {
        decision_id: randomUUID(),
        execution_id: executionId,
        agent_id: agentId,
        reasoning_context: 'trace owners',
        confidence_score: 70,
        selected_outcome: 'go on',
        ...extra,
    };
}

describeEachStore('who may add to an execution', (srv) => {
    const key = auditKey();
    srv.args.push('--audit-key', key);
    let A, B; // {name, agent, tokens, sibling, siblingToken}

    async function traces(body, token, status = 200) {
        const r = await srv.api('/api/v0/traces', { body, token });
        assert.equal(r.status, status, `POST /api/v0/traces: ${r.status} ${r.text}`);
        return r;
    }

    /* An execution's document as its own team's operator sees it. */
    async function execution(t, id) {
        const r = await srv.api(`/api/v0/executions/${id}`, { token: t.tokens.operator });
        assert.equal(r.status, 200, r.text);
        return r.json;
    }

    async function decisionIds(t, id) {
        const r = await srv.api(`/api/v0/executions/${id}/decisions?limit=100`, { token: t.tokens.operator });
        assert.equal(r.status, 200, r.text);
        return r.json.decisions.map((d) => d.decision_id).sort();
    }

    /* A fresh execution of team t's agent, one decision long, made with its own token. */
    async function freshExecution(t, token = t.tokens.agent, agent = t.agent) {
        const id = uniqueId('exec');
        await traces([decision(agent, id)], token);
        return id;
    }

    before(async () => {
        for (const label of ['A', 'B']) {
            const t = await makeTeam(srv, key, `own${label}`);
            t.sibling = uniqueId(`own${label}-sib`);
            t.siblingToken = await createToken(srv, key, t.name, ['--agent', t.sibling]);
            const hb = await srv.api('/api/v0/heartbeats', { body: makeHeartbeat(t.sibling), token: t.siblingToken });
            assert.equal(hb.status, 200, hb.text);
            if (label === 'A') A = t;
            else B = t;
        }
    });

    it("another team's execution: agent and operator tokens get the 404 of a missing execution, and nothing is stored", async () => {
        const exec = await freshExecution(A);
        const before = await decisionIds(A, exec);
        // What B's operator gets for the execution, the 404 of an id that does not exist.
        const hidden = await srv.api(`/api/v0/executions/${exec}`, { token: B.tokens.operator });
        assertError(hidden, 404, 'not_found', { mentions: [exec] });
        const ghost = uniqueId('ghost-exec');
        const missing = await srv.api(`/api/v0/executions/${ghost}`, { token: B.tokens.operator });
        assert.equal(hidden.text, missing.text.split(ghost).join(exec));

        for (const [who, token] of [['agent', B.tokens.agent], ['operator', B.tokens.operator]]) {
            const r = await srv.api('/api/v0/traces', { body: [decision(B.agent, exec)], token });
            assert.equal(r.status, 404, `${who}: ${r.text}`);
            assert.equal(r.text, hidden.text, `${who}: the body of a missing execution`);
        }
        // Naming A's agent, B's operator is refused for the agent already (not its team's).
        const named = await srv.api('/api/v0/traces', { body: [decision(A.agent, exec)], token: B.tokens.operator });
        assertError(named, 404, 'not_found', { mentions: [A.agent] });
        // A batch that also starts an execution of B's own is refused whole.
        const own = uniqueId('exec');
        const r = await traces([decision(B.agent, own), decision(B.agent, exec)], B.tokens.agent, 404);
        assert.equal(r.text, hidden.text);
        const ownR = await srv.api(`/api/v0/executions/${own}`, { token: B.tokens.operator });
        assert.equal(ownR.status, 404, `nothing of the batch was stored: ${ownR.text}`);

        assert.deepEqual(await decisionIds(A, exec), before, "A's execution is as it was");
        const e = await execution(A, exec);
        assert.equal(e.decisions, 1, JSON.stringify(e));
        assert.equal(e.agent_id, A.agent);
        assert.equal(e.team_id, A.name);
    });

    it("within a team, an agent's token cannot add to another agent's execution (404, as PATCH answers)", async () => {
        const exec = await freshExecution(A, A.siblingToken, A.sibling);
        const patch = await srv.api(`/api/v0/executions/${exec}`, {
            method: 'PATCH', body: { status: 'completed' }, token: A.tokens.agent,
        });
        assertError(patch, 404, 'not_found', { mentions: [exec] });
        const r = await traces([decision(A.agent, exec)], A.tokens.agent, 404);
        assert.equal(r.text, patch.text, 'the same body as PATCH');
        const e = await execution(A, exec);
        assert.equal(e.decisions, 1);
        assert.equal(e.agent_id, A.sibling);
        // Its own agent still adds to it.
        await traces([decision(A.sibling, exec)], A.siblingToken);
        assert.equal((await execution(A, exec)).decisions, 2);
    });

    it("a decision naming another agent than the execution's is a 409 conflict, for operators and admins alike", async () => {
        const exec = await freshExecution(A);
        for (const [who, token] of [
            ['operator', A.tokens.operator],
            ['admin of the team', A.tokens.admin],
            ["admin of another team", B.tokens.admin],
            ['bootstrap token', srv.token],
        ]) {
            const r = await srv.api('/api/v0/traces', {
                body: [decision(A.agent, exec), decision(A.sibling, exec)], token,
            });
            assertError(r, 409, 'conflict', { mentions: ['[1].agent_id', exec, A.agent, A.sibling], field: '[1].agent_id' });
        }
        // One batch starting an execution under two agents: the first decision's agent owns it.
        const fresh = uniqueId('exec');
        const r = await traces([decision(A.agent, fresh), decision(A.sibling, fresh)], A.tokens.operator, 409);
        assertError(r, 409, 'conflict', { mentions: ['[1].agent_id', A.agent, A.sibling], field: '[1].agent_id' });
        const gone = await srv.api(`/api/v0/executions/${fresh}`, { token: A.tokens.operator });
        assert.equal(gone.status, 404, 'nothing of the batch was stored');
        assert.equal((await execution(A, exec)).decisions, 1, 'nothing was stored');
    });

    it("admins add to any team's execution under its own agent; the operator to its team's", async () => {
        const exec = await freshExecution(A);
        await traces([decision(A.agent, exec)], B.tokens.admin);
        await traces([decision(A.agent, exec)], srv.token);
        await traces([decision(A.agent, exec)], A.tokens.operator);
        const e = await execution(A, exec);
        assert.equal(e.decisions, 4);
        assert.equal(e.team_id, A.name);
        // A retried batch is still answered 200, storing nothing twice.
        const once = [decision(A.agent, exec)];
        await traces(once, A.tokens.agent);
        const again = await traces(once, A.tokens.agent);
        assert.equal(again.json.duplicates, 1);
    });

    it("an execution traced before its agent's first heartbeat is its team's: listed, readable, ended by the agent", async () => {
        const agent = uniqueId('early-bot');
        const token = await createToken(srv, key, A.name, ['--agent', agent]);
        const exec = uniqueId('exec');
        await traces([decision(agent, exec)], token);
        const hb = await srv.api('/api/v0/heartbeats', { body: makeHeartbeat(agent), token });
        assert.equal(hb.status, 200, hb.text);

        const e = await execution(A, exec);
        assert.equal(e.team_id, A.name);
        const list = await srv.api(`/api/v0/executions?agent_id=${agent}`, { token: A.tokens.operator });
        assert.equal(list.status, 200, list.text);
        assert.deepEqual(list.json.executions.map((x) => x.execution_id), [exec]);
        const other = await srv.api(`/api/v0/executions/${exec}`, { token: B.tokens.operator });
        assert.equal(other.status, 404, "another team's operator does not see it");
        const patch = await srv.api(`/api/v0/executions/${exec}`, {
            method: 'PATCH', body: { status: 'completed' }, token,
        });
        assert.equal(patch.status, 200, patch.text);
        assert.equal(patch.json.status, 'completed');
        const admin = await srv.api(`/api/v0/executions/${exec}`, { token: srv.token });
        assert.equal(admin.json.team_id, A.name);
    });

    it("an operator's trace for an agent not registered yet is its team's, until the agent registers elsewhere", async () => {
        const agent = uniqueId('later-bot');
        const exec = uniqueId('exec');
        await traces([decision(agent, exec)], A.tokens.operator);
        assert.equal((await execution(A, exec)).team_id, A.name);
        const hidden = await srv.api(`/api/v0/executions/${exec}`, { token: B.tokens.operator });
        assert.equal(hidden.status, 404, hidden.text);

        // The agent's first heartbeat comes with B's operator token: the agent, and with it the
        // execution, is B's (an execution belongs to its agent's team).
        const hb = await srv.api('/api/v0/heartbeats', { body: makeHeartbeat(agent), token: B.tokens.operator });
        assert.equal(hb.status, 200, hb.text);
        assert.equal((await execution(B, exec)).team_id, B.name);
        const gone = await srv.api(`/api/v0/executions/${exec}`, { token: A.tokens.operator });
        assert.equal(gone.status, 404, gone.text);
    });
});
