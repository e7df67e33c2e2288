/**
 * The schedule record: its normalized definition plus the bookkeeping the ticks keep (cursor,
 * counters, last and next fire, the last tick's plan), stored as JSON text in a {@link ScheduleStore}.
 */
import { DecodeError } from '../errors.js';
import type { StoredDefinition } from './definition.js';
import type { ScheduleInfo } from './types.js';

/** What the last tick of a schedule decided, kept so that a tick re-run after a crash re-sends the same. */
export interface TickPlan {
  /** Fire time of the tick. */
  slot: number;
  /** Fire times it sent fires for. */
  fires: number[];
  /** Fire time of the next tick it sent (`null`: none, the schedule ended). */
  next: number | null;
  /** Fire time of a fire it buffered (overlap `'buffer'`), whose wait it started. */
  buffered: number | null;
  /**
   * Set while its fires may not all have been sent: a tick writes its plan first, sends its fires,
   * then clears this. Absent once they were (and in records of earlier releases, which wrote the
   * plan after sending). Only a plan still marked so is sent again by a later tick or an edit, so
   * that a fire whose state has expired is never sent a second time.
   */
  unsent?: true;
}

/** A stored schedule. */
export interface ScheduleRecord {
  /** Format version. */
  v: 1;
  name: string;
  /** Revision of the definition: random, new whenever an upsert changes the definition. Ticks carry it. */
  gen: string;
  /** Hash of {@link def}. */
  hash: string;
  def: StoredDefinition;
  paused: boolean;
  /** Every fire time ≤ cursor is handled (fired, missed or skipped). */
  cursor: number;
  fires: number;
  missed: number;
  skipped: number;
  lastFireAt: number | null;
  lastFireId: string | null;
  /** Fire time of the pending tick (`null`: none: ended or paused). */
  nextFireAt: number | null;
  /** A fire waiting for the previous one to finish (overlap `'buffer'`). */
  buffered: number | null;
  lastTick: TickPlan | null;
  createdAt: number;
  updatedAt: number;
}

/** Parses a stored record; throws {@link DecodeError}. */
export function parseRecord(text: string, name: string): ScheduleRecord {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new DecodeError(`schedule record ${JSON.stringify(name)} is not JSON`, err);
  }
  const r = v as Partial<ScheduleRecord> | null;
  if (r === null || typeof r !== 'object' || r.v !== 1 || typeof r.gen !== 'string' || typeof r.def !== 'object') {
    throw new DecodeError(`stored value of schedule ${JSON.stringify(name)} is not a schedule record`);
  }
  return r as ScheduleRecord;
}

/** The listing view of a record. */
export function toInfo(r: ScheduleRecord): ScheduleInfo {
  const date = (ms: number | null): Date | null => (ms === null ? null : new Date(ms));
  return {
    name: r.name,
    group: r.def.group,
    task: r.def.task,
    cron: r.def.cron,
    tz: r.def.tz,
    everyMs: r.def.everyMs,
    paused: r.paused,
    fires: r.fires,
    missed: r.missed,
    skipped: r.skipped,
    lastFireAt: date(r.lastFireAt),
    lastFireId: r.lastFireId,
    nextFireAt: r.paused ? null : date(r.nextFireAt),
    revision: r.gen,
    createdAt: new Date(r.createdAt),
    updatedAt: new Date(r.updatedAt),
  };
}

/** Task id of the fire of schedule `name` at `at` (deterministic: however many ticks run, one task per fire time). */
export function fireId(name: string, at: number): string {
  return `${name}@${new Date(at).toISOString()}`;
}

/** Task id of the tick of `name` (revision `gen`) at `at`. */
export function tickId(name: string, gen: string, at: number): string {
  return `tasuki.tick:${name}:${gen}:${at}`;
}

/** Task id of the `attempt`-th wait of the fire buffered at `at`. */
export function waitId(name: string, gen: string, at: number, attempt: number): string {
  return `tasuki.wait:${name}:${gen}:${at}:${attempt}`;
}
