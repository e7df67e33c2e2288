/**
 * Quorum queue options and node lists on the shared RabbitMQ (one node): `deliveryLimit` sends a
 * message over the limit to tasuki's dead-letter queue instead of letting RabbitMQ drop it, and
 * `urls` moves past nodes that refuse connections. Every queue lives under a unique prefix and is
 * deleted afterwards.
 */
import { createServer } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { RabbitMQBroker } from '../brokers/rabbitmq.js';
import { InvalidOptionError } from '../src/errors.js';
import { rabbitNamespace, rabbitUrl } from './helpers/rabbitmq.js';

const ns = rabbitNamespace('quorum');
const brokers: RabbitMQBroker[] = [];

function make(options: ConstructorParameters<typeof RabbitMQBroker>[0]): RabbitMQBroker {
  const b = new RabbitMQBroker({ prefix: ns.prefix, ...options });
  brokers.push(b);
  return b;
}

/** A loopback port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

afterAll(async () => {
  await Promise.all(brokers.map((b) => b.close()));
  await ns.sweep();
  expect(ns.queues()).toEqual([]);
});

describe('RabbitMQ broker: quorum delivery limit and node lists', () => {
  it('dead-letters a message over the delivery limit into the group dead letters (never dropped)', async () => {
    const broker = make({ url: rabbitUrl, queueType: 'quorum', deliveryLimit: 2 });
    await broker.publish('limit', 'poison');
    // Delivered 3 times (delivery counts 0, 1, 2), each handed back: over the limit of 2.
    for (let i = 0; i < 3; i++) {
      const [d] = await broker.fetch('limit', 1, { leaseMs: 30_000, waitMs: 5000 });
      expect(d?.body).toBe('poison');
      if (d) await broker.release(d);
    }
    let dead = await broker.listDeadLetters('limit');
    const until = Date.now() + 10_000;
    while (dead.length === 0 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
      dead = await broker.listDeadLetters('limit');
    }
    expect(dead.map((l) => [l.body, l.reason.code])).toEqual([['poison', 'ERR_DELIVERY_LIMIT']]);
    expect(dead[0]?.at).toBeGreaterThan(0);
    expect(await broker.fetch('limit', 1, { leaseMs: 30_000, waitMs: 300 })).toEqual([]);
    // Redriven, it runs again.
    expect(await broker.redriveDeadLetters('limit')).toBe(1);
    const [again] = await broker.fetch('limit', 1, { leaseMs: 30_000, waitMs: 5000 });
    expect(again?.body).toBe('poison');
    if (again) await broker.ack(again);
    await broker.purge('limit');
  }, 60_000);

  it('a work queue declared with another delivery limit is a topology mismatch', async () => {
    const a = make({ url: rabbitUrl, queueType: 'quorum', deliveryLimit: 50 });
    await a.publish('mismatch', 'x');
    const b = make({ url: rabbitUrl, queueType: 'quorum' });
    await expect(b.publish('mismatch', 'y')).rejects.toMatchObject({ code: 'ERR_TOPOLOGY_MISMATCH' });
    await a.purge('mismatch');
  }, 30_000);

  it('refuses deliveryLimit on classic queues and bad urls', () => {
    expect(() => new RabbitMQBroker({ deliveryLimit: 10 })).toThrow(InvalidOptionError);
    expect(() => new RabbitMQBroker({ queueType: 'quorum', deliveryLimit: 0 })).toThrow(InvalidOptionError);
    expect(() => new RabbitMQBroker({ urls: [] })).toThrow(InvalidOptionError);
    expect(() => new RabbitMQBroker({ urls: ['http://127.0.0.1:5672'] })).toThrow(InvalidOptionError);
    expect(() => new RabbitMQBroker({ urls: [rabbitUrl], url: rabbitUrl })).toThrow(InvalidOptionError);
  });

  it('connects through a list whose other nodes refuse connections, whichever it tries first', async () => {
    const down = [await closedPort(), await closedPort()].map((p) => `amqp://guest:guest@127.0.0.1:${p}`);
    // Several instances: each starts at a random node of the list, so some start at a dead one.
    const list = make({ urls: [down[0] as string, rabbitUrl, down[1] as string], reconnectInitialDelayMs: 50 });
    const others = Array.from({ length: 5 }, () => make({ urls: [down[0] as string, rabbitUrl, down[1] as string] }));
    await list.publish('urls', 'via-list');
    await Promise.all(others.map((b) => b.connect()));
    expect([list, ...others].map((b) => b.connectedNode())).toEqual(Array.from({ length: 6 }, () => 1));
    const [d] = await others[0]!.fetch('urls', 1, { leaseMs: 30_000, waitMs: 5000 });
    expect(d?.body).toBe('via-list');
    if (d) await others[0]!.ack(d);
    await list.purge('urls');
  }, 30_000);
});
