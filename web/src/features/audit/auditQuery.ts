// auditQuery.ts - the audit view's filters as the form holds them, turned into what
// GET /api/v0/audit takes; and the keyset pager that walks its pages forward and back.
import type { AuditQuery } from '../../lib/api';

/** The filter form: text fields and two date pickers ("YYYY-MM-DD", UTC days, "" for none). */
export interface AuditFilters {
  actor: string;
  action_type: string;
  resource_id: string;
  fromDay: string;
  toDay: string;
}

export const NO_FILTERS: AuditFilters = { actor: '', action_type: '', resource_id: '', fromDay: '', toDay: '' };

/** The actions the server audits today (docs/audit.md), offered as suggestions. */
export const KNOWN_ACTIONS = [
  'execute', 'pause', 'resume', 'terminate', 'assign', 'override', 'reassign',
  'team_create', 'user_create', 'token_create', 'token_revoke',
];

const DAY_RE = /^\d{4}-\d{2}-\d{2}$/;
const DAY_MS = 86400000;

function dayStart(day: string): number | null {
  if (!DAY_RE.test(day)) return null;
  const t = Date.parse(day + 'T00:00:00Z');
  return Number.isNaN(t) ? null : t;
}

/** RFC 3339 without fractions, as the API takes it: "2026-11-24T00:00:00Z". */
function rfc3339(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * The API's parameters for the filters, or a message naming the field at fault. Days are whole
 * UTC days (server time is UTC) and both ends are inclusive: "to" becomes the start of the next
 * day, as the API's `to` is exclusive.
 */
export function toAuditQuery(f: AuditFilters): { query: AuditQuery } | { error: string } {
  const query: AuditQuery = {};
  for (const k of ['actor', 'action_type', 'resource_id'] as const) {
    const v = f[k].trim();
    if (v) query[k] = v;
  }
  let from: number | null = null;
  let to: number | null = null;
  if (f.fromDay) {
    from = dayStart(f.fromDay);
    if (from === null) return { error: `From: "${f.fromDay}" is not a date (YYYY-MM-DD).` };
    query.from = rfc3339(from);
  }
  if (f.toDay) {
    to = dayStart(f.toDay);
    if (to === null) return { error: `To: "${f.toDay}" is not a date (YYYY-MM-DD).` };
    query.to = rfc3339(to + DAY_MS);
  }
  if (from !== null && to !== null && to < from) return { error: 'To: pick a day on or after From.' };
  return { query };
}

/**
 * Keyset paging with a way back: the cursors of the pages seen so far, so that "newer" goes to
 * the cursor before without the API having to page backwards. Immutable: each step returns a
 * new pager.
 */
export interface Pager {
  /** cursors[i] opens page i; page 0 has none. */
  cursors: (string | null)[];
  page: number;
}

export const FIRST_PAGE: Pager = { cursors: [null], page: 0 };

export function currentCursor(p: Pager): string | null {
  return p.cursors[p.page];
}

/** Onwards to the page that `next` (the current page's cursor) opens. */
export function older(p: Pager, next: string): Pager {
  const cursors = p.cursors.slice(0, p.page + 1);
  cursors.push(next);
  return { cursors, page: p.page + 1 };
}

export function newer(p: Pager): Pager {
  return p.page === 0 ? p : { cursors: p.cursors, page: p.page - 1 };
}
