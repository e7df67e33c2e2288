/**
 * An abort that lands while a fetch script is running (so before the idle wait begins) must end the
 * fetch with `[]` at once. An 'abort' listener added to a signal that has already aborted never
 * fires, so each wait must look at `signal.aborted` first. Fakes stand in for Redis: the fetch
 * script aborts the caller's signal and answers "nothing ready"; the fake wait records whether it
 * was entered with a live signal and would otherwise hang until the test's timeout.
 */
import { describe, expect, it } from 'vitest';
import { fetchSharded, type ShardedFetchContext } from '../brokers/redis-sharded.js';
import { GroupFetcher } from '../brokers/redis-fetch.js';
import { BlockingPool } from '../brokers/redis-blocking.js';
import { groupKeys } from '../brokers/redis-keys.js';
import { ShardPicker } from '../brokers/redis-shards.js';
import { Waits } from '../brokers/redis-waits.js';
import type { WakeWaiter } from '../brokers/redis-wake-hub.js';
import type { RedisClient } from '../brokers/redis-cluster.js';
import type { RedisConnector } from '../brokers/redis-connection.js';
import type { ScriptedRedis } from '../brokers/redis-scripts.js';

/** An empty fetch reply: no delayed message or lease due (-1), no throttle (-1). */
const EMPTY = [-1, -1];

/** A wake waiter that never sees a marker: it ends only on abort, and counts live-signal waits. */
class NeverWoken implements WakeWaiter {
  liveWaits = 0;
  waitForWork(_key: string, _ms: number, signal: AbortSignal | undefined): Promise<boolean> {
    if (signal?.aborted) return Promise.resolve(false);
    this.liveWaits++;
    return new Promise((resolve) => signal?.addEventListener('abort', () => resolve(false), { once: true }));
  }
  close(): void {}
}

const readyClient = { status: 'ready', isCluster: false } as unknown as RedisClient;

describe('redis fetch aborted while its script runs', () => {
  it('a sharded fetch returns [] without starting a wait that nothing would end', async () => {
    const ac = new AbortController();
    const pool = new NeverWoken();
    let scripts = 0;
    const ctx: ShardedFetchContext = {
      cmd: readyClient,
      waits: new Waits(),
      pool,
      picker: new ShardPicker(),
      keys: (shard) => groupKeys('abort-test', 'g', shard),
      fetchScript: async () => {
        scripts++;
        ac.abort(); // the abort lands while the shards' scripts run
        return EMPTY;
      },
    };
    expect(await fetchSharded(ctx, 'g', 3, 1, Date.now() + 60_000, ac.signal)).toEqual([]);
    expect(scripts).toBe(3);
    expect(pool.liveWaits).toBe(0);
  });

  it('an unsharded fetch returns [] too', async () => {
    const ac = new AbortController();
    const pool = new NeverWoken();
    const fetcher = new GroupFetcher(readyClient as unknown as ScriptedRedis, new Waits(), pool);
    const got = await fetcher.fetch({
      group: 'g',
      keys: groupKeys('abort-test', 'g'),
      waitMs: 60_000,
      deadline: Date.now() + 60_000,
      signal: ac.signal,
      script: async () => {
        ac.abort();
        return EMPTY;
      },
    });
    expect(got).toEqual([]);
  });

  it('the blocking pool does not block for a signal already aborted', async () => {
    let created = 0;
    const connector = {
      create: () => {
        created++;
        throw new Error('no connection should be made for an aborted wait');
      },
    } as unknown as RedisConnector;
    const pool = new BlockingPool(connector, readyClient, new Waits(), undefined, 1000);
    const ac = new AbortController();
    ac.abort();
    expect(await pool.waitForWork('abort-test:wake', 60_000, ac.signal)).toBe(false);
    expect(created).toBe(0);
  });
});
