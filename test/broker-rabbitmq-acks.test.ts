/**
 * The per-tick ack batching of the RabbitMQ consumer channels (`brokers/rabbitmq/acks.ts`), on a
 * fake channel that records what would go on the wire: a `multiple` ack never covers a delivery
 * whose ack was not asked for, every asked ack is sent within the tick, nacks go at once.
 */
import { EventEmitter } from 'node:events';
import type { Channel, Message } from 'amqplib';
import { describe, expect, it } from 'vitest';
import { trackAcks } from '../brokers/rabbitmq/acks.js';
import { ackSafe, nackSafe } from '../brokers/rabbitmq/util.js';

interface Sent {
  op: 'ack' | 'nack';
  tag: number;
  multiple: boolean;
}

class FakeChannel extends EventEmitter {
  readonly sent: Sent[] = [];
  closed = false;
  ack(msg: Message, allUpTo = false): void {
    if (this.closed) throw new Error('Channel closed');
    this.sent.push({ op: 'ack', tag: msg.fields.deliveryTag, multiple: allUpTo });
  }
  nack(msg: Message, allUpTo = false, requeue = true): void {
    if (this.closed) throw new Error('Channel closed');
    expect(requeue).toBe(true);
    this.sent.push({ op: 'nack', tag: msg.fields.deliveryTag, multiple: allUpTo });
  }
}

function message(tag: number): Message {
  return { fields: { deliveryTag: tag }, properties: {}, content: Buffer.alloc(0) } as unknown as Message;
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** What RabbitMQ would consider settled after the frames sent (a multiple ack settles every unsettled tag up to it). */
function applyFrames(sent: Sent[], delivered: number, askedAck: Set<number>, nacked: Set<number>): Set<number> {
  const settled = new Set<number>();
  for (const s of sent) {
    if (s.op === 'nack') {
      expect(settled.has(s.tag), `nack of settled ${s.tag}`).toBe(false);
      expect(nacked.has(s.tag)).toBe(true);
      settled.add(s.tag);
      continue;
    }
    const covered = s.multiple ? Array.from({ length: s.tag }, (_, i) => i + 1).filter((t) => t <= delivered && !settled.has(t)) : [s.tag];
    expect(settled.has(s.tag), `ack of settled ${s.tag}`).toBe(false);
    for (const t of covered) {
      // The heart of it: an ack (multiple or not) only ever settles deliveries whose ack was asked for.
      expect(askedAck.has(t), `tag ${t} acked without being asked`).toBe(true);
      settled.add(t);
    }
  }
  return settled;
}

describe('RabbitMQ consumer ack batching', () => {
  it('sends the run at the head as one multiple ack and the rest singly, within the tick', async () => {
    const ch = new FakeChannel();
    const acks = trackAcks(ch as unknown as Channel);
    const msgs = [1, 2, 3, 4, 5, 6].map(message);
    for (const m of msgs) acks.track(m);
    for (const t of [2, 1, 3, 5]) ackSafe(ch as unknown as Channel, msgs[t - 1] as Message);
    expect(ch.sent).toEqual([]);
    await tick();
    expect(ch.sent).toEqual([
      { op: 'ack', tag: 3, multiple: true },
      { op: 'ack', tag: 5, multiple: false },
    ]);
    nackSafe(ch as unknown as Channel, msgs[3] as Message);
    expect(ch.sent.at(-1)).toEqual({ op: 'nack', tag: 4, multiple: false });
    ackSafe(ch as unknown as Channel, msgs[5] as Message);
    await tick();
    // 4 was nacked and 5 acked already: 6 alone is the run, one single ack.
    expect(ch.sent.at(-1)).toEqual({ op: 'ack', tag: 6, multiple: false });
    expect(ch.sent).toHaveLength(4);
  });

  it('never settles a delivery whose ack was not asked for (random orders, nacks, flushes)', async () => {
    let seed = 7;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let round = 0; round < 40; round++) {
      const ch = new FakeChannel();
      const acks = trackAcks(ch as unknown as Channel);
      const askedAck = new Set<number>();
      const nacked = new Set<number>();
      let delivered = 0;
      const open: number[] = [];
      for (let step = 0; step < 300; step++) {
        const r = rand(10);
        if (r < 4 || open.length === 0) {
          const m = message(++delivered);
          acks.track(m);
          open.push(delivered);
        } else if (r < 8) {
          const tag = open.splice(rand(open.length), 1)[0] as number;
          askedAck.add(tag);
          ackSafe(ch as unknown as Channel, message(tag));
        } else if (r < 9) {
          const tag = open.splice(rand(open.length), 1)[0] as number;
          nacked.add(tag);
          nackSafe(ch as unknown as Channel, message(tag));
        } else if (rand(2) === 0) {
          await tick();
        } else {
          acks.flush();
        }
      }
      await tick();
      const settled = applyFrames(ch.sent, delivered, askedAck, nacked);
      // Everything asked for went out; nothing else did.
      expect([...settled].sort((a, b) => a - b)).toEqual([...askedAck, ...nacked].sort((a, b) => a - b));
    }
  });

  it('drops what waits when the channel closes (RabbitMQ requeues it) and sends nothing after', async () => {
    const ch = new FakeChannel();
    const acks = trackAcks(ch as unknown as Channel);
    const m = message(1);
    acks.track(m);
    ackSafe(ch as unknown as Channel, m);
    ch.closed = true;
    ch.emit('close');
    await tick();
    expect(ch.sent).toEqual([]);
    // A late ack or nack on the dead channel is a no-op, not a throw.
    ackSafe(ch as unknown as Channel, message(2));
    nackSafe(ch as unknown as Channel, message(3));
    expect(ch.sent).toEqual([]);
  });
});
