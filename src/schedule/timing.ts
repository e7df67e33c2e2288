/**
 * Fire times of a schedule. Cron expressions and time-zone arithmetic (DST gaps and repeated hours)
 * come from croner; this file adds only the `startAt`/`endAt` bounds and the interval arithmetic.
 *
 * DST, as croner computes it (Vixie cron's rule, with croner's `fixedTimeRule: 'no-wildcard'`)
 * and the tests pin down: for a fixed-time expression (no `*` or step in seconds, minutes and hours,
 * e.g. `30 2 * * *` or `0 2,14 * * *`), a wall time that does not exist (the spring-forward gap)
 * fires once, at the next valid instant (03:00 local), and a wall time that exists twice (the
 * repeated autumn hour) fires once, at its first occurrence. An interval expression (`*`/step in
 * those fields, e.g. `*\/15 * * * *`) keeps real time: its times in a gap do not exist, and it
 * fires in both passes of a repeated hour.
 */
import { Cron } from 'croner';
import { InvalidOptionError } from '../errors.js';
import type { StoredDefinition } from './definition.js';

/** The fields of a definition that decide its fire times. */
export type Timing = Pick<StoredDefinition, 'cron' | 'tz' | 'everyMs' | 'startAt' | 'endAt'>;

const crons = new Map<string, Cron>();

function cronOf(expr: string, tz: string): Cron {
  const key = `${tz}\u0000${expr}`;
  let c = crons.get(key);
  if (c === undefined) {
    c = new Cron(expr, { timezone: tz, paused: true, fixedTimeRule: 'no-wildcard' });
    if (crons.size > 1000) crons.clear();
    crons.set(key, c);
  }
  return c;
}

/** Checks that the cron expression parses and its time zone exists; throws {@link InvalidOptionError}. */
export function checkTiming(t: Timing): void {
  if (t.cron === null) return;
  try {
    cronOf(t.cron, t.tz ?? 'UTC').nextRun(new Date(0));
  } catch (err) {
    throw new InvalidOptionError(`invalid cron schedule ${JSON.stringify(t.cron)} in time zone ${JSON.stringify(t.tz)}: ${(err as Error).message}`);
  }
}

/** The first fire time strictly after `after` (epoch ms), or `null` when there is none (past `endAt`, or an expression that never matches again). */
export function nextFireAfter(t: Timing, after: number): number | null {
  let from = after;
  if (t.startAt !== null && from < t.startAt) from = t.startAt - 1;
  let next: number | null;
  if (t.everyMs !== null) {
    const anchor = t.startAt ?? 0;
    next = anchor + (Math.floor((from - anchor) / t.everyMs) + 1) * t.everyMs;
  } else {
    const d = cronOf(t.cron as string, t.tz ?? 'UTC').nextRun(new Date(from));
    next = d === null ? null : d.getTime();
  }
  if (next === null || (t.endAt !== null && next >= t.endAt)) return null;
  return next;
}

/**
 * Fire times in `(after, until]`, oldest first, at most `max` of them (the oldest ones); `more` says
 * whether further ones exist in the range.
 */
export function firesBetween(t: Timing, after: number, until: number, max: number): { fires: number[]; more: boolean } {
  const fires: number[] = [];
  let at = after;
  for (;;) {
    const next = nextFireAfter(t, at);
    if (next === null || next > until) return { fires, more: false };
    if (fires.length >= max) return { fires, more: true };
    fires.push(next);
    at = next;
  }
}

/** How many fire times lie in `(after, until]` (interval schedules: computed; cron: counted, up to `cap`). */
export function countFires(t: Timing, after: number, until: number, cap = 1_000_000): number {
  if (until <= after) return 0;
  if (t.everyMs !== null) {
    const first = nextFireAfter(t, after);
    if (first === null || first > until) return 0;
    const last = t.endAt !== null ? Math.min(until, t.endAt - 1) : until;
    return Math.floor((last - first) / t.everyMs) + 1;
  }
  let n = 0;
  let at = after;
  while (n < cap) {
    const next = nextFireAfter(t, at);
    if (next === null || next > until) break;
    n++;
    at = next;
  }
  return n;
}
