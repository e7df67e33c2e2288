/** The Redis backend's shared token buckets (`Backend.rateLimits`): take, refund, emptiness, expiry. */
import { afterAll, expect, it } from 'vitest';
import { RedisBackend } from '../backends/redis.js';
import { rateLimitKey } from '../backends/redis-rate-limits.js';
import { redisNamespace } from './helpers/redis.js';

const ns = redisNamespace('rate-buckets');

afterAll(async () => {
  await ns.sweep();
  expect(await ns.keys()).toEqual([]);
  await ns.quit();
});

it('takes at most the burst, refunds capped at the burst, says when an empty bucket refills, expires once full', async () => {
  const backend = new RedisBackend({ prefix: ns.prefix });
  const store = backend.rateLimits;
  const rate = { limit: 1, periodMs: 3_600_000, burst: 10 };
  try {
    expect(await store.emptyUntil('g')).toBeNull();
    const first = await store.take('g', rate, 4);
    expect(first).toEqual({ granted: 4, nextInMs: 0 });
    expect((await store.take('g', rate, 100)).granted).toBe(6);
    const none = await store.take('g', rate, 1);
    expect(none.granted).toBe(0);
    expect(none.nextInMs).toBeGreaterThan(3_000_000);
    expect(await store.emptyUntil('g')).toBeGreaterThan(Date.now() + 3_000_000);
    await store.refund('g', rate, 3);
    expect(await store.emptyUntil('g')).toBeNull();
    expect((await store.take('g', rate, 5)).granted).toBe(3);
    await store.refund('g', rate, 1_000);
    expect((await store.take('g', rate, 100)).granted).toBe(10);
    // The hash lives until the bucket would be full again (about 10 hours here), not forever.
    const ttl = await ns.admin.pttl(rateLimitKey(ns.prefix, 'g'));
    expect(ttl).toBeGreaterThan(9 * 3_600_000);
    expect(ttl).toBeLessThanOrEqual(10 * 3_600_000 + 1000);
    const fast = { limit: 1000, periodMs: 1000, burst: 1 };
    await store.take('f', fast, 1);
    expect(await ns.admin.pttl(rateLimitKey(ns.prefix, 'f'))).toBeLessThanOrEqual(1001);
  } finally {
    await backend.close();
  }
});
