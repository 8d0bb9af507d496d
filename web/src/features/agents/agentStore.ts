// agentStore.ts - the fleet as the hub reports it, kept outside React: snapshots replace it,
// deltas patch one agent, and readers subscribe per agent, so a heartbeat re-renders one row.
import type { TopicHandler } from '../../lib/live';
import type { Agent, HubMessage, Position, Totals } from '../../lib/types';

/** One agent's row: the agent, and when each of its fields last changed live (for the flash). */
export interface AgentRow {
  agent: Agent;
  changedAt: Partial<Record<string, number>>;
}

type Listener = () => void;

export interface LivenessEvent {
  seq: number;
  event: string;
  agent_id: string;
  server_ts: string;
}

export class AgentStore implements TopicHandler {
  private rows = new Map<string, AgentRow>();
  private agentSeq = new Map<string, number>();
  private position: Position | null = null;
  private totalsValue: Totals | null = null;
  private refused: string | null = null;
  private ids: string[] = [];
  private rowListeners = new Map<string, Set<Listener>>();
  private listListeners = new Set<Listener>();
  private dirtyRows = new Set<string>();
  private listDirty = false;
  /** Bumps when the set of agents, or a status or liveness, changes: what filters look at. */
  listVersion = 0;
  /** Bumps on every change of an agent: sorting by a metric looks at it. */
  dataVersion = 0;
  events: LivenessEvent[] = [];

  constructor(private readonly now: () => number = Date.now) {}

  // --- reading -------------------------------------------------------------------------------

  get(id: string): AgentRow | undefined {
    return this.rows.get(id);
  }

  /** Agent ids in arrival order; the same array until the set changes. */
  agentIds(): string[] {
    return this.ids;
  }

  totals(): Totals | null {
    return this.totalsValue;
  }

  /** Why the hub refused the fleet to this token, or null. */
  refusal(): string | null {
    return this.refused;
  }

  since(): Position | null {
    return this.position;
  }

  subscribeRow(id: string, l: Listener): () => void {
    let set = this.rowListeners.get(id);
    if (!set) this.rowListeners.set(id, (set = new Set()));
    set.add(l);
    return () => {
      set!.delete(l);
      if (set!.size === 0) this.rowListeners.delete(id);
    };
  }

  subscribeList(l: Listener): () => void {
    this.listListeners.add(l);
    return () => this.listListeners.delete(l);
  }

  // --- writing -------------------------------------------------------------------------------

  handle(msg: HubMessage): void {
    switch (msg.type) {
      case 'subscribed':
        this.refused = null;
        this.advance(msg.epoch, msg.seq);
        break;
      case 'error':
        // The hub refused the subscription (an agent's token may not watch the fleet).
        this.refused = msg.message;
        this.listDirty = true;
        break;
      case 'snapshot':
        this.applySnapshot(msg.epoch, msg.seq, msg.agents, msg.totals);
        break;
      case 'delta':
        this.applyDelta(msg);
        break;
      case 'event':
        if (this.isNew(msg.agent_id, msg.seq)) {
          this.agentSeq.set(msg.agent_id, msg.seq);
          this.events = [{ seq: msg.seq, event: msg.event, agent_id: msg.agent_id, server_ts: msg.server_ts }, ...this.events].slice(0, 50);
        }
        this.advance(msg.epoch, msg.seq);
        break;
      case 'totals': {
        const { type: _t, epoch: _e, seq: _s, topic: _topic, ...totals } = msg;
        // Read on the clock's ticks (FleetTotals), not pushed to readers.
        this.totalsValue = totals;
        break;
      }
      default:
        break;
    }
  }

  /** Tells readers about everything handled since the last flush. */
  flush(): void {
    if (this.listDirty) this.listVersion++;
    if (this.dirtyRows.size || this.listDirty) this.dataVersion++;
    const rows = [...this.dirtyRows];
    this.dirtyRows.clear();
    for (const id of rows) this.rowListeners.get(id)?.forEach((l) => l());
    if (this.listDirty) {
      this.listDirty = false;
      this.listListeners.forEach((l) => l());
    }
  }

  private advance(epoch: string, seq: number): void {
    if (!this.position || this.position.epoch !== epoch || seq > this.position.seq)
      this.position = { epoch, seq };
  }

  private isNew(id: string, seq: number): boolean {
    return seq > (this.agentSeq.get(id) ?? -1);
  }

  /** Replaces the fleet. Rows whose agent did not change keep their object, so that a resync
   * after falling behind re-renders only what differs. */
  private applySnapshot(epoch: string, seq: number, agents: Agent[], totals: Totals): void {
    const next = new Map<string, AgentRow>();
    const nextIds: string[] = [];
    for (const a of agents) {
      const old = this.rows.get(a.agent_id);
      if (old && JSON.stringify(old.agent) === JSON.stringify(a)) {
        next.set(a.agent_id, old);
      } else {
        next.set(a.agent_id, { agent: a, changedAt: old ? diffTimes(old.agent, a, this.now()) : {} });
        this.dirtyRows.add(a.agent_id);
      }
      nextIds.push(a.agent_id);
    }
    for (const id of this.rows.keys()) if (!next.has(id)) this.dirtyRows.add(id);
    const sameIds = nextIds.length === this.ids.length && nextIds.every((id, i) => id === this.ids[i]);
    this.rows = next;
    if (!sameIds) this.ids = nextIds;
    this.listDirty = true;
    // A snapshot is the state at seq for every agent: older deltas must not apply after it.
    this.agentSeq = new Map(agents.map((a) => [a.agent_id, seq]));
    this.position = { epoch, seq };
    this.totalsValue = totals;
  }

  private applyDelta(msg: Extract<HubMessage, { type: 'delta' }>): void {
    this.advance(msg.epoch, msg.seq);
    if (!this.isNew(msg.agent_id, msg.seq)) return;
    this.agentSeq.set(msg.agent_id, msg.seq);
    const old = this.rows.get(msg.agent_id);
    const { metrics, ...rest } = msg.changed;
    let agent: Agent;
    if (old) {
      agent = { ...old.agent, ...rest, metrics: { ...old.agent.metrics, ...metrics } };
    } else {
      // A first heartbeat carries the full state.
      agent = { ...(rest as Agent), agent_id: msg.agent_id, metrics: { cpu_pct: null, mem_pct: null, tokens_per_min: null, cost_usd: null, confidence: null, ...metrics } };
      this.ids = [...this.ids, msg.agent_id];
      this.listDirty = true;
    }
    const changedAt = old ? { ...old.changedAt, ...diffTimes(old.agent, agent, this.now()) } : {};
    this.rows.set(msg.agent_id, { agent, changedAt });
    if (old && (old.agent.status !== agent.status || old.agent.liveness !== agent.liveness)) this.listDirty = true;
    this.dirtyRows.add(msg.agent_id);
  }
}

/** The fields (metrics by their own name) whose values differ, each stamped with `at`. */
export function diffTimes(a: Agent, b: Agent, at: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of Object.keys(b) as (keyof Agent)[]) {
    if (k === 'metrics') continue;
    const x = a[k], y = b[k];
    // Arrays and maps (children, labels) compare by value; a heartbeat sends them fresh.
    if (x !== y && (typeof y !== 'object' || JSON.stringify(x) !== JSON.stringify(y))) out[k] = at;
  }
  for (const k of Object.keys(b.metrics) as (keyof Agent['metrics'])[])
    if (a.metrics[k] !== b.metrics[k]) out[k] = at;
  return out;
}
