// event-loop.test.mjs - aeid with --event-loop epoll (lws on libev, decision 0013) on both stores:
// a fleet of agents connected at once is answered, each heartbeat reaches a subscriber as a delta
// and is stored, and the server stops cleanly. hostile.test.mjs runs its cases on both loops.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { describeEachStore, makeHeartbeat, uniqueId } from './lib/harness.mjs';
import { subscribed } from './lib/ws.mjs';

describeEachStore('the epoll loop', (srv) => {
    it('answers 300 agents posting at once and pushes each heartbeat to a subscriber', async () => {
        const c = await subscribed(srv, 'agents:all');
        try {
            const ids = Array.from({ length: 300 }, () => uniqueId('fleet'));
            const answers = await Promise.all(ids.map((id) =>
                srv.api('/api/v0/heartbeats', { body: makeHeartbeat(id) })));
            for (const r of answers) assert.equal(r.status, 200, r.text);
            const seen = new Set();
            while (seen.size < ids.length) {
                const d = await c.next((m) => m.type === 'delta' && ids.includes(m.agent_id));
                seen.add(d.agent_id);
            }
            const listed = new Set((await srv.api('/api/v0/agents')).json.agents.map((a) => a.agent_id));
            for (const id of ids) assert.ok(listed.has(id), `${id} stored`);
        } finally {
            await c.close();
        }
    });

    it('finds libev here: no fallback warning in its log', () => {
        assert.doesNotMatch(srv.runStderr, /polling instead/);
    });
}, { args: ['--event-loop', 'epoll'] });
