/**
 * Declaring the RabbitMQ topology of `rabbitmq-topology.ts` on a connection, once per connection and
 * group (work, dead-letter and delay level queues); reading a queue's message count; deleting a
 * group's queues. A queue that exists with other arguments fails with `TopologyMismatchError`.
 */
import type { Channel } from 'amqplib';
import {
  NOT_FOUND,
  amqpReplyCode,
  delayExchangeNames,
  delayQueueArguments,
  deliveryLimitArguments,
  groupQueueNames,
  plainQueueArguments,
  toTopologyMismatch,
  workQueueArguments,
  type RabbitMQQueueType,
} from '../rabbitmq-topology.js';
import type { Conn, RabbitConnection } from './connection.js';

/** Declares and inspects the queues of one prefix. */
export class Declarations {
  constructor(
    private readonly connection: RabbitConnection,
    private readonly prefix: string,
    private readonly queueType: RabbitMQQueueType,
    private readonly priorities = false,
    /** Quorum work queues' `x-delivery-limit`, if any (see `deliveryLimitArguments`). */
    private readonly deliveryLimit?: number,
  ) {}

  /** Declares a group's queues once per connection; a conflicting queue fails with `TopologyMismatchError`. */
  ensureGroup(conn: Conn, group: string): Promise<void> {
    let p = conn.groups.get(group);
    if (!p) {
      const declared = this.declareGroup(conn, group);
      p = declared;
      conn.groups.set(group, declared);
      declared.catch(() => {
        if (conn.groups.get(group) === declared) conn.groups.delete(group);
      });
    }
    return p;
  }

  private async declareGroup(conn: Conn, group: string): Promise<void> {
    const names = groupQueueNames(this.prefix, group);
    const declare = async (ch: Channel, queue: string, args: Record<string, unknown>): Promise<void> => {
      try {
        await ch.assertQueue(queue, { durable: true, exclusive: false, autoDelete: false, arguments: args });
      } catch (err) {
        const mismatch = toTopologyMismatch(err, `queue "${queue}"`, args);
        if (mismatch && queue === names.work) {
          mismatch.message += ` (the broker option priorities is ${this.priorities ? 'on' : 'off'} here: every process of the group must use the same setting; to change it, drain and delete the work queue or use another prefix)`;
        }
        throw mismatch ?? err;
      }
    };
    const plain = plainQueueArguments(this.queueType);
    const delay = delayQueueArguments(this.queueType);
    const queues: Array<[string, Record<string, unknown>]> = [
      [names.work, { ...workQueueArguments(this.queueType, this.priorities), ...(this.deliveryLimit === undefined ? {} : deliveryLimitArguments(names.dead, this.deliveryLimit)) }],
      [names.dead, plain],
      ...names.delay.map((queue): [string, Record<string, unknown>] => [queue, delay]),
    ];
    await Promise.all(queues.map(([queue, args], i) => this.connection.onChannel(conn, 'admin', i, (ch) => declare(ch, queue, args))));
  }

  /** Message count of a queue (ready messages, not those delivered and unacked); 0 when it does not exist. */
  async countQueue(conn: Conn, queue: string, slot: number): Promise<number> {
    try {
      return await this.connection.onChannel(conn, 'check', slot, async (ch) => (await ch.checkQueue(queue)).messageCount);
    } catch (err) {
      if (amqpReplyCode(err) === NOT_FOUND) return 0;
      throw err;
    }
  }

  /** Deletes the group's queues, those of the first delay ladder included (forgetting that they were declared on `conn`). */
  async deleteGroup(conn: Conn, group: string): Promise<void> {
    const names = groupQueueNames(this.prefix, group);
    conn.groups.delete(group);
    await Promise.all(
      [names.work, names.dead, ...names.delay, ...names.legacyDelay].map((queue, i) =>
        this.connection.onChannel(conn, 'admin', i, (ch) => ch.deleteQueue(queue)),
      ),
    );
    conn.groups.delete(group);
  }

  /** Deletes the shared exchanges of the first delay ladder of the prefix. */
  async deleteLegacyExchanges(conn: Conn): Promise<void> {
    await Promise.all(delayExchangeNames(this.prefix).map((name, i) => this.connection.onChannel(conn, 'admin', i, (ch) => ch.deleteExchange(name))));
  }
}
