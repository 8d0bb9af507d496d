import { describe, expect, it } from 'vitest';
import { confidence, count, excerpt, percent, relativeTime, usd } from './format';

describe('format', () => {
  it('percent, money, counts and confidence; null is a dash', () => {
    expect(percent(42.5)).toBe('43%');
    expect(percent(4.25)).toBe('4.3%');
    expect(percent(null)).toBe('—');
    expect(usd(7.5)).toBe('$7.50');
    expect(usd(1234.5)).toBe('$1,234.50');
    expect(usd(0.0039)).toBe('$0.0039');
    expect(usd(0)).toBe('$0.00');
    expect(usd(null)).toBe('—');
    expect(count(1535.4)).toBe('1,535');
    expect(confidence(87)).toBe('87');
    expect(confidence(81.5)).toBe('81.5');
  });

  it('relative times', () => {
    const now = Date.parse('2026-11-24T15:00:00Z');
    expect(relativeTime('2026-11-24T14:59:59.500Z', now)).toBe('just now');
    expect(relativeTime('2026-11-24T14:59:48Z', now)).toBe('12 s ago');
    expect(relativeTime('2026-11-24T14:55:00Z', now)).toBe('5 min ago');
    expect(relativeTime('2026-11-24T12:00:00Z', now)).toBe('3 h ago');
    expect(relativeTime('2026-11-20T15:00:00Z', now)).toBe('4 d ago');
    expect(relativeTime('2026-11-24T15:00:09Z', now)).toBe('just now'); // skew
    expect(relativeTime(null, now)).toBe('—');
    expect(relativeTime('not a time', now)).toBe('—');
  });

  it('excerpts: one line, at most max characters and an ellipsis', () => {
    expect(excerpt('short')).toBe('short');
    expect(excerpt('a\n  b')).toBe('a b');
    const long = excerpt('x'.repeat(500));
    expect(long).toHaveLength(201);
    expect(long.endsWith('…')).toBe(true);
    expect(excerpt({ q: 'why?' })).toBe('{"q":"why?"}');
    expect(excerpt(null)).toBe('');
  });
});
