// clock.ts - one timer for everything on screen that changes with time. It ticks on every
// TICK_MS boundary of the wall clock while anyone listens: relative times move on once a second,
// highlights end and the fleet totals are redrawn on those same ticks, so that the browser draws
// one frame for all of them instead of one each (bench/results/dashboard: frames are most of
// the main thread's work).
import { useSyncExternalStore } from 'react';

export const TICK_MS = 500;

type Listener = () => void;
const listeners = new Set<Listener>();
let timer: ReturnType<typeof setTimeout> | null = null;
let seconds = Math.floor(Date.now() / 1000) * 1000;

function arm(): void {
  timer = setTimeout(tick, TICK_MS - (Date.now() % TICK_MS));
}

function tick(): void {
  seconds = Math.floor(Date.now() / 1000) * 1000;
  // A listener may subscribe or unsubscribe while it runs: call the ones present now.
  [...listeners].forEach((l) => l());
  timer = null;
  if (listeners.size) arm();
}

/** Calls l on every tick until the returned function is called. */
export function onTick(l: Listener): () => void {
  listeners.add(l);
  if (!timer) arm();
  return () => {
    listeners.delete(l);
    if (listeners.size === 0 && timer) {
      clearTimeout(timer);
      timer = null;
    }
  };
}

/** Calls fn once, on the first tick at or after the time at (ms since the epoch); the returned
 * function cancels it. */
export function atTick(at: number, fn: () => void): () => void {
  const off = onTick(() => {
    if (Date.now() < at) return;
    off();
    fn();
  });
  return off;
}

/** The time, to the whole second, re-rendering the caller once a second. */
export function useNow(): number {
  // Between whole seconds the value is the same, so React skips the render.
  return useSyncExternalStore(onTick, () => seconds);
}
