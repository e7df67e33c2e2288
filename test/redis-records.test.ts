/**
 * The Redis backend's record store keeps a set of keys per kind (for `list`): members whose record
 * expired are pruned by `list`, and by puts with an expiry at most once per interval, so heartbeat
 * kinds that nobody lists do not grow without bound.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { RedisRecordStore } from '../backends/redis-index.js';
import { redisNamespace } from './helpers/redis.js';

const ns = redisNamespace('records');
const client = new Redis({ connectionName: 'tasuki-test-records' });
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

afterAll(async () => {
  await ns.sweep();
  expect(await ns.keys()).toEqual([]);
  await ns.quit();
  await client.quit();
});

describe('redis record store', () => {
  it('puts with an expiry prune the kind set of expired members, without a list', async () => {
    const store = new RedisRecordStore(client, ns.prefix, (e) => e as Error, false, 100);
    const set = `${ns.prefix}:rec|hb`;
    for (let i = 0; i < 5; i++) await store.put('hb', `gone-${i}`, 'x', 30);
    await store.put('keep', 'forever', 'y', null);
    await sleep(200);
    // Past the interval: this put prunes (in the background) the five expired members.
    await store.put('hb', 'live', 'z', 60_000);
    const until = Date.now() + 10_000;
    while ((await client.scard(set)) !== 1 && Date.now() < until) await sleep(20);
    expect(await client.smembers(set)).toEqual(['live']);
    expect(await store.list('hb')).toEqual([{ key: 'live', value: 'z' }]);
    // Records without an expiry are never pruned.
    expect(await store.list('keep')).toEqual([{ key: 'forever', value: 'y' }]);
  });
});
