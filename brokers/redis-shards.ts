/**
 * Sharded groups of the Redis broker (`shards` option): a group with n shards has n key sets under
 * the hash tags `{group}`, `{group|1}` … `{group|n-1}` (`./redis-keys.ts`), so on a Redis Cluster its
 * work spreads over up to n masters. This module holds the pure parts: the option, which shard a
 * publish goes to, and the shard marks of delivery tokens and dead letter ids.
 *
 * - A message with a key always goes to the shard of its key (a hash of the key), so the per-key
 *   limits (concurrency, rate, back-off) and the order of one key's messages hold as without shards.
 * - Other messages are spread round-robin over the shards by each sending process.
 * - A token or dead letter id of shard i ≥ 1 starts with `i@` (message ids are digits; shard 0 keeps
 *   the unsharded form, so a group's layout with 1 shard is exactly today's).
 */
import type { DispatchFeature } from '../src/broker.js';
import { InvalidOptionError } from '../src/errors.js';

/** Most shards of one group. */
export const MAX_SHARDS = 64;

/** The `shards` option: one count for every group, or counts by group name (others: 1). */
export type ShardsOption = number | Readonly<Record<string, number>>;

/** Validates the `shards` option (throws `InvalidOptionError`). */
export function checkShards(option: ShardsOption | undefined): ShardsOption {
  if (option === undefined) return 1;
  const check = (n: unknown, what: string): void => {
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_SHARDS) {
      throw new InvalidOptionError(`${what} must be an integer from 1 to ${MAX_SHARDS}, got ${String(n)}`);
    }
  };
  if (typeof option === 'number') check(option, 'shards');
  else if (typeof option === 'object' && option !== null) for (const [g, n] of Object.entries(option)) check(n, `shards of group ${JSON.stringify(g)}`);
  else throw new InvalidOptionError('shards must be a number or an object of numbers by group');
  return option;
}

/** The shard count of `group` under `option`. */
export function shardCount(option: ShardsOption, group: string): number {
  return typeof option === 'number' ? option : option[group] ?? 1;
}

/** A shard and the token (or id) as its scripts know it. */
export interface ShardRef {
  readonly shard: number;
  readonly local: string;
}

/** The token (or dead letter id) the caller sees for `local` of `shard`. */
export function markShard(shard: number, local: string): string {
  return shard === 0 ? local : `${shard}@${local}`;
}

/** Splits a token (or dead letter id) into its shard and local part (no mark: shard 0). */
export function shardOf(token: string): ShardRef {
  const at = token.indexOf('@');
  if (at <= 0) return { shard: 0, local: token };
  const shard = Number(token.slice(0, at));
  if (!Number.isInteger(shard) || shard < 0) return { shard: 0, local: token };
  return { shard, local: token.slice(at + 1) };
}

/** FNV-1a hash of a string (the shard of a keyed message). */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** The shard among `n` that every message of flow-control key `key` goes to. */
export function keyShard(n: number, key: string): number {
  return n === 1 ? 0 : hash(key) % n;
}

/** Picks shards for publishes: by key hash for keyed messages, round-robin otherwise. */
export class ShardPicker {
  private turn = Math.floor(Math.random() * MAX_SHARDS);

  /** The shard of a message of lane `lane` (level digit + key, '' plain) among `n`. */
  pick(n: number, lane: string): number {
    if (n === 1) return 0;
    if (lane.length > 1) return keyShard(n, lane.slice(1));
    this.turn = (this.turn + 1) % 1_000_000;
    return this.turn % n;
  }

  /** The shard a fetch of `n` shards starts at (rotates, so that no shard is always last). */
  start(n: number): number {
    this.turn = (this.turn + 1) % 1_000_000;
    return this.turn % n;
  }
}

/** Flow-control features the Redis broker enforces (all of them, in its scripts). */
const REDIS_FLOW_FEATURES: ReadonlySet<DispatchFeature> = new Set<DispatchFeature>(['priority', 'key', 'rateLimit', 'keyConcurrency', 'keyRateLimit', 'keyBackoff']);
/**
 * With sharded groups: a key lives on one shard, so the key features hold exactly; priorities and
 * the group rate limit would hold per shard only, so they are not declared (the core refuses them).
 */
const SHARDED_FLOW_FEATURES: ReadonlySet<DispatchFeature> = new Set<DispatchFeature>(['key', 'keyConcurrency', 'keyRateLimit', 'keyBackoff']);

/** The flow-control features the broker declares for a `shards` option (fewer once any group has more than one shard). */
export function shardedFeatures(option: ShardsOption): ReadonlySet<DispatchFeature> {
  const sharded = typeof option === 'number' ? option > 1 : Object.values(option).some((n) => n > 1);
  return sharded ? SHARDED_FLOW_FEATURES : REDIS_FLOW_FEATURES;
}
