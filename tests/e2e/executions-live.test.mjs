// executions-live.test.mjs - how executions end (PATCH /api/v0/executions/{id}, and abandoned
// when their agent dies), live publication of stored decisions on the hub topic
// execution:<id>, resume of that topic, and the trace metrics.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { assertError, assertNowish, describeEachStore, makeHeartbeat, uniqueId } from './lib/harness.mjs';
import { WsClient, closeAll, metricSum, scrape, subscribed } from './lib/ws.mjs';

function decision(execution, id, parent = null, agent = 'planner-1') {
    return {
        decision_id: id,
        execution_id: execution,
        agent_id: agent,
        parent_decision_id: parent,
        reasoning_context: `why ${id}`,
        confidence_score: 70,
        alternatives_considered: [{ option: 'wait', reason_rejected: 'too slow' }],
        selected_outcome: `did ${id}`,
        cost_usd: 0.5,
    };
}

async function postTraces(srv, body) {
    const r = await srv.api('/api/v0/traces', { body });
    assert.equal(r.status, 200, r.text);
    return r.json;
}

function patch(srv, execution, body, opts = {}) {
    return srv.api(`/api/v0/executions/${execution}`, { method: 'PATCH', body, ...opts });
}

describeEachStore('executions end', (srv) => {
    it('PATCH completes a running execution once; the same end again is answered alike', async () => {
        const ex = uniqueId('run');
        await postTraces(srv, [decision(ex, uniqueId('d'))]);
        const r = await patch(srv, ex, { status: 'completed' });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.status, 'completed');
        assert.equal(r.json.failure, null);
        assertNowish(r.json.ended, 'ended');
        assert.ok(r.json.ended >= r.json.started, r.text);

        const again = await patch(srv, ex, { status: 'completed' });
        assert.equal(again.status, 200, again.text);
        assert.equal(again.json.ended, r.json.ended, 'a repeated end keeps the first end time');

        const g = await srv.api(`/api/v0/executions/${ex}`);
        assert.deepEqual(g.json, r.json);
        const list = await srv.api('/api/v0/executions?status=completed&limit=1000');
        assert.ok(list.json.executions.some((e) => e.execution_id === ex), list.text);
        const running = await srv.api('/api/v0/executions?status=running&limit=1000');
        assert.ok(!running.json.executions.some((e) => e.execution_id === ex), running.text);
    });

    it('a failed execution keeps its failure context; ending it otherwise is a 409', async () => {
        const ex = uniqueId('run');
        await postTraces(srv, [decision(ex, uniqueId('d'))]);
        const failure = { error: 'tool timed out', tool: 'search', attempts: 3 };
        const r = await patch(srv, ex, { status: 'failed', failure });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.status, 'failed');
        assert.deepEqual(r.json.failure, failure);
        assertError(await patch(srv, ex, { status: 'completed' }), 409, 'conflict', { mentions: [ex, 'failed'] });
        const g = await srv.api(`/api/v0/executions/${ex}`);
        assert.equal(g.json.status, 'failed');
        assert.deepEqual(g.json.failure, failure);
    });

    it('decisions that arrive after the end are stored and counted', async () => {
        const ex = uniqueId('run');
        await postTraces(srv, [decision(ex, 'late-root-' + ex)]);
        await patch(srv, ex, { status: 'abandoned', failure: 'the operator gave up' });
        await postTraces(srv, [decision(ex, 'late-child-' + ex, 'late-root-' + ex)]);
        const g = await srv.api(`/api/v0/executions/${ex}`);
        assert.equal(g.json.status, 'abandoned');
        assert.equal(g.json.failure, 'the operator gave up');
        assert.equal(g.json.decisions, 2);
    });

    it('bad ends are refused, naming the problem', async () => {
        const ex = uniqueId('run');
        await postTraces(srv, [decision(ex, uniqueId('d'))]);
        assertError(await patch(srv, uniqueId('nope'), { status: 'completed' }), 404, 'not_found');
        assertError(await patch(srv, ex, { status: 'running' }), 400, 'invalid_field', { field: 'status' });
        assertError(await patch(srv, ex, { status: 'done' }), 400, 'invalid_field', { field: 'status' });
        assertError(await patch(srv, ex, {}), 400, 'invalid_field', { field: 'status' });
        assertError(await patch(srv, ex, { status: 'failed', reason: 'x' }), 400, 'invalid_field', { field: 'reason' });
        assertError(await patch(srv, ex, { status: 'failed', failure: 42 }), 400, 'invalid_field', { field: 'failure' });
        assertError(await patch(srv, ex, { status: 'failed', failure: 'x'.repeat(20000) }), 400, 'invalid_field',
            { field: 'failure' });
        assertError(await patch(srv, ex, ['completed']), 400, 'invalid_field');
        assertError(await patch(srv, ex, undefined, { rawBody: '{"status": "completed"' }), 400, 'malformed_json');
        assertError(await patch(srv, ex, undefined, {
            rawBody: '{"status":"completed"}', headers: { 'Content-Type': 'text/plain' },
        }), 415, 'unsupported_media_type');
        const put = await srv.api(`/api/v0/executions/${ex}`, { method: 'PUT', body: { status: 'completed' } });
        assertError(put, 405, 'method_not_allowed');
        assert.equal(put.headers.get('allow'), 'GET, PATCH, HEAD');
        const g = await srv.api(`/api/v0/executions/${ex}`);
        assert.equal(g.json.status, 'running', 'nothing refused changed the execution');
    });
});

describeEachStore('executions live', (srv) => {
    it('a subscriber of execution:<id> sees each new decision, then the execution, and nothing else', async () => {
        const ex = uniqueId('run');
        const other = uniqueId('run');
        const [a, b, c] = ['a', 'b', 'c'].map((x) => `${x}-${ex}`);
        const watcher = await subscribed(srv, `execution:${ex}`);
        const fleet = await subscribed(srv, 'agents:all');
        try {
            const sub = watcher.subs[`execution:${ex}`].subscribed;
            assert.equal(sub.recovered, false, 'without since, the client reads the execution over HTTP');
            await postTraces(srv, [decision(ex, a), decision(ex, b, a), decision(other, uniqueId('d'))]);
            const d1 = await watcher.next({ type: 'decision' }, undefined, 'the first decision');
            const d2 = await watcher.next({ type: 'decision' }, undefined, 'the second decision');
            assert.equal(d1.topic, `execution:${ex}`);
            assert.equal(d1.epoch, sub.epoch);
            assert.ok(d1.seq > sub.seq && d2.seq > d1.seq, JSON.stringify([sub, d1, d2]));
            assert.equal(d1.decision.decision_id, a);
            assert.equal(d2.decision.decision_id, b);
            assert.equal(d2.decision.parent_decision_id, a);
            assert.equal(d2.decision.reasoning_context, `why ${b}`);
            assert.deepEqual(d2.decision.alternatives_considered, [{ option: 'wait', reason_rejected: 'too slow' }]);
            assertNowish(d1.decision.timestamp, 'timestamp');
            const e = await watcher.next({ type: 'execution' }, undefined, 'the execution after the batch');
            assert.ok(e.seq > d2.seq);
            assert.equal(e.execution.execution_id, ex);
            assert.equal(e.execution.decisions, 2);
            assert.equal(e.execution.status, 'running');

            // A retried batch stores nothing, so no decision is published again.
            await postTraces(srv, [decision(ex, b, a), decision(ex, c, b)]);
            const d3 = await watcher.next({ type: 'decision' }, undefined, 'the one new decision of the retry');
            assert.equal(d3.decision.decision_id, c);
            const e2 = await watcher.next({ type: 'execution' }, undefined, 'the execution after the retry');
            assert.equal(e2.execution.decisions, 3);

            const end = await patch(srv, ex, { status: 'completed' });
            assert.equal(end.status, 200, end.text);
            const e3 = await watcher.next({ type: 'execution' }, undefined, 'the execution once ended');
            assert.equal(e3.execution.status, 'completed');
            assert.deepEqual(e3.execution, end.json);

            await watcher.ping();
            const decisions = watcher.messages.filter((m) => m.type === 'decision');
            assert.deepEqual(decisions.map((m) => m.decision.decision_id), [a, b, c], 'only this execution');
            assert.equal(fleet.messages.filter((m) => m.type === 'decision' || m.type === 'execution').length, 0,
                'agents:all carries no trace messages');
            watcher.assertWellFormed();
        } finally {
            await closeAll(watcher, fleet);
        }
    });

    it('resuming execution:<id> replays the decisions missed; unsubscribing stops them', async () => {
        const ex = uniqueId('run');
        const first = await subscribed(srv, `execution:${ex}`);
        let since;
        try {
            await postTraces(srv, [decision(ex, `r1-${ex}`)]);
            const d = await first.next({ type: 'decision' });
            since = { epoch: d.epoch, seq: d.seq };
        } finally {
            await closeAll(first);
        }
        // While nobody watches, the decisions are not published at all; a resume cannot recover
        // them and says so, and the client reads the execution over HTTP.
        await postTraces(srv, [decision(ex, `r2-${ex}`, `r1-${ex}`)]);
        const c = await WsClient.connect(srv);
        try {
            const { subscribed: s } = await c.subscribe(`execution:${ex}`, { since });
            assert.equal(s.recovered, true, 'no update of the topic went missing from the ring');
            await postTraces(srv, [decision(ex, `r3-${ex}`, `r2-${ex}`)]);
            const d3 = await c.next({ type: 'decision' });
            assert.equal(d3.decision.decision_id, `r3-${ex}`);
            const since2 = { epoch: d3.epoch, seq: d3.seq };

            // A second connection resumes from before r3 while r4 and r5 are published.
            const watcher = await subscribed(srv, `execution:${ex}`);
            await postTraces(srv, [decision(ex, `r4-${ex}`, `r3-${ex}`), decision(ex, `r5-${ex}`, `r4-${ex}`)]);
            await watcher.take({ type: 'decision' }, 2);
            const late = await WsClient.connect(srv);
            try {
                const r = await late.subscribe(`execution:${ex}`, { since: since2 });
                assert.equal(r.subscribed.recovered, true);
                const got = await late.take({ type: 'decision' }, 2);
                assert.deepEqual(got.map((m) => m.decision.decision_id), [`r4-${ex}`, `r5-${ex}`]);
            } finally {
                await closeAll(late, watcher);
            }

            c.send({ op: 'unsubscribe', topic: `execution:${ex}` });
            await c.next({ type: 'unsubscribed', topic: `execution:${ex}` });
            await postTraces(srv, [decision(ex, `r6-${ex}`, `r5-${ex}`)]);
            await c.ping();
            assert.ok(!c.messages.some((m) => m.type === 'decision' && m.decision.decision_id === `r6-${ex}`));
        } finally {
            await closeAll(c);
        }
    });

    it('bad execution topics get errors and the connection stays usable', async () => {
        const c = await WsClient.connect(srv);
        try {
            c.send({ op: 'subscribe', topic: 'execution:' });
            const e1 = await c.next({ type: 'error' });
            assert.equal(e1.code, 'invalid_topic');
            assert.match(e1.message, /execution:<execution_id>/);
            c.sendText('subscribe:execution:bad id');
            assert.equal((await c.next({ type: 'error' })).code, 'invalid_topic');
            c.send({ op: 'unsubscribe', topic: 'execution:never-held' });
            assert.equal((await c.next({ type: 'error' })).code, 'not_subscribed');
            await c.ping();
        } finally {
            await closeAll(c);
        }
    });

    it('the trace metrics count decisions by outcome, batch sizes and query times', async () => {
        const before = await scrape(srv);
        const ex = uniqueId('run');
        const batch = [decision(ex, `m1-${ex}`), decision(ex, `m2-${ex}`, `m1-${ex}`)];
        await postTraces(srv, batch);
        await postTraces(srv, batch);
        await srv.api(`/api/v0/executions/${ex}/decisions`);
        await srv.api(`/api/v0/executions/${ex}`);
        await srv.api('/api/v0/executions');
        const after = await scrape(srv);
        const delta = (name, labels) => metricSum(after, name, labels) - (metricSum(before, name, labels) ?? 0);
        assert.equal(delta('aei_trace_decisions_received_total', { result: 'stored' }), 2);
        assert.equal(delta('aei_trace_decisions_received_total', { result: 'duplicate' }), 2);
        assert.equal(delta('aei_trace_batch_size_count'), 2);
        assert.equal(delta('aei_trace_batch_size_sum'), 4);
        for (const query of ['executions', 'execution', 'decisions'])
            assert.ok(delta('aei_trace_query_seconds_count', { query }) >= 1, query);
        assert.equal(after.types.aei_trace_query_seconds, 'histogram');
    });
});

const STALE_S = 1;
const DEAD_S = 2;

describeEachStore('executions of a dead agent', (srv) => {
    it('end abandoned, with the failure context, once the agent is dead', async () => {
        const agent = uniqueId('worker');
        const ex = uniqueId('run');
        const done = uniqueId('run');
        const hb = await srv.api('/api/v0/heartbeats', { body: makeHeartbeat(agent) });
        assert.equal(hb.status, 200, hb.text);
        await postTraces(srv, [decision(ex, `x1-${ex}`, null, agent), decision(done, `x1-${done}`, null, agent)]);
        assert.equal((await patch(srv, done, { status: 'completed' })).status, 200);
        const watcher = await subscribed(srv, `execution:${ex}`);
        try {
            const m = await watcher.next((x) => x.type === 'execution' && x.execution.status === 'abandoned',
                (DEAD_S + 8) * 1000, 'the execution abandoned');
            assert.equal(m.execution.failure.reason, 'agent_dead');
            assert.equal(m.execution.failure.last_heartbeat, hb.json.server_ts);
            assertNowish(m.execution.ended, 'ended');
        } finally {
            await closeAll(watcher);
        }
        const g = await srv.api(`/api/v0/executions/${ex}`);
        assert.equal(g.json.status, 'abandoned');
        assert.equal(g.json.failure.reason, 'agent_dead');
        const d = await srv.api(`/api/v0/executions/${done}`);
        assert.equal(d.json.status, 'completed', 'an execution that had ended keeps its end');
        assert.equal(d.json.failure, null);
    });
}, { args: ['--stale-after', String(STALE_S), '--dead-after', String(DEAD_S)] });
