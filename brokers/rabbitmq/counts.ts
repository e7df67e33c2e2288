/**
 * `counts(group)` of the RabbitMQ broker. RabbitMQ has no atomic read over several queues: the work,
 * dead-letter and delay level queues are read in parallel (one passive declare each), and a message
 * on its way between two of them — a delay level to this instance's delay mover (in no queue while
 * the delivery travels), a level to the next, a level to the work queue — may be missed or counted
 * twice by one reading. So a reading is repeated until two consecutive ones agree (at most
 * {@link MAX_READINGS}): a settled group gives its exact counts, a busy one a near value.
 *
 * The delayed messages this instance's mover holds are counted after the queues were read (a
 * delivery pushed to the mover during the reads is then seen at least once); messages held by other
 * processes' movers are not seen.
 */
import type { QueueCounts } from '../../src/broker.js';
import { groupQueueNames } from '../rabbitmq-topology.js';
import type { Conn, RabbitConnection } from './connection.js';
import type { Declarations } from './declarations.js';

/** Readings of one `counts` call at most (the last one is returned if none agree). */
export const MAX_READINGS = 4;

/** What a reading needs from the broker. */
export interface CountSources {
  readonly connection: RabbitConnection;
  readonly declarations: Declarations;
  readonly prefix: string;
  /** Delayed messages of the group this instance's mover holds (not moving). */
  moverHolds(group: string): number;
  /** Deliveries of the group this instance holds or has buffered. */
  inFlight(group: string): number;
}

/** Reads the counts of `group` until two consecutive readings agree; see the module comment. */
export function readCounts(sources: CountSources, group: string): Promise<QueueCounts> {
  return sources.connection.run(`counting group "${group}"`, async (conn) => {
    let last = await reading(sources, conn, group);
    for (let i = 1; i < MAX_READINGS; i++) {
      const next = await reading(sources, conn, group);
      if (same(last, next)) return next;
      last = next;
    }
    return last;
  });
}

async function reading(sources: CountSources, conn: Conn, group: string): Promise<QueueCounts> {
  const names = groupQueueNames(sources.prefix, group);
  const [ready, dead, ...levels] = await Promise.all([names.work, names.dead, ...names.delay].map((queue, i) => sources.declarations.countQueue(conn, queue, i)));
  let delayed = sources.moverHolds(group);
  for (const n of levels) delayed += n;
  return { ready: ready ?? 0, delayed, inFlight: sources.inFlight(group), dead: dead ?? 0 };
}

function same(a: QueueCounts, b: QueueCounts): boolean {
  return a.ready === b.ready && a.delayed === b.delayed && a.inFlight === b.inFlight && a.dead === b.dead;
}
