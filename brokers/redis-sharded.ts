/**
 * The operations of the Redis broker on a sharded group (`shards` > 1, see `./redis-shards.ts`):
 * a fetch visits the shards one after another, starting at a rotating shard, until it has `max`
 * deliveries, and when none has work waits on every shard's wake list at once; dead-letter
 * operations split their ids by shard.
 */
import type { DeadLetter, Delivery } from '../src/broker.js';
import { ConnectionError } from '../src/errors.js';
import type { WakeWaiter } from './redis-wake-hub.js';
import { KeyCache, type GroupKeys } from './redis-keys.js';
import { markShard, shardOf, type ShardPicker } from './redis-shards.js';
import { deliveryGroup, parseFetchReply, parseReason } from './redis-values.js';
import type { Waits } from './redis-waits.js';
import type { RedisClient } from './redis-cluster.js';

/** Least time a fetch waits for an unreachable Redis before it rejects (as the unsharded fetch). */
const DISCONNECTED_WAIT_MS = 1000;

/** What a sharded fetch needs of its broker. */
export interface ShardedFetchContext {
  readonly cmd: RedisClient;
  readonly waits: Waits;
  readonly pool: WakeWaiter;
  readonly picker: ShardPicker;
  /** The keys of shard `shard` of the group. */
  keys(shard: number): GroupKeys;
  /** Runs the fetch script on `k` for up to `max` deliveries. */
  fetchScript(k: GroupKeys, max: number): Promise<unknown>;
}

/**
 * Fetches up to `max` deliveries of a group of `n` shards: shards in turn from a rotating start (so
 * that every shard is first once every n fetches and none starves), blocking on all wake lists
 * when every shard is empty, until `deadline` (epoch ms). A wait that runs to the deadline and
 * ends quietly returns `[]` without visiting the shards again (as `./redis-fetch.ts` does).
 */
export async function fetchSharded(ctx: ShardedFetchContext, group: string, n: number, max: number, deadline: number, signal: AbortSignal | undefined): Promise<Delivery[]> {
  for (;;) {
    if (ctx.waits.closed || signal?.aborted) return [];
    if (ctx.cmd.status !== 'ready') {
      const up = await ctx.waits.ready(ctx.cmd, Math.max(deadline - Date.now(), DISCONNECTED_WAIT_MS), signal);
      if (!up) {
        if (ctx.waits.closed || signal?.aborted) return [];
        throw new ConnectionError(`redis is not reachable (status ${ctx.cmd.status})`);
      }
    }
    const out: Delivery[] = [];
    let next = -1;
    let throttle = -1;
    const start = ctx.picker.start(n);
    for (let j = 0; j < n && out.length < max; j++) {
      const shard = (start + j) % n;
      const reply = parseFetchReply(group, await ctx.fetchScript(ctx.keys(shard), max - out.length));
      for (const d of reply.deliveries) out.push(shard === 0 ? d : { ...d, token: markShard(shard, d.token) });
      if (reply.nextEventMs >= 0 && (next < 0 || reply.nextEventMs < next)) next = reply.nextEventMs;
      if (reply.throttleMs >= 0 && (throttle < 0 || reply.throttleMs < throttle)) throttle = reply.throttleMs;
    }
    if (out.length > 0) return out;
    const remaining = deadline - Date.now();
    if (remaining <= 0) return [];
    let ms = next >= 0 ? Math.min(remaining, next + 1) : remaining;
    if (throttle >= 0) ms = Math.min(ms, throttle + 1);
    const quiet = await waitAny(ctx, n, ms, signal);
    // Waited to the deadline and nothing came: the answer is empty (the next fetch visits the shards first).
    if (quiet && ms === remaining) return [];
  }
}

/**
 * Waits up to `ms` for a wake marker on any shard's wake list (one blocking wait per shard); true
 * when the first wait to end ended quietly (see `WakeWaiter.waitForWork`).
 */
async function waitAny(ctx: ShardedFetchContext, n: number, ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  // Aborted while the shards' scripts ran: an 'abort' listener added now would never fire.
  if (signal?.aborted) return false;
  const done = new AbortController();
  const onAbort = (): void => done.abort();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    return await Promise.race(Array.from({ length: n }, (_, shard) => ctx.pool.waitForWork(ctx.keys(shard).wake, ms, done.signal)));
  } finally {
    signal?.removeEventListener('abort', onAbort);
    done.abort();
  }
}

/**
 * Runs `op` on every shard with its own ids (`ids` undefined: all of them, on every shard) and sums
 * the counts it returns.
 */
export async function onShards(n: number, keys: (shard: number) => GroupKeys, ids: string[] | undefined, op: (k: GroupKeys, ids: string[]) => Promise<unknown>): Promise<number> {
  if (n === 1) return Number(await op(keys(0), ids ?? []));
  const byShard = new Map<number, string[]>();
  if (ids !== undefined) {
    for (const id of ids) {
      const { shard, local } = shardOf(id);
      if (shard >= n) continue;
      const list = byShard.get(shard);
      if (list === undefined) byShard.set(shard, [local]);
      else list.push(local);
    }
  } else {
    for (let shard = 0; shard < n; shard++) byShard.set(shard, []);
  }
  const counts = await Promise.all([...byShard].map(([shard, list]) => op(keys(shard), list)));
  return counts.reduce<number>((s, c) => s + Number(c), 0);
}

/** The tokens of `deliveries` as their scripts know them, by group shard id (`KeyCache.idOf`). */
export function tokensByShard(deliveries: ReadonlyArray<Delivery>): Map<string, string[]> {
  const byShard = new Map<string, string[]>();
  for (const d of deliveries) {
    const { shard, local } = shardOf(d.token);
    const id = KeyCache.idOf(deliveryGroup(d), shard);
    const tokens = byShard.get(id);
    if (tokens === undefined) byShard.set(id, [local]);
    else tokens.push(local);
  }
  return byShard;
}

/** Groups `items` by the shard each goes to (all in shard 0 when there is one). */
export function splitByShard<T extends { lane: string }>(items: T[], n: number, picker: ShardPicker): Map<number, T[]> {
  if (n === 1) return new Map([[0, items]]);
  const byShard = new Map<number, T[]>();
  for (const p of items) {
    const shard = picker.pick(n, p.lane);
    const list = byShard.get(shard);
    if (list === undefined) byShard.set(shard, [p]);
    else list.push(p);
  }
  return byShard;
}

/**
 * One page of a group's dead letters, oldest first, over `n` shards: `page(shard, from, count)`
 * returns the flat reply of the listDead script. Sharded, the first offset + limit of every shard,
 * merged by time, hold the page.
 */
export async function listDeadSharded(group: string, n: number, offset: number, limit: number, page: (shard: number, from: number, count: number) => Promise<string[]>): Promise<DeadLetter[]> {
  const pages = await Promise.all(
    Array.from({ length: n }, async (_, shard) => {
      const flat = await page(shard, n === 1 ? offset : 0, n === 1 ? limit : offset + limit);
      const out: DeadLetter[] = [];
      for (let i = 0; i + 3 < flat.length; i += 4) {
        out.push({ id: markShard(shard, flat[i] as string), group, at: Number(flat[i + 1]), body: flat[i + 2] as string, reason: parseReason(flat[i + 3] as string) });
      }
      return out;
    }),
  );
  if (n === 1) return pages[0] as DeadLetter[];
  return pages.flat().sort((a, b) => a.at - b.at).slice(offset, offset + limit);
}
