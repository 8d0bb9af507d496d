// ws-backpressure.test.mjs - clients that do not keep up: one that never reads is closed with 4008
// "slow consumer" after --slow-consumer-timeout while another keeps getting its deltas promptly;
// one that falls behind and then reads again gets a snapshot instead of the backlog.
//
// The kernel's socket buffers are filled fast with heartbeats carrying 64 labels of 256
// three-byte characters (about 50 KB each, changing every time, so every delta carries them).
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { it } from 'node:test';
import { describeEachStore, makeHeartbeat, sleep, uniqueId } from './lib/harness.mjs';
import { closeAll, isUpdate, metricSum, scrape, subscribed } from './lib/ws.mjs';

const CLIENT_BUFFER = 65536;
const NO_DEFLATE = { wsOptions: { perMessageDeflate: false } };

/* 64 labels of 256 random CJK characters: about 50 KB of JSON that does not compress. */
function bigLabels() {
    const labels = {};
    for (let i = 0; i < 64; i++) {
        let v = '';
        for (let j = 0; j < 256; j++) v += String.fromCharCode(0x4e00 + randomInt(0x5000));
        labels[`l${String(i).padStart(2, '0')}`] = v;
    }
    return labels;
}

/* Post big heartbeats for `ids` (one poster per id) until stop() is called or `max` are posted;
 * returns {stop, done, stats}. */
function flood(srv, ids, { max = Infinity } = {}) {
    const stats = { posted: 0, bytes: 0, last: {} };
    let stopped = false;
    const done = Promise.all(ids.map(async (id) => {
        while (!stopped && stats.posted < max) {
            const hb = makeHeartbeat(id, { labels: bigLabels() });
            stats.bytes += JSON.stringify(hb).length;
            const r = await srv.heartbeat(hb);
            stats.posted++;
            stats.last[id] = r.server_ts;
        }
    }));
    return { stop: () => (stopped = true), done, stats };
}

describeEachStore('ws slow consumer', (srv) => {
    it('a client that never reads is closed with 4008 "slow consumer"; another keeps getting deltas', async () => {
        const marker = uniqueId('marker');
        const healthy = await subscribed(srv, `agent:${marker}`, NO_DEFLATE);
        const slow = await subscribed(srv, 'agents:all', NO_DEFLATE);
        const closes0 = metricSum(await scrape(srv), 'aei_ws_slow_consumer_closes_total') ?? 0;
        slow.ws._socket.pause();
        const pausedAt = performance.now();
        const f = flood(srv, [uniqueId('big'), uniqueId('big'), uniqueId('big')]);
        // Marker heartbeats a few times a second, for the healthy client.
        const markers = [];
        let markersOn = true;
        const markerLoop = (async () => {
            for (let i = 0; markersOn; i++) {
                const r = await srv.heartbeat(makeHeartbeat(marker, { metrics: { cpu_pct: i } }));
                markers.push({ server_ts: r.server_ts, at: performance.now() });
                await sleep(200);
            }
        })();
        let closedAt = null;
        try {
            // The server counts the close when it decides it; the close frame then waits behind
            // the unread data, and the TCP connection is dropped 5 s later: read again before.
            const limit = performance.now() + 40000;
            while (performance.now() < limit) {
                const n = metricSum(await scrape(srv), 'aei_ws_slow_consumer_closes_total');
                if (n > closes0) {
                    closedAt = performance.now();
                    break;
                }
                await sleep(100);
            }
            slow.ws._socket.resume();
            assert.ok(closedAt, `no slow consumer close within 40 s (${f.stats.posted} heartbeats, ` +
                `${(f.stats.bytes / 1e6).toFixed(1)} MB posted)`);
        } finally {
            slow.ws._socket.resume();
            f.stop();
            markersOn = false;
            await f.done;
            await markerLoop;
        }
        try {
            const after = ((closedAt - pausedAt) / 1000).toFixed(2);
            assert.ok(closedAt - pausedAt >= 2000 - 50,
                `closed ${after} s after the client stopped reading: before --slow-consumer-timeout 2`);
            const { code, reason } = await slow.waitClose(15000);
            assert.equal(code, 4008, `close code ${code} reason "${reason}" (${slow.log.length} messages read)`);
            assert.equal(reason, 'slow consumer');

            // The healthy client got every marker's delta, promptly, and is still open.
            const last = markers.at(-1);
            await healthy.next((m) => m.type === 'delta' && m.changed.last_heartbeat === last.server_ts, 10000,
                'the last marker delta');
            let worst = 0;
            for (const mk of markers) {
                const d = healthy.messages.find((m) => m.type === 'delta' && m.changed.last_heartbeat === mk.server_ts);
                assert.ok(d, `the healthy client missed the marker delta of ${mk.server_ts}; it got:\n` +
                    healthy.messages.map((m) => JSON.stringify(m).slice(0, 300)).join('\n'));
                worst = Math.max(worst, healthy.arrival(d) - mk.at);
            }
            assert.ok(markers.length >= 5, `${markers.length} markers`);
            assert.ok(worst < 3000,
                `a marker delta reached the healthy client ${worst.toFixed(0)} ms after its POST returned`);
            assert.ok(healthy.isOpen, 'the healthy client is still open');
            await healthy.ping();
            const closes1 = metricSum(await scrape(srv), 'aei_ws_slow_consumer_closes_total');
            assert.equal(closes1, closes0 + 1, 'one slow consumer close: only the client that did not read');
        } finally {
            await closeAll(healthy, slow);
        }
    });
}, { args: ['--ws-client-buffer', String(CLIENT_BUFFER), '--slow-consumer-timeout', '2'] });

describeEachStore('ws client falling behind', (srv) => {
    it('a client that falls behind gets a fresh snapshot instead of the backlog, then live updates', async () => {
        const ids = [uniqueId('big'), uniqueId('big'), uniqueId('big')];
        const c = await subscribed(srv, 'agents:all', NO_DEFLATE);
        const snaps0 = metricSum(await scrape(srv), 'aei_ws_snapshots_sent_total') ?? 0;
        try {
            c.ws._socket.pause();
            // Far more than the kernel's buffers and the client buffer hold.
            const f = flood(srv, ids, { max: 200 });
            await f.done;
            c.ws._socket.resume();
            // Catching up: the last snapshot plus the deltas after it must come to each agent's
            // last heartbeat (no gap after a snapshot).
            const lastSeen = () => {
                const log = c.messages;
                const snaps = log.filter((m) => m.type === 'snapshot');
                const snap = snaps.at(-1);
                const seen = {};
                for (const a of ids) seen[a] = snap.agents.find((x) => x.agent_id === a)?.last_heartbeat;
                for (const m of log.slice(log.indexOf(snap))) {
                    if (m.type === 'delta' && ids.includes(m.agent_id) && m.changed.last_heartbeat) {
                        seen[m.agent_id] = m.changed.last_heartbeat;
                    }
                }
                return seen;
            };
            await c.until(() => ids.every((a) => lastSeen()[a] === f.stats.last[a]), 30000,
                `the last snapshot and the deltas after it to reach the last heartbeats ${JSON.stringify(f.stats.last)}`);
            const snaps = c.messages.filter((m) => m.type === 'snapshot');
            assert.ok(snaps.length >= 2, 'a snapshot besides the one at subscription');
            // Caught up: live updates come as deltas again.
            const id = uniqueId('after');
            await srv.heartbeat(makeHeartbeat(id));
            const live = await c.next({ type: 'delta', agent_id: id });
            const log = c.messages.slice(0, c.messages.indexOf(live) + 1);
            const got = log.filter((m) => m.type === 'delta' && ids.includes(m.agent_id));
            assert.ok(got.length < f.stats.posted,
                `the backlog was replaced: ${got.length} of ${f.stats.posted} deltas were sent anyway`);
            // Snapshots and updates in seq order: an update after a snapshot is newer than it.
            let prev = -1;
            for (const m of log) {
                if (m.type === 'snapshot') {
                    assert.ok(m.seq >= prev, `snapshot at seq ${m.seq} after an update with seq ${prev}`);
                    prev = m.seq;
                } else if (isUpdate(m)) {
                    assert.ok(m.seq > prev, `update with seq ${m.seq} after seq ${prev}`);
                    prev = m.seq;
                }
            }
            assert.ok(c.isOpen, `still open: ${c.describeState()}`);
            await c.ping();
            const snaps1 = metricSum(await scrape(srv), 'aei_ws_snapshots_sent_total');
            assert.ok(snaps1 >= snaps0 + 1, 'aei_ws_snapshots_sent_total counts the catch-up snapshot');
        } finally {
            c.ws._socket.resume();
            await c.close();
        }
    });
}, { args: ['--ws-client-buffer', String(CLIENT_BUFFER), '--slow-consumer-timeout', '60'] });
