/**
 * On a real RabbitMQ: the frames the broker writes in one tick leave in one socket write (publishes
 * of a batch, the acks of one tick), and acks batched per tick settle every delivery — none comes
 * back after the broker is closed, and one not acked does.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { Delivery } from '../src/broker.js';
import { RabbitMQBroker } from '../brokers/rabbitmq.js';
import { rabbitNamespace, rabbitUrl } from './helpers/rabbitmq.js';

const ns = rabbitNamespace('writes');
afterAll(() => ns.sweep());

/** What went out in the socket writes of a broker's live connection, by AMQP method (class.method). */
interface WriteLog {
  /** Socket writes (`_write` / `_writev` calls) that held at least one frame of `method`. */
  writesWith(method: string): number;
  /** Frames of `method` written. */
  frames(method: string): number;
}

const PUBLISH = '60.40';
const ACK = '60.80';

/** Logs the frames of every socket write of `broker`'s live connection from now on. */
function logWrites(broker: RabbitMQBroker): WriteLog {
  const conn = (broker as unknown as { connection: { current: { model: { connection: { stream: Record<string, unknown> } } } | null } }).connection.current;
  const stream = conn?.model.connection.stream;
  if (!stream) throw new Error('not connected');
  const writes = new Map<string, number>();
  const frames = new Map<string, number>();
  const record = (bytes: Buffer): void => {
    const seen = new Set<string>();
    for (let at = 0; at + 7 <= bytes.length; ) {
      const size = bytes.readUInt32BE(at + 3);
      if (bytes[at] === 1) {
        const method = `${bytes.readUInt16BE(at + 7)}.${bytes.readUInt16BE(at + 9)}`;
        seen.add(method);
        frames.set(method, (frames.get(method) ?? 0) + 1);
      }
      at += 7 + size + 1;
    }
    for (const m of seen) writes.set(m, (writes.get(m) ?? 0) + 1);
  };
  const write = stream._write as (...args: unknown[]) => unknown;
  stream._write = (chunk: Buffer, ...rest: unknown[]) => {
    record(chunk);
    return write.call(stream, chunk, ...rest);
  };
  const writev = stream._writev as ((...args: unknown[]) => unknown) | undefined;
  if (typeof writev === 'function') {
    stream._writev = (chunks: Array<{ chunk: Buffer }>, ...rest: unknown[]) => {
      record(Buffer.concat(chunks.map((c) => c.chunk)));
      return writev.call(stream, chunks, ...rest);
    };
  }
  return { writesWith: (m) => writes.get(m) ?? 0, frames: (m) => frames.get(m) ?? 0 };
}

async function fetchAll(b: RabbitMQBroker, group: string, n: number): Promise<Delivery[]> {
  const got: Delivery[] = [];
  while (got.length < n) got.push(...(await b.fetch(group, n - got.length, { leaseMs: 30_000, waitMs: 2000 })));
  return got;
}

describe('RabbitMQ broker socket writes', () => {
  it('publishes 50 messages of a batch in a few socket writes, and acks 50 of one tick with one frame', async () => {
    const b = new RabbitMQBroker({ url: rabbitUrl, prefix: ns.prefix });
    const group = 'g1';
    try {
      await b.publish(group, 'warm-up');
      await b.ack((await fetchAll(b, group, 1))[0] as Delivery);
      await new Promise((r) => setTimeout(r, 20)); // the warm-up's ack goes out at the end of its tick
      const log = logWrites(b);
      await b.publishBatch(group, Array.from({ length: 50 }, (_, i) => ({ body: `m${i}` })));
      expect(log.frames(PUBLISH)).toBe(50);
      // Uncoalesced, amqplib writes each publish on its own: 50 writes.
      expect(log.writesWith(PUBLISH)).toBeLessThanOrEqual(10);
      const got = await fetchAll(b, group, 50);
      for (const d of got) void b.ack(d);
      await new Promise((r) => setTimeout(r, 50));
      // The 50 acks of one tick: one multiple ack, in one write.
      expect(log.frames(ACK)).toBe(1);
      expect(log.writesWith(ACK)).toBe(1);
      expect((await b.counts(group)).ready).toBe(0);
    } finally {
      await b.purge(group).catch(() => undefined);
      await b.close();
    }
  });

  it('batched acks settle every acked delivery; an unacked one comes back after close', async () => {
    const group = 'g2';
    const a = new RabbitMQBroker({ url: rabbitUrl, prefix: ns.prefix });
    await a.publishBatch(group, Array.from({ length: 20 }, (_, i) => ({ body: `m${i}` })));
    const got = await fetchAll(a, group, 20);
    // Ack all but the fifth, out of order, in one tick; close right after (acks waiting are flushed first).
    const kept = got[4] as Delivery;
    for (const d of [...got].reverse()) if (d !== kept) void a.ack(d);
    await a.close();
    const b = new RabbitMQBroker({ url: rabbitUrl, prefix: ns.prefix });
    try {
      const again = await b.fetch(group, 20, { leaseMs: 30_000, waitMs: 2000 });
      expect(again.map((d) => d.body)).toEqual([kept.body]);
      expect(again[0]?.redelivered).toBe(true);
      await b.ack(again[0] as Delivery);
      expect(await b.fetch(group, 20, { leaseMs: 30_000, waitMs: 300 })).toEqual([]);
    } finally {
      await b.purge(group).catch(() => undefined);
      await b.close();
    }
  });
});
