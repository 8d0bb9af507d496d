// format.ts - how numbers, money and times read on screen.

const DASH = '—';
// Formatters made once: toLocaleString with options builds a new one on every call, which the
// agents table would pay for every cell it draws.
const USD = new Intl.NumberFormat('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const COUNT = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const CLOCK = new Intl.DateTimeFormat('en-GB', {
  year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false,
});

export function percent(v: number | null | undefined): string {
  return v === null || v === undefined ? DASH : `${v.toFixed(v < 10 ? 1 : 0)}%`;
}

export function usd(v: number | null | undefined): string {
  if (v === null || v === undefined) return DASH;
  if (v !== 0 && Math.abs(v) < 0.01) return `$${v.toFixed(4)}`;
  return `$${USD.format(v)}`;
}

export function count(v: number | null | undefined): string {
  if (v === null || v === undefined) return DASH;
  return COUNT.format(Math.round(v));
}

/** Confidence is 0 to 100. */
export function confidence(v: number | null | undefined): string {
  return v === null || v === undefined ? DASH : v.toFixed(v % 1 ? 1 : 0);
}

/** "3 s ago", "5 min ago", "2 h ago", "4 d ago"; "just now" under a second, and a time in the
 * future (clock skew) also reads as just now. */
export function relativeTime(iso: string | null | undefined, now: number): string {
  if (!iso) return DASH;
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return DASH;
  const s = Math.floor((now - t) / 1000);
  if (s < 1) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** A server time as local date and time to the second. */
export function clockTime(iso: string | null | undefined): string {
  if (!iso) return DASH;
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return DASH;
  return CLOCK.format(d);
}

/** Any JSON value as one line of text, cut to max characters with an ellipsis. */
export function excerpt(v: unknown, max = 200): string {
  if (v === null || v === undefined) return '';
  const s = (typeof v === 'string' ? v : JSON.stringify(v)).replace(/\s+/g, ' ').trim();
  return s.length > max ? s.slice(0, max) + '…' : s;
}

/** Any JSON value for reading in full: strings as they are, the rest indented. */
export function fullText(v: unknown): string {
  if (v === null || v === undefined) return DASH;
  return typeof v === 'string' ? v : JSON.stringify(v, null, 2);
}
