/**
 * The Redis broker against a real Redis (127.0.0.1:6379): the broker contract suite plus
 * Redis-specific checks (key layout, lease recovery across instances, validation). Connection faults
 * are in `broker-redis-faults.test.ts`; what needs a private server (SCRIPT FLUSH, SIGSTOP, a password,
 * server settings) in `broker-redis-server.test.ts`.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { RedisBroker } from '../brokers/redis.js';
import type { Delivery } from '../src/broker.js';
import { brokerContract } from './contract/broker.js';
import { redisNamespace } from './helpers/redis.js';

const ns = redisNamespace('test');
const { prefix, admin } = ns;
const prefixKeys = ns.keys;
const teardown = ns.sweep;

afterAll(async () => {
  await teardown();
  expect(await prefixKeys()).toEqual([]);
  await ns.quit();
});

brokerContract('redis', () => ({ create: () => new RedisBroker({ prefix }), teardown }));

describe('redis broker specifics', () => {
  const brokers: RedisBroker[] = [];
  const make = async (): Promise<RedisBroker> => {
    const b = new RedisBroker({ prefix });
    brokers.push(b);
    await b.connect();
    return b;
  };
  const group = (): string => `g-${randomUUID().slice(0, 8)}`;

  afterEach(async () => {
    await Promise.all(brokers.splice(0).map((b) => b.close()));
    await teardown();
  });

  it('keeps every key of a group under one hash tag, and purge removes them all', async () => {
    const b = await make();
    const g = group();
    await b.publishBatch(g, [{ body: 'r1' }, { body: 'r2' }, { body: 'late', options: { availableAt: Date.now() + 60_000 } }]);
    const [d1, d2] = await b.fetch(g, 2, { leaseMs: 30_000, waitMs: 1000 });
    await b.deadLetter(d1 as Delivery, { code: 'ERR_DECODE', message: 'bad' });
    expect(d2).toBeDefined();
    const keys = await prefixKeys();
    expect(keys.length).toBeGreaterThanOrEqual(6);
    for (const key of keys) expect(key.startsWith(`${prefix}:{${g}}:`)).toBe(true);
    const slots = new Set(await Promise.all(keys.map((k) => admin.call('CLUSTER', 'KEYSLOT', k).catch(() => keySlotFallback(k)))));
    expect(slots.size).toBe(1);
    await b.purge(g);
    expect(await prefixKeys()).toEqual([]);
  });

  it('recovers a delivery whose holder closed without ack, marked redelivered, under a new token', async () => {
    const holder = await make();
    const other = await make();
    const g = group();
    await holder.publish(g, 'orphan');
    const [first] = await holder.fetch(g, 1, { leaseMs: 300, waitMs: 1000 });
    expect(first?.body).toBe('orphan');
    expect(first?.redelivered).toBe(false);
    await holder.close();
    // Blocks (no message ready) until the lease deadline, then the fetch script requeues it.
    const [second] = await other.fetch(g, 1, { leaseMs: 30_000, waitMs: 5000 });
    expect(second?.body).toBe('orphan');
    expect(second?.redelivered).toBe(true);
    expect(second?.token).not.toBe(first?.token);
    // Stale token: every operation is a no-op that leaves the live delivery alone.
    await other.retry(first as Delivery, 'stale', Date.now());
    await other.release(first as Delivery);
    await other.deadLetter(first as Delivery, { code: 'ERR_DECODE', message: 'stale' });
    expect(await other.extend([first as Delivery, second as Delivery], 30_000)).toEqual([first?.token]);
    expect(await other.counts(g)).toEqual({ ready: 0, delayed: 0, inFlight: 1, dead: 0 });
    await other.ack(second as Delivery);
    expect(await other.counts(g)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 });
  });

  it('a released message comes back marked redelivered; a retried one is a fresh message', async () => {
    const b = await make();
    const g = group();
    await b.publish(g, 'm');
    const [d] = await b.fetch(g, 1, { leaseMs: 30_000, waitMs: 1000 });
    await b.release(d as Delivery);
    const [again] = await b.fetch(g, 1, { leaseMs: 30_000, waitMs: 1000 });
    expect(again).toMatchObject({ body: 'm', redelivered: true });
    await b.retry(again as Delivery, 'm2', 0);
    const [retried] = await b.fetch(g, 1, { leaseMs: 30_000, waitMs: 1000 });
    expect(retried).toMatchObject({ body: 'm2', redelivered: false });
    await b.ack(retried as Delivery);
  });

  it('publishBatch of many items is atomic and keeps order', async () => {
    const b = await make();
    const g = group();
    const n = 5000;
    await b.publishBatch(g, Array.from({ length: n }, (_, i) => ({ body: `b${i}` })));
    expect((await b.counts(g)).ready).toBe(n);
    const got: Delivery[] = [];
    while (got.length < n) {
      const batch = await b.fetch(g, 3000, { leaseMs: 30_000, waitMs: 1000 });
      expect(batch.length).toBeGreaterThan(0);
      got.push(...batch);
    }
    expect(got.map((d) => d.body)).toEqual(Array.from({ length: n }, (_, i) => `b${i}`));
    expect(new Set(got.map((d) => d.token)).size).toBe(n);
  });

  it('a blocked fetch wakes for a delayed message published after it started waiting', async () => {
    const waiter = await make();
    const producer = await make();
    const g = group();
    // Without a wake-up for the new schedule the waiter would sleep its full waitMs; the abort (long
    // after the message is due) turns that into a failure instead of a slow pass.
    const ac = new AbortController();
    const pending = waiter.fetch(g, 1, { leaseMs: 30_000, waitMs: 60_000, signal: ac.signal });
    await new Promise((r) => setTimeout(r, 100));
    const at = Date.now() + 200;
    await producer.publish(g, 'soon', { availableAt: at });
    const stop = setTimeout(() => ac.abort(), 3000);
    const [d] = await pending;
    clearTimeout(stop);
    expect(d?.body).toBe('soon');
    expect(Date.now()).toBeGreaterThanOrEqual(at);
  });

  it('several waiting brokers are all woken by a batch', async () => {
    const producer = await make();
    const consumers = [await make(), await make(), await make()];
    const g = group();
    const ac = new AbortController(); // a waiter left asleep would end with [] at the abort
    const pending = consumers.map((c) => c.fetch(g, 1, { leaseMs: 30_000, waitMs: 60_000, signal: ac.signal }));
    await new Promise((r) => setTimeout(r, 150));
    await producer.publishBatch(g, [{ body: '1' }, { body: '2' }, { body: '3' }]);
    const stop = setTimeout(() => ac.abort(), 3000);
    const got = (await Promise.all(pending)).flat();
    clearTimeout(stop);
    expect(got.map((d) => d.body).sort()).toEqual(['1', '2', '3']);
  });

  it('dead letters keep id, time and reason; list pages oldest first; delete by id', async () => {
    const b = await make();
    const g = group();
    await b.publishBatch(g, [{ body: 'a' }, { body: 'b' }, { body: 'c' }]);
    const ds = await b.fetch(g, 3, { leaseMs: 30_000, waitMs: 1000 });
    for (const d of ds) {
      await b.deadLetter(d, { code: 'ERR_BAD_ARGS', message: `bad ${d.body} "quoted" ✓` });
      await new Promise((r) => setTimeout(r, 5));
    }
    const all = await b.listDeadLetters(g);
    expect(all.map((x) => x.body)).toEqual(['a', 'b', 'c']);
    expect(all[1]?.reason).toEqual({ code: 'ERR_BAD_ARGS', message: 'bad b "quoted" ✓' });
    expect((all[0]?.at ?? 0) <= (all[2]?.at ?? 0)).toBe(true);
    expect((await b.listDeadLetters(g, { offset: 1, limit: 1 })).map((x) => x.body)).toEqual(['b']);
    expect(await b.listDeadLetters(g)).toEqual(all); // stable ids
    expect(await b.deleteDeadLetters(g, [all[0]?.id as string, 'nope'])).toBe(1);
    expect((await b.listDeadLetters(g)).map((x) => x.body)).toEqual(['b', 'c']);
    expect(await b.deleteDeadLetters(g, [])).toBe(0);
    expect(await b.redriveDeadLetters(g, [])).toBe(0);
    expect(await b.counts(g)).toMatchObject({ dead: 2 });
  });

  it('rejects invalid input with typed errors and never throws synchronously', async () => {
    const b = await make();
    await expect(b.publish('bad group!', 'x')).rejects.toMatchObject({ code: 'ERR_INVALID_NAME' });
    await expect(b.fetch('g', 0, { leaseMs: 1000, waitMs: 0 })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
    await expect(b.fetch('g', 1, { leaseMs: 0, waitMs: 0 })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
    await expect(b.publish('g', 'x', { availableAt: Number.NaN })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
    expect(() => new RedisBroker({ prefix: 'a{b}' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
  });

  it('a fetch waiting when close() is called resolves with [] and later calls reject with ERR_CLOSED', async () => {
    const b = await make();
    const g = group();
    const pending = b.fetch(g, 1, { leaseMs: 1000, waitMs: 30_000 });
    await new Promise((r) => setTimeout(r, 100));
    await b.close();
    expect(await pending).toEqual([]);
    await expect(b.fetch(g, 1, { leaseMs: 1000, waitMs: 10 })).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    await expect(b.counts(g)).rejects.toMatchObject({ code: 'ERR_CLOSED' });
  });

  it('an aborted fetch leaves the blocking connection usable for the next wait', async () => {
    const b = await make();
    const producer = await make();
    const g = group();
    const ac = new AbortController();
    const first = b.fetch(g, 1, { leaseMs: 1000, waitMs: 30_000, signal: ac.signal });
    await new Promise((r) => setTimeout(r, 100));
    ac.abort();
    expect(await first).toEqual([]);
    const second = b.fetch(g, 1, { leaseMs: 30_000, waitMs: 10_000 });
    await new Promise((r) => setTimeout(r, 100));
    await producer.publish(g, 'next');
    expect((await second).map((d) => d.body)).toEqual(['next']);
  });

  it('closes cleanly a broker that never connected', async () => {
    const b = new RedisBroker({ prefix });
    await b.close();
    await expect(b.publish('g', 'x')).rejects.toMatchObject({ code: 'ERR_CLOSED' });
  });
});

/** CRC16 hash slot of a key (for a Redis without cluster support, where CLUSTER KEYSLOT fails). */
function keySlotFallback(key: string): number {
  const open = key.indexOf('{');
  let tag = key;
  if (open >= 0) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) tag = key.slice(open + 1, close);
  }
  let crc = 0;
  for (const byte of Buffer.from(tag)) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}
