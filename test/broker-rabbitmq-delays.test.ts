/**
 * RabbitMQ delay levels and queue names: several processes' delay movers competing for one group's
 * delayed messages neither lose nor deliver early, and queue names of two prefixes never coincide.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { RabbitMQBroker } from '../brokers/rabbitmq.js';
import { groupQueueNames } from '../brokers/rabbitmq-topology.js';
import type { Delivery } from '../src/broker.js';
import { InvalidOptionError } from '../src/errors.js';
import { rabbitNamespace, rabbitUrl } from './helpers/rabbitmq.js';

const ns = rabbitNamespace('delays');
const brokers: RabbitMQBroker[] = [];
function make(options: { delayHoldMs?: number } = {}): RabbitMQBroker {
  const b = new RabbitMQBroker({ url: rabbitUrl, prefix: ns.prefix, ...options });
  brokers.push(b);
  return b;
}

afterEach(async () => {
  await Promise.all(brokers.splice(0).map((b) => b.close()));
});
afterAll(() => ns.sweep());

/** Publishes `n` messages due `from` to `from + spread` ms ahead, fetches them with `consumers`; returns what was seen and what came early. */
async function roundTrip(consumers: RabbitMQBroker[], n: number, from: number, spread: number): Promise<{ seen: Map<string, number>; early: string[]; producer: RabbitMQBroker; group: string }> {
  const group = `g-${randomUUID().slice(0, 8)}`;
  // Every instance fetches, so each runs a mover of the group.
  await Promise.all(consumers.map((c) => c.fetch(group, 1, { leaseMs: 30_000, waitMs: 1 })));
  const producer = make();
  const due = new Map<string, number>();
  const now = Date.now();
  const items = Array.from({ length: n }, (_, i) => {
    const at = now + from + Math.floor(Math.random() * spread);
    due.set(`m${i}`, at);
    return { body: `m${i}`, options: { availableAt: at } };
  });
  await producer.publishBatch(group, items);
  const seen = new Map<string, number>();
  const early: string[] = [];
  const until = Date.now() + from + spread + 30_000;
  await Promise.all(
    consumers.map(async (c) => {
      while (seen.size < n && Date.now() < until) {
        for (const d of await c.fetch(group, 20, { leaseMs: 30_000, waitMs: 300 })) {
          if (Date.now() < (due.get(d.body) as number)) early.push(d.body);
          seen.set(d.body, (seen.get(d.body) ?? 0) + 1);
          await c.ack(d as Delivery);
        }
      }
    }),
  );
  return { seen, early, producer, group };
}

describe('RabbitMQ broker: competing delay movers', () => {
  it('a mover allowed to hold messages only briefly hands back far heads and still delivers every one, none early', async () => {
    // Delays of 2.5 to 4.5 s pass levels 11 (2 s) and above, longer than the 1 s hold.
    const { seen, early, producer, group } = await roundTrip([make({ delayHoldMs: 1000 }), make({ delayHoldMs: 1000 })], 60, 2500, 2000);
    expect(early).toEqual([]);
    expect(seen.size).toBe(60);
    await producer.purge(group);
  });

  it('three fetching instances move one group\'s delayed messages: every one delivered, none early', async () => {
    const group = `g-${randomUUID().slice(0, 8)}`;
    const consumers = [make(), make(), make()];
    // Every instance fetches, so each runs a mover of the group.
    await Promise.all(consumers.map((c) => c.fetch(group, 1, { leaseMs: 30_000, waitMs: 1 })));
    const producer = make();
    const n = 200;
    const due = new Map<string, number>();
    const now = Date.now();
    const items = Array.from({ length: n }, (_, i) => {
      const at = now + 100 + Math.floor(Math.random() * 2500);
      due.set(`m${i}`, at);
      return { body: `m${i}`, options: { availableAt: at } };
    });
    await producer.publishBatch(group, items);
    const seen = new Map<string, number>();
    const early: string[] = [];
    const until = Date.now() + 30_000;
    await Promise.all(
      consumers.map(async (c) => {
        while (seen.size < n && Date.now() < until) {
          for (const d of await c.fetch(group, 20, { leaseMs: 30_000, waitMs: 300 })) {
            if (Date.now() < (due.get(d.body) as number)) early.push(d.body);
            seen.set(d.body, (seen.get(d.body) ?? 0) + 1);
            await c.ack(d as Delivery);
          }
        }
      }),
    );
    expect(early).toEqual([]);
    expect(seen.size).toBe(n);
    expect(await producer.counts(group)).toMatchObject({ ready: 0, delayed: 0 });
    await producer.purge(group);
  });
});

describe('RabbitMQ broker: queue names', () => {
  it('refuses a prefix with "." (prefix X + group work.g and prefix X.work + group g would share X.work.work.g)', () => {
    expect(() => new RabbitMQBroker({ prefix: 'X.work' })).toThrow(InvalidOptionError);
    expect(() => new RabbitMQBroker({ prefix: 'X' })).not.toThrow();
  });

  it('names of different (prefix, group) pairs never coincide', () => {
    const prefixes = ['X', 'X-work', 'X:work', 'X_work', 'Xwork', 'work', 'dead', 'delay2'];
    const groups = ['g', 'work.g', 'dead.g', 'delay2.00.g', '00.g', 'work', 'a.b', 'b', 'work.work.g', 'g.work'];
    const owner = new Map<string, string>();
    for (const p of prefixes) {
      for (const g of groups) {
        const n = groupQueueNames(p, g);
        for (const name of [n.work, n.dead, ...n.delay]) {
          const who = `${p} + ${g}`;
          expect(owner.get(name) ?? who, name).toBe(who);
          owner.set(name, who);
        }
      }
    }
  });
});
