/**
 * Key and expiry helpers of the Memcache backend (`./memcache.ts`): the keys of a task (with hashed
 * ids where memcached would refuse the plain one) and the conversion of tasuki expiries to memcached
 * exptimes. Re-exported by `./memcache.ts`.
 */
import { createHash } from 'node:crypto';
import type { Expiry } from '../src/backend.js';
import { InvalidOptionError } from '../src/errors.js';

/** Memcached reads a relative expiry above this (30 days, in seconds) as an absolute Unix time. */
export const MEMCACHED_MAX_RELATIVE_EXPIRY = 60 * 60 * 24 * 30;
/** Longest key memcached accepts. */
const MAX_KEY_BYTES = 250;

/**
 * Converts an expiry in seconds (-1 forever, N > 0 seconds) to memcached's exptime: 0 for forever, N
 * itself up to 30 days, and the absolute Unix time `now + N` beyond (memcached would read a larger
 * relative value as an absolute time in 1970). An absolute time beyond 2106 (uint32) means forever.
 * Fractions of a second round up. `0` ("not stored") has no exptime: callers do not store then.
 */
export function memcachedExptime(ttl: Expiry, nowMs: number = Date.now()): number {
  if (ttl === -1 || ttl === Infinity) return 0;
  if (!(typeof ttl === 'number' && Number.isFinite(ttl) && ttl > 0)) {
    throw new InvalidOptionError(`expiry must be -1 (forever), 0 (not stored) or a positive number of seconds, got ${String(ttl)}`);
  }
  const seconds = Math.ceil(ttl);
  if (seconds <= MEMCACHED_MAX_RELATIVE_EXPIRY) return seconds;
  const absolute = Math.ceil(nowMs / 1000) + seconds;
  return absolute > 0xffffffff ? 0 : absolute;
}

/** Absolute Unix time (seconds) at which an entry with this expiry ends; 0 for forever. */
export function absoluteExpiry(ttl: Expiry, nowMs: number = Date.now()): number {
  const exptime = memcachedExptime(ttl, nowMs);
  if (exptime === 0 || exptime > MEMCACHED_MAX_RELATIVE_EXPIRY) return exptime;
  return Math.ceil(nowMs / 1000) + exptime;
}

/** Checks an expiry: -1, 0 or a positive number of seconds; throws {@link InvalidOptionError}. */
export function checkExpiry(ttl: unknown, what: string): Expiry {
  if (ttl === -1 || ttl === 0) return ttl;
  if (typeof ttl === 'number' && ttl > 0 && !Number.isNaN(ttl)) return ttl;
  throw new InvalidOptionError(`${what} must be -1 (forever), 0 (not stored) or a positive number of seconds, got ${String(ttl)}`);
}

/** The keys of a task: `prefix:id:s` (state), `prefix:id:r` (result), `prefix:id:l` (write lock); see the module comment for hashed ids. */
export function memcacheKeys(prefix: string, id: string): { state: string; result: string; lock: string } {
  const plain = /^[\x21-\x7e]+$/.test(id) && !id.startsWith('#') && Buffer.byteLength(`${prefix}:${id}:s`) <= MAX_KEY_BYTES;
  const part = plain ? id : '#' + createHash('sha256').update(id, 'utf8').digest('base64url');
  return { state: `${prefix}:${part}:s`, result: `${prefix}:${part}:r`, lock: `${prefix}:${part}:l` };
}
