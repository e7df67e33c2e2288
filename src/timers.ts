/**
 * Timers the worker needs beyond `setTimeout`: delays longer than its 2³¹−1 ms limit (which Node
 * turns into 1 ms), and a sleep that an `AbortSignal` ends early.
 */

/** Longest delay one `setTimeout` honours (ms); longer ones are chained by {@link setLongTimeout}. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A cancellable timer of any length. */
export interface LongTimer {
  /** Cancels the timer (idempotent). */
  clear(): void;
}

/**
 * Calls `fn` once after `ms` (any finite length, chained in steps of at most {@link MAX_TIMER_MS}).
 * The timer keeps the process alive unless `unref` is true.
 */
export function setLongTimeout(fn: () => void, ms: number, unref = false): LongTimer {
  const due = Date.now() + ms;
  let timer: NodeJS.Timeout | undefined;
  const arm = (left: number): void => {
    timer = setTimeout(left > MAX_TIMER_MS ? step : fn, Math.min(Math.max(left, 0), MAX_TIMER_MS));
    if (unref) timer.unref();
  };
  const step = (): void => arm(due - Date.now());
  arm(ms);
  return {
    clear(): void {
      clearTimeout(timer);
    },
  };
}

/** Sleep that ends early when `signal` aborts (unref'd: it never keeps the process alive). */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    timer.unref();
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
