import { describe, expect, it } from 'vitest';
import { backoffDelay, LiveClient, type LiveDeps, type TopicHandler, type WebSocketLike } from './live';
import type { HubMessage, Position } from './types';

class FakeSocket implements WebSocketLike {
  static all: FakeSocket[] = [];
  readyState = 0;
  sent: unknown[] = [];
  onopen: ((ev: unknown) => void) | null = null;
  onclose: ((ev: unknown) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  closedWith: number | undefined | null = null;
  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }
  send(data: string) {
    this.sent.push(JSON.parse(data));
  }
  close(code?: number) {
    this.closedWith = code;
    this.readyState = 3;
  }
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  receive(msg: unknown) {
    this.onmessage?.({ data: JSON.stringify(msg) });
  }
  drop() {
    this.readyState = 3;
    this.onclose?.({});
  }
}

/** Timers run by hand: advance(ms) fires what is due. */
function fakeDeps(random = 0.5) {
  let now = 0;
  let next = 1;
  const timers = new Map<number, { at: number; fn: () => void }>();
  const deps: LiveDeps = {
    WebSocket: FakeSocket,
    setTimeout: (fn, ms) => {
      const id = next++;
      timers.set(id, { at: now + ms, fn });
      return id;
    },
    clearTimeout: (id) => void timers.delete(id as number),
    random: () => random,
  };
  const advance = async (ms: number) => {
    const end = now + ms;
    for (;;) {
      const due = [...timers.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      timers.delete(due[0]);
      now = due[1].at;
      due[1].fn();
      await Promise.resolve();
      await Promise.resolve();
    }
    now = end;
  };
  return { deps, advance, pending: () => timers.size };
}

function recorder(since: Position | null = null) {
  const got: HubMessage[] = [];
  let flushes = 0;
  const h: TopicHandler & { got: HubMessage[]; flushes: () => number; pos: Position | null } = {
    got,
    pos: since,
    since: () => h.pos,
    handle: (m) => got.push(m),
    flush: () => void flushes++,
    flushes: () => flushes,
  };
  return h;
}

const last = () => FakeSocket.all[FakeSocket.all.length - 1];

describe('backoffDelay', () => {
  it('doubles from the base to the ceiling, with jitter between half and all of it', () => {
    expect(backoffDelay(0, 500, 10000, 1)).toBe(500);
    expect(backoffDelay(1, 500, 10000, 1)).toBe(1000);
    expect(backoffDelay(3, 500, 10000, 1)).toBe(4000);
    expect(backoffDelay(10, 500, 10000, 1)).toBe(10000);
    expect(backoffDelay(10, 500, 10000, 0)).toBe(5000);
    expect(backoffDelay(1000, 500, 10000, 0.5)).toBe(7500);
  });
});

describe('LiveClient', () => {
  it('is connecting until the hub answers, then connected', async () => {
    const { deps } = fakeDeps();
    const c = new LiveClient(() => 'ws://x/ws?token=t', {}, deps);
    const h = recorder();
    c.subscribe('agents:all', h);
    c.start();
    expect(c.state).toBe('connecting');
    last().open();
    expect(last().sent).toEqual([{ op: 'subscribe', topic: 'agents:all' }]);
    expect(c.state).toBe('connecting'); // open, but nothing heard yet
    last().receive({ type: 'subscribed', topic: 'agents:all', epoch: 'e', seq: 1, recovered: false });
    expect(c.state).toBe('connected');
  });

  it('hands each message of an array frame to its topic in order, and flushes once', () => {
    const { deps } = fakeDeps();
    const c = new LiveClient(() => 'ws://x', {}, deps);
    const all = recorder();
    const ex = recorder();
    c.subscribe('agents:all', all);
    c.subscribe('execution:run-1', ex);
    c.start();
    last().open();
    last().receive([
      { type: 'delta', epoch: 'e', seq: 2, agent_id: 'a', changed: {}, server_ts: '' },
      { type: 'decision', topic: 'execution:run-1', epoch: 'e', seq: 3, decision: {} },
      { type: 'totals', epoch: 'e', seq: 3 },
      { type: 'event', epoch: 'e', seq: 4, agent_id: 'a' },
    ]);
    expect(all.got.map((m) => m.type)).toEqual(['delta', 'totals', 'event']);
    expect(ex.got.map((m) => m.type)).toEqual(['decision']);
    expect(all.flushes()).toBe(1);
    expect(ex.flushes()).toBe(1);
  });

  it('after a drop: reconnecting, retries with growing delays, resumes with since', async () => {
    const { deps, advance } = fakeDeps(1);
    const c = new LiveClient(() => 'ws://x', { baseDelayMs: 100, maxDelayMs: 1000 }, deps);
    const h = recorder();
    c.subscribe('agents:all', h);
    c.start();
    last().open();
    last().receive({ type: 'subscribed', topic: 'agents:all', epoch: 'e', seq: 1, recovered: false });
    const before = FakeSocket.all.length;
    last().drop();
    expect(c.state).toBe('reconnecting');
    await advance(99);
    expect(FakeSocket.all.length).toBe(before); // not before the first delay
    await advance(1);
    expect(FakeSocket.all.length).toBe(before + 1);
    last().drop(); // the server is still down
    expect(c.state).toBe('reconnecting');
    await advance(199);
    expect(FakeSocket.all.length).toBe(before + 1);
    await advance(1);
    expect(FakeSocket.all.length).toBe(before + 2);
    h.pos = { epoch: 'e', seq: 42 };
    last().open();
    expect(last().sent).toEqual([{ op: 'subscribe', topic: 'agents:all', since: { epoch: 'e', seq: 42 } }]);
    expect(c.state).toBe('reconnecting'); // still not heard from
    last().receive({ type: 'subscribed', topic: 'agents:all', epoch: 'e', seq: 50, recovered: true });
    expect(c.state).toBe('connected');
    expect(c.failures).toBe(0);
  });

  it('a silent connection is taken as lost', async () => {
    const { deps, advance } = fakeDeps();
    const c = new LiveClient(() => 'ws://x', { pingEveryMs: 1000, silenceMs: 2500 }, deps);
    c.subscribe('agents:all', recorder());
    c.start();
    const ws = last();
    ws.open();
    ws.receive({ type: 'subscribed', topic: 'agents:all', epoch: 'e', seq: 1, recovered: false });
    await advance(1000);
    expect(ws.sent).toContainEqual({ op: 'ping' });
    await advance(1600);
    expect(c.state).toBe('reconnecting');
    expect(ws.closedWith).not.toBeNull();
  });

  it('stops, disconnected, when the server refuses the token', async () => {
    const { deps, advance, pending } = fakeDeps();
    const c = new LiveClient(() => 'ws://x', { baseDelayMs: 10, tokenAccepted: async () => false }, deps);
    c.start();
    last().drop();
    expect(c.state).toBe('reconnecting');
    const n = FakeSocket.all.length;
    await advance(20);
    expect(c.state).toBe('disconnected');
    expect(FakeSocket.all.length).toBe(n);
    expect(pending()).toBe(0);
  });

  it('stop() closes the socket and says disconnected; no retry follows', async () => {
    const { deps, advance } = fakeDeps();
    const c = new LiveClient(() => 'ws://x', {}, deps);
    c.start();
    const ws = last();
    ws.open();
    c.stop();
    expect(c.state).toBe('disconnected');
    expect(ws.closedWith).toBe(1000);
    const n = FakeSocket.all.length;
    await advance(60000);
    expect(FakeSocket.all.length).toBe(n);
  });

  it('subscribes a topic added while open at once; unsubscribing sends unsubscribe', () => {
    const { deps } = fakeDeps();
    const c = new LiveClient(() => 'ws://x', {}, deps);
    c.start();
    last().open();
    const off = c.subscribe('execution:x', recorder());
    off();
    expect(last().sent).toEqual([
      { op: 'subscribe', topic: 'execution:x' },
      { op: 'unsubscribe', topic: 'execution:x' },
    ]);
  });
});
