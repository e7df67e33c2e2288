/**
 * The Redis backend's shared token buckets (`Backend.rateLimits`): reservations, settling with the
 * unused tokens going back, reserved tokens counting against the bucket's size, expired reservations
 * counting as used, emptiness, expiry of idle buckets.
 */
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

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const HOLD = 60_000;

it('reserves at most the free tokens, settles the unused ones back, says when an empty bucket refills', async () => {
  const backend = new RedisBackend({ prefix: ns.prefix });
  const store = backend.rateLimits;
  const slow = { limit: 1, periodMs: 3_600_000, burst: 10 };
  try {
    expect(await store.emptyUntil('g')).toBeNull();
    const a = await store.take('g', slow, 4, HOLD);
    expect(a).toMatchObject({ granted: 4, nextInMs: 0 });
    const b = await store.take('g', slow, 100, HOLD);
    expect(b.granted).toBe(6);
    const none = await store.take('g', slow, 1, HOLD);
    expect(none.granted).toBe(0);
    expect(none.ticket).toBeUndefined();
    expect(none.nextInMs).toBeGreaterThan(3_000_000);
    expect(await store.emptyUntil('g')).toBeGreaterThan(Date.now() + 3_000_000);
    await store.settle('g', slow, a.ticket as string, 1);
    expect(await store.emptyUntil('g')).toBeNull();
    const c = await store.take('g', slow, 5, HOLD);
    expect(c.granted).toBe(3);
    // Settling twice, or a ticket that is not open, gives nothing back.
    await store.settle('g', slow, a.ticket as string, 0);
    await store.settle('g', slow, b.ticket as string, 6);
    await store.settle('g', slow, c.ticket as string, 0);
    expect((await store.take('g', slow, 100, HOLD)).granted).toBe(3);
    // The hash lives until the bucket would be full again (about 10 hours here), not forever.
    const ttl = await ns.admin.pttl(rateLimitKey(ns.prefix, 'g'));
    expect(ttl).toBeGreaterThan(9 * 3_600_000);
    expect(ttl).toBeLessThanOrEqual(10 * 3_600_000 + 1000);
  } finally {
    await backend.close();
  }
});

it('reserved tokens count against the bucket size; a reservation not settled in time counts as used', async () => {
  const backend = new RedisBackend({ prefix: ns.prefix });
  const store = backend.rateLimits;
  const fast = { limit: 100, periodMs: 1000, burst: 5 };
  try {
    const held = await store.take('c', fast, 5, HOLD);
    expect(held.granted).toBe(5);
    await sleep(100); // 10 tokens' worth of refill: none may come while all 5 are reserved
    expect((await store.take('c', fast, 5, HOLD)).granted).toBe(0);
    await store.settle('c', fast, held.ticket as string, 2);
    // The 3 unused came back (and refill goes on: up to the burst).
    expect((await store.take('c', fast, 5, HOLD)).granted).toBeGreaterThanOrEqual(3);

    const slow = { limit: 1, periodMs: 3_600_000, burst: 5 };
    const lost = await store.take('e', slow, 5, 50);
    expect(lost.granted).toBe(5);
    await sleep(120);
    await store.settle('e', slow, lost.ticket as string, 0);
    expect((await store.take('e', slow, 5, HOLD)).granted).toBe(0);
    // Once nothing is reserved and the bucket is full again, both keys go.
    const idle = { limit: 1000, periodMs: 1000, burst: 1 };
    const one = await store.take('f', idle, 1, 100);
    await store.settle('f', idle, one.ticket as string, 1);
    expect(await ns.admin.pttl(rateLimitKey(ns.prefix, 'f'))).toBeLessThanOrEqual(1001);
    expect(await ns.admin.exists(`${rateLimitKey(ns.prefix, 'f')}:r`)).toBe(0);
  } finally {
    await backend.close();
  }
});
