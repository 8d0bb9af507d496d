// traces.test.mjs - decision traces: batched ingest with errors by index and field, idempotent
// retries, parents that arrive after their children, the tree in pre-order with depth, lazy
// children, pages that stay stable while decisions arrive, and executions.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { assertError, assertNowish, describeEachStore, uniqueId } from './lib/harness.mjs';

function decision(execution, id, parent = null, extra = {}) {
    return {
        decision_id: id,
        execution_id: execution,
        agent_id: 'planner-1',
        parent_decision_id: parent,
        reasoning_context: { goal: 'answer the question', note: `step ${id}` },
        confidence_score: 80,
        alternatives_considered: [{ option: 'ask the user', reason_rejected: 'not needed', score: 0.1 }],
        selected_outcome: `outcome of ${id}`,
        kind: 'tool_selection',
        cost_usd: 0.01,
        ...extra,
    };
}

async function post(srv, body) {
    const r = await srv.api('/api/v0/traces', { body });
    return r;
}

/* Every decision of an execution, page by page: {items, pages}. */
async function allDecisions(srv, execution, { limit = 3, parent } = {}) {
    const items = [];
    let cursor = null;
    for (let pages = 1; pages < 1000; pages++) {
        const q = new URLSearchParams({ limit: String(limit) });
        if (parent) q.set('parent', parent);
        if (cursor) q.set('cursor', cursor);
        const r = await srv.api(`/api/v0/executions/${execution}/decisions?${q}`);
        assert.equal(r.status, 200, r.text);
        items.push(...r.json.decisions);
        if (r.json.next === null) return { items, pages };
        cursor = r.json.next;
    }
    assert.fail('pagination did not end');
}

/* A small tree:  a ─ b ─ d        pre-order: a b d e c f
 *                  │   └ e
 *                  └ c ─ f */
const TREE = [['a', null], ['b', 'a'], ['c', 'a'], ['d', 'b'], ['e', 'b'], ['f', 'c']];
const PRE_ORDER = ['a', 'b', 'd', 'e', 'c', 'f'];
const DEPTH = { a: 0, b: 1, c: 1, d: 2, e: 2, f: 2 };

describeEachStore('traces', (srv) => {
    it('one decision round trip: POST, then the execution and its decisions', async () => {
        const ex = uniqueId('run');
        const id = uniqueId('d');
        const r = await post(srv, decision(ex, id, null, { timestamp: '2001-01-01T00:00:00Z' }));
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.stored, 1);
        assert.equal(r.json.duplicates, 0);
        assert.equal(r.json.decisions[0].decision_id, id);
        assert.equal(r.json.decisions[0].stored, true);
        assertNowish(r.json.decisions[0].timestamp, 'timestamp');

        const e = await srv.api(`/api/v0/executions/${ex}`);
        assert.equal(e.status, 200, e.text);
        assert.equal(e.json.execution_id, ex);
        assert.equal(e.json.agent_id, 'planner-1');
        assert.equal(e.json.status, 'running');
        assert.equal(e.json.decisions, 1);
        assert.equal(e.json.mean_confidence, 80);
        assert.ok(Math.abs(e.json.cost_usd - 0.01) < 1e-9, e.text);

        const d = await srv.api(`/api/v0/executions/${ex}/decisions`);
        assert.equal(d.status, 200, d.text);
        assert.equal(d.json.decisions.length, 1);
        const got = d.json.decisions[0];
        assert.equal(got.decision_id, id);
        assert.equal(got.depth, 0);
        assert.equal(got.agent_ts, '2001-01-01T00:00:00.000000Z', 'the agent clock is kept apart');
        assert.deepEqual(got.reasoning_context, { goal: 'answer the question', note: `step ${id}` });
        assert.deepEqual(got.alternatives_considered,
            [{ option: 'ask the user', reason_rejected: 'not needed', score: 0.1 }]);
        assert.equal(got.selected_outcome, `outcome of ${id}`);
        assert.equal(d.json.next, null);
    });

    it('a decision without an id gets one from the server', async () => {
        const ex = uniqueId('run');
        const body = decision(ex, undefined);
        delete body.decision_id;
        const r = await post(srv, body);
        assert.equal(r.status, 200, r.text);
        assert.match(r.json.decisions[0].decision_id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    });

    it('a batch with invalid decisions is refused whole, naming each by index and field', async () => {
        const ex = uniqueId('run');
        const batch = [
            decision(ex, uniqueId('ok')),
            decision(ex, uniqueId('bad'), null, { confidence_score: 150 }),
            decision(ex, uniqueId('ok')),
            { execution_id: ex },
        ];
        const r = await post(srv, batch);
        assertError(r, 400, 'invalid_field', { field: '[1].confidence_score' });
        assert.deepEqual(r.json.error.errors.map((e) => [e.index, e.field]),
            [[1, '[1].confidence_score'], [3, '[3].agent_id']]);
        const e = await srv.api(`/api/v0/executions/${ex}`);
        assertError(e, 404, 'not_found');
    });

    it('batch shape: empty, over 1000, not decisions', async () => {
        assertError(await post(srv, []), 400, 'invalid_field', { field: '(body)' });
        const ex = uniqueId('run');
        const many = Array.from({ length: 1001 }, (_, i) => ({ execution_id: ex, agent_id: 'a', decision_id: `d${i}` }));
        assertError(await post(srv, many), 400, 'invalid_field', { field: '(body)' });
        assertError(await post(srv, [1]), 400, 'invalid_field', { field: '[0]' });
        const r = await srv.api('/api/v0/traces', { rawBody: '{"execution_id":', headers: { 'content-type': 'application/json' } });
        assertError(r, 400, 'malformed_json');
    });

    it('a retried batch stores nothing twice', async () => {
        const ex = uniqueId('run');
        const batch = TREE.map(([id, parent]) => decision(ex, `${ex}-${id}`, parent && `${ex}-${parent}`));
        const first = await post(srv, batch);
        assert.equal(first.status, 200, first.text);
        assert.equal(first.json.stored, 6);
        const again = await post(srv, batch);
        assert.equal(again.status, 200, again.text);
        assert.equal(again.json.stored, 0);
        assert.equal(again.json.duplicates, 6);
        assert.ok(again.json.decisions.every((d) => d.stored === false));
        const e = await srv.api(`/api/v0/executions/${ex}`);
        assert.equal(e.json.decisions, 6, 'figures count each decision once');
        const { items } = await allDecisions(srv, ex);
        assert.equal(items.length, 6);
    });

    it('the tree comes in pre-order with depth, whatever order it arrived in', async () => {
        const ex = uniqueId('run');
        const id = (x) => `${ex}-${x}`;
        // Children before parents, over three requests.
        const byName = Object.fromEntries(TREE.map(([n, p]) => [n, decision(ex, id(n), p && id(p))]));
        for (const names of [['f', 'd'], ['e', 'b', 'c'], ['a']]) {
            const r = await post(srv, names.map((n) => byName[n]));
            assert.equal(r.status, 200, r.text);
        }
        const { items, pages } = await allDecisions(srv, ex, { limit: 4 });
        assert.deepEqual(items.map((d) => d.decision_id), PRE_ORDER.map(id));
        assert.deepEqual(items.map((d) => d.depth), PRE_ORDER.map((n) => DEPTH[n]));
        assert.equal(pages, 2);
        const e = await srv.api(`/api/v0/executions/${ex}`);
        assert.equal(e.json.pending_parents, 0);
    });

    it('a child whose parent has not arrived waits, and is listed once the parent lands', async () => {
        const ex = uniqueId('run');
        const r = await post(srv, [decision(ex, `${ex}-root`), decision(ex, `${ex}-late-child`, `${ex}-late`)]);
        assert.equal(r.status, 200, r.text);
        let e = await srv.api(`/api/v0/executions/${ex}`);
        assert.equal(e.json.pending_parents, 1);
        let { items } = await allDecisions(srv, ex);
        assert.deepEqual(items.map((d) => d.decision_id), [`${ex}-root`]);
        await post(srv, decision(ex, `${ex}-late`, `${ex}-root`));
        e = await srv.api(`/api/v0/executions/${ex}`);
        assert.equal(e.json.pending_parents, 0);
        ({ items } = await allDecisions(srv, ex));
        assert.deepEqual(items.map((d) => [d.decision_id, d.depth]),
            [[`${ex}-root`, 0], [`${ex}-late`, 1], [`${ex}-late-child`, 2]]);
    });

    it('lazy children: ?parent= lists one decision\'s children', async () => {
        const ex = uniqueId('run');
        const id = (x) => `${ex}-${x}`;
        await post(srv, TREE.map(([n, p]) => decision(ex, id(n), p && id(p))));
        const { items } = await allDecisions(srv, ex, { parent: id('b'), limit: 1 });
        assert.deepEqual(items.map((d) => d.decision_id), [id('d'), id('e')]);
        const none = await allDecisions(srv, ex, { parent: id('f') });
        assert.deepEqual(none.items, []);
    });

    it('pages stay stable while decisions arrive: every decision once, none skipped', async () => {
        const ex = uniqueId('run');
        const id = (x) => `${ex}-${x}`;
        await post(srv, TREE.map(([n, p]) => decision(ex, id(n), p && id(p))));
        const seen = [];
        let cursor = null;
        let extra = 0;
        for (;;) {
            const q = new URLSearchParams({ limit: '2' });
            if (cursor) q.set('cursor', cursor);
            const r = await srv.api(`/api/v0/executions/${ex}/decisions?${q}`);
            assert.equal(r.status, 200, r.text);
            seen.push(...r.json.decisions.map((d) => d.decision_id));
            // New decisions anywhere in the tree between pages.
            await post(srv, [decision(ex, id(`new-${extra}`), id('a')), decision(ex, id(`new-${extra}-c`), id('d'))]);
            extra++;
            if (r.json.next === null) break;
            cursor = r.json.next;
        }
        assert.equal(new Set(seen).size, seen.length, `no decision twice: ${seen}`);
        for (const n of PRE_ORDER) assert.ok(seen.includes(id(n)), `${n} was listed`);
    });

    it('executions: by agent and status, newest first, in pages', async () => {
        const agent = uniqueId('agent');
        const exs = [];
        for (let i = 0; i < 5; i++) {
            const ex = uniqueId(`run${i}`);
            exs.push(ex);
            const r = await post(srv, decision(ex, uniqueId('d'), null, { agent_id: agent }));
            assert.equal(r.status, 200, r.text);
        }
        const seen = [];
        let cursor = null;
        for (;;) {
            const q = new URLSearchParams({ agent_id: agent, status: 'running', limit: '2' });
            if (cursor) q.set('cursor', cursor);
            const r = await srv.api(`/api/v0/executions?${q}`);
            assert.equal(r.status, 200, r.text);
            seen.push(...r.json.executions.map((e) => e.execution_id));
            if (r.json.next === null) break;
            cursor = r.json.next;
        }
        assert.deepEqual(seen, [...exs].reverse());
        const none = await srv.api(`/api/v0/executions?agent_id=${agent}&status=completed`);
        assert.deepEqual(none.json.executions, []);
    });

    it('bad queries and unknown executions', async () => {
        assertError(await srv.api('/api/v0/executions?status=done'), 400, 'invalid_parameter', { field: 'status' });
        assertError(await srv.api('/api/v0/executions?cursor=nope'), 400, 'invalid_parameter', { field: 'cursor' });
        assertError(await srv.api('/api/v0/executions?colour=red'), 400, 'invalid_parameter');
        assertError(await srv.api('/api/v0/executions/no-such-run'), 404, 'not_found');
        assertError(await srv.api('/api/v0/executions/no-such-run/decisions'), 404, 'not_found');
        const ex = uniqueId('run');
        await post(srv, decision(ex, uniqueId('d')));
        assertError(await srv.api(`/api/v0/executions/${ex}/decisions?cursor=xyz`), 400, 'invalid_parameter', { field: 'cursor' });
        assertError(await srv.api(`/api/v0/executions/${ex}/decisions?limit=0`), 400, 'invalid_parameter', { field: 'limit' });
        assertError(await srv.api('/api/v0/traces'), 405, 'method_not_allowed');
    });
});
