// TracePage.tsx - an execution's decision tree: indented, collapsible, virtualized, loaded a
// page at a time as it scrolls, live while the execution runs.
import { useVirtualizer } from '@tanstack/react-virtual';
import { memo, useEffect, useMemo, useRef, useState, useSyncExternalStore } from 'react';
import { Link, useParams } from 'react-router';
import { download } from '../../lib/api';
import { clockTime, confidence, count, excerpt, usd } from '../../lib/format';
import { live } from '../../lib/session';
import { DecisionDetail } from './DecisionDetail';
import { TraceSource } from './traceSource';

const ROW_HEIGHT = 34;
const INDENT_PX = 18;
/** Ask for the next page when this close to the end of what is loaded. */
const PREFETCH_ROWS = 50;

export function TracePage() {
  const { executionId = '' } = useParams();
  const source = useMemo(() => new TraceSource(executionId), [executionId]);
  useEffect(() => {
    source.open(live);
    return () => source.close();
  }, [source]);
  useSyncExternalStore(
    (l) => source.subscribe(l),
    () => source.version,
  );
  const [selected, setSelected] = useState<string | null>(null);
  const rows = source.tree.visibleRows();
  const scrollRef = useRef<HTMLDivElement>(null);
  const virtualizer = useVirtualizer({
    count: rows.length,
    getScrollElement: () => scrollRef.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 15,
    getItemKey: (i) => rows[i].id,
  });
  const items = virtualizer.getVirtualItems();
  const lastIndex = items.length ? items[items.length - 1].index : -1;
  useEffect(() => {
    if (lastIndex >= rows.length - PREFETCH_ROWS) void source.loadMore();
  }, [lastIndex, rows.length, source]);

  const x = source.execution;
  const selectedDecision = selected ? source.node(selected) : undefined;
  const exportAs = (format: 'json' | 'markdown') =>
    download(
      `/api/v0/executions/${encodeURIComponent(executionId)}/export?format=${format}`,
      `${executionId}.${format === 'json' ? 'json' : 'md'}`,
    ).catch((e) => alert(`Export failed: ${(e as Error).message}`));

  return (
    <section className="page trace-page">
      <div className="toolbar">
        <h1>
          Trace <span className="id">{executionId}</span>
        </h1>
        {x && (
          <span className="summary" data-testid="execution-summary">
            agent <Link to={`/agents/${encodeURIComponent(x.agent_id)}/executions`}>{x.agent_id}</Link> · {x.status} ·{' '}
            <span data-testid="decision-count">{count(x.decisions)}</span> decisions · mean confidence {confidence(x.mean_confidence)} · {usd(x.cost_usd)} · started {clockTime(x.started)}
            {x.pending_parents > 0 && <span className="muted"> · {x.pending_parents} waiting for their parent</span>}
            {x.failure != null && <span className="error" data-testid="execution-failure"> · {excerpt(x.failure, 160)}</span>}
          </span>
        )}
        <span className={`badge ${source.live ? 'on' : 'off'}`} data-testid="trace-live" title={source.live ? 'New decisions appear as they are stored' : 'Not receiving new decisions live'}>
          {source.live ? 'live' : 'not live'}
        </span>
        <span className="spacer" />
        <button type="button" onClick={() => exportAs('json')} data-testid="export-json">Export JSON</button>
        <button type="button" onClick={() => exportAs('markdown')} data-testid="export-markdown">Export Markdown</button>
      </div>
      {source.error && <p className="error" role="alert">{source.error}</p>}
      <div className="trace-body">
        <div className="tree scroll" ref={scrollRef} role="tree" aria-label="decision tree" data-testid="trace-tree">
          {rows.length === 0 && !source.loadingPage && !source.error && <p className="empty">No decisions yet.</p>}
          <div style={{ height: virtualizer.getTotalSize(), position: 'relative' }}>
            {items.map((v) => {
              const r = rows[v.index];
              return (
                <TreeRow
                  key={r.id}
                  source={source}
                  id={r.id}
                  depth={r.depth}
                  top={v.start}
                  selected={selected === r.id}
                  version={source.tree.version}
                  onToggle={(id) => source.toggle(id)}
                  onSelect={setSelected}
                />
              );
            })}
          </div>
          {source.loadingPage && <p className="muted loading">Loading decisions…</p>}
        </div>
        {selectedDecision && <DecisionDetail d={selectedDecision} onClose={() => setSelected(null)} />}
      </div>
    </section>
  );
}

interface TreeRowProps {
  source: TraceSource;
  id: string;
  depth: number;
  top: number;
  selected: boolean;
  version: number;
  onToggle: (id: string) => void;
  onSelect: (id: string) => void;
}

const TreeRow = memo(function TreeRow({ source, id, depth, top, selected, onToggle, onSelect }: TreeRowProps) {
  const node = source.tree.nodes.get(id)!;
  const d = node.d;
  const t = source.tree;
  const leaf = node.childrenComplete && node.children.length === 0;
  const open = node.children.length > 0 && !t.isCollapsed(id);
  const loading = source.isLoadingChildren(id);
  return (
    <div
      className={`tree-row${selected ? ' selected' : ''}`}
      role="treeitem"
      aria-level={depth + 1}
      aria-expanded={leaf ? undefined : open}
      aria-selected={selected}
      data-decision-id={id}
      style={{ height: ROW_HEIGHT, transform: `translateY(${top}px)`, paddingLeft: 8 + depth * INDENT_PX }}
      onClick={() => onSelect(id)}
    >
      {leaf ? (
        <span className="toggle leaf" aria-hidden="true">·</span>
      ) : (
        <button
          type="button"
          className="toggle"
          aria-label={open ? 'collapse' : 'expand'}
          onClick={(e) => {
            e.stopPropagation();
            onToggle(id);
          }}
        >
          {loading ? '…' : open ? '▾' : '▸'}
        </button>
      )}
      {d.kind && <span className="kind">{d.kind}</span>}
      <span className="reasoning" title={excerpt(d.reasoning_context, 1000)}>{excerpt(d.reasoning_context, 200)}</span>
      <span className="conf" title="confidence">{confidence(d.confidence_score)}</span>
      <span className="time">{clockTime(d.timestamp)}</span>
    </div>
  );
});
