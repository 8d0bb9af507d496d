// traceSource.ts - feeds one execution's TraceTree: subscribes to the live topic
// execution:<id> first, then pages the tree over HTTP, so that nothing stored in between is
// missed (merging by decision_id removes the overlap). Children of a decision are fetched on
// demand. After a reconnect the topic resumes from its last {epoch, seq}; when the hub cannot
// replay the gap (recovered: false, or a reload message) the pages are read again.
import { getExecution, listDecisions } from '../../lib/api';
import type { LiveClient, TopicHandler } from '../../lib/live';
import type { Decision, Execution, HubMessage, Position } from '../../lib/types';
import { TraceTree } from './traceTree';

const PAGE = 500;
/** Without an answer to the subscription by then, load anyway (the feed is down). */
const SUBSCRIBE_WAIT_MS = 2000;

export interface TraceApi {
  listDecisions: typeof listDecisions;
  getExecution: typeof getExecution;
}

export class TraceSource implements TopicHandler {
  readonly tree = new TraceTree();
  execution: Execution | null = null;
  error: string | null = null;
  /** The live topic answered: new decisions appear as they are stored. */
  live = false;
  loadingPage = false;
  private cursor: string | null = null;
  private loadingChildren = new Set<string>();
  private listeners = new Set<() => void>();
  private unsubscribe: (() => void) | null = null;
  private started = false;
  private waitTimer: ReturnType<typeof setTimeout> | null = null;
  private position: Position | null = null;
  private closed = false;
  version = 0;

  constructor(
    readonly executionId: string,
    private readonly api: TraceApi = { listDecisions, getExecution },
  ) {}

  open(live: LiveClient | null): void {
    this.closed = false;
    if (live) {
      this.unsubscribe = live.subscribe(`execution:${this.executionId}`, this);
      this.waitTimer = setTimeout(() => this.begin(), SUBSCRIBE_WAIT_MS);
    } else {
      this.begin();
    }
  }

  close(): void {
    this.closed = true;
    if (this.waitTimer) clearTimeout(this.waitTimer);
    this.unsubscribe?.();
  }

  subscribe(l: () => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  // --- TopicHandler: the live topic --------------------------------------------------------

  since(): Position | null {
    return this.started ? this.position : null;
  }

  handle(msg: HubMessage): void {
    if ('epoch' in msg && 'seq' in msg) {
      if (!this.position || this.position.epoch !== msg.epoch || msg.seq > this.position.seq)
        this.position = { epoch: msg.epoch, seq: msg.seq };
    }
    if (msg.type === 'subscribed') {
      this.live = true;
      if (!this.started) this.begin();
      else if (!msg.recovered) this.reread();
    } else if (msg.type === 'reload') {
      this.reread();
    } else if (msg.type === 'decision') {
      this.tree.addLive(msg.decision);
    } else if (msg.type === 'execution') {
      this.execution = msg.execution;
    } else if (msg.type === 'error') {
      this.live = false; // e.g. a server without the execution topic: pages only
      this.begin();
    }
  }

  flush(): void {
    this.changed();
  }

  // --- pages -------------------------------------------------------------------------------

  private begin(): void {
    if (this.started || this.closed) return;
    this.started = true;
    if (this.waitTimer) clearTimeout(this.waitTimer);
    this.api.getExecution(this.executionId).then(
      (x) => {
        if (!this.execution || x.decisions >= this.execution.decisions) this.execution = x;
        this.changed();
      },
      (e) => this.fail(e),
    );
    void this.loadMore();
  }

  /** Loads the next pre-order page, if any; called as the list scrolls near its end. */
  async loadMore(): Promise<void> {
    if (this.loadingPage || this.tree.preorderDone || this.closed || !this.started) return;
    this.loadingPage = true;
    this.changed();
    try {
      const page = await this.api.listDecisions(this.executionId, { cursor: this.cursor, limit: PAGE });
      this.cursor = page.next;
      this.tree.addPreorderPage(page.decisions, page.next === null);
    } catch (e) {
      this.fail(e);
    } finally {
      this.loadingPage = false;
      this.changed();
    }
  }

  /** Reads the execution and its pages again, merging: what the live topic could not replay. */
  private reread(): void {
    this.tree.restartPreorder();
    this.cursor = null;
    this.api.getExecution(this.executionId).then(
      (x) => {
        this.execution = x;
        this.changed();
      },
      (e) => this.fail(e),
    );
    void this.fillGap();
  }

  private async fillGap(): Promise<void> {
    while (!this.tree.preorderDone && !this.closed && !this.error) {
      const before = this.cursor;
      await this.loadMore();
      if (this.cursor === before && !this.tree.preorderDone) break;
    }
  }

  /** Fetches every child of a decision (for a node the pages have not reached). */
  async loadChildren(id: string): Promise<void> {
    if (this.loadingChildren.has(id)) return;
    this.loadingChildren.add(id);
    this.changed();
    try {
      let cursor: string | null = null;
      do {
        const page = await this.api.listDecisions(this.executionId, { parent: id, cursor, limit: PAGE });
        cursor = page.next;
        this.tree.addChildrenPage(id, page.decisions, cursor === null);
        this.changed();
      } while (cursor && !this.closed);
    } catch (e) {
      this.fail(e);
    } finally {
      this.loadingChildren.delete(id);
      this.changed();
    }
  }

  /** Opens or closes a node; opening one whose children are not here fetches them. */
  toggle(id: string): void {
    const t = this.tree;
    if (t.needsChildren(id)) {
      t.setCollapsed(id, false);
      void this.loadChildren(id);
    } else {
      t.setCollapsed(id, !t.isCollapsed(id));
    }
    this.changed();
  }

  isLoadingChildren(id: string): boolean {
    return this.loadingChildren.has(id);
  }

  node(id: string): Decision | undefined {
    return this.tree.nodes.get(id)?.d;
  }

  private fail(e: unknown): void {
    this.error = (e as Error).message ?? String(e);
    this.changed();
  }

  private changed(): void {
    this.version++;
    this.listeners.forEach((l) => l());
  }
}
