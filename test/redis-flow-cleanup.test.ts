/**
 * The Redis broker drops the per-key state of idle keys (issue 14): a key's rate bucket once it is
 * full again and its back-off once it is over leave `kstate` at the next fetch, so a group with a
 * key per user does not keep a field per user ever seen.
 */
import { afterAll, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { RedisBroker } from '../brokers/redis.js';
import { redisNamespace } from './helpers/redis.js';

const ns = redisNamespace('flow-cleanup');

afterAll(async () => {
  await ns.sweep();
  expect(await ns.keys()).toEqual([]);
  await ns.quit();
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

it('key buckets and back-offs of idle keys are removed; busy ones stay', async () => {
  const broker = new RedisBroker({ prefix: ns.prefix });
  const group = `cl-${randomUUID().slice(0, 8)}`;
  const kstate = `${ns.prefix}:{${group}}:kstate`;
  const fields = async (): Promise<string[]> => (await ns.admin.hkeys(kstate)).filter((f) => f.startsWith('b') || f.startsWith('o')).sort();
  try {
    // 50 keys, one message each; a bucket per key that is full again 20 ms after a take.
    await broker.publishBatch(group, Array.from({ length: 50 }, (_, i) => ({ body: `m${i}`, options: { key: `u${i}` } })));
    const flow = { keyRateLimit: { limit: 1, periodMs: 20, burst: 1 } };
    const taken = await broker.fetch(group, 50, { leaseMs: 30_000, waitMs: 0, flow });
    expect(taken).toHaveLength(50);
    expect(await fields()).toHaveLength(50);
    // A long back-off on one key, a short one on another.
    await broker.backoffKey(group, 'held', 60_000);
    await broker.backoffKey(group, 'brief', 1);
    await Promise.all(taken.map((d) => broker.ack(d)));
    await sleep(50);
    await broker.fetch(group, 10, { leaseMs: 30_000, waitMs: 0, flow });
    expect(await fields()).toEqual(['oheld']);
    expect(await ns.admin.zrange(`${ns.prefix}:{${group}}:kidle`, 0, -1)).toEqual(['oheld']);
  } finally {
    await broker.purge(group);
    await broker.close();
  }
});
