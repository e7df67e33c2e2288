/**
 * The wait of `client.getResult`: push hints where the backend has them, polling as the fallback,
 * every read raced against the caller's deadline, and the fast "not found" answer for unknown ids.
 */
import type { Backend, Expiry, FinalNotice } from './backend.js';
import { beforeDeadline, Waiter } from './deadline.js';
import { NotFoundError, ResultTimeoutError } from './errors.js';
import type { Logger } from './logger.js';
import { TaskResult } from './result.js';
import { isFinalStatus } from './state.js';

/** What the wait needs from its client. */
export interface WaitContext<R> {
  /** The backend (for push hints). */
  backend: Backend;
  /** The client's logger. */
  logger: Logger;
  /** The client's status expiry (0: states not stored, no notice or not-found shortcuts). */
  statusExpires: Expiry;
  /** See `ClientOptions.notFoundAfterMs`. */
  notFoundAfterMs: number;
  /** Reads the task (`afterHint`: state and result at once, the task has most likely finished). */
  read(afterHint: boolean): Promise<TaskResult<R> | null>;
}

/** Calls `fn`, ignoring what it throws (ending a push subscription must not fail a read). */
function safely(fn: () => void): void {
  try {
    fn();
  } catch {
    // ignored
  }
}

/** Waits until task `id` is finished (see `Client.getResult`); arguments are already validated. */
export async function waitForResult<R>(ctx: WaitContext<R>, id: string, timeoutMs: number, intervalMs: number): Promise<TaskResult<R>> {
  const deadline = Date.now() + timeoutMs;
  const waiter = new Waiter();
  const backend = ctx.backend;
  let hinted = false;
  // A notice carries the final write itself: no read is needed (states must be stored for it to
  // stand for what getStatus would read).
  let noticed: TaskResult<R> | undefined;
  const hint = (notice?: FinalNotice): void => {
    if (notice !== undefined && noticed === undefined && ctx.statusExpires !== 0) {
      const { state, result } = notice;
      if (state.id === id && isFinalStatus(state.status)) noticed = new TaskResult<R>(id, state, state.status === 'success' ? result : null);
    }
    hinted = true;
    waiter.wake();
  };
  let stop: (() => void) | undefined;
  let finished = false;
  // Subscribe first. The subscription's acknowledgement wakes the waiter too: the read that follows
  // it cannot miss a final write (a later write is announced). A rejection leaves plain polling.
  let watching: Promise<() => void> | undefined;
  try {
    watching = backend.watchFinal?.(id, hint);
  } catch (err) {
    watching = Promise.reject(err);
  }
  const push = watching !== undefined;
  watching?.then(
    (end) => {
      if (finished) safely(end);
      else stop = end;
      waiter.wake();
    },
    (err: unknown) => {
      ctx.logger.debug('getResult: no push hints, polling only', { id, error: err });
      waiter.wake();
    },
  );
  const timedOut = (): Error => new ResultTimeoutError(id, timeoutMs);
  // Fail fast on an unknown id only where a missing state means something.
  const notFoundAfter = ctx.statusExpires === 0 ? Infinity : ctx.notFoundAfterMs;
  let missingSince: number | undefined;
  let wait = Math.min(2, intervalMs);
  try {
    // With push, the first read waits for the subscription (or the first poll delay, whichever first).
    if (push) await waiter.wait(Math.min(wait, timeoutMs));
    for (;;) {
      waiter.woken = false;
      if (noticed !== undefined) return noticed;
      // After a hint the task has most likely finished: read state and result in one round trip.
      const read = ctx.read(hinted);
      hinted = false;
      const r = await beforeDeadline(read, deadline, timedOut);
      if (r?.isFinished()) return r;
      const now = Date.now();
      if (r === null) {
        missingSince ??= now;
        if (now - missingSince >= notFoundAfter && now < deadline) {
          throw new NotFoundError(`no task ${id} is stored: it was never sent (or its state expired)`);
        }
      } else {
        missingSince = undefined;
      }
      const left = deadline - now;
      if (left <= 0) throw timedOut();
      // A hint that arrived during the read means: read again at once.
      if (!waiter.woken) await waiter.wait(Math.min(wait, left));
      wait = Math.min(intervalMs, wait * 2);
    }
  } finally {
    finished = true;
    waiter.cancel();
    if (stop !== undefined) safely(stop);
  }
}
