// traceTree.ts - an execution's decision tree as it arrives: pre-order pages (each decision
// with its depth), pages of one decision's children, and live decisions, all merged by
// decision_id. Siblings keep the order the server received them in (their timestamps).
import type { Decision } from '../../lib/types';

export interface TreeNode {
  d: Decision;
  children: string[];
  /** Every child is here: the pre-order pages went past this subtree, or its children were
   * listed to the end. Later children come live. */
  childrenComplete: boolean;
}

export interface VisibleRow {
  id: string;
  depth: number;
}

export class TraceTree {
  readonly nodes = new Map<string, TreeNode>();
  readonly roots: string[] = [];
  private collapsed = new Set<string>();
  /** Children whose parent is not here yet, by parent id. */
  private waiting = new Map<string, string[]>();
  /** The path from a root to the last decision of the pre-order pages, with their depths. */
  private stack: { id: string; depth: number }[] = [];
  /** The pre-order pages went to the end. */
  preorderDone = false;
  version = 0;
  private rowsCache: { version: number; rows: VisibleRow[] } | null = null;

  /** Adds one page of the pre-order listing (GET .../decisions without parent). A decision at
   * depth d closes every subtree on the path at depth d or deeper: pre-order has left them. */
  addPreorderPage(decisions: Decision[], last: boolean): void {
    for (const d of decisions) {
      this.insert(d);
      const depth = d.depth ?? 0;
      while (this.stack.length && this.stack[this.stack.length - 1].depth >= depth)
        this.nodes.get(this.stack.pop()!.id)!.childrenComplete = true;
      this.stack.push({ id: d.decision_id, depth });
    }
    if (last) {
      for (const { id } of this.stack) this.nodes.get(id)!.childrenComplete = true;
      this.stack = [];
      this.preorderDone = true;
    }
    this.version++;
  }

  /** Starts the pre-order listing over (after a reconnect, to catch what the gap missed);
   * what is already here stays. */
  restartPreorder(): void {
    this.stack = [];
    this.preorderDone = false;
  }

  /** Adds one page of a decision's children (GET .../decisions?parent=). */
  addChildrenPage(parentId: string, decisions: Decision[], last: boolean): void {
    for (const d of decisions) this.insert(d);
    const p = this.nodes.get(parentId);
    if (p && last) p.childrenComplete = true;
    this.version++;
  }

  /** Adds a decision that arrived live. */
  addLive(d: Decision): void {
    this.insert(d);
    this.version++;
  }

  /** Whether expanding this node needs its children fetched first. */
  needsChildren(id: string): boolean {
    const n = this.nodes.get(id);
    return !!n && !n.childrenComplete && n.children.length === 0;
  }

  isCollapsed(id: string): boolean {
    return this.collapsed.has(id);
  }

  setCollapsed(id: string, collapsed: boolean): void {
    if (collapsed === this.collapsed.has(id)) return;
    if (collapsed) this.collapsed.add(id);
    else this.collapsed.delete(id);
    this.version++;
  }

  /** The rows to draw: every decision under expanded ancestors, in tree order. */
  visibleRows(): VisibleRow[] {
    if (this.rowsCache?.version === this.version) return this.rowsCache.rows;
    const rows: VisibleRow[] = [];
    const walk = (ids: string[], depth: number) => {
      for (const id of ids) {
        rows.push({ id, depth });
        const n = this.nodes.get(id)!;
        if (n.children.length && !this.collapsed.has(id)) walk(n.children, depth + 1);
      }
    };
    walk(this.roots, 0);
    this.rowsCache = { version: this.version, rows };
    return rows;
  }

  private insert(d: Decision): void {
    // A stored decision never changes: the copy already here stays (live or listed).
    if (this.nodes.has(d.decision_id)) return;
    const node: TreeNode = { d, children: [], childrenComplete: false };
    this.nodes.set(d.decision_id, node);
    const parentId = d.parent_decision_id;
    if (parentId === null) {
      insertSorted(this.roots, d, this.nodes);
    } else if (this.nodes.has(parentId)) {
      insertSorted(this.nodes.get(parentId)!.children, d, this.nodes);
    } else {
      const list = this.waiting.get(parentId) ?? [];
      list.push(d.decision_id);
      this.waiting.set(parentId, list);
    }
    const orphans = this.waiting.get(d.decision_id);
    if (orphans) {
      this.waiting.delete(d.decision_id);
      for (const id of orphans) insertSorted(node.children, this.nodes.get(id)!.d, this.nodes);
    }
  }
}

/** Inserts d's id among siblings ordered by (timestamp, decision_id); most arrive last. */
function insertSorted(ids: string[], d: Decision, nodes: Map<string, TreeNode>): void {
  const before = (id: string) => {
    const o = nodes.get(id)!.d;
    return o.timestamp < d.timestamp || (o.timestamp === d.timestamp && o.decision_id < d.decision_id);
  };
  let i = ids.length;
  while (i > 0 && !before(ids[i - 1])) i--;
  ids.splice(i, 0, d.decision_id);
}
