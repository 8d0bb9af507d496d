// live.ts - the one WebSocket to the hub: topics, frames that may be arrays, a connection state
// that says only what is true, and reconnection with backoff that resumes each topic from the
// last {epoch, seq} it saw.
import type { HubMessage, Position } from './types';

/**
 * connecting: the first attempt, nothing heard yet. connected: the socket is open and the hub
 * has answered on it. reconnecting: the connection was lost (or never made) and another attempt
 * is scheduled or under way. disconnected: not trying any more (stopped, or the token was
 * refused).
 */
export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'disconnected';

export interface TopicHandler {
  /** Where to resume from after a reconnect, or null for a fresh snapshot. */
  since(): Position | null;
  /** One message of the topic. */
  handle(msg: HubMessage): void;
  /** Called after each frame, so that a store can notify its readers once per frame. */
  flush?(): void;
}

/** What the client needs from its surroundings; tests pass their own. */
export interface LiveDeps {
  WebSocket: new (url: string) => WebSocketLike;
  setTimeout: (fn: () => void, ms: number) => unknown;
  clearTimeout: (id: unknown) => void;
  random: () => number;
}

export interface WebSocketLike {
  readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onclose: ((ev: unknown) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  send(data: string): void;
  close(code?: number): void;
}

export interface LiveOptions {
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** How often to ping; a connection silent for silenceMs is taken as lost. */
  pingEveryMs?: number;
  silenceMs?: number;
  /** Asked after a failed attempt: resolves false when the token is refused (stop trying). */
  tokenAccepted?: () => Promise<boolean>;
}

const browserDeps = (): LiveDeps => ({
  WebSocket: globalThis.WebSocket as unknown as LiveDeps['WebSocket'],
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (id) => globalThis.clearTimeout(id as number),
  random: Math.random,
});

/** The delay before reconnect attempt n (0-based): doubling from base up to max, with jitter
 * so that many dashboards do not return at the same instant after a server restart. */
export function backoffDelay(n: number, base: number, max: number, random: number): number {
  const ceiling = Math.min(max, base * 2 ** Math.min(n, 20));
  return Math.round(ceiling * (0.5 + random / 2));
}

export class LiveClient {
  state: ConnectionState = 'disconnected';
  /** How many attempts have failed in a row; shown while reconnecting. */
  failures = 0;
  private ws: WebSocketLike | null = null;
  private handlers = new Map<string, TopicHandler>();
  private stateListeners = new Set<() => void>();
  private retryTimer: unknown = null;
  private pingTimer: unknown = null;
  private silenceTimer: unknown = null;
  private opened = false;
  private readonly deps: LiveDeps;
  private readonly opts: Required<Omit<LiveOptions, 'tokenAccepted'>> & LiveOptions;

  constructor(
    private readonly url: () => string,
    opts: LiveOptions = {},
    deps?: LiveDeps,
  ) {
    this.deps = deps ?? browserDeps();
    this.opts = { baseDelayMs: 500, maxDelayMs: 10000, pingEveryMs: 20000, silenceMs: 45000, ...opts };
  }

  onState(l: () => void): () => void {
    this.stateListeners.add(l);
    return () => this.stateListeners.delete(l);
  }

  start(): void {
    if (this.state !== 'disconnected') return;
    this.failures = 0;
    this.setState('connecting');
    this.connect();
  }

  stop(): void {
    this.clearTimers();
    this.deps.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = ws.onerror = ws.onmessage = ws.onopen = null;
      ws.close(1000);
    }
    this.setState('disconnected');
  }

  /** Holds a topic until the returned function is called; resubscribed on every reconnect. */
  subscribe(topic: string, handler: TopicHandler): () => void {
    this.handlers.set(topic, handler);
    if (this.isOpen()) this.sendSubscribe(topic, handler);
    return () => {
      if (this.handlers.get(topic) !== handler) return;
      this.handlers.delete(topic);
      if (this.isOpen()) this.ws!.send(JSON.stringify({ op: 'unsubscribe', topic }));
    };
  }

  private isOpen(): boolean {
    return this.ws !== null && this.opened && this.ws.readyState === 1;
  }

  private setState(s: ConnectionState): void {
    if (this.state === s) return;
    this.state = s;
    this.stateListeners.forEach((l) => l());
  }

  private connect(): void {
    this.opened = false;
    let ws: WebSocketLike;
    try {
      ws = new this.deps.WebSocket(this.url());
    } catch {
      this.lost();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.opened = true;
      for (const [topic, h] of this.handlers) this.sendSubscribe(topic, h);
      this.armSilence();
      this.pingTimer = this.deps.setTimeout(() => this.ping(), this.opts.pingEveryMs);
    };
    ws.onmessage = (ev) => this.onFrame(ev.data);
    ws.onerror = () => {
      // A close event follows; that is where the state changes.
    };
    ws.onclose = () => {
      if (this.ws === ws) this.lost();
    };
  }

  private sendSubscribe(topic: string, h: TopicHandler): void {
    const since = h.since();
    this.ws!.send(JSON.stringify(since ? { op: 'subscribe', topic, since } : { op: 'subscribe', topic }));
  }

  private ping(): void {
    if (!this.isOpen()) return;
    this.ws!.send(JSON.stringify({ op: 'ping' }));
    this.pingTimer = this.deps.setTimeout(() => this.ping(), this.opts.pingEveryMs);
  }

  /** The hub speaks at least every pingEveryMs (it answers pings); silence means a dead link
   * whose close event may take minutes to come. */
  private armSilence(): void {
    this.deps.clearTimeout(this.silenceTimer);
    this.silenceTimer = this.deps.setTimeout(() => {
      const ws = this.ws;
      if (!ws) return;
      ws.onclose = ws.onerror = ws.onmessage = ws.onopen = null;
      ws.close();
      this.lost();
    }, this.opts.silenceMs);
  }

  private onFrame(data: unknown): void {
    if (typeof data !== 'string') return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      return; // not JSON: nothing the hub sends
    }
    this.armSilence();
    if (this.state !== 'connected') {
      this.failures = 0;
      this.setState('connected');
    }
    const messages = (Array.isArray(parsed) ? parsed : [parsed]) as HubMessage[];
    const touched = new Set<TopicHandler>();
    for (const msg of messages) {
      for (const h of this.route(msg)) {
        h.handle(msg);
        touched.add(h);
      }
    }
    touched.forEach((h) => h.flush?.());
  }

  /** Which handlers a message is for: its topic when it names one; agent updates go to
   * agents:all and to the agent's own topic. */
  private route(msg: HubMessage): TopicHandler[] {
    const out: TopicHandler[] = [];
    const add = (t: string) => {
      const h = this.handlers.get(t);
      if (h && !out.includes(h)) out.push(h);
    };
    if ('topic' in msg && msg.topic) add(msg.topic);
    if (msg.type === 'delta' || msg.type === 'event') {
      add('agents:all');
      add('agent:' + msg.agent_id);
    } else if (msg.type === 'totals') {
      add('agents:all');
    }
    return out;
  }

  private clearTimers(): void {
    this.deps.clearTimeout(this.pingTimer);
    this.deps.clearTimeout(this.silenceTimer);
    this.pingTimer = this.silenceTimer = null;
  }

  private lost(): void {
    this.clearTimers();
    this.ws = null;
    this.opened = false;
    if (this.state === 'disconnected') return;
    const delay = backoffDelay(this.failures, this.opts.baseDelayMs, this.opts.maxDelayMs, this.deps.random());
    this.failures++;
    this.setState('reconnecting');
    const check = this.opts.tokenAccepted;
    this.retryTimer = this.deps.setTimeout(async () => {
      this.retryTimer = null;
      if (this.state === 'disconnected') return;
      if (check && !(await check().catch(() => true))) {
        this.stop();
        return;
      }
      if ((this.state as ConnectionState) !== 'disconnected') this.connect();
    }, delay);
  }
}
