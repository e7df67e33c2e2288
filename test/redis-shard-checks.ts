/**
 * Checks of sharded groups of the Redis broker, run on one node (`broker-redis-shards.test.ts`) and
 * on a Redis Cluster (`redis-cluster.test.ts`).
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { RedisBroker } from '../brokers/redis.js';
import type { Delivery } from '../src/broker.js';

/** What the checks need: brokers with a shard count, the keys under the namespace, a sweep. */
export interface ShardHarness {
  create(shards: number): RedisBroker;
  keys(): Promise<string[]>;
  teardown(): Promise<void>;
}

/** Registers the shard checks. */
export function shardSpecifics(name: string, makeHarness: () => ShardHarness): void {
  describe(`redis broker shards: ${name}`, () => {
    const brokers: RedisBroker[] = [];
    const make = async (shards: number): Promise<RedisBroker> => {
      const b = makeHarness().create(shards);
      brokers.push(b);
      await b.connect();
      return b;
    };
    afterEach(async () => {
      await Promise.all(brokers.splice(0).map((b) => b.close()));
      await makeHarness().teardown();
    });
    const drain = async (b: RedisBroker, group: string, n: number): Promise<Delivery[]> => {
      const out: Delivery[] = [];
      const end = Date.now() + 20_000;
      while (out.length < n && Date.now() < end) out.push(...(await b.fetch(group, n - out.length, { leaseMs: 30_000, waitMs: 500 })));
      return out;
    };

    it('spreads plain messages over every shard; one fetch loop gets them all, each once', async () => {
      const b = await make(3);
      const g = `sh-${randomUUID().slice(0, 8)}`;
      for (let i = 0; i < 30; i++) await b.publish(g, `m${i}`);
      const keys = await makeHarness().keys();
      const tags = new Set(keys.filter((k) => k.endsWith(':body')).map((k) => k.slice(k.indexOf('{'), k.indexOf('}') + 1)));
      expect([...tags].sort()).toEqual([`{${g}}`, `{${g}|1}`, `{${g}|2}`].sort());
      expect(await b.counts(g)).toEqual({ ready: 30, delayed: 0, inFlight: 0, dead: 0 });
      const got = await drain(b, g, 30);
      expect(got.map((d) => d.body).sort()).toEqual(Array.from({ length: 30 }, (_, i) => `m${i}`).sort());
      expect(new Set(got.map((d) => d.token)).size).toBe(30);
      expect(await b.counts(g)).toEqual({ ready: 0, delayed: 0, inFlight: 30, dead: 0 });
      await Promise.all(got.map((d) => b.ack(d)));
      expect(await b.counts(g)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 });
      await b.purge(g);
      expect((await makeHarness().keys()).filter((k) => k.includes(g))).toEqual([]);
    });

    it('no shard starves: single fetches of one message each reach every shard within a few rounds', async () => {
      const b = await make(3);
      const g = `sh-${randomUUID().slice(0, 8)}`;
      await b.publishBatch(g, Array.from({ length: 60 }, (_, i) => ({ body: `m${i}` })));
      const seen = new Set<string>();
      for (let i = 0; i < 6; i++) {
        const [d] = await b.fetch(g, 1, { leaseMs: 30_000, waitMs: 500 });
        expect(d).toBeDefined();
        seen.add((d as Delivery).token.includes('@') ? (d as Delivery).token.split('@')[0] as string : '0');
      }
      expect(seen.size).toBe(3);
      await b.purge(g);
    });

    it('messages of one key stay on one shard and in order; a blocked fetch wakes for any shard', async () => {
      const b = await make(3);
      const g = `sh-${randomUUID().slice(0, 8)}`;
      for (let i = 0; i < 10; i++) await b.publish(g, `k${i}`, { key: 'acct-7' });
      const got = await drain(b, g, 10);
      expect(got.map((d) => d.body)).toEqual(Array.from({ length: 10 }, (_, i) => `k${i}`));
      const shards = new Set(got.map((d) => (d.token.includes('@') ? d.token.split('@')[0] : '0')));
      expect(shards.size).toBe(1);
      await Promise.all(got.map((d) => b.ack(d)));
      const waiting = b.fetch(g, 5, { leaseMs: 30_000, waitMs: 10_000 });
      await new Promise((r) => setTimeout(r, 100));
      const other = await make(3);
      for (let i = 0; i < 3; i++) await other.publish(g, `late${i}`);
      expect((await waiting).length).toBeGreaterThan(0);
      await b.purge(g);
    });

    it('dead letters, redrive and delete across shards; delays and expired leases on every shard', async () => {
      const b = await make(3);
      const g = `sh-${randomUUID().slice(0, 8)}`;
      await b.publishBatch(g, Array.from({ length: 9 }, (_, i) => ({ body: `d${i}` })));
      await b.publishBatch(g, Array.from({ length: 3 }, (_, i) => ({ body: `later${i}`, options: { availableAt: Date.now() + 300 } })));
      const got = await drain(b, g, 9);
      for (const d of got) await b.deadLetter(d, { code: 'E', message: d.body });
      const dead = await b.listDeadLetters(g);
      expect(dead.map((d) => d.body).sort()).toEqual(got.map((d) => d.body).sort());
      expect(new Set(dead.map((d) => d.id)).size).toBe(9);
      expect((await b.listDeadLetters(g, { offset: 3, limit: 3 })).map((d) => d.id)).toEqual(dead.slice(3, 6).map((d) => d.id));
      expect(await b.deleteDeadLetters(g, [dead[0]!.id, dead[1]!.id])).toBe(2);
      expect(await b.redriveDeadLetters(g)).toBe(7);
      const again = await drain(b, g, 10);
      expect(again.filter((d) => d.body.startsWith('d')).length).toBe(7);
      expect(again.filter((d) => d.body.startsWith('later')).length).toBe(3);
      // Short leases run out on every shard: all come back, marked redelivered.
      const c = await b.counts(g);
      expect(c.inFlight).toBe(10);
      const leased = again.slice(0, 3);
      expect(await b.extend(leased, 1)).toEqual([]);
      await new Promise((r) => setTimeout(r, 50));
      const back = await drain(b, g, 3);
      expect(back.every((d) => d.redelivered)).toBe(true);
      expect(await b.extend(leased, 1000)).toEqual(leased.map((d) => d.token));
      await b.purge(g);
    });
  });
}
