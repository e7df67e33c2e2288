/**
 * Time bounds of client calls: racing a broker or backend call against a deadline (so that a call
 * that hangs cannot hold a client call past its own bound), and a sleep that a hint can end early.
 */

/** Longest delay `setTimeout` honours; longer ones would fire at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Settles like `work`, unless `deadline` (epoch ms) passes first: then rejects with `onTimeout()`.
 * The timer is cleared as soon as either side settles, and a rejection of `work` after the deadline
 * is handled (no unhandled rejection). `Infinity` means no bound.
 */
export function beforeDeadline<T>(work: Promise<T>, deadline: number, onTimeout: () => Error): Promise<T> {
  if (deadline === Infinity) return work;
  return new Promise<T>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const arm = (): void => {
      const left = deadline - Date.now();
      if (left <= 0) {
        timer = undefined;
        reject(onTimeout());
        return;
      }
      // A long bound is chained in steps setTimeout can hold.
      timer = setTimeout(arm, Math.min(left, MAX_TIMER_MS));
    };
    arm();
    work.then(
      (value) => {
        if (timer !== undefined) clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        if (timer !== undefined) clearTimeout(timer);
        reject(err);
      },
    );
  });
}

/** Resolves after `ms` (any length; `Infinity` is clamped to the longest timer). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, Math.min(ms, MAX_TIMER_MS))));
}

/** A sleep that a hint can end early (`wake`); `woken` tells whether a hint came since it was reset. */
export class Waiter {
  /** True once {@link wake} was called since the caller last reset it. */
  woken = false;
  private resolve: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;

  /** Ends the current wait (if any) and sets {@link woken}. Safe to call at any time. */
  readonly wake = (): void => {
    this.woken = true;
    this.end();
  };

  /** Resolves after `ms` (clamped to {@link MAX_TIMER_MS}; callers re-check and wait again) or at the next {@link wake}. */
  wait(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      this.resolve = resolve;
      this.timer = setTimeout(this.end, Math.max(0, Math.min(ms, MAX_TIMER_MS)));
    });
  }

  /** Ends a pending wait and clears its timer. */
  cancel(): void {
    this.end();
  }

  private readonly end = (): void => {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const resolve = this.resolve;
    this.resolve = undefined;
    resolve?.();
  };
}
