import { describe, expect, it } from 'vitest';
import { brokerContract } from './contract/broker.js';
import { MemoryBroker, MemoryBrokerStore } from '../brokers/memory.js';
import type { Delivery } from '../src/broker.js';

brokerContract('memory', () => {
  const store = new MemoryBrokerStore();
  return { create: () => new MemoryBroker({ store }) };
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const lease = { leaseMs: 30_000, waitMs: 0 };

describe('memory broker internals', () => {
  it('keeps FIFO order through queue growth, wrap-around, shrinking and releases to the front', async () => {
    const b = new MemoryBroker();
    const published: string[] = [];
    for (let i = 0; i < 5000; i++) published.push(`m${i}`);
    for (const body of published) await b.publish('g', body);
    const delivered: string[] = [];
    for (let round = 0; ; round++) {
      const ds = await b.fetch('g', 7, lease);
      if (ds.length === 0) break;
      // Hand the last one back: it must be the next delivered, flagged redelivered.
      const back = ds.pop() as Delivery;
      for (const d of ds) {
        delivered.push(d.body);
        await b.ack(d);
      }
      if (back === undefined) continue;
      await b.release(back);
      const [again] = await b.fetch('g', 1, lease);
      expect(again?.body).toBe(back.body);
      expect(again?.redelivered).toBe(true);
      delivered.push(back.body);
      await b.ack(again as Delivery);
      if (round % 3 === 0) {
        published.push(`x${round}`);
        await b.publish('g', `x${round}`);
      }
    }
    expect(delivered).toEqual(published);
    await b.close();
  });

  it('delivers many delayed messages in due order, equal due times in publish order', async () => {
    const b = new MemoryBroker();
    const base = Date.now() + 150;
    const items = Array.from({ length: 400 }, (_, i) => ({ body: String(i), options: { availableAt: base + ((i * 37) % 10) * 10 } }));
    await b.publishBatch('g', items);
    expect((await b.counts('g')).delayed).toBe(400);
    await sleep(350);
    const ds = await b.fetch('g', 1000, lease);
    const order = [...items].sort((x, y) => x.options.availableAt - y.options.availableAt || Number(x.body) - Number(y.body));
    expect(ds.map((d) => d.body)).toEqual(order.map((x) => x.body));
    expect(await b.counts('g')).toEqual({ ready: 0, delayed: 0, inFlight: 400, dead: 0 });
    await b.close();
  });

  it('an expired lease puts the message back in front of the queue, flagged redelivered', async () => {
    const b = new MemoryBroker();
    await b.publish('g', 'first');
    const [d] = await b.fetch('g', 1, { leaseMs: 50, waitMs: 0 });
    await b.publish('g', 'second');
    await sleep(120);
    const ds = await b.fetch('g', 2, lease);
    expect(ds.map((x) => [x.body, x.redelivered])).toEqual([
      ['first', true],
      ['second', false],
    ]);
    // The stale delivery is no longer held: every operation on it is a harmless no-op.
    expect(await b.extend([d as Delivery], 1000)).toEqual([(d as Delivery).token]);
    await b.release(d as Delivery);
    await b.retry(d as Delivery, 'other', 0);
    await b.deadLetter(d as Delivery, { code: 'X', message: 'x' });
    expect(await b.counts('g')).toEqual({ ready: 0, delayed: 0, inFlight: 2, dead: 0 });
    await b.close();
  });

  it('a retried message keeps its new body and is not flagged redelivered', async () => {
    const b = new MemoryBroker();
    await b.publish('g', 'v1');
    const [d] = await b.fetch('g', 1, { leaseMs: 50, waitMs: 0 });
    await b.retry(d as Delivery, 'v2', Date.now() + 60);
    await sleep(120); // past both the retry time and the old lease
    const ds = await b.fetch('g', 5, lease);
    expect(ds.map((x) => [x.body, x.redelivered])).toEqual([['v2', false]]);
    await b.close();
  });

  it('extend with a different lease length renews with that length', async () => {
    const b = new MemoryBroker();
    await b.publish('g', 'job');
    const [d] = await b.fetch('g', 1, { leaseMs: 60, waitMs: 0 });
    expect(await b.extend([d as Delivery], 400)).toEqual([]);
    await sleep(150);
    expect((await b.counts('g')).inFlight).toBe(1);
    expect(await b.extend([d as Delivery], 50)).toEqual([]);
    await sleep(120);
    expect(await b.counts('g')).toMatchObject({ ready: 1, inFlight: 0 });
    await b.close();
  });

  it('deliveries of one store mean nothing to another store, and never create groups there', async () => {
    const a = new MemoryBroker();
    const other = new MemoryBroker();
    await a.publish('g', 'job');
    await other.publish('g', 'theirs');
    const [d] = await a.fetch('g', 1, lease);
    const [theirs] = await other.fetch('g', 1, lease);
    await other.ack(d as Delivery);
    expect((await other.counts('g')).inFlight).toBe(1);
    await other.ack({ group: 'never-seen', body: '', token: (theirs as Delivery).token, redelivered: false });
    expect((await other.counts('g')).inFlight).toBe(1);
    await a.close();
    await other.close();
  });

  it('rejects invalid group names', async () => {
    const b = new MemoryBroker();
    await expect(b.publish('bad name', 'x')).rejects.toMatchObject({ code: 'ERR_INVALID_NAME' });
    await expect(b.fetch('', 1, lease)).rejects.toMatchObject({ code: 'ERR_INVALID_NAME' });
    await expect(b.counts('a/b')).rejects.toMatchObject({ code: 'ERR_INVALID_NAME' });
    await b.close();
  });

  it('redrive by ids keeps the order of the rest; delete by ids removes only those', async () => {
    const b = new MemoryBroker();
    for (const body of ['a', 'b', 'c', 'd']) await b.publish('g', body);
    for (const d of await b.fetch('g', 4, lease)) await b.deadLetter(d, { code: 'E', message: 'm' });
    const dead = await b.listDeadLetters('g');
    expect(dead.map((x) => x.body)).toEqual(['a', 'b', 'c', 'd']);
    const id = (body: string): string => (dead.find((x) => x.body === body) as { id: string }).id;
    expect(await b.redriveDeadLetters('g', [id('c'), id('a')])).toBe(2);
    expect((await b.fetch('g', 5, lease)).map((d) => d.body)).toEqual(['a', 'c']);
    expect(await b.deleteDeadLetters('g', [id('d')])).toBe(1);
    expect((await b.listDeadLetters('g')).map((x) => x.body)).toEqual(['b']);
    await b.close();
  });

  it('moves 200 000 messages through in linear time', async () => {
    /** Publishes `n` messages, fetches and acks them all; the time it took (ms). */
    const drain = async (n: number): Promise<number> => {
      const b = new MemoryBroker();
      const t0 = performance.now();
      await b.publishBatch('g', Array.from({ length: n }, (_, i) => ({ body: String(i) })));
      let seen = 0;
      for (;;) {
        const ds = await b.fetch('g', 50, lease);
        if (ds.length === 0) break;
        for (const d of ds) await b.ack(d);
        seen += ds.length;
      }
      const ms = performance.now() - t0;
      await b.close();
      expect(seen).toBe(n);
      return ms;
    };
    // Compared with itself rather than with a clock bound (the machine may be loaded): 8× the
    // messages take about 8× the time when each fetch is O(1), 64× when it is O(n) (an array drained
    // with shift() took about 15 s for 200 000 here). The least of three runs of each keeps a pause
    // of the machine from deciding it.
    const small: number[] = [];
    const large: number[] = [];
    for (let i = 0; i < 3; i++) {
      small.push(await drain(25_000));
      large.push(await drain(200_000));
    }
    expect(Math.min(...large) / Math.min(...small)).toBeLessThan(24);
  });
});
