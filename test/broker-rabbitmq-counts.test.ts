/**
 * `counts` of the RabbitMQ broker (`brokers/rabbitmq/counts.ts`) on fake queues: readings are
 * repeated until two consecutive ones agree, so a message caught between two queues by one reading
 * (missed, or counted twice) does not show in the result.
 */
import { describe, expect, it } from 'vitest';
import type { Conn, RabbitConnection } from '../brokers/rabbitmq/connection.js';
import { MAX_READINGS, readCounts, type CountSources } from '../brokers/rabbitmq/counts.js';
import type { Declarations } from '../brokers/rabbitmq/declarations.js';
import { groupQueueNames } from '../brokers/rabbitmq-topology.js';

/** Sources whose queue sizes come from `sizes(readingNo)`, one reading = every queue read once. */
function fake(sizes: (reading: number) => Record<string, number>, holds = (): number => 0): CountSources & { readings: () => number } {
  let reads = 0;
  const perReading = 2 + groupQueueNames('p', 'g').delay.length;
  const connection = { run: <T>(_what: string, op: (c: Conn) => Promise<T>) => op({} as Conn) } as unknown as RabbitConnection;
  const declarations = {
    countQueue: async (_c: Conn, queue: string) => sizes(Math.floor(reads++ / perReading))[queue] ?? 0,
  } as unknown as Declarations;
  return { connection, declarations, prefix: 'p', moverHolds: holds, inFlight: () => 0, readings: () => reads / perReading };
}

describe('RabbitMQ counts', () => {
  const names = groupQueueNames('p', 'g');

  it('a settled group: two readings, exact counts', async () => {
    const f = fake(() => ({ [names.work]: 3, [names.dead]: 1, [names.delay[4] as string]: 2 }), () => 1);
    expect(await readCounts(f, 'g')).toEqual({ ready: 3, delayed: 3, inFlight: 0, dead: 1 });
    expect(f.readings()).toBe(2);
  });

  it('a message counted twice by the first reading (moving from a level to the work queue) is counted once', async () => {
    // Reading 0 sees it in both places, readings 1 and 2 only in the work queue.
    const f = fake((r) => (r === 0 ? { [names.work]: 1, [names.delay[3] as string]: 1 } : { [names.work]: 1 }));
    expect(await readCounts(f, 'g')).toEqual({ ready: 1, delayed: 0, inFlight: 0, dead: 0 });
    expect(f.readings()).toBe(3);
  });

  it('a message missed by the first reading (on its way to the mover) is counted', async () => {
    let reading = 0;
    const f = fake(
      (r) => {
        reading = r;
        return {};
      },
      () => (reading === 0 ? 0 : 1),
    );
    expect((await readCounts(f, 'g')).delayed).toBe(1);
  });

  it('gives up after MAX_READINGS on a group that never settles, with the last reading', async () => {
    const f = fake((r) => ({ [names.work]: r }));
    expect((await readCounts(f, 'g')).ready).toBe(MAX_READINGS - 1);
    expect(f.readings()).toBe(MAX_READINGS);
  });
});
