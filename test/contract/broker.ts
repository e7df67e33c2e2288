/**
 * The broker contract suite. Every broker runs it unchanged:
 *
 * ```ts
 * import { brokerContract } from 'tasuki/testing';
 * brokerContract('redis', () => { const prefix = ...; return { create: () => new RedisBroker({ prefix }), teardown: async () => {...} }; });
 * ```
 * `create()` may be called several times per test; all brokers it returns must share one namespace
 * (they stand for several worker processes on one broker server).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import type { Broker, Delivery, QueueCounts } from '../../src/broker.js';
import { brokerFlowContract } from './broker-limits.js';

/**
 * `counts(group)` read until `ok` holds (at most 50 reads, 5 ms apart, and not past `until`). A broker
 * whose counts are read from several queues one after another (RabbitMQ: a message moving into a
 * delay mover's buffer is in no queue for a moment) may need a few reads to show a settled state.
 */
async function settledCounts(b: Broker, group: string, ok: (c: QueueCounts) => boolean, until: number): Promise<QueueCounts> {
  let c = await b.counts(group);
  for (let i = 0; i < 50 && !ok(c) && Date.now() < until; i++) {
    await new Promise((r) => setTimeout(r, 5));
    c = await b.counts(group);
  }
  return c;
}

/** What a broker factory provides to the suite. */
export interface BrokerHarness {
  /** Creates a broker instance; all instances of one harness share a namespace. */
  create(): Broker | Promise<Broker>;
  /** Removes anything left in the namespace (called after each test, after brokers are closed). */
  teardown?(): Promise<void>;
  /**
   * Whether ready messages come out in publish order (default true). A sharded Redis group keeps
   * order per shard only: its suite checks that every message comes out once, within `max`.
   */
  ordered?: boolean;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Fetches until `n` deliveries were collected or `totalMs` passed. */
async function fetchN(broker: Broker, group: string, n: number, leaseMs = 30_000, totalMs = 10_000): Promise<Delivery[]> {
  const out: Delivery[] = [];
  const until = Date.now() + totalMs;
  while (out.length < n && Date.now() < until) {
    const got = await broker.fetch(group, n - out.length, { leaseMs, waitMs: Math.max(1, Math.min(1000, until - Date.now())) });
    out.push(...got);
  }
  return out;
}

/** Registers the broker contract tests for one implementation. */
export function brokerContract(name: string, makeHarness: () => BrokerHarness): void {
  describe(`broker contract: ${name}`, () => {
    let harness: BrokerHarness;
    let brokers: Broker[];
    let group: string;
    const make = async (): Promise<Broker> => {
      const b = await harness.create();
      brokers.push(b);
      await b.connect();
      return b;
    };

    beforeEach(() => {
      harness = makeHarness();
      brokers = [];
      group = `g-${randomUUID().slice(0, 8)}`;
    });

    afterEach(async () => {
      const cleaner = brokers[0];
      if (cleaner) await cleaner.purge(group).catch(() => undefined);
      await Promise.all(brokers.map((b) => b.close()));
      await harness.teardown?.();
    });

    it('publishes and delivers a message, ack removes it', async () => {
      const b = await make();
      await b.publish(group, 'hello');
      const [d, ...rest] = await fetchN(b, group, 1);
      expect(rest).toEqual([]);
      expect(d?.body).toBe('hello');
      expect(d?.group).toBe(group);
      expect(d?.redelivered).toBe(false);
      expect((await b.counts(group)).inFlight).toBe(1);
      await b.ack(d as Delivery);
      expect(await b.counts(group)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 });
      expect(await b.fetch(group, 1, { leaseMs: 1000, waitMs: 100 })).toEqual([]);
    });

    it('delivers ready messages in FIFO order and honours max', async () => {
      const b = await make();
      for (const body of ['a', 'b', 'c', 'd', 'e']) await b.publish(group, body);
      const first = await b.fetch(group, 3, { leaseMs: 30_000, waitMs: 1000 });
      expect(first.length).toBeGreaterThanOrEqual(1);
      expect(first.length).toBeLessThanOrEqual(3);
      const all = [...first, ...(await fetchN(b, group, 5 - first.length))];
      if (harness.ordered === false) expect(all.map((d) => d.body).sort()).toEqual(['a', 'b', 'c', 'd', 'e']);
      else expect(all.map((d) => d.body)).toEqual(['a', 'b', 'c', 'd', 'e']);
      for (const d of all) await b.ack(d);
    });

    it('returns [] when nothing is ready within waitMs', async () => {
      const b = await make();
      expect(await b.fetch(group, 5, { leaseMs: 1000, waitMs: 150 })).toEqual([]);
    });

    it('wakes a waiting fetch when a message is published', async () => {
      const b = await make();
      const producer = await make();
      const pending = b.fetch(group, 1, { leaseMs: 30_000, waitMs: 8000 });
      await sleep(100);
      await producer.publish(group, 'late');
      const got = await pending;
      expect(got.map((d) => d.body)).toEqual(['late']);
      await b.ack(got[0] as Delivery);
    });

    it('an aborted signal ends a waiting fetch with []', async () => {
      const b = await make();
      const ac = new AbortController();
      const pending = b.fetch(group, 1, { leaseMs: 1000, waitMs: 60_000, signal: ac.signal });
      setTimeout(() => ac.abort(), 100);
      expect(await pending).toEqual([]);
    });

    it('publishBatch publishes every item, delayed ones included', async () => {
      const b = await make();
      const now = Date.now();
      const items = Array.from({ length: 100 }, (_, i) => ({ body: `m${i}`, options: i % 10 === 0 ? { availableAt: now + 300 } : {} }));
      await b.publishBatch(group, items);
      const got = await fetchN(b, group, 100);
      expect(new Set(got.map((d) => d.body))).toEqual(new Set(items.map((i) => i.body)));
      for (const d of got) await b.ack(d);
    });

    it('never delivers a delayed message before availableAt', async () => {
      const b = await make();
      // The first use of a group may declare its queues (slow on a loaded machine): not part of the delay.
      await b.publish(group, 'warm-up');
      await b.ack((await fetchN(b, group, 1))[0] as Delivery);
      const at = Date.now() + 1500;
      await b.publish(group, 'later', { availableAt: at });
      expect((await settledCounts(b, group, (x) => x.delayed === 1, at)).delayed).toBe(1);
      expect(await b.fetch(group, 1, { leaseMs: 1000, waitMs: 100 })).toEqual([]);
      const [d] = await fetchN(b, group, 1);
      expect(d?.body).toBe('later');
      expect(Date.now()).toBeGreaterThanOrEqual(at);
      await b.ack(d as Delivery);
    });

    it('a long delay published first does not hold back a short one', async () => {
      const b = await make();
      await b.publish(group, 'long', { availableAt: Date.now() + 5000 });
      await b.publish(group, 'short', { availableAt: Date.now() + 100 });
      const [d] = await fetchN(b, group, 1, 30_000, 3000);
      expect(d?.body).toBe('short');
      await b.ack(d as Delivery);
      expect((await b.counts(group)).delayed).toBe(1);
    });

    it('redelivers a message whose lease expired, to another consumer', async () => {
      const a = await make();
      const c = await make();
      await a.publish(group, 'job');
      const [first] = await a.fetch(group, 1, { leaseMs: 300, waitMs: 1000 });
      expect(first?.body).toBe('job');
      const [second] = await fetchN(c, group, 1, 30_000, 5000);
      expect(second?.body).toBe('job');
      expect(second?.redelivered).toBe(true);
      // The stale delivery's ack must not remove the live one.
      await a.ack(first as Delivery);
      expect((await c.counts(group)).inFlight).toBe(1);
      await c.ack(second as Delivery);
      expect((await c.counts(group)).inFlight).toBe(0);
    });

    it('extend keeps a lease alive and reports lost leases', async () => {
      const a = await make();
      const c = await make();
      await a.publish(group, 'long-job');
      const [d] = await a.fetch(group, 1, { leaseMs: 400, waitMs: 1000 });
      expect(d).toBeDefined();
      for (let i = 0; i < 6; i++) {
        await sleep(150);
        expect(await a.extend([d as Delivery], 400)).toEqual([]);
      }
      expect(await c.fetch(group, 1, { leaseMs: 1000, waitMs: 100 })).toEqual([]);
      await a.ack(d as Delivery);
      expect(await a.counts(group)).toMatchObject({ ready: 0, inFlight: 0 });
    });

    it('retry replaces the message atomically, ready at the given time', async () => {
      const b = await make();
      await b.publish(group, 'v1');
      const [d] = await fetchN(b, group, 1);
      const at = Date.now() + 300;
      await b.retry(d as Delivery, 'v2', at);
      // Exactly one message afterwards; a lost or doubled message never shows 1.
      const c = await settledCounts(b, group, (x) => x.inFlight === 0 && x.ready + x.delayed === 1, at);
      expect(c.inFlight).toBe(0);
      expect(c.ready + c.delayed).toBe(1);
      const [again] = await fetchN(b, group, 1);
      expect(again?.body).toBe('v2');
      expect(Date.now()).toBeGreaterThanOrEqual(at);
      await b.ack(again as Delivery);
      expect(await b.counts(group)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 });
    });

    it('retry with a time in the past is ready at once', async () => {
      const b = await make();
      await b.publish(group, 'v1');
      const [d] = await fetchN(b, group, 1);
      await b.retry(d as Delivery, 'v2', Date.now() - 1000);
      const [again] = await fetchN(b, group, 1, 30_000, 3000);
      expect(again?.body).toBe('v2');
      await b.ack(again as Delivery);
    });

    it('release hands the message back unchanged and at once', async () => {
      const a = await make();
      const c = await make();
      await a.publish(group, 'mine');
      const [d] = await fetchN(a, group, 1);
      await a.release(d as Delivery);
      const [again] = await fetchN(c, group, 1, 30_000, 3000);
      expect(again?.body).toBe('mine');
      await c.ack(again as Delivery);
    });

    it('dead letters can be listed, redriven and deleted', async () => {
      const b = await make();
      await b.publish(group, 'poison-1');
      await b.publish(group, 'poison-2');
      const ds = await fetchN(b, group, 2);
      for (const d of ds) await b.deadLetter(d, { code: 'ERR_DECODE', message: 'bad' });
      expect(await b.counts(group)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 2 });
      const dead = await b.listDeadLetters(group);
      expect(dead.map((x) => x.body).sort()).toEqual(['poison-1', 'poison-2']);
      expect(dead[0]?.reason).toEqual({ code: 'ERR_DECODE', message: 'bad' });
      expect(dead[0]?.group).toBe(group);
      expect(typeof dead[0]?.at).toBe('number');
      expect(await b.listDeadLetters(group, { offset: 1, limit: 5 })).toHaveLength(1);

      const target = dead.find((x) => x.body === 'poison-1');
      expect(await b.redriveDeadLetters(group, [target?.id as string, 'no-such-id'])).toBe(1);
      const [back] = await fetchN(b, group, 1);
      expect(back?.body).toBe('poison-1');
      await b.ack(back as Delivery);
      expect(await b.deleteDeadLetters(group)).toBe(1);
      expect(await b.counts(group)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 });
    });

    it('redrive without ids moves every dead letter back', async () => {
      const b = await make();
      for (const body of ['x', 'y', 'z']) await b.publish(group, body);
      for (const d of await fetchN(b, group, 3)) await b.deadLetter(d, { code: 'ERR_UNKNOWN_TASK', message: 'nope' });
      expect(await b.redriveDeadLetters(group)).toBe(3);
      const back = await fetchN(b, group, 3);
      expect(back.map((d) => d.body).sort()).toEqual(['x', 'y', 'z']);
      for (const d of back) await b.ack(d);
    });

    it('keeps groups apart', async () => {
      const b = await make();
      const other = `${group}-other`;
      await b.publish(other, 'for-other');
      expect(await b.fetch(group, 1, { leaseMs: 1000, waitMs: 100 })).toEqual([]);
      const [d] = await fetchN(b, other, 1);
      expect(d?.body).toBe('for-other');
      await b.ack(d as Delivery);
      await b.purge(other);
    });

    it('competing consumers each get distinct messages', async () => {
      const producer = await make();
      const consumers = [await make(), await make(), await make()];
      const n = 60;
      await producer.publishBatch(group, Array.from({ length: n }, (_, i) => ({ body: String(i) })));
      const seen: string[] = [];
      const until = Date.now() + 20_000;
      await Promise.all(
        consumers.map(async (c) => {
          for (;;) {
            const got = await c.fetch(group, 7, { leaseMs: 30_000, waitMs: 300 });
            // An empty fetch ends a consumer once every message was seen (a slow start on a loaded
            // machine is not the end); one more empty fetch after that still catches a duplicate.
            if (got.length === 0 && (seen.length >= n || Date.now() > until)) return;
            for (const d of got) {
              seen.push(d.body);
              await c.ack(d);
            }
          }
        }),
      );
      expect(seen).toHaveLength(n);
      expect(new Set(seen).size).toBe(n);
    });

    it('purge removes everything of a group', async () => {
      const b = await make();
      await b.publish(group, 'r');
      await b.publish(group, 'd', { availableAt: Date.now() + 60_000 });
      await b.publish(group, 'f');
      const [d] = await fetchN(b, group, 1);
      await b.deadLetter(d as Delivery, { code: 'ERR_DECODE', message: 'x' });
      await b.purge(group);
      expect(await b.counts(group)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 });
    });

    it('close is idempotent and a closed broker rejects work', async () => {
      const b = await make();
      await b.close();
      await b.close();
      await expect(b.publish(group, 'x')).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    });

    brokerFlowContract({ make, group: () => group });
  });
}
