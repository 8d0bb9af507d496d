import { describe, expect, it } from 'vitest';
import type { Decision } from '../../lib/types';
import { TraceTree } from './traceTree';

let clock = 0;
function d(id: string, parent: string | null, depth?: number): Decision {
  clock++;
  return {
    decision_id: id, execution_id: 'run', agent_id: 'a', parent_decision_id: parent,
    timestamp: `2026-11-24T15:00:00.${String(clock).padStart(6, '0')}Z`, agent_ts: null, kind: null,
    reasoning_context: id, confidence_score: null, alternatives_considered: [], selected_outcome: null,
    labels: {}, duration_ms: null, tokens: null, cost_usd: null, ...(depth === undefined ? {} : { depth }),
  };
}

const ids = (t: TraceTree) => t.visibleRows().map((r) => `${r.id}@${r.depth}`);

describe('TraceTree', () => {
  // a(b(c, e), f), g(h) in pre-order
  const all = () => {
    clock = 0;
    return [d('a', null, 0), d('b', 'a', 1), d('c', 'b', 2), d('e', 'b', 2), d('f', 'a', 1), d('g', null, 0), d('h', 'g', 1)];
  };

  it('builds the tree from pre-order pages, indented by depth', () => {
    const t = new TraceTree();
    const x = all();
    t.addPreorderPage(x.slice(0, 3), false);
    t.addPreorderPage(x.slice(3), true);
    expect(ids(t)).toEqual(['a@0', 'b@1', 'c@2', 'e@2', 'f@1', 'g@0', 'h@1']);
    expect(t.preorderDone).toBe(true);
  });

  it('knows which subtrees the pages have finished', () => {
    const t = new TraceTree();
    t.addPreorderPage(all().slice(0, 4), false); // a b c e
    expect(t.nodes.get('c')!.childrenComplete).toBe(true); // e (depth 2) came after it
    expect(t.nodes.get('e')!.childrenComplete).toBe(false); // the last one: maybe more below
    expect(t.nodes.get('b')!.childrenComplete).toBe(false);
    expect(t.needsChildren('e')).toBe(true);
    t.addPreorderPage([d('f', 'a', 1)], false);
    expect(t.nodes.get('b')!.childrenComplete).toBe(true);
    expect(t.nodes.get('e')!.childrenComplete).toBe(true);
    expect(t.nodes.get('a')!.childrenComplete).toBe(false);
  });

  it('adds pages of one decision\'s children and merges what the pages bring again', () => {
    const t = new TraceTree();
    const x = all();
    t.addPreorderPage([x[0]], false); // a, nothing known below
    expect(t.needsChildren('a')).toBe(true);
    t.addChildrenPage('a', [x[1], x[4]], true);
    expect(t.needsChildren('a')).toBe(false);
    t.addPreorderPage(x.slice(1), true); // b again, then the rest
    expect(ids(t)).toEqual(['a@0', 'b@1', 'c@2', 'e@2', 'f@1', 'g@0', 'h@1']);
    expect(t.nodes.size).toBe(7);
  });

  it('places a live decision under its parent; one whose parent is missing waits for it', () => {
    const t = new TraceTree();
    const x = all();
    t.addPreorderPage(x.slice(0, 5), true);
    clock = 100;
    const late = d('late', 'b'); // no depth: live
    t.addLive(late);
    expect(ids(t)).toEqual(['a@0', 'b@1', 'c@2', 'e@2', 'late@2', 'f@1']);
    const orphan = d('o', 'g');
    t.addLive(orphan);
    expect(ids(t)).not.toContain('o@1');
    t.addLive(x[5]); // g arrives
    expect(ids(t).slice(-2)).toEqual(['g@0', 'o@1']);
  });

  it('keeps siblings in arrival (timestamp) order whatever order they come in', () => {
    const t = new TraceTree();
    clock = 0;
    const root = d('r', null, 0);
    const c1 = d('c1', 'r', 1);
    const c2 = d('c2', 'r', 1);
    const c3 = d('c3', 'r', 1);
    t.addLive(c3);
    t.addLive(root);
    t.addLive(c1);
    t.addPreorderPage([root, c1, c2], false);
    expect(ids(t)).toEqual(['r@0', 'c1@1', 'c2@1', 'c3@1']);
  });

  it('collapses and expands; collapsed subtrees are not drawn', () => {
    const t = new TraceTree();
    t.addPreorderPage(all(), true);
    t.setCollapsed('a', true);
    expect(ids(t)).toEqual(['a@0', 'g@0', 'h@1']);
    t.setCollapsed('a', false);
    expect(ids(t)).toHaveLength(7);
  });

  it('draws 10,000 decisions in one pass', () => {
    const t = new TraceTree();
    clock = 0;
    const page = [d('root', null, 0)];
    for (let i = 0; i < 9999; i++) page.push(d(`n${i}`, 'root', 1));
    const t0 = performance.now();
    t.addPreorderPage(page, true);
    expect(t.visibleRows()).toHaveLength(10000);
    expect(performance.now() - t0).toBeLessThan(1000);
  });
});
