import { describe, expect, it } from 'vitest';
import { FIRST_PAGE, NO_FILTERS, currentCursor, newer, older, toAuditQuery } from './auditQuery';

describe('toAuditQuery', () => {
  it('leaves out empty fields and trims the rest', () => {
    expect(toAuditQuery({ ...NO_FILTERS, actor: '  cli:alice ', resource_id: '' })).toEqual({ query: { actor: 'cli:alice' } });
    expect(toAuditQuery(NO_FILTERS)).toEqual({ query: {} });
  });

  it('turns the days into UTC instants, the last day included', () => {
    const r = toAuditQuery({ ...NO_FILTERS, fromDay: '2026-11-24', toDay: '2026-11-24', action_type: 'pause' });
    expect(r).toEqual({ query: { action_type: 'pause', from: '2026-11-24T00:00:00Z', to: '2026-11-25T00:00:00Z' } });
    // Across a month's end.
    expect(toAuditQuery({ ...NO_FILTERS, toDay: '2026-11-30' })).toEqual({ query: { to: '2026-12-01T00:00:00Z' } });
  });

  it('names the field at fault', () => {
    expect(toAuditQuery({ ...NO_FILTERS, fromDay: 'yesterday' })).toEqual({ error: 'From: "yesterday" is not a date (YYYY-MM-DD).' });
    expect(toAuditQuery({ ...NO_FILTERS, toDay: '2026-13-45' })).toHaveProperty('error');
    expect(toAuditQuery({ ...NO_FILTERS, fromDay: '2026-11-25', toDay: '2026-11-24' })).toEqual({ error: 'To: pick a day on or after From.' });
  });
});

describe('pager', () => {
  it('goes older with each next cursor and back the same way', () => {
    let p = FIRST_PAGE;
    expect(currentCursor(p)).toBeNull();
    p = older(p, 'c1');
    p = older(p, 'c2');
    expect([p.page, currentCursor(p)]).toEqual([2, 'c2']);
    p = newer(p);
    expect(currentCursor(p)).toBe('c1');
    // Going older again from page 1 replaces what lay beyond it.
    p = older(p, 'c2b');
    expect(p.cursors).toEqual([null, 'c1', 'c2b']);
    p = newer(newer(newer(p)));
    expect([p.page, currentCursor(p)]).toEqual([0, null]);
  });
});
