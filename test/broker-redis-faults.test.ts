/**
 * Connection faults of the Redis broker against a real Redis: its own connections (found by client
 * name, so other tests sharing the server are left alone) are killed with CLIENT KILL while work
 * runs; an unreachable server makes calls fail with typed errors, without a busy loop.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { RedisBroker } from '../brokers/redis.js';
import type { Delivery } from '../src/broker.js';
import { redisNamespace } from './helpers/redis.js';
import { startPrivateRedis } from './helpers/redis-server.js';

const ns = redisNamespace('test');
const { prefix, admin } = ns;
const prefixKeys = ns.keys;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Kills every connection whose client name starts with `name` (CLIENT KILL ID ...). Returns how many. */
async function killConnections(name: string): Promise<number> {
  const list = String(await admin.call('CLIENT', 'LIST'));
  let killed = 0;
  for (const line of list.split('\n')) {
    const id = /(?:^|\s)id=(\d+)/.exec(line)?.[1];
    const client = /(?:^|\s)name=(\S*)/.exec(line)?.[1] ?? '';
    if (id && client.startsWith(`${name}:`)) {
      killed += Number(await admin.call('CLIENT', 'KILL', 'ID', id));
    }
  }
  return killed;
}

const brokers: RedisBroker[] = [];
function make(connectionName: string, extra: Partial<ConstructorParameters<typeof RedisBroker>[0]> = {}): RedisBroker {
  const b = new RedisBroker({ prefix, connectionName, ...extra });
  brokers.push(b);
  return b;
}

afterEach(async () => {
  await Promise.all(brokers.splice(0).map((b) => b.close()));
  await ns.sweep();
});

afterAll(async () => {
  expect(await prefixKeys()).toEqual([]);
  await ns.quit();
});

describe('redis broker connection faults', () => {
  it('loses nothing and duplicates nothing beyond redeliveries while its connections are killed', async () => {
    const name = `tasuki-fault-${randomUUID().slice(0, 8)}`;
    const group = `g-${randomUUID().slice(0, 8)}`;
    const producer = make(name);
    const consumers = [make(name), make(name)];
    const n = 500;
    const published = new Set<string>();
    const deliveries: Delivery[] = [];
    const acked = new Set<string>();
    let publishing = true;
    let kills = 0;
    /** Publish calls made per body (a call rejected by a kill may still have stored its message). */
    const attempts = new Map<string, number>();

    const killer = (async () => {
      while (publishing || acked.size < n) {
        await sleep(40);
        kills += await killConnections(name);
      }
    })();

    const produce = (async () => {
      for (let i = 0; i < n; i++) {
        const body = `job-${i}`;
        for (;;) {
          attempts.set(body, (attempts.get(body) ?? 0) + 1);
          try {
            await producer.publish(group, body);
            break;
          } catch (err) {
            expect(err).toMatchObject({ code: 'ERR_CONNECTION' });
            // The failed attempt may have been stored: publishing again may duplicate (at-least-once).
            await sleep(20);
          }
        }
        published.add(body);
      }
      publishing = false;
    })();

    const until = Date.now() + 20_000;
    const consume = consumers.map(async (c) => {
      while (Date.now() < until && (publishing || acked.size < n)) {
        let got: Delivery[];
        try {
          got = await c.fetch(group, 10, { leaseMs: 1500, waitMs: 300 });
        } catch (err) {
          expect(err).toMatchObject({ code: 'ERR_CONNECTION' });
          await sleep(20);
          continue;
        }
        for (const d of got) {
          deliveries.push(d);
          for (;;) {
            try {
              await c.ack(d);
              break;
            } catch (err) {
              expect(err).toMatchObject({ code: 'ERR_CONNECTION' });
              await sleep(20);
            }
          }
          acked.add(d.body);
        }
      }
    });

    await Promise.all([produce, ...consume]);
    publishing = false;
    await killer;

    expect(kills).toBeGreaterThan(0);
    expect(published.size).toBe(n);
    expect(acked).toEqual(published);
    // Every extra delivery of a body is a redelivery (lease expiry of a fetch whose reply was cut off),
    // or follows a publish whose outcome was unknown: rejected (the caller published again) or cut
    // by a kill and re-sent by ioredis after the reconnect. So each extra first delivery needs a kill,
    // and a body has at most one copy per publish call plus one re-sent by ioredis.
    const firsts = new Map<string, number>();
    for (const d of deliveries) {
      if (!d.redelivered) firsts.set(d.body, (firsts.get(d.body) ?? 0) + 1);
    }
    let extra = 0;
    for (const [body, count] of firsts) {
      expect(count).toBeLessThanOrEqual((attempts.get(body) ?? 0) + 1);
      extra += count - 1;
    }
    expect(extra).toBeLessThanOrEqual(kills);
    expect(new Set(deliveries.map((d) => d.token)).size).toBe(deliveries.length);
    const check = make(`${name}-check`);
    expect(await check.counts(group)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 });
  });

  it('a fetch blocked while its connections are killed resumes and gets the next message', async () => {
    const name = `tasuki-fault-${randomUUID().slice(0, 8)}`;
    const group = `g-${randomUUID().slice(0, 8)}`;
    const waiter = make(name);
    const producer = make(`${name}-producer`);
    await waiter.connect();
    const pending = waiter.fetch(group, 1, { leaseMs: 30_000, waitMs: 20_000 });
    await sleep(150);
    expect(await killConnections(name)).toBeGreaterThanOrEqual(2); // command and blocking connection
    await sleep(150);
    await killConnections(name);
    await sleep(300);
    await producer.publish(group, 'after-kill');
    const got = await pending;
    expect(got.map((d) => d.body)).toEqual(['after-kill']);
    await waiter.ack(got[0] as Delivery);
    expect(await producer.counts(group)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 });
  });

  it('a delayed message still arrives when connections are killed during the delay', async () => {
    const name = `tasuki-fault-${randomUUID().slice(0, 8)}`;
    const group = `g-${randomUUID().slice(0, 8)}`;
    const b = make(name);
    const at = Date.now() + 600;
    await b.publish(group, 'delayed', { availableAt: at });
    const pending = b.fetch(group, 1, { leaseMs: 30_000, waitMs: 10_000 });
    await sleep(200);
    await killConnections(name);
    const [d] = await pending;
    expect(d?.body).toBe('delayed');
    expect(Date.now()).toBeGreaterThanOrEqual(at);
    await b.ack(d as Delivery);
  });

  it('with Redis unreachable, calls reject with ERR_CONNECTION, reconnects back off, close still works', async () => {
    const warnings: string[] = [];
    const b = make('tasuki-unreachable', {
      // Port 1 is never a Redis; one retry per request keeps the publish failure quick.
      connection: { host: '127.0.0.1', port: 1, maxRetriesPerRequest: 1 },
      logger: { warn: (msg) => warnings.push(msg) },
    });
    await expect(b.connect()).rejects.toMatchObject({ code: 'ERR_CONNECTION' });
    await expect(b.fetch('g', 1, { leaseMs: 1000, waitMs: 1000 })).rejects.toMatchObject({ code: 'ERR_CONNECTION' });
    await expect(b.publish('g', 'x')).rejects.toMatchObject({ code: 'ERR_CONNECTION' });
    const reconnects = warnings.filter((w) => w.includes('reconnecting')).length;
    expect(reconnects).toBeGreaterThan(0);
    // Backoff, not a busy loop: a handful of attempts in the second or two above, not thousands.
    expect(reconnects).toBeLessThan(30);
    const ac = new AbortController();
    const aborted = b.fetch('g', 1, { leaseMs: 1000, waitMs: 60_000, signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    expect(await aborted).toEqual([]);
    await b.close();
    await expect(b.fetch('g', 1, { leaseMs: 1000, waitMs: 10 })).rejects.toMatchObject({ code: 'ERR_CLOSED' });
  });

  it('a private Redis killed with SIGKILL and restarted: work pauses, then goes on with nothing lost', async () => {
    // Same data directory on restart: the fsync-always append-only file is replayed.
    const server = await startPrivateRedis({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
    try {
      const b = make(`tasuki-restart-${randomUUID().slice(0, 8)}`, { connection: { host: '127.0.0.1', port: server.port } });
      const group = 'jobs';
      const idle = 'idle';
      await b.publishBatch(group, [{ body: 'a' }, { body: 'b' }]);
      const [a] = await b.fetch(group, 1, { leaseMs: 60_000, waitMs: 1000 });
      expect(a?.body).toBe('a');
      const waiting = b.fetch(idle, 1, { leaseMs: 60_000, waitMs: 20_000 });
      await sleep(100);

      await server.kill();
      const publishing = b.publish(group, 'c'); // queued until Redis is back
      await sleep(300);
      await server.restart();

      await publishing;
      await b.publish(idle, 'wake-up');
      const woken = await waiting;
      expect(woken.map((d) => d.body)).toEqual(['wake-up']);
      await b.ack(woken[0] as Delivery);
      const rest = await b.fetch(group, 5, { leaseMs: 60_000, waitMs: 1000 });
      expect(rest.map((d) => d.body)).toEqual(['b', 'c']);
      // The lease taken before the crash survived (appendfsync always): its token still acks.
      expect(await b.extend([a as Delivery], 60_000)).toEqual([]);
      for (const d of [a as Delivery, ...rest]) await b.ack(d);
      expect(await b.counts(group)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 });
      expect(await b.counts(idle)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 });
      await b.close();
    } finally {
      await server.remove();
    }
  });
});
