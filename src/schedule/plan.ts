/**
 * What one tick of a schedule does, as a pure function of the record, the tick's fire time, the
 * clock and whether the previous fire still runs: which fire times fire, which are missed (late
 * beyond `graceMs` and outside the catch-up policy), which are skipped (overlap), which one is
 * buffered, and when the next tick is due.
 */
import type { ScheduleRecord } from './record.js';
import { countFires, firesBetween, nextFireAfter } from './timing.js';

/** Longest enumeration of fire times one tick makes (cron expressions after a very long downtime). */
const SCAN_MAX = 100_000;
/** Most on-time fires one tick sends (more only with a grace far above the interval). */
const ON_TIME_MAX = 1000;

/** What a tick decided. */
export interface Plan {
  /** Fire times to send fires for, oldest first. */
  fires: number[];
  /** Fire times missed: how many, and the most recent one. */
  missed: { count: number; latest: number | null };
  /** Fire times skipped by the overlap policy: how many, and the most recent one. */
  skipped: { count: number; latest: number | null };
  /** A fire time newly buffered (overlap `'buffer'`). */
  buffered: number | null;
  /** Fire time of the next tick (`null`: the schedule has ended). */
  next: number | null;
  /** New cursor: every fire time up to it is handled. */
  cursor: number;
}

/** The last `keep` fire times of `(after, until]` and how many there are. */
function lateFires(rec: ScheduleRecord, after: number, until: number, keep: number): { count: number; recent: number[] } {
  const def = rec.def;
  if (until <= after) return { count: 0, recent: [] };
  if (def.everyMs !== null) {
    const count = countFires(def, after, until);
    const recent = keep === 0 ? [] : firesBetween(def, Math.max(after, until - keep * def.everyMs), until, keep).fires;
    return { count, recent };
  }
  const ring: number[] = [];
  let count = 0;
  let at = after;
  for (; count < SCAN_MAX; count++) {
    const next = nextFireAfter(def, at);
    if (next === null || next > until) return { count, recent: ring };
    if (keep > 0) {
      ring.push(next);
      if (ring.length > keep) ring.shift();
    }
    at = next;
  }
  // Too many to enumerate: the recent ones are looked for in the last day only.
  const recent = keep === 0 ? [] : lateFires(rec, Math.max(at, until - 86_400_000), until, keep).recent;
  return { count, recent };
}

/**
 * Plans the tick at `slot` run at `now`. `busy`: the previous fire has not finished (only looked at
 * with overlap `'skip'` / `'buffer'`).
 */
export function planTick(rec: ScheduleRecord, slot: number, now: number, busy: boolean): Plan {
  const def = rec.def;
  // The broker held the tick until its time: a clock of this process behind that is not believed.
  const at = Math.max(now, slot);
  const lateEnd = at - def.graceMs;
  const onTime = firesBetween(def, Math.max(rec.cursor, lateEnd), at, ON_TIME_MAX);
  const c = def.catchup;
  // At least the most recent late fire is looked at: it names the missed ones in the event.
  const keep = c.mode === 'window' ? c.max : 1;
  const late = lateFires(rec, rec.cursor, lateEnd, keep);
  let chosen: number[] = [];
  if (c.mode === 'latest') chosen = late.recent.slice(-1);
  else if (c.mode === 'window') chosen = late.recent.filter((t) => t >= at - c.windowMs);
  const missedCount = late.count - chosen.length + (onTime.more ? 1 : 0);
  const notChosen = late.recent.filter((t) => !chosen.includes(t));
  const missedLatest = missedCount > 0 && notChosen.length > 0 ? (notChosen[notChosen.length - 1] as number) : null;
  let candidates = [...chosen, ...onTime.fires];

  const skipped: number[] = [];
  let buffered: number | null = null;
  if (def.overlap !== 'allow' && candidates.length > 0) {
    // Fires of one tick would overlap each other: only the most recent one is kept.
    skipped.push(...candidates.slice(0, -1));
    candidates = candidates.slice(-1);
    const blocked = busy || rec.buffered !== null;
    if (blocked) {
      const t = candidates[0] as number;
      if (def.overlap === 'buffer' && rec.buffered === null) buffered = t;
      else skipped.push(t);
      candidates = [];
    }
  }

  let next = nextFireAfter(def, at);
  if (def.limit !== null) {
    const left = Math.max(0, def.limit - rec.fires - (buffered === null ? 0 : 1));
    if (candidates.length > left) candidates = candidates.slice(0, left);
    if (rec.fires + candidates.length + (buffered === null ? 0 : 1) >= def.limit) next = null;
  }
  return {
    fires: candidates,
    missed: { count: missedCount, latest: missedLatest },
    skipped: { count: skipped.length, latest: skipped.length > 0 ? (skipped[skipped.length - 1] as number) : null },
    buffered,
    next,
    cursor: at,
  };
}
