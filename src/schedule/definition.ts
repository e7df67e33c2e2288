/**
 * Validation and normal form of a schedule definition: what is stored, hashed (an upsert with the
 * same normal form changes nothing) and read by the tick handler.
 */
import { createHash } from 'node:crypto';
import { InvalidOptionError } from '../errors.js';
import { encodeValue, type Backoff, type EncodedValue } from '../message.js';
import { assertName } from '../names.js';
import { checkMs, resolveBackoff, toEpoch } from '../options.js';
import { validateSendOptions } from '../outgoing.js';
import { checkTiming } from './timing.js';
import type { ScheduleDefinition } from './types.js';

/** Smallest interval of an `everyMs` schedule. */
export const MIN_EVERY_MS = 1000;
/** Default `graceMs`. */
export const DEFAULT_GRACE_MS = 60_000;
/** Default `max` of a catch-up window. */
export const DEFAULT_CATCHUP_MAX = 100;

/** Normal form of a catch-up policy. */
export type StoredCatchup = { mode: 'none' } | { mode: 'latest' } | { mode: 'window'; windowMs: number; max: number };

/** The stored (normalized, JSON) definition of a schedule. Key order is fixed: it is hashed. */
export interface StoredDefinition {
  group: string;
  task: string;
  args: EncodedValue;
  cron: string | null;
  tz: string | null;
  everyMs: number | null;
  startAt: number | null;
  endAt: number | null;
  limit: number | null;
  jitterMs: number;
  catchup: StoredCatchup;
  graceMs: number;
  overlap: 'allow' | 'skip' | 'buffer';
  send: { retryCount: number | null; backoff: Backoff | null; timeout: number | null; expireAfterMs: number | null };
}

/** Checks a schedule name (the task-name rules: 1 to 128 of `A-Z a-z 0-9 _ . : -`). */
export function assertScheduleName(name: unknown): asserts name is string {
  assertName('task', name);
}

/** Validates and normalizes an upsert; throws {@link InvalidOptionError}. */
export function normalizeDefinition(group: string, task: string, d: ScheduleDefinition, args: unknown[]): StoredDefinition {
  if (typeof d !== 'object' || d === null) throw new InvalidOptionError('a schedule needs { cron } or { everyMs }');
  const hasCron = d.cron !== undefined;
  const hasEvery = d.everyMs !== undefined;
  if (hasCron === hasEvery) throw new InvalidOptionError('a schedule needs exactly one of cron and everyMs');
  let cron: string | null = null;
  let tz: string | null = null;
  let everyMs: number | null = null;
  if (hasCron) {
    if (typeof d.cron !== 'string' || d.cron.trim() === '') throw new InvalidOptionError('cron must be a non-empty string');
    cron = d.cron.trim();
    tz = d.tz ?? 'UTC';
    if (typeof tz !== 'string' || tz === '') throw new InvalidOptionError('tz must be an IANA time zone name');
  } else {
    everyMs = checkMs('everyMs', d.everyMs, MIN_EVERY_MS);
    if (!Number.isInteger(everyMs)) throw new InvalidOptionError(`everyMs must be a whole number of ms, got ${everyMs}`);
    if (d.tz !== undefined) throw new InvalidOptionError('tz applies to cron schedules only');
  }
  const startAt = d.startAt === undefined ? null : toEpoch('startAt', d.startAt);
  const endAt = d.endAt === undefined ? null : toEpoch('endAt', d.endAt);
  if (startAt !== null && endAt !== null && endAt <= startAt) throw new InvalidOptionError('endAt must be after startAt');
  if (d.limit !== undefined && (!Number.isInteger(d.limit) || d.limit < 1)) throw new InvalidOptionError(`limit must be a whole number ≥ 1, got ${String(d.limit)}`);
  const jitterMs = d.jitterMs === undefined ? 0 : checkMs('jitterMs', d.jitterMs, 0);
  const graceMs = d.graceMs === undefined ? DEFAULT_GRACE_MS : checkMs('graceMs', d.graceMs, 0);
  const overlap = d.overlap ?? 'allow';
  if (overlap !== 'allow' && overlap !== 'skip' && overlap !== 'buffer') throw new InvalidOptionError(`overlap must be 'allow', 'skip' or 'buffer'`);
  const s = d.send ?? {};
  validateSendOptions({ ...(s.retryCount !== undefined ? { retryCount: s.retryCount } : {}), ...(s.timeout !== undefined ? { timeout: s.timeout } : {}) });
  if (s.expireAfterMs !== undefined) checkMs('send.expireAfterMs', s.expireAfterMs, 1);
  const def: StoredDefinition = {
    group,
    task,
    args: encodeValue(args, 'schedule arguments'),
    cron,
    tz,
    everyMs,
    startAt,
    endAt,
    limit: d.limit ?? null,
    jitterMs,
    catchup: normalizeCatchup(d.catchup),
    graceMs,
    overlap,
    send: {
      retryCount: s.retryCount ?? null,
      backoff: s.backoff === undefined ? null : resolveBackoff(s.backoff),
      timeout: s.timeout ?? null,
      expireAfterMs: s.expireAfterMs ?? null,
    },
  };
  checkTiming(def);
  return def;
}

function normalizeCatchup(c: ScheduleDefinition['catchup']): StoredCatchup {
  if (c === undefined || c === 'latest') return { mode: 'latest' };
  if (c === 'none') return { mode: 'none' };
  if (typeof c === 'object' && c !== null) {
    const windowMs = checkMs('catchup.windowMs', c.windowMs, 0);
    const max = c.max ?? DEFAULT_CATCHUP_MAX;
    if (!Number.isInteger(max) || max < 1) throw new InvalidOptionError(`catchup.max must be a whole number ≥ 1, got ${String(max)}`);
    return { mode: 'window', windowMs, max };
  }
  throw new InvalidOptionError(`catchup must be 'none', 'latest' or { windowMs, max? }`);
}

/** Hash of a normalized definition (equal definitions, equal hashes). */
export function definitionHash(def: StoredDefinition): string {
  return createHash('sha256').update(JSON.stringify(def)).digest('hex').slice(0, 32);
}
