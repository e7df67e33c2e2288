/**
 * Task handlers shared by the examples (the YTask demo: `add` and `appendUser`). The worker registers
 * them; a client process only needs their types (see `examples/client.ts`).
 */
import type { TaskCtl } from '../src/index.js';

/** A user record (travels as plain JSON). */
export interface User {
  id: number;
  name: string;
}

/** Adds two numbers. */
export function add(a: number, b: number): number {
  return a + b;
}

/** Returns `user` followed by one user per (id, name) pair. */
export function appendUser(user: User, ids: number[], names: string[]): User[] {
  if (ids.length !== names.length) throw new RangeError('ids and names must have the same length');
  return [user, ...ids.map((id, i) => ({ id, name: names[i] as string }))];
}

/** Fails on the first `failTimes` runs (asking for a retry), then succeeds: shows durable retries. */
export function flaky(ctl: TaskCtl, failTimes: number): string {
  if (ctl.retriesUsed < failTimes) {
    ctl.retry(new Error(`attempt ${ctl.retriesUsed + 1} failed on purpose`));
    return '';
  }
  return `succeeded after ${ctl.retriesUsed} retries`;
}

/** Works for `ms` milliseconds unless aborted: shows AbortSignal and progress. */
export async function slow(ctl: TaskCtl, ms: number): Promise<string> {
  const step = Math.max(10, Math.floor(ms / 10));
  for (let done = 0; done < ms; done += step) {
    await new Promise((r) => setTimeout(r, step));
    ctl.signal.throwIfAborted();
    await ctl.progress(Math.round(((done + step) / ms) * 100));
  }
  return `slept ${ms} ms`;
}

/** Returns the time it ran at (to show runAfter/runAt). */
export function now(): Date {
  return new Date();
}
