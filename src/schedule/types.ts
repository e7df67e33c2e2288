/**
 * Public types of schedules: what `client.schedules.upsert` accepts and what the listing shows.
 */
import type { Backoff } from '../message.js';

/** When a schedule fires: a cron expression in an IANA time zone, or a fixed interval. */
export type ScheduleTiming =
  | {
      /**
       * A cron expression (5 fields `min hour day month weekday`, or 6 with seconds first), parsed by
       * croner. Day-of-month and day-of-week combine with OR, as in Vixie cron.
       */
      cron: string;
      /** IANA time zone the expression is read in (default `'UTC'`), e.g. `'Europe/Paris'`. */
      tz?: string;
      everyMs?: never;
    }
  | {
      /** Fires every this many ms (≥ 1 000), at `startAt + k × everyMs` (without `startAt`: at multiples of `everyMs` since the Unix epoch). */
      everyMs: number;
      cron?: never;
      tz?: never;
    };

/**
 * Which missed fires run after downtime (a fire is missed when its tick runs more than `graceMs`
 * after its time, e.g. because no worker of the group was running):
 * - `'none'`: none; each is counted in `missed` and announced by a `scheduleMissed` event;
 * - `'latest'` (default): the most recent missed fire runs once, the older ones are missed;
 * - `{ windowMs, max? }`: every missed fire no older than `windowMs` runs (at most `max`, default
 *   100, the most recent ones), the others are missed.
 */
export type ScheduleCatchup = 'none' | 'latest' | { windowMs: number; max?: number };

/**
 * What happens when a fire is due while the previous fire of the schedule has not finished (is
 * sent, running or waiting for a retry):
 * - `'allow'` (default): it fires anyway (fires may run at the same time);
 * - `'skip'`: it is skipped (counted in `skipped`, `scheduleMissed` event with reason `'overlap'`);
 * - `'buffer'`: at most one fire waits and runs as soon as the previous one finished; further ones
 *   meanwhile are skipped.
 */
export type ScheduleOverlap = 'allow' | 'skip' | 'buffer';

/** Send controls applied to every fire of a schedule. */
export interface ScheduleSendOptions {
  /** Retries after a failed run of a fire (default 3). */
  retryCount?: number;
  /** Delay between those retries (default: the send default, exponential from 1 s). */
  backoff?: Backoff | 'fixed' | 'exponential';
  /** Handler timeout of each fire in ms (default: the handler's own). */
  timeout?: number;
  /** A fire that has not started this many ms after its fire time expires and never runs (default: never). */
  expireAfterMs?: number;
}

/** Options of a schedule beside its timing. */
export interface ScheduleOptions {
  /** No fire before this time (inclusive; default: none). With `everyMs` it is also the anchor of the fires. */
  startAt?: Date | number;
  /** No fire at or after this time (exclusive; default: none). */
  endAt?: Date | number;
  /** Fires at most this many times, then ends (default: no limit). Manual `trigger`s do not count. */
  limit?: number;
  /** Each fire starts up to this many ms after its time, by an amount derived from its id (default 0). */
  jitterMs?: number;
  /** Which missed fires run after downtime (default `'latest'`). */
  catchup?: ScheduleCatchup;
  /** A fire whose tick runs more than this many ms after its time is missed (default 60 000, Quartz's misfire threshold). */
  graceMs?: number;
  /** When the previous fire still runs (default `'allow'`). */
  overlap?: ScheduleOverlap;
  /** Send controls of every fire. */
  send?: ScheduleSendOptions;
}

/** The second argument of `client.schedules.upsert`: timing plus options. */
export type ScheduleDefinition = ScheduleTiming & ScheduleOptions;

/** A schedule as listed by `client.schedules.list()` / `get()`. */
export interface ScheduleInfo {
  /** Name of the schedule. */
  name: string;
  /** Group and task name of the task each fire sends. */
  group: string;
  /** Task name. */
  task: string;
  /** Cron expression (cron schedules). */
  cron: string | null;
  /** Time zone of the cron expression. */
  tz: string | null;
  /** Interval (interval schedules). */
  everyMs: number | null;
  /** Whether it is paused. */
  paused: boolean;
  /** Fires so far under the current definition (manual triggers excluded). */
  fires: number;
  /** Fires missed (outside the catch-up window) under the current definition. */
  missed: number;
  /** Fires skipped because the previous one was still running (`overlap`). */
  skipped: number;
  /** Fire time of the last fire sent. */
  lastFireAt: Date | null;
  /** Task id of the last fire sent (`<name>@<ISO fire time>`). */
  lastFireId: string | null;
  /** Next fire time; `null` when the schedule has ended (`endAt`, `limit`) or is paused. */
  nextFireAt: Date | null;
  /** Identifier of the current definition; a new one is made when an upsert changes the definition. */
  revision: string;
  /** When the schedule was first created. */
  createdAt: Date;
  /** When the definition last changed. */
  updatedAt: Date;
}
