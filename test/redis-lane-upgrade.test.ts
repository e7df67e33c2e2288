/**
 * Upgrade of the Redis broker's flow-control layout (issue 17): data written in the layout before
 * `lanelist` — lanes as LISTs `lane:<lane>` listed in the SET `laneset`, concurrency-parked lanes in
 * SETs `cpark:<key>` — is moved by the broker into the fixed keys and delivered in priority order,
 * FIFO per lane, round-robin between keys, each message exactly once. The old layout is written
 * here by hand, with the commands the old scripts ran (`oldPublish` is the old publishFlow's push).
 * Also: the check that every broker of a group uses the same `shards` count.
 */
import { afterAll, afterEach, expect, it, vi } from 'vitest';
import { randomUUID } from 'node:crypto';
import type { Delivery, FetchOptions } from '../src/broker.js';
import { RedisBroker } from '../brokers/redis.js';
import { LEGACY_CHECK_MS } from '../brokers/redis-legacy-lanes.js';
import { redisNamespace } from './helpers/redis.js';

const ns = redisNamespace('lane-upgrade');
const brokers: RedisBroker[] = [];

afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all(brokers.splice(0).map((b) => b.close()));
});

afterAll(async () => {
  await ns.sweep();
  await ns.quit();
});

const LEVEL_SPAN = 2 ** 44;

function broker(shards?: Record<string, number>): RedisBroker {
  const b = new RedisBroker({ prefix: ns.prefix, ...(shards ? { shards } : {}) });
  brokers.push(b);
  return b;
}

/** The old layout of `group`, written with the commands of the old scripts. */
function oldLayout(group: string) {
  const base = `${ns.prefix}:{${group}}:`;
  const r = ns.admin;
  return {
    base,
    /** The old publishFlow of one ready message of lane m ('' plain): returns its id. */
    async publish(body: string, m: string): Promise<string> {
      const id = String(await r.incr(`${base}seq`));
      await r.hset(`${base}body`, id, body);
      if (m === '') {
        await r.rpush(`${base}ready`, id);
        return id;
      }
      await r.hset(`${base}meta`, id, m);
      if (m === '5') {
        await r.rpush(`${base}ready`, id);
        return id;
      }
      if ((await r.rpush(`${base}lane:${m}`, id)) === 1) {
        const turn = await r.incr(`${base}turn`);
        await r.zadd(`${base}lanes`, 'NX', (9 - Number(m[0])) * LEVEL_SPAN + turn, m);
        await r.sadd(`${base}laneset`, m);
      }
      return id;
    },
  };
}

/** Fetches one at a time (acking each) until nothing is left; returns the bodies in order. */
async function drain(b: RedisBroker, group: string, flow?: FetchOptions['flow']): Promise<Delivery[]> {
  const out: Delivery[] = [];
  for (;;) {
    const [d] = await b.fetch(group, 1, { leaseMs: 30_000, waitMs: 0, ...(flow ? { flow } : {}) });
    if (d === undefined) return out;
    out.push(d);
    await b.ack(d);
  }
}

async function groupKeys(group: string): Promise<string[]> {
  return (await ns.keys()).filter((k) => k.includes(`{${group}}`)).sort();
}

it('old lanes are delivered after the upgrade by priority, FIFO per lane, round-robin between keys, each once', async () => {
  const group = `up-${randomUUID().slice(0, 8)}`;
  const old = oldLayout(group);
  for (let i = 1; i <= 3; i++) await old.publish(`low${i}`, '3');
  for (let i = 1; i <= 2; i++) await old.publish(`high${i}`, '7');
  for (let i = 1; i <= 2; i++) await old.publish(`plain${i}`, '');
  for (let i = 1; i <= 2; i++) await old.publish(`a${i}`, '5a');
  for (let i = 1; i <= 2; i++) await old.publish(`b${i}`, '5b');
  // A message released to the head of lane 7 by the old release script.
  const r = await old.publish('released', '');
  await ns.admin.hset(`${old.base}meta`, r, '7');
  await ns.admin.rpop(`${old.base}ready`);
  await ns.admin.lpush(`${old.base}lane:7`, `~${r}`);

  const b = broker();
  // The first count moves the old lanes; nothing is lost or counted twice.
  expect((await b.counts(group)).ready).toBe(12);
  expect(await ns.admin.exists(`${old.base}laneset`, `${old.base}lane:3`, `${old.base}lane:7`, `${old.base}lane:5a`, `${old.base}lane:5b`)).toBe(0);
  // New messages go behind the old ones of their lanes.
  await b.publish(group, 'high3', { priority: 7 });
  await b.publish(group, 'a3', { key: 'a' });

  const got = await drain(b, group);
  const bodies = got.map((d) => d.body);
  expect([...bodies].sort()).toEqual(['a1', 'a2', 'a3', 'b1', 'b2', 'high1', 'high2', 'high3', 'low1', 'low2', 'low3', 'plain1', 'plain2', 'released'].sort());
  // Levels strictly: 7, then 5, then 3; the released one first and marked redelivered.
  expect(bodies.slice(0, 4)).toEqual(['released', 'high1', 'high2', 'high3']);
  expect(got[0]!.redelivered).toBe(true);
  expect(got.slice(1).every((d) => !d.redelivered)).toBe(true);
  expect(bodies.slice(11)).toEqual(['low1', 'low2', 'low3']);
  const mid = bodies.slice(4, 11);
  // FIFO within each lane of level 5, and round-robin: the first three are one of each lane.
  for (const lane of ['a', 'b', 'plain']) {
    const seq = mid.filter((x) => x.replace(/\d+$/, '') === lane);
    expect(seq).toEqual([...seq].sort());
  }
  expect(new Set(mid.slice(0, 3).map((x) => x.replace(/\d+$/, '')))).toEqual(new Set(['a', 'b', 'plain']));
  expect(await b.counts(group)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 });
  await b.purge(group);
  expect(await groupKeys(group)).toEqual([]);
});

it('a lane parked on concurrency, one parked until a time and an expired keyed lease of the old layout keep their meaning', async () => {
  const group = `park-${randomUUID().slice(0, 8)}`;
  const old = oldLayout(group);
  const r = ns.admin;
  // Key c: c1 in flight (its lease ran out), c2 and c3 waiting, their lane parked at concurrency 1.
  const c1 = await old.publish('c1', '5c');
  await old.publish('c2', '5c');
  await old.publish('c3', '5c');
  await r.lrem(`${old.base}lane:5c`, 1, c1);
  await r.zrem(`${old.base}lanes`, '5c');
  await r.sadd(`${old.base}cpark:c`, '5c');
  await r.hset(`${old.base}running`, 'c', '1');
  await r.zadd(`${old.base}lease`, 1, `${c1}:99:k`);
  // Key d: parked until a time already past.
  await old.publish('d1', '5d');
  await r.zrem(`${old.base}lanes`, '5d');
  await r.zadd(`${old.base}tpark`, 1, '5d');

  const b = broker();
  const flow = { keyConcurrency: 1 };
  const first = await b.fetch(group, 5, { leaseMs: 30_000, waitMs: 0, flow });
  expect(first.map((d) => d.body).sort()).toEqual(['c1', 'd1']);
  expect(first.find((d) => d.body === 'c1')!.redelivered).toBe(true);
  expect(await r.exists(`${old.base}laneset`, `${old.base}cpark:c`, `${old.base}lane:5c`, `${old.base}lane:5d`)).toBe(0);
  // c2 waits for c1 (concurrency 1), and says so.
  expect(await b.fetch(group, 5, { leaseMs: 30_000, waitMs: 0, flow })).toEqual([]);
  expect(await b.waitReason(group, 'c')).toMatchObject({ reason: 'key-concurrency', key: 'c' });
  const order: string[] = [];
  for (const d of first) await b.ack(d);
  for (;;) {
    const next = await b.fetch(group, 5, { leaseMs: 30_000, waitMs: 0, flow });
    if (next.length === 0) break;
    expect(next).toHaveLength(1);
    order.push(next[0]!.body);
    await b.ack(next[0]!);
  }
  expect(order).toEqual(['c2', 'c3']);
  expect(await b.counts(group)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 });
  await b.purge(group);
  expect(await groupKeys(group)).toEqual([]);
});

it('what an old-version process writes after the upgrade is moved too (rolling deploy); purge removes old keys', async () => {
  const group = `roll-${randomUUID().slice(0, 8)}`;
  const old = oldLayout(group);
  await old.publish('o1', '7');
  const b = broker();
  await b.publish(group, 'n1', { priority: 7 });
  const [d1] = await b.fetch(group, 1, { leaseMs: 30_000, waitMs: 0 });
  expect(d1!.body).toBe('o1');
  await b.ack(d1!);
  // An old publisher keeps writing: the lane is already servable, the new broker finds no entry of
  // the old layout until its next check, which moves them.
  await old.publish('o2', '7');
  await old.publish('k1', '5k');
  let now = Date.now();
  vi.spyOn(Date, 'now').mockImplementation(() => now);
  now += LEGACY_CHECK_MS + 1;
  const rest = await drain(b, group);
  expect(rest.map((d) => d.body)).toEqual(['o2', 'n1', 'k1']);
  // Old keys left at purge time are deleted with the rest.
  await old.publish('o3', '4x');
  await b.purge(group);
  expect(await groupKeys(group)).toEqual([]);
});

it('old-version workers beside new ones: a lane the new layout parked on a key an old worker settles is served again by the next check', async () => {
  const group = `mix-${randomUUID().slice(0, 8)}`;
  const old = oldLayout(group);
  const r = ns.admin;
  // An old worker holds o1 of key k (its take, by hand: the old fetch's commands); z1 waits in the old layout.
  const o1 = await old.publish('o1', '5k');
  await r.lpop(`${old.base}lane:5k`);
  await r.srem(`${old.base}laneset`, '5k');
  await r.zrem(`${old.base}lanes`, '5k');
  await r.hincrby(`${old.base}running`, 'k', 1);
  await r.zadd(`${old.base}lease`, Date.now() + 600_000, `${o1}:1:k`);
  await old.publish('z1', '5z');

  const b = broker();
  const flow = { keyConcurrency: 1 };
  await b.publish(group, 'n1', { key: 'k' });
  // z1 moved and served; n1's lane parked: key k is at its bound (o1 in flight).
  expect((await b.fetch(group, 5, { leaseMs: 30_000, waitMs: 0, flow })).map((d) => d.body)).toEqual(['z1']);
  // The old worker acks o1: the old ack frees key k but releases only the old layout's parked lanes.
  await r.zrem(`${old.base}lease`, `${o1}:1:k`);
  await r.hdel(`${old.base}body`, o1);
  await r.hdel(`${old.base}running`, 'k');
  await r.hdel(`${old.base}meta`, o1);
  expect(await b.fetch(group, 5, { leaseMs: 30_000, waitMs: 0, flow })).toEqual([]);
  // The next check (old lanes were seen lately) serves the lane again.
  let now = Date.now();
  vi.spyOn(Date, 'now').mockImplementation(() => now);
  now += LEGACY_CHECK_MS + 1;
  const [n1] = await b.fetch(group, 5, { leaseMs: 30_000, waitMs: 0, flow });
  expect(n1?.body).toBe('n1');
  await b.purge(group);
  expect(await groupKeys(group)).toEqual([]);
});

it('a broker with another shards count for a group than the one recorded gets ShardsMismatchError naming both', async () => {
  const group = `sh-${randomUUID().slice(0, 8)}`;
  const two = broker({ [group]: 2 });
  await two.publish(group, 'x');
  const one = broker();
  const mismatch = { code: 'ERR_SHARDS_MISMATCH', name: 'ShardsMismatchError', recorded: 2, configured: 1, message: expect.stringMatching(/2 shard.*shards 1/) };
  await expect(one.publish(group, 'y')).rejects.toMatchObject(mismatch);
  await expect(one.publishBatch(group, [{ body: 'y' }])).rejects.toMatchObject(mismatch);
  await expect(one.fetch(group, 1, { leaseMs: 1000, waitMs: 0 })).rejects.toMatchObject(mismatch);
  // Same count: fine, and the message published above is there.
  const alsoTwo = broker({ [group]: 2 });
  const got = await alsoTwo.fetch(group, 5, { leaseMs: 1000, waitMs: 0 });
  expect(got.map((d) => d.body)).toEqual(['x']);
  await alsoTwo.ack(got[0]!);
  expect(await ns.admin.get(`${ns.prefix}:{${group}}:shards`)).toBe('2');
  // A purge deletes the record: the next broker to use the group records its own count.
  await two.purge(group);
  await one.publish(group, 'z');
  expect(await ns.admin.get(`${ns.prefix}:{${group}}:shards`)).toBe('1');
  await one.purge(group);
  expect(await groupKeys(group)).toEqual([]);
});
