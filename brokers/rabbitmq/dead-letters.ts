/**
 * The dead-letter queue of each group: listing reads it with `basic.get` on a private channel and
 * hands the messages back by closing that channel (RabbitMQ requeues them in their original order);
 * re-drive publishes (confirmed) and then acks; deletion acks the chosen ones or purges the queue.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Channel, GetMessage, Message } from 'amqplib';
import type { DeadLetter } from '../../src/broker.js';
import { HEADER_DEAD_AT, HEADER_DEAD_CODE, HEADER_DEAD_MESSAGE, NOT_FOUND, amqpReplyCode, groupQueueNames } from '../rabbitmq-topology.js';
import type { Conn, RabbitConnection } from './connection.js';
import type { Publisher } from './publisher.js';
import { headerString, noop, priorityOf } from './util.js';

/** Stable id of a dead letter: its message id, or a content hash for messages put there by others. */
export function deadLetterId(msg: Message): string {
  const id = msg.properties.messageId as unknown;
  if (typeof id === 'string' && id !== '') return id;
  return `sha256:${createHash('sha256').update(msg.content).digest('hex').slice(0, 32)}`;
}

/** Reason code of a message RabbitMQ dead-lettered itself at a quorum queue's `x-delivery-limit`. */
export const DELIVERY_LIMIT_CODE = 'ERR_DELIVERY_LIMIT';

/** The `x-death` entry RabbitMQ adds when it dead-letters a message, if any (reason and time). */
function rabbitDeath(msg: Message): { reason: string; time: number } | undefined {
  const deaths = msg.properties.headers?.['x-death'] as unknown;
  if (!Array.isArray(deaths) || deaths.length === 0) return undefined;
  const first = deaths[0] as { reason?: unknown; time?: unknown };
  const time = first.time as { value?: unknown } | number | undefined;
  const seconds = typeof time === 'number' ? time : typeof time?.value === 'number' ? time.value : 0;
  return { reason: typeof first.reason === 'string' ? first.reason : 'unknown', time: seconds * 1000 };
}

function toDeadLetter(group: string, msg: Message): DeadLetter {
  const at = Number(headerString(msg, HEADER_DEAD_AT));
  const code = headerString(msg, HEADER_DEAD_CODE);
  const death = code === undefined ? rabbitDeath(msg) : undefined;
  const reason =
    code !== undefined
      ? { code, message: headerString(msg, HEADER_DEAD_MESSAGE) ?? '' }
      : death?.reason === 'delivery_limit'
        ? { code: DELIVERY_LIMIT_CODE, message: 'RabbitMQ dead-lettered the message at the work queue\'s x-delivery-limit (broker option deliveryLimit)' }
        : { code: 'ERR_UNKNOWN', message: death ? `dead-lettered by RabbitMQ (${death.reason})` : '' };
  return {
    id: deadLetterId(msg),
    group,
    body: msg.content.toString('utf8'),
    reason,
    at: Number.isFinite(at) && at > 0 ? at : (death?.time ?? 0),
  };
}

/** Operations on the dead-letter queues of one prefix (arguments already validated by the broker). */
export class DeadLetters {
  constructor(
    private readonly connection: RabbitConnection,
    private readonly publisher: Publisher,
    private readonly prefix: string,
  ) {}

  /**
   * Reads the dead-letter queue of a group with `basic.get` on a private channel, calling `visit` for
   * each message until it returns `'stop'` or the queue is exhausted, then `done`; closing the channel
   * then hands every message not acked back to the queue in its original position. Messages being
   * scanned are invisible to other processes until then (a concurrent listing may miss them).
   */
  private async scan(conn: Conn, group: string, visit: (msg: GetMessage, ch: Channel) => 'stop' | void, done?: (ch: Channel) => Promise<void>): Promise<void> {
    const ch = await this.connection.privateChannel(conn);
    try {
      const queue = groupQueueNames(this.prefix, group).dead;
      for (;;) {
        let msg: GetMessage | false;
        try {
          msg = await ch.get(queue, { noAck: false });
        } catch (err) {
          if (amqpReplyCode(err) === NOT_FOUND) return;
          throw err;
        }
        if (msg === false || visit(msg, ch) === 'stop') break;
      }
      await done?.(ch);
    } finally {
      await ch.close().catch(noop);
    }
  }

  /** Lists dead letters of a group, oldest first, from `offset`, at most `limit` (≥ 1). */
  list(group: string, offset: number, limit: number): Promise<DeadLetter[]> {
    return this.connection.run(`listing dead letters of group "${group}"`, async (conn) => {
      const out: DeadLetter[] = [];
      let index = 0;
      await this.scan(conn, group, (msg) => {
        if (index >= offset) out.push(toDeadLetter(group, msg));
        index++;
        return out.length >= limit ? 'stop' : undefined;
      });
      return out;
    });
  }

  /** Moves dead letters (the given ids, or all) back to the work queue: publish (confirmed), then ack. */
  redrive(group: string, wanted: ReadonlySet<string> | undefined): Promise<number> {
    return this.connection.run(`redriving dead letters of group "${group}"`, async (conn) => {
      const missing = wanted ? new Set(wanted) : undefined;
      const chosen: GetMessage[] = [];
      await this.scan(
        conn,
        group,
        (msg) => {
          const id = deadLetterId(msg);
          if (missing && !missing.has(id)) return undefined;
          chosen.push(msg);
          missing?.delete(id);
          return missing?.size === 0 ? 'stop' : undefined;
        },
        async (ch) => {
          if (chosen.length === 0) return;
          // Publish (confirmed) first, then ack: a crash in between duplicates, never loses.
          await this.publisher.publish(
            group,
            chosen.map((m) => ({ body: m.content.toString('utf8'), target: 'work' as const, messageId: randomUUID(), priority: priorityOf(m) })),
          );
          for (const m of chosen) ch.ack(m);
        },
      );
      return chosen.length;
    });
  }

  /** Deletes dead letters: the given ids, or all (a purge of the queue). */
  delete(group: string, wanted: ReadonlySet<string> | undefined): Promise<number> {
    const queue = groupQueueNames(this.prefix, group).dead;
    if (!wanted) {
      return this.connection.run(`deleting dead letters of group "${group}"`, async (conn) => {
        try {
          return await this.connection.onChannel(conn, 'check', 0, async (ch) => (await ch.purgeQueue(queue)).messageCount);
        } catch (err) {
          if (amqpReplyCode(err) === NOT_FOUND) return 0;
          throw err;
        }
      });
    }
    return this.connection.run(`deleting dead letters of group "${group}"`, async (conn) => {
      const missing = new Set(wanted);
      let deleted = 0;
      await this.scan(conn, group, (msg, ch) => {
        const id = deadLetterId(msg);
        if (!missing.has(id)) return undefined;
        ch.ack(msg);
        deleted++;
        missing.delete(id);
        return missing.size === 0 ? 'stop' : undefined;
      });
      return deleted;
    });
  }
}
