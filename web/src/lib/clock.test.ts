import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { atTick, onTick, TICK_MS } from './clock';

describe('clock', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(10_000 + 123);
  });
  afterEach(() => vi.useRealTimers());

  it('ticks on the boundaries of TICK_MS, and stops when nobody listens', () => {
    const seen: number[] = [];
    const off = onTick(() => seen.push(Date.now()));
    vi.advanceTimersByTime(3 * TICK_MS);
    expect(seen).toEqual([10_000 + TICK_MS, 10_000 + 2 * TICK_MS, 10_000 + 3 * TICK_MS]);
    off();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('atTick runs once, on the first tick at or after the time, in the same tick as others', () => {
    const order: string[] = [];
    const off = onTick(() => order.push('tick'));
    const fn = vi.fn(() => order.push('due'));
    atTick(10_000 + TICK_MS + 1, fn);
    vi.advanceTimersByTime(TICK_MS);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(TICK_MS);
    expect(fn).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(3 * TICK_MS);
    expect(fn).toHaveBeenCalledTimes(1);
    expect(order.slice(0, 3)).toEqual(['tick', 'tick', 'due']);
    off();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a cancelled atTick never runs', () => {
    const fn = vi.fn();
    const cancel = atTick(10_000 + TICK_MS, fn);
    cancel();
    vi.advanceTimersByTime(5 * TICK_MS);
    expect(fn).not.toHaveBeenCalled();
    expect(vi.getTimerCount()).toBe(0);
  });
});
